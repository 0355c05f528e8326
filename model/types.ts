/**
 * The reference model's state, written as plainly as the semantics allow: maps keyed by
 * number, arrays kept sorted, linear scans. Names follow include/linux/mm_types.h.
 * Everything here is mutable data; the operation files in this folder change it.
 */
import type { FrameKind } from '../kernel-api/state.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import type { VmOperations, DriverFile } from '../kernel-api/driver.ts';
import type { ModelNotifier, ActiveInvalidation } from './notifier.ts';
import type { LockRef, LockTable } from '../kernel-api/locks.ts';
import type { Tid } from '../kernel-api/sched.ts';
import type { PipeTable } from '../kernel-api/pipes.ts';

/** A driver's struct file as the model keeps it: f_count and whether release ran. */
export type ModelDriverFile = DriverFile & {
  refcount: number;
  released: boolean;
  /** The inode (file or shmem id) an fd names when it is not a driver file, else -1. */
  inode: number;
  /** Open mode, for an inode fd. */
  mode: 'r' | 'rw';
};

/** struct page / folio, one 4 KiB page. */
export type Frame = {
  /**
   * An anonymous page a fault (or a copy) has allocated and not yet mapped or put in the
   * swap cache: not on the LRU yet (Linux adds a new folio there as it maps it,
   * folio_add_lru_vma), so reclaim does not see it.
   */
  fresh?: boolean;
  /**
   * MADV_FREE made it lazily free (folio_mark_lazyfree: PG_swapbacked clear): reclaim
   * discards it, without swap, while it is clean and only its mappings hold it.
   */
  lazyfree?: boolean;
  pfn: number;
  kind: FrameKind;
  refcount: number;
  mapcount: number;
  pincount: number;
  dirty: boolean;
  reserved: boolean;
  anonExclusive: boolean;
  /** Swap cache: the slot this frame caches, or -1. */
  swapSlot: number;
  /** Page cache / shmem: owning file and index, or -1. */
  file: number;
  index: number;
  value: number;
  /** LRU age: the step of the last fault that touched it; 0 after MADV_COLD. Lower is older. */
  lru: number;
};

export type Pte =
  | { kind: 'present'; pfn: number; write: boolean; dirty: boolean; softDirty: boolean; special: boolean; uffdWp: boolean }
  | { kind: 'swap'; slot: number; exclusive: boolean; softDirty: boolean; uffdWp: boolean };
export type PresentPte = Extract<Pte, { kind: 'present' }>;

/** struct vm_area_struct. */
export type Vma = {
  id: number;
  /** pid of the owning mm. */
  mm: number;
  start: number;
  end: number;
  /** PROT_* bits currently in force (VM_READ/VM_WRITE/VM_EXEC). */
  prot: number;
  shared: boolean;
  /** VM_MAYWRITE: cleared for shared mappings of files opened read-only. */
  mayWrite: boolean;
  /** -1: anonymous private. Shared anonymous memory maps a shmem file. */
  file: number;
  /** vm_file: the struct file (open file description) mapped, 0 for none; VMAs merge only with the same one. */
  vmFile: number;
  pgoff: number;
  pfnmap: boolean;
  mixedmap: boolean;
  io: boolean;
  dontcopy: boolean;
  dontexpand: boolean;
  /** VM_WIPEONFORK (MADV_WIPEONFORK): dup_mmap gives the child this range empty, private anonymous memory only. */
  wipeonfork: boolean;
  /** VM_LOCKED and VM_LOCKONFAULT (model/mlock.ts): reclaim skips the pages; fork clears both. */
  locked: boolean;
  lockonfault: boolean;
  /** anon_vma identity, or 0 while none was prepared (a read fault of the zero page prepares none). */
  anonVma: number;
  /**
   * vma_is_fork_child: the anon_vma chain holds more than one link (anon_vma_fork linked the
   * parent's anon_vmas too); such a VMA's anon_vma is never shared with a neighbour.
   */
  forkChild: boolean;
  /** VM_ACCOUNT: committed memory (accountable_mapping: private and writable at mmap; mprotect sets it). */
  account: boolean;
  vmOps: VmOperations | null;
  /** The driver file this VMA maps (vma->vm_file for a driver), holding a reference. */
  driverFile: ModelDriverFile | null;
  privateData: unknown;
  /** VM_SOFTDIRTY: new VMAs and mremap targets have it; clear_refs 4 clears it. */
  softDirty: boolean;
  /** VM_UFFD_WP: the id of the userfaultfd context it is registered with (async WP mode), or 0. */
  uffdCtx: number;
};

export type RssCounters = { anon: number; file: number; shmem: number; swap: number };

/** struct mm_struct. */
export type Mm = {
  vmas: Vma[];
  ptes: Map<number, Pte>;
  rss: RssCounters;
  /** Empty PTEs holding a uffd-wp marker (PTE_MARKER_UFFD_WP); never where `ptes` has an entry. */
  uffdWpMarkers: Set<number>;
  /** mm->def_flags' VM_LOCKED and VM_LOCKONFAULT (mlockall(MCL_FUTURE)): every new VMA gets them. */
  defLocked: boolean;
  defLockOnFault: boolean;
};

export type Process = {
  pid: number;
  ppid: number;
  uid: number;
  dumpable: boolean;
  state: 'running' | 'exited';
  oomReaped: boolean;
  /** SIGKILL is pending (exit_group or the OOM killer has begun): none of its threads starts anything more. */
  killed: boolean;
  mm: Mm;
  /** The pids it forked, running or exited (list_head children): exit reparents them without walking every process. */
  children: number[];
  /** The fd table: fd → driver file. */
  fds: Map<number, ModelDriverFile>;
};

/** An inode: a regular file (page cache over a backing store) or a shmem object. */
export type File = {
  id: number;
  shmem: boolean;
  sizePages: number;
  pagecache: Map<number, number>;
  /** What writeback left on disk: index → value. Absent means zero. */
  backing: Map<number, number>;
  /** shmem pages swapped out: index → slot. */
  swapped: Map<number, number>;
  /** Mappings and fds naming this inode. A shmem object dies with the last; regular files persist. */
  users: number;
};

export type SwapSlot = { slot: number; count: number; cachePfn: number; value: number };

/** Lock refs by pid (mmap_lock, PTL), file id (i_mmap_rwsem) and anon_vma id, each looked up in the LockTable once. */
export type LockRefs = {
  readonly mmap: Map<number, LockRef>;
  readonly ptl: Map<number, LockRef>;
  readonly iMmap: Map<number, LockRef>;
  readonly anonVma: Map<number, LockRef>;
  readonly invalidate: Map<number, LockRef>;
};

export type ModelState = {
  config: KernelConfig;
  step: number;
  frames: Map<number, Frame>;
  /** Freed frames keep their last value, so a stale PTE reads what the memory held. */
  freed: Map<number, Frame>;
  nextPfn: number;
  zeroPfn: number;
  processes: Map<number, Process>;
  /** The running processes' pids, in pid order (pids are allocated increasing): spawn and fork add, exit removes. */
  running: Set<number>;
  nextPid: number;
  files: Map<number, File>;
  nextFileId: number;
  nextShmemId: number;
  swap: Map<number, SwapSlot>;
  nextSlot: number;
  nextVmaId: number;
  nextAnonVma: number;
  /** fail-nth: allocations left before the failing one; 0 when disarmed. */
  failNth: number;
  /** Live kmalloc objects by id → tag. */
  slab: Map<number, string>;
  /** The slab page of each kmalloc object of a page (PageSlab), by object: virt_to_page's answer. */
  slabPage: Map<number, number>;
  /** The pfns of those pages: folio_test_slab. */
  slabPfns: Set<number>;
  nextSlabId: number;
  nextDriverFileId: number;
  notifiers: Map<number, ModelNotifier>;
  /** A corruption for tests: ptrace_may_access always grants. */
  skipPtraceCheck: boolean;
  /** Corruption 'skip-fork-dma-copy'. */
  skipForkDmaCopy: boolean;
  /** Corruption 'oom-reap-no-notifier'. */
  oomReapNoNotifier?: true;
  /** References held outside any driver: only the leak-frame corruption makes them. */
  strayHolds: Map<number, string>;
  nextNotifierId: number;
  /** Ids of userfaultfd contexts (each uffd_register_wp opens a new one). */
  nextUffdCtx: number;
  /** The kernel's lock table (mmap_lock, PTL, rmap locks, drivers' locks) and the current task. */
  locks: LockTable;
  /** The table's lock refs already looked up, by number (model/locks.ts): its own lookup is by a string built per call. */
  lockRefs: LockRefs;
  /** Live threads: tid → pid (a main thread has tid == pid). */
  threads: Map<Tid, number>;
  /** In-progress MMU notifier invalidations (invalidate_range_start … _end), oldest first. */
  invalidations: ActiveInvalidation[];
  /** Nesting depth of MMU notifier callbacks, per task. */
  notifierNesting: Map<Tid, number>;
  /** fput()s deferred to task work, per task: ->release runs once the task holds no lock. */
  deferredFput: Map<Tid, ModelDriverFile[]>;
  /** Files a task's fdget took a reference to (its process has other threads): dropped when its operation returns (fdput). */
  fdgetHeld: Map<Tid, ModelDriverFile[]>;
  /** anon_vma → its root (anon_vma->root, shared with the parent's after fork); absent: its own root. */
  anonVmaRoot: Map<number, number>;
  /** Pipes vmsplice filled, each buffer holding a page reference (kernel-api/pipes.ts). */
  pipes: PipeTable;
};

export { SHMEM_ID_BASE } from '../kernel-api/state.ts';
