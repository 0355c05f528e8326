/**
 * The driver-facing kernel API: what a strategy (a remote-mapping design) may call, with
 * Linux's names and meanings. A strategy is written once against `DriverKernel` and runs
 * on both kernels. Results are values (an errno, a VM_FAULT code); nothing throws.
 *
 * Locks and sleeping. The hooks are called with the locks Linux holds: ->mmap with the
 * caller's mmap_lock for write; ->fault with the faulting mm's mmap_lock for read; ->open
 * and ->close under mmap_lock for write (fork, split, munmap, mremap) or at exit with the
 * exiting mm's; notifier callbacks with whatever the invalidating path holds (for reclaim,
 * no mmap_lock but the rmap lock). A driver's own locks go through the kernel's lock table
 * (mutex_init, spin_lock_init), so lockdep's checks (kernel-api/locks.ts) judge them. Every
 * call marked "may sleep" is a scheduling point: another task's operation may run there.
 */
import type { Errno, Outcome } from './outcome.ts';
import type { DriverHold } from './state.ts';
import type { Tid } from './sched.ts';
import type { LockRef } from './locks.ts';

/** FOLL_* flags of get_user_pages_remote / pin_user_pages_remote. */
export const FOLL_WRITE = 0x01;
export const FOLL_GET = 0x04;
export const FOLL_FORCE = 0x10;
export const FOLL_NOFAULT = 0x80000;
export const FOLL_PIN = 0x40000;

/** PAGE_SIZE in bytes: kmalloc(tag, gfp, KMALLOC_PAGE) is a page-sized object (kmalloc-4k, a slab page). */
export const KMALLOC_PAGE = 4096;
/** KMALLOC_MAX_CACHE_SIZE on x86-64 (PAGE_SIZE << 1): above it kmalloc goes to the page allocator. */
export const KMALLOC_MAX_CACHE_SIZE = 8192;

/** PTRACE_MODE_* of ptrace_may_access. */
export type PtraceMode = 'read' | 'attach';

/** The capabilities a driver may test with capable(); the model grants all of them to uid 0. */
export type Capability = 'CAP_SYS_ADMIN' | 'CAP_SYS_PTRACE' | 'CAP_DAC_OVERRIDE' | 'CAP_CHECKPOINT_RESTORE';

/** The fields of vm_area_struct a driver reads or sets in its mmap hook. */
export interface DriverVma {
  readonly id: number;
  /** pid of the mm this VMA belongs to. */
  readonly mm: number;
  readonly start: number;
  readonly end: number;
  /** vm_pgoff, in pages. */
  readonly pgoff: number;
  readonly shared: boolean;
  readonly prot: number;
  /** VM_MAYWRITE: a driver clears it in ->mmap to refuse mprotect(PROT_WRITE) later. */
  mayWrite: boolean;
  pfnmap: boolean;
  mixedmap: boolean;
  io: boolean;
  dontcopy: boolean;
  dontexpand: boolean;
  vmOps: VmOperations | null;
  privateData: unknown;
}

/** A fault handler's result: vmf->page with a reference taken, or VM_FAULT_NOPAGE / SIGBUS / OOM. */
export type FaultResult =
  | { kind: 'page'; pfn: number }
  | { kind: 'nopage' }
  | { kind: 'sigbus' }
  | { kind: 'oom' }
  /** VM_FAULT_RETRY: the handler released the fault's mmap_lock (allowed with `allowRetry`); the fault is retried with `tried`. */
  | { kind: 'retry' };

/** The fault flags a handler reads (struct vm_fault's flags). */
export type FaultFlags = {
  /** FAULT_FLAG_ALLOW_RETRY: the handler may drop the mmap_lock and return VM_FAULT_RETRY. */
  readonly allowRetry: boolean;
  /** FAULT_FLAG_TRIED: the retry of a fault that returned VM_FAULT_RETRY. */
  readonly tried: boolean;
};

/** struct vm_operations_struct. `name` names the driver in maps and stories. */
export interface VmOperations {
  readonly name: string;
  open?(vma: DriverVma): void;
  close?(vma: DriverVma): void;
  /** May sleep. Called with vma's mm's mmap_lock held for read. */
  fault?(vma: DriverVma, addr: number, pgoff: number, write: boolean, flags: FaultFlags): FaultResult;
  /** Called under mmap_write_lock; must not sleep. */
  may_split?(vma: DriverVma, addr: number): Errno | 0;
}

/** struct file_operations of a driver file. */
export interface FileOperations {
  readonly name: string;
  mmap?(file: DriverFile, vma: DriverVma): Errno | 0;
  release?(file: DriverFile): void;
}

/** struct file of a driver: f_count references (fds and VMAs), private_data. */
export type DriverFile = {
  readonly id: number;
  readonly fop: FileOperations;
  privateData: unknown;
};

/** struct mmu_interval_notifier_ops: the invalidate callback. */
export interface MmuIntervalNotifierOps {
  /**
   * Returns false only when `range.blockable` is false and the callback would have to
   * sleep (its mutex_trylock failed): the OOM reaper then leaves the mm for later.
   */
  invalidate(notifier: MmuIntervalNotifier, range: MmuNotifierRange): boolean;
}

/** struct mmu_notifier_range, as a callback sees it. */
export type MmuNotifierRange = {
  readonly start: number;
  readonly end: number;
  readonly event: 'unmap' | 'clear' | 'protection' | 'oom' | 'exit' | 'migrate';
  /** mmu_notifier_range_blockable(): false in the OOM reaper's non-blocking invalidation, where sleeping is sleep-in-atomic. */
  readonly blockable: boolean;
};

export type MmuIntervalNotifier = {
  readonly id: number;
  readonly mm: number;
  readonly start: number;
  readonly end: number;
};

/** A handle on an mm taken with get_task_mm (mmget), released with mmput. */
export type MmHandle = { readonly pid: number; readonly generation: number };

export interface DriverKernel {
  readonly zeroPfn: number;
  taskAlive(pid: number): boolean;
  ptrace_may_access(caller: number, target: number, mode: PtraceMode): boolean;
  /**
   * capable(cap) as `pid` (added for map_files' checkpoint_restore_ns_capable and for
   * root-only device nodes): false for a pid that is not running.
   */
  capable(pid: number, cap: Capability): boolean;
  get_task_mm(pid: number): MmHandle | null;
  mmput(mm: MmHandle): void;
  /** True once the OOM reaper has torn the mm down (MMF_OOM_SKIP / mm->mm_users == 0). */
  mm_reaped(mm: MmHandle): boolean;
  find_vma(mm: MmHandle, addr: number): DriverVma | null;
  find_exact_vma(mm: MmHandle, start: number, end: number): DriverVma | null;
  /**
   * One page; FOLL_GET or FOLL_PIN decides what reference is taken. Returns the pfn or an
   * errno. The caller holds mmap_read_lock(mm) (mmap_assert_locked: a call without it is
   * `lock-leak`'s sibling, raised as `kernel-assert`). May sleep: between faulting the page
   * in and looking it up again.
   */
  get_user_pages_remote(mm: MmHandle, addr: number, gupFlags: number): number | Errno;
  pin_user_pages_remote(mm: MmHandle, addr: number, gupFlags: number): number | Errno;
  unpin_user_page(pfn: number): void;
  get_page(pfn: number): void;
  put_page(pfn: number): void;
  /** alloc_page(GFP_KERNEL): may sleep. */
  alloc_page(): number | null;
  __free_page(pfn: number): void;
  SetPageReserved(pfn: number): void;
  ClearPageReserved(pfn: number): void;
  /** Kernel access to a page's contents through the direct map. */
  page_read(pfn: number): number;
  page_write(pfn: number, value: number): void;
  /**
   * A slab object; null when fault injection fails it. GFP_KERNEL (the default) may sleep;
   * GFP_ATOMIC does not. `bytes` is its size: a small object by default; PAGE_SIZE
   * (KMALLOC_PAGE) is an object of the kmalloc-4k cache, a whole page of a slab — a page
   * with PageSlab set (folio_test_slab), which virt_to_page names. Sizes above
   * KMALLOC_MAX_CACHE_SIZE (kmalloc_large) are not modelled.
   */
  kmalloc(tag: string, gfp?: 'GFP_KERNEL' | 'GFP_ATOMIC', bytes?: number): number | null;
  kfree(obj: number): void;
  /** virt_to_page of a page-sized kmalloc object: the pfn of its slab page. */
  virt_to_page(obj: number): number;
  /** remap_pfn_range, vm_insert_page, vmf_insert_pfn: may sleep (page-table allocation); take vma's mm's PTL. */
  remap_pfn_range(vma: DriverVma, addr: number, pfn: number, nrPages: number): Errno | 0;
  vm_insert_page(vma: DriverVma, addr: number, pfn: number): Errno | 0;
  vmf_insert_pfn(vma: DriverVma, addr: number, pfn: number): FaultResult;
  /**
   * zap_page_range_single: MMU notifiers of vma's mm hear of it first; takes the PTL. With
   * `atomic`, the notifiers are told without blocking (mmu_notifier_invalidate_range_start_nonblock,
   * as a zap from a non-blockable notifier callback must): false when one refuses, and
   * nothing is zapped then.
   */
  zap_vma_ptes(vma: DriverVma, addr: number, nrPages: number, atomic?: boolean): boolean;
  /**
   * May sleep, and takes mmap_write_lock(mm) to register the mm's notifier subscriptions
   * (might_lock(&mm->mmap_lock)): called holding another mm's mmap_lock, it nests the class
   * in itself.
   */
  mmu_interval_notifier_insert(mm: MmHandle, start: number, lengthPages: number, ops: MmuIntervalNotifierOps): MmuIntervalNotifier | Errno;
  /** May sleep: waits for an invalidation of the notifier in progress. */
  mmu_interval_notifier_remove(n: MmuIntervalNotifier): void;
  /** May sleep: waits while an invalidation overlapping the notifier is in progress, then returns its sequence. */
  mmu_interval_read_begin(n: MmuIntervalNotifier): number;
  /** True when an invalidation began since `seq`; the caller holds the lock its callback takes. */
  mmu_interval_read_retry(n: MmuIntervalNotifier, seq: number): boolean;
  /** The lockless early check (same answer as read_retry, to be confirmed under the lock). */
  mmu_interval_check_retry(n: MmuIntervalNotifier, seq: number): boolean;
  /** The task running this driver code (current's tid). */
  current(): Tid;
  /** current->mm: the handle of the mm of the running task's process (no reference taken). */
  current_mm(): MmHandle;
  /** mmap_read_lock of `mm` (may sleep); mmap_read_lock_killable gives EINTR on a fatal signal: never, here. */
  mmap_read_lock(mm: MmHandle): void;
  mmap_read_lock_killable(mm: MmHandle): 0 | 'EINTR';
  mmap_read_unlock(mm: MmHandle): void;
  /** mmap_read_trylock: the lock if it is free now; never sleeps. */
  mmap_read_trylock(mm: MmHandle): boolean;
  /** mutex_init / spin_lock_init: a new lock of lockdep class `cls` (`<strategy>:<field>`). */
  mutex_init(cls: string): LockRef;
  spin_lock_init(cls: string): LockRef;
  /** May sleep. */
  mutex_lock(l: LockRef): void;
  mutex_trylock(l: LockRef): boolean;
  mutex_unlock(l: LockRef): void;
  /** init_rwsem: a new read-write semaphore of lockdep class `cls`; down_read/down_write may sleep. */
  init_rwsem(cls: string): LockRef;
  down_read(l: LockRef): void;
  down_read_trylock(l: LockRef): boolean;
  up_read(l: LockRef): void;
  down_write(l: LockRef): void;
  up_write(l: LockRef): void;
  spin_lock(l: LockRef): void;
  spin_unlock(l: LockRef): void;
  /** init_srcu_struct: a new srcu_struct of lockdep class `cls`. */
  init_srcu_struct(cls: string): LockRef;
  /** srcu_read_lock / srcu_read_unlock: a read-side section; never sleeps, nests. */
  srcu_read_lock(s: LockRef): void;
  srcu_read_unlock(s: LockRef): void;
  /** synchronize_srcu: may sleep until every read-side section in progress has ended. */
  synchronize_srcu(s: LockRef): void;
  /**
   * srcu_readers_active (static in kernel/rcu/srcutree.c): some task is in a read-side
   * section. A modelling aid: a strategy asks it to make a wait it would make later happen
   * before it changes anything, where the nested scheduler can still not start it.
   */
  srcu_readers_active(s: LockRef): boolean;
  /** might_sleep() and a scheduling point: copy_to_user, cond_resched, a wait_event's check. */
  might_sleep(where: string): void;
  /** anon_inode_getfd: a new fd in `pid`'s table for a driver file. */
  anon_inode_getfd(pid: number, fop: FileOperations, privateData: unknown): number | Errno;
  fdget(pid: number, fd: number): DriverFile | null;
  /**
   * close_fd (the old __close_fd): drop `fd` from `pid`'s table and fput the file, as a
   * driver's error path does for an fd it installed. EBADF when there is no such fd.
   */
  close_fd(pid: number, fd: number): Errno | 0;
  /**
   * dentry_open of vma->vm_file's path into `pid`'s fd table (what opening a
   * /proc/<pid>/map_files/ entry does): a new fd on the same inode. EBADF for a VMA with
   * no file (anonymous private or a driver's).
   */
  open_vma_file(pid: number, vma: DriverVma, mode: 'r' | 'rw'): number | Errno;
  /** The inode (file id, shmem ids included) a VMA maps, or -1. */
  vma_inode(vma: DriverVma): number;
}

/** A remote view a strategy maintains: page `addr` of `pid` shows page `targetAddr` of `target`. */
export type RemoteView = {
  pid: number;
  addr: number;
  target: number;
  targetAddr: number;
  /** How the design promises to behave when the target page is gone. */
  onMissing: 'sigbus' | 'zero' | 'stale-ok';
};

/** One instance of a strategy, living inside one kernel. */
export interface StrategyInstance {
  call(call: string, args: Record<string, number | boolean | string>): Outcome;
  /** References this driver's own data structures hold on frames. */
  holds(): Iterable<DriverHold>;
  /** The remote views the design promises to keep coherent. */
  remoteViews(): Iterable<RemoteView>;
}
