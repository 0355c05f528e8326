/**
 * Operations: the trace language. Every operation is plain JSON data, a discriminated
 * union on `op`, so that a trace is a JSON array and a repro file is a trace.
 *
 * Units: every address and length is in pages (one unit = one 4 KiB page); values are
 * 32-bit unsigned integers, one per page. Ranges are half-open, as `vm_end` is in Linux.
 */

/** PROT_* bits, as in <asm-generic/mman-common.h>. */
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
export type Prot = number;

/** The advice values that `madvise` emulates. */
export type Advice = 'DONTNEED' | 'PAGEOUT' | 'COLD' | 'DONTFORK' | 'DOFORK'
  // issue 17: readahead (not emulated), VM_WIPEONFORK set/clear, prefaulting (madvise_populate).
  | 'WILLNEED' | 'WIPEONFORK' | 'KEEPONFORK' | 'POPULATE_READ' | 'POPULATE_WRITE' | 'REMOVE'
  // MADV_FREE: lazily free private anonymous pages (reclaim discards them while clean).
  | 'FREE';

/**
 * madvise's get_lock_mode (mm/madvise.c): the advices that change vm_flags (DONTFORK, DOFORK,
 * WIPEONFORK, KEEPONFORK) take the mmap_lock for write, the others for read (DONTNEED's
 * per-VMA lock is emulated as the mmap_lock for read); null: not an advice (EINVAL).
 */
export function madviseLockMode(advice: Advice): 'read' | 'write' | null {
  switch (advice) {
    case 'DONTFORK': case 'DOFORK': case 'WIPEONFORK': case 'KEEPONFORK': return 'write';
    case 'DONTNEED': case 'PAGEOUT': case 'COLD': case 'WILLNEED': case 'POPULATE_READ': case 'POPULATE_WRITE': case 'REMOVE': case 'FREE': return 'read';
    default: return null;
  }
}

/** How the fd behind a file mapping was opened: O_RDONLY or O_RDWR. */
export type OpenMode = 'r' | 'rw';

/**
 * A scheduling decision recorded in a trace: while this operation runs, at its `at`-th
 * scheduling point (counted from 0 over every preempt point, block and its completion),
 * task `to` runs next. When `to` has an operation in flight it resumes; when it is idle and
 * the next operation of the trace is its own, that operation starts. Anything else is void.
 * Without a decision the running task goes on past a preempt point; at a block or a
 * completion the task most recently stopped that can run resumes, else the next operation
 * starts.
 */
export type Switch = { at: number; to: number };

/** Fields every operation may carry: which task issues it and the schedule it saw. */
export type OpCommon = {
  /**
   * The thread that issues the operation (a tid from `clone`); absent: the process's main
   * thread (tid == pid), or task 0 for operations no process issues.
   */
  tid?: number;
  /** The scheduling decisions taken while this operation ran (absent: none). */
  switches?: Switch[];
};

/** clone(CLONE_VM | CLONE_THREAD | …): a new thread of `pid`, sharing its mm; returns its tid. */
export type CloneOp = { op: 'clone'; pid: number };

export type SpawnOp = {
  op: 'spawn';
  /** Real and effective uid of the new process; 0 has CAP_SYS_PTRACE. Default 1000. */
  uid?: number;
};

export type MmapOp = {
  op: 'mmap';
  pid: number;
  /** Hint address (0: none); with `fixed` or `noreplace`, the exact address. */
  addr: number;
  lengthPages: number;
  prot: Prot;
  /** MAP_SHARED when true, MAP_PRIVATE otherwise. */
  shared: boolean;
  /** MAP_FIXED: replace whatever is mapped there. */
  fixed?: boolean;
  /** MAP_FIXED_NOREPLACE: EEXIST when anything is mapped there. */
  noreplace?: boolean;
  /** File id from `creat`; absent for anonymous memory (shared anon is a shmem object). */
  file?: number;
  /** File offset in pages. */
  pgoff?: number;
  /** Open mode of the fd; default 'rw'. */
  mode?: OpenMode;
  /** A driver fd of `pid` (from a strategy's open call) to map instead of a file. */
  fd?: number;
  /** MAP_LOCKED: VM_LOCKED from the start, and the pages faulted in (errors ignored). */
  locked?: boolean;
};

/** close(2) of a driver fd. */
export type CloseOp = { op: 'close'; pid: number; fd: number };

export type MunmapOp = { op: 'munmap'; pid: number; addr: number; lengthPages: number };
export type MprotectOp = { op: 'mprotect'; pid: number; addr: number; lengthPages: number; prot: Prot };

export type MremapOp = {
  op: 'mremap';
  pid: number;
  addr: number;
  /**
   * MREMAP_DONTUNMAP (needs MREMAP_MAYMOVE and oldPages == newPages): the pages move, the old
   * range stays mapped and empty (anonymous memory reads zero, a file mapping refaults).
   */
  dontunmap?: boolean;
  oldPages: number;
  newPages: number;
  /** MREMAP_MAYMOVE */
  maymove?: boolean;
  /** MREMAP_FIXED, with `newAddr` (requires maymove). */
  fixed?: boolean;
  newAddr?: number;
};

export type MadviseOp = { op: 'madvise'; pid: number; addr: number; lengthPages: number; advice: Advice };

/**
 * mlock(addr, len), or mlock2(addr, len, MLOCK_ONFAULT) with `onfault` (mm/mlock.c): VM_LOCKED
 * (and VM_LOCKONFAULT) on the range, then its pages faulted in unless on-fault. A byte range
 * widens to whole pages (start rounded down, end up). Reclaim skips the pages of a VM_LOCKED
 * VMA; fork does not pass the lock on.
 */
export type MlockOp = { op: 'mlock'; pid: number; addr: number; lengthPages: number; onfault?: boolean };
export type MunlockOp = { op: 'munlock'; pid: number; addr: number; lengthPages: number };
/** mlockall(flags): MCL_CURRENT 1, MCL_FUTURE 2, MCL_ONFAULT 4. */
export type MlockallOp = { op: 'mlockall'; pid: number; flags: number };
export type MunlockallOp = { op: 'munlockall'; pid: number };
export const MCL_CURRENT = 1, MCL_FUTURE = 2, MCL_ONFAULT = 4;
/** RLIMIT_MEMLOCK's default (MLOCK_LIMIT, 8 MiB) in pages: what an unprivileged process may lock. */
export const MLOCK_LIMIT_PAGES = 2048;
export type ReadOp = { op: 'read'; pid: number; addr: number };
export type WriteOp = { op: 'write'; pid: number; addr: number; value: number };
export type ForkOp = { op: 'fork'; pid: number };
export type ExitOp = { op: 'exit'; pid: number };

/**
 * Memory reclaim. With `pid`/`addr`: reclaim the frame mapped there (as MADV_PAGEOUT of a
 * single page would, but regardless of sharing). With `count`: the `count` least recently
 * used frames on the LRU.
 */
export type ReclaimOp =
  | { op: 'reclaim'; pid: number; addr: number }
  | { op: 'reclaim'; count: number };

/** Kill `pid` as the OOM killer does: reap its private anonymous memory, then exit. */
export type OomOp = { op: 'oom'; pid: number };

/** Create a regular file of `sizePages` zero pages; returns its id. */
export type CreatOp = { op: 'creat'; sizePages: number };
export type PreadOp = { op: 'pread'; file: number; index: number };
export type PwriteOp = { op: 'pwrite'; file: number; index: number; value: number };
export type TruncateOp = { op: 'truncate'; file: number; sizePages: number };

/** Read or write through /proc/<target>/mem, opened by `pid` (FOLL_FORCE semantics). */
export type ProcMemReadOp = { op: 'proc_mem_read'; pid: number; target: number; addr: number };
export type ProcMemWriteOp = { op: 'proc_mem_write'; pid: number; target: number; addr: number; value: number };

/** process_vm_readv / process_vm_writev of one page-sized iovec. */
export type ProcessVmReadvOp = { op: 'process_vm_readv'; pid: number; target: number; addr: number };
export type ProcessVmWritevOp = { op: 'process_vm_writev'; pid: number; target: number; addr: number; value: number };

/** prctl(PR_SET_DUMPABLE). */
export type SetDumpableOp = { op: 'set_dumpable'; pid: number; dumpable: boolean };

/** Fault injection, as /proc/self/fail-nth: the `nth` allocation from now (1 = the next) fails. */
export type FailNthOp = { op: 'fail_nth'; nth: number };

/**
 * A call into a strategy (a remote-mapping driver). `call` is one of the operations the
 * strategy declares; `args` is its JSON arguments.
 */
export type DriverOp = { op: 'drv'; strategy: string; call: string; args: Record<string, number | boolean | string> };

/**
 * read(2) of /proc/<target>/pagemap by `pid`: `count` entries (default 1, at most
 * PAGEMAP_READ_PAGES_MAX) from page `addr`, clipped at TASK_SIZE. The ok outcome's `values`
 * hold each entry's bits 55..63 shifted down (PM_SOFT_DIRTY = 1, PM_MMAP_EXCLUSIVE = 2,
 * PM_UFFD_WP = 4, PM_FILE = 64, PM_SWAP = 128, PM_PRESENT = 256); `frames` holds bits 0..54
 * (the PFN, or swap type | offset << 5), zero unless the reader has CAP_SYS_ADMIN.
 */
export type PagemapReadOp = { op: 'pagemap_read'; pid: number; target: number; addr: number; count?: number };

/** write(2) of "4" to /proc/<target>/clear_refs by `pid`: clear soft-dirty bits (CLEAR_REFS_SOFT_DIRTY). */
export type ClearRefsOp = { op: 'clear_refs'; pid: number; target: number; mode: number };

/**
 * userfaultfd(2) + UFFDIO_API with UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED, then
 * UFFDIO_REGISTER of [addr, addr + lengthPages) in MODE_WP. Only the asynchronous mode is
 * emulated: a write to a write-protected page resolves by clearing its uffd-wp bit.
 */
export type UffdRegisterWpOp = { op: 'uffd_register_wp'; pid: number; addr: number; lengthPages: number; async: true };

/**
 * ioctl(PAGEMAP_SCAN) on /proc/<target>/pagemap opened by `pid` (target defaults to pid).
 * Addresses in pages; a fractional `start` stands for an unaligned one (EINVAL) and a
 * fractional `end` is rounded up as ALIGN(end, PAGE_SIZE) does. `vecNull`: vec == NULL.
 * The ok outcome's value is the number of regions; `values` is [walk_end, then start, end,
 * categories for each region].
 */
export type PagemapScanOp = {
  op: 'pagemap_scan'; pid: number; target?: number; start: number; end: number; flags: number;
  max_pages: number; category_inverted: number; category_mask: number; category_anyof_mask: number;
  return_mask: number; vec_len: number; vecNull?: boolean;
  /** pm_scan_arg.size in bytes; default sizeof(struct pm_scan_arg) = 96. */
  size?: number;
};

/**
 * getdents of /proc/<target>/map_files/ by `pid`: one `start-end` entry per VMA with a
 * vm_file, in address order. The ok outcome's value is the number of entries and `values`
 * is [start0, end0, start1, end1, …] in pages.
 */
export type MapFilesReaddirOp = { op: 'map_files_readdir'; pid: number; target: number };

/**
 * mincore(addr, lengthPages) by `pid` (mm/mincore.c): the ok outcome's value is the number
 * of pages and `values` their residency bytes (1: resident — a present PTE, a swap entry
 * whose page is in the swap cache, a hole of a file mapping whose page is in the page cache).
 */
export type MincoreOp = { op: 'mincore'; pid: number; addr: number; lengthPages: number };

/**
 * msync(addr, len, flags) by `pid` (mm/msync.c): MS_SYNC writes the dirty pages of each
 * shared file mapping in the range back (vfs_fsync_range: folio_clear_dirty_for_io cleans and
 * write-protects their PTEs first, folio_mkclean); MS_ASYNC does nothing; MS_INVALIDATE is
 * EBUSY on a VM_LOCKED VMA. A hole is ENOMEM (at once for MS_ASYNC alone, else at the end).
 */
export type MsyncOp = { op: 'msync'; pid: number; addr: number; lengthPages: number; flags: number };
export const MS_ASYNC = 1, MS_INVALIDATE = 2, MS_SYNC = 4;

/**
 * vmsplice(fd, {addr, len}, 1, SPLICE_F_NONBLOCK) by `pid` into `pipe` (fs/splice.c
 * vmsplice_to_pipe; kernel-api/pipes.ts), or, without `pipe`, into a new one pipe2(O_NONBLOCK)
 * made first and kept only when something was spliced. Each page becomes a buffer holding a
 * reference get_user_pages_fast took (FOLL_GET, not FOLL_PIN: iov_iter_get_pages2). The ok
 * outcome's value is the pages spliced; `values` is [the new pipe's id] when it made one. A
 * full pipe is EAGAIN, an unmapped first page EFAULT, a pipe `pid` does not hold EBADF.
 */
export type VmspliceOp = { op: 'vmsplice'; pid: number; pipe?: number; addr: number; lengthPages: number };

/**
 * read(2) by `pid` of up to `pages` pages from `pipe` (O_NONBLOCK; fs/pipe.c pipe_read): each
 * buffer consumed is copied and its page reference dropped. The ok outcome's value is the
 * pages read and `values` what each page held then; an empty pipe is EAGAIN.
 */
export type PipeReadOp = { op: 'pipe_read'; pid: number; pipe: number; pages: number };

/** The most pages one mincore op asks for (a limit of the emulation: the kernel's bounce page holds 4096). */
export const MINCORE_PAGES_MAX = 4096;

/** PAGEMAP_SCAN categories (include/uapi/linux/fs.h). */
export const PAGE_IS_WPALLOWED = 1 << 0;
export const PAGE_IS_WRITTEN = 1 << 1;
export const PAGE_IS_FILE = 1 << 2;
export const PAGE_IS_PRESENT = 1 << 3;
export const PAGE_IS_SWAPPED = 1 << 4;
export const PAGE_IS_PFNZERO = 1 << 5;
export const PAGE_IS_HUGE = 1 << 6;
export const PAGE_IS_SOFT_DIRTY = 1 << 7;
export const PAGE_IS_GUARD = 1 << 8;
export const PM_SCAN_CATEGORIES = 0x1ff;
export const PM_SCAN_WP_MATCHING = 1 << 0;
export const PM_SCAN_CHECK_WPASYNC = 1 << 1;
export const PM_SCAN_FLAGS = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
/** sizeof(struct pm_scan_arg). */
export const PM_SCAN_ARG_SIZE = 96;
/** sizeof(struct page_region), for the access_ok of vec. */
export const PAGE_REGION_SIZE = 24;
/** PAGEMAP_WALK_SIZE >> PAGE_SHIFT: the bounce buffer's regions and pagemap_read's walk chunk. */
export const PAGEMAP_WALK_PAGES = 512;
/** The most entries one pagemap_read op asks for (a limit of the emulation, not of Linux). */
export const PAGEMAP_READ_PAGES_MAX = 4096;

/** pagemap entry bits 55..63, shifted down by 55. */
export const PM_SOFT_DIRTY = 1 << 0;
export const PM_MMAP_EXCLUSIVE = 1 << 1;
export const PM_UFFD_WP = 1 << 2;
export const PM_FILE = 1 << 6;
export const PM_SWAP = 1 << 7;
export const PM_PRESENT = 1 << 8;

export type Op = OpCommon & (
  | SpawnOp | CloneOp | MmapOp | MunmapOp | MprotectOp | MremapOp | MadviseOp
  | ReadOp | WriteOp | ForkOp | ExitOp | ReclaimOp | OomOp
  | CreatOp | PreadOp | PwriteOp | TruncateOp
  | ProcMemReadOp | ProcMemWriteOp | ProcessVmReadvOp | ProcessVmWritevOp
  | SetDumpableOp | FailNthOp | CloseOp | DriverOp
  | PagemapReadOp | ClearRefsOp | UffdRegisterWpOp | PagemapScanOp | MapFilesReaddirOp
  | MincoreOp | MlockOp | MunlockOp | MlockallOp | MunlockallOp | MsyncOp | VmspliceOp | PipeReadOp);

export type OpName = Op['op'];

/** Every core operation name, in a fixed order (for counters and reports). */
export const CORE_OP_NAMES: readonly OpName[] = [
  'spawn', 'clone', 'mmap', 'munmap', 'mprotect', 'mremap', 'madvise', 'read', 'write', 'fork', 'exit',
  'reclaim', 'oom', 'creat', 'pread', 'pwrite', 'truncate', 'proc_mem_read', 'proc_mem_write',
  'process_vm_readv', 'process_vm_writev', 'set_dumpable', 'fail_nth', 'close',
  'pagemap_read', 'clear_refs', 'uffd_register_wp', 'pagemap_scan', 'map_files_readdir',
  'mincore', 'mlock', 'munlock', 'mlockall', 'munlockall', 'msync', 'vmsplice', 'pipe_read',
];

/**
 * The task that runs `op`: its `tid`, else the main thread of the process it names (a
 * driver call's `args.pid`), else task 0 (reclaim by count, file operations, fault injection).
 */
export function taskOf(op: Op): number {
  if (op.tid !== undefined) return op.tid;
  return callerPid(op) ?? 0;
}

/** The process an operation names as its caller (or victim): its `pid`, or a driver call's `args.pid`; none for task 0's operations. */
export function callerPid(op: Op): number | undefined {
  // A property load first: over the many shapes of operations it is a stub-cache hit, where
  // `in` is a full lookup each time; `in` still decides an absent or undefined pid.
  const pid = (op as { pid?: number }).pid;
  if (pid !== undefined || 'pid' in op) return pid;
  if (op.op === 'drv' && typeof op.args.pid === 'number') return op.args.pid;
  return undefined;
}
