/**
 * Read-only views of kernel state, the one inspection interface through which the
 * invariants of `properties/` judge either kernel. A view names things the way
 * `include/linux/mm_types.h` does; it holds no logic.
 */
import type { PipeView } from './pipes.ts';

/** Shmem objects (shared anonymous memory) have ids from here up; regular files below. */
export const SHMEM_ID_BASE = 1 << 20;

export type FrameKind = 'anon' | 'file' | 'shmem' | 'driver' | 'zero';

export type FrameView = {
  pfn: number;
  kind: FrameKind;
  /** folio_ref_count(): mappings + pins + page cache + swap cache + driver holds. */
  refcount: number;
  /** folio_mapcount(): non-special PTEs that map this frame. */
  mapcount: number;
  /** FOLL_PIN pins (each also counts once in refcount; Linux biases by 1024 instead). */
  pincount: number;
  dirty: boolean;
  /** PG_reserved (SetPageReserved). */
  reserved: boolean;
  /** PageAnonExclusive: this anonymous page belongs to exactly one mm. */
  anonExclusive: boolean;
  /** MADV_FREE's lazily free anonymous page (PG_swapbacked clear): reclaim discards it while clean. */
  lazyfree: boolean;
  /** Swap slot of the swap cache entry holding this frame, or -1. */
  swapSlot: number;
  /** Owning file (page cache or shmem) and index, or -1. */
  file: number;
  index: number;
  value: number;
};

export type PteView =
  | { kind: 'present'; pfn: number; write: boolean; dirty: boolean; softDirty: boolean; special: boolean; uffdWp: boolean }
  | { kind: 'swap'; slot: number; exclusive: boolean; softDirty: boolean; uffdWp: boolean };

export type VmaView = {
  /** First page of the VMA. */
  start: number;
  /** First page after the VMA (half-open, as vm_end). */
  end: number;
  prot: number;
  shared: boolean;
  /** VM_MAYWRITE: mprotect(PROT_WRITE) is allowed. */
  mayWrite: boolean;
  /** File id, or -1 for anonymous private memory. Shared anonymous memory has a shmem file. */
  file: number;
  /** Offset in the file, in pages. */
  pgoff: number;
  pfnmap: boolean;
  mixedmap: boolean;
  io: boolean;
  dontcopy: boolean;
  dontexpand: boolean;
  /** VM_WIPEONFORK: the child of a fork gets this range empty. */
  wipeonfork: boolean;
  /** VM_LOCKED (mlock, mlockall, MAP_LOCKED) and VM_LOCKONFAULT. */
  locked: boolean;
  lockonfault: boolean;
  /** Name of the driver (strategy) whose vm_ops this VMA has, or ''. */
  driver: string;
  /** Stable id for stories and repros (`map#N`). */
  id: number;
  /** VM_SOFTDIRTY: set on new VMAs and mremap targets, cleared by clear_refs 4. */
  softDirty: boolean;
  /** VM_UFFD_WP, registered with UFFD_FEATURE_WP_ASYNC | WP_UNPOPULATED (the only mode emulated). */
  uffdWp: boolean;
};

export type ProcessState = 'running' | 'exited';

export type ProcessView = {
  pid: number;
  ppid: number;
  uid: number;
  dumpable: boolean;
  state: ProcessState;
  /** Set once the OOM reaper has torn down the private anonymous memory. */
  oomReaped: boolean;
  rss: RssCounters;
};

/** mm->rss_stat: MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS. */
export type RssCounters = { anon: number; file: number; shmem: number; swap: number };

export type FileView = {
  id: number;
  /** i_size in pages. */
  sizePages: number;
  shmem: boolean;
};

export type SwapSlotView = {
  slot: number;
  /** swap_map count: swap PTEs and shmem entries that name this slot. */
  count: number;
  /** pfn of the swap cache frame, or -1. */
  cachePfn: number;
  value: number;
};

/** A reference a driver claims to hold on a frame (from its own data structures). */
export type DriverHold = {
  pfn: number; holder: string; pins: number; refs: number;
  /** Taken with FOLL_WRITE (the driver will store through it): GUP broke COW first, so never the zero page. */
  forWrite?: boolean;
};

/**
 * The inspection interface. Iteration order is defined: processes by pid, VMAs and PTEs
 * by address, frames by pfn, files by id, swap slots by number.
 */
export interface KernelInspect {
  readonly zeroPfn: number;
  frames(): Iterable<FrameView>;
  frame(pfn: number): FrameView | undefined;
  processes(): Iterable<ProcessView>;
  /** The running processes, by pid, in time that does not grow with the exited ones. */
  runningProcesses(): Iterable<ProcessView>;
  /** One process, running or exited; undefined for a pid never used. */
  process(pid: number): ProcessView | undefined;
  vmas(pid: number): Iterable<VmaView>;
  ptes(pid: number): Iterable<[addr: number, pte: PteView]>;
  files(): Iterable<FileView>;
  /** Page cache (or shmem) entries of a file: index → pfn. */
  pagecache(file: number): Iterable<[index: number, pfn: number]>;
  /** Swapped-out shmem entries of a file: index → slot. */
  shmemSwap(file: number): Iterable<[index: number, slot: number]>;
  /** The backing store of a file: index → value, for pages that were written back. */
  backing(file: number): Iterable<[index: number, value: number]>;
  swapSlots(): Iterable<SwapSlotView>;
  /** References drivers hold, as their own state names them. */
  driverHolds(): Iterable<DriverHold>;
  /** Pipes and the page each buffer holds a reference to (vmsplice; kernel-api/pipes.ts), by id. */
  pipes(): Iterable<PipeView>;
  /** Open fds across all processes (driver files and inode fds). */
  openFdCount(): number;
  /** The fd table of `pid`, by fd: each fd's f_op name ('file' for a regular file or shmem inode). */
  fds(pid: number): Iterable<{ fd: number; driver: string }>;
  /** Live kmalloc objects (by tag), for no-leak. */
  slabObjects(): Iterable<{ id: number; tag: string }>;
  /** Registered MMU interval notifiers, for no-leak. */
  notifierCount(): number;
  /** Addresses of `pid` holding a uffd-wp PTE marker (PTE_MARKER_UFFD_WP on an empty PTE), in order. */
  uffdWpMarkers(pid: number): Iterable<number>;
}
