/**
 * The optimised kernel's state: the same objects as the model's (model/types.ts) where a
 * driver can see them — VMAs, driver files, processes — and packed structures where it
 * cannot: the frame pool, page tables, rmap chains, swap map. Names follow mm_types.h.
 */
import type { KernelConfig } from '../kernel-api/config.ts';
import type { DriverFile, DriverVma, MmuIntervalNotifierOps, VmOperations } from '../kernel-api/driver.ts';
import type { RssCounters } from '../kernel-api/state.ts';
import type { TreeVma } from './vmatree.ts';
import { VmaTree } from './vmatree.ts';
import { PageTable, type Quicklist } from './pagetable.ts';
import type { FramePool } from './framepool.ts';
import type { Rmap } from './rmap.ts';
import type { Lru } from './lru.ts';
import type { SwapMap } from './swapmap.ts';
import type { IntervalTree } from './intervaltree.ts';
import type { LockRef, LockTable } from '../kernel-api/locks.ts';
import type { Tid } from '../kernel-api/sched.ts';
import type { PipeTable } from '../kernel-api/pipes.ts';

export type ImplDriverFile = DriverFile & {
  refcount: number;
  released: boolean;
  /** The inode (file or shmem id) an fd names when it is not a driver file, else -1. */
  inode: number;
  mode: 'r' | 'rw';
};

/** struct vm_area_struct, with the VMA tree's intrusive fields. */
export class ImplVma implements DriverVma, TreeVma {
  left: this | null = null;
  right: this | null = null;
  prio = 0;
  /** VM_SOFTDIRTY: new VMAs and mremap targets have it; clear_refs 4 clears it. */
  softDirty = true;
  /** VM_UFFD_WP: the userfaultfd context it is registered with (async WP mode), or 0. */
  uffdCtx = 0;
  /** vma_is_fork_child: the anon_vma chain holds more than one link (anon_vma_fork linked the parent's too). */
  forkChild = false;
  /** VM_ACCOUNT: committed memory (private and writable at mmap; mprotect sets it). */
  account = false;
  /** vm_file: the struct file (open file description) mapped, 0 for none; VMAs merge only with the same one. */
  vmFile = 0;
  /** VM_WIPEONFORK (MADV_WIPEONFORK): dup_mmap gives the child this range empty, private anonymous memory only. */
  wipeonfork = false;
  /** VM_LOCKED and VM_LOCKONFAULT (impl/mlock.ts): reclaim skips the pages; fork clears both. */
  locked = false;
  lockonfault = false;
  firstStart = 0;
  lastEnd = 0;
  maxGap = 0;
  constructor(
    public id: number,
    public mm: number,
    public start: number,
    public end: number,
    public prot: number,
    public shared: boolean,
    public mayWrite: boolean,
    public file: number,
    public pgoff: number,
    public pfnmap: boolean,
    public mixedmap: boolean,
    public io: boolean,
    public dontcopy: boolean,
    public dontexpand: boolean,
    public anonVma: number,
    public vmOps: VmOperations | null,
    public driverFile: ImplDriverFile | null,
    public privateData: unknown,
  ) {}

  /** vm_area_dup: every field but the id and the tree links. */
  dup(id: number): ImplVma {
    const copy = new ImplVma(
      id, this.mm, this.start, this.end, this.prot, this.shared, this.mayWrite, this.file, this.pgoff, this.pfnmap,
      this.mixedmap, this.io, this.dontcopy, this.dontexpand, this.anonVma, this.vmOps, this.driverFile, this.privateData,
    );
    copy.softDirty = this.softDirty;
    copy.uffdCtx = this.uffdCtx;
    copy.forkChild = this.forkChild;
    copy.account = this.account;
    copy.vmFile = this.vmFile;
    copy.wipeonfork = this.wipeonfork;
    copy.locked = this.locked;
    copy.lockonfault = this.lockonfault;
    return copy;
  }
}

/** struct mm_struct. */
export class ImplMm {
  readonly vmas = new VmaTree<ImplVma>();
  readonly pt: PageTable;
  readonly rss: RssCounters = { anon: 0, file: 0, shmem: 0, swap: 0 };
  /** Empty PTEs holding a uffd-wp marker (PTE_MARKER_UFFD_WP); never where `pt` has an entry. */
  readonly uffdWpMarkers = new Set<number>();
  /** This mm's mmap_lock and PTL in the lock table, looked up on first use (impl/locks.ts). */
  mmapLock: LockRef | null = null;
  ptl: LockRef | null = null;
  /** mm->def_flags' VM_LOCKED and VM_LOCKONFAULT (mlockall(MCL_FUTURE)): every new VMA gets them. */
  defLocked = false;
  defLockOnFault = false;
  constructor(readonly pid: number, quicklist: Quicklist) {
    this.pt = new PageTable(quicklist);
  }
}

export type ImplProcess = {
  pid: number;
  ppid: number;
  uid: number;
  dumpable: boolean;
  state: 'running' | 'exited';
  oomReaped: boolean;
  /** SIGKILL is pending (exit_group or the OOM killer has begun): none of its threads starts anything more. */
  killed: boolean;
  mm: ImplMm;
  /** The pids it forked, running or exited (list_head children): exit reparents them without walking every process. */
  children: number[];
  fds: Map<number, ImplDriverFile>;
};

/** An inode: page cache over a backing store, or shmem over swap; i_mmap lists its VMAs. */
export type ImplFile = {
  id: number;
  shmem: boolean;
  sizePages: number;
  pagecache: Map<number, number>;
  backing: Map<number, number>;
  swapped: Map<number, number>;
  users: number;
  /** i_mmap: the VMAs mapping this inode. */
  immap: Set<ImplVma>;
};

export type ImplNotifier = {
  id: number;
  mm: number;
  start: number;
  end: number;
  ops: MmuIntervalNotifierOps;
  seq: number;
};

/** An invalidation between its start and its end: of [start, end) of `pid`'s mm, by `task`. */
export type ActiveInvalidation = { readonly pid: number; readonly start: number; readonly end: number; readonly task: Tid };

/** Lock refs by pid (mmap_lock, PTL), file id (i_mmap_rwsem) and anon_vma id, each looked up in the LockTable once. */
export type LockRefs = {
  readonly mmap: Map<number, LockRef>;
  readonly ptl: Map<number, LockRef>;
  readonly iMmap: Map<number, LockRef>;
  readonly anonVma: Map<number, LockRef>;
  readonly invalidate: Map<number, LockRef>;
};

export type ImplState = {
  config: KernelConfig;
  step: number;
  pool: FramePool;
  rmap: Rmap;
  /** Freed page-table pages for this kernel's page tables to reuse. */
  quicklist: Quicklist;
  lru: Lru;
  swap: SwapMap;
  zeroPfn: number;
  processes: Map<number, ImplProcess>;
  /** The running processes' pids, in pid order (pids are allocated increasing): spawn and fork add, exit removes. */
  running: Set<number>;
  nextPid: number;
  files: Map<number, ImplFile>;
  nextFileId: number;
  nextShmemId: number;
  nextVmaId: number;
  nextAnonVma: number;
  failNth: number;
  slab: Map<number, string>;
  /** The slab page of each kmalloc object of a page (PageSlab), by object. */
  slabPage: Map<number, number>;
  /** The pfns of those pages: folio_test_slab. */
  slabPfns: Set<number>;
  nextSlabId: number;
  nextDriverFileId: number;
  notifiers: Map<number, ImplNotifier>;
  /** Per-mm interval trees of notifiers, by pid. */
  notifierTrees: Map<number, IntervalTree<ImplNotifier>>;
  nextNotifierId: number;
  skipPtraceCheck: boolean;
  /** Corruption 'skip-fork-dma-copy'. */
  skipForkDmaCopy: boolean;
  /** Corruption 'oom-reap-no-notifier'. */
  oomReapNoNotifier?: true;
  strayHolds: Map<number, string>;
  /** Ids of userfaultfd contexts (each uffd_register_wp opens a new one). */
  nextUffdCtx: number;
  /** The kernel's lock table (mmap_lock, PTL, rmap locks, drivers' locks) and the current task. */
  locks: LockTable;
  /** The table's lock refs already looked up, by number (impl/locks.ts): its own lookup is by a string built per call. */
  lockRefs: LockRefs;
  /** Live threads: tid → pid (a main thread has tid == pid). */
  threads: Map<Tid, number>;
  /** In-progress MMU notifier invalidations (invalidate_range_start … _end) per mm, oldest first. */
  invalidations: Map<number, ActiveInvalidation[]>;
  /** Nesting depth of MMU notifier callbacks, per task. */
  notifierNesting: Map<Tid, number>;
  /** fput()s deferred to task work, per task: ->release runs once the task holds no lock. */
  deferredFput: Map<Tid, ImplDriverFile[]>;
  /** Files a task's fdget took a reference to (its process has other threads): dropped when its operation returns (fdput). */
  fdgetHeld: Map<Tid, ImplDriverFile[]>;
  /** anon_vma → its root (anon_vma->root, shared with the parent's after fork); absent: its own root. */
  anonVmaRoot: Map<number, number>;
  /** Pipes vmsplice filled, each buffer holding a page reference (kernel-api/pipes.ts). */
  pipes: PipeTable;
};

export { SHMEM_ID_BASE } from '../kernel-api/state.ts';
