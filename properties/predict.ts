/**
 * The outcome predictor: a third opinion beside the two kernels (issue 18), kept apart from
 * both as ghost memory is. From an operation's arguments and an abstract address space of
 * its own — each process's areas (start, end, prot, shared, what backs them, and the
 * vm_flags the argument checks read) — it says what Linux 6.18 returns: a value or SIGSEGV
 * for a load or store, the errno of the checks Linux makes before it touches anything
 * (EINVAL, ENOMEM, EEXIST, EACCES, EFAULT), and how far an mprotect, madvise or munmap got
 * (the layout after it). Where Linux's answer depends on what it does not track — an
 * allocation (fail_nth, the overcommit heuristic), RLIMIT_MEMLOCK, page contents, a file's
 * size, a driver's f_op or vm_ops — it says UNKNOWN rather than guess.
 *
 * A prediction is made from the state before the operation, never from its outcome. After
 * the operation the layout it predicted has been checked against the kernel's (the
 * `outcome` invariant's `extent` causes), and the predictor takes the kernel's VMA list and
 * process table as its state for the next operation (`sync`): that also covers what it does
 * not follow itself (a driver call, a fork's child, an OOM kill, a concurrent step).
 *
 * How a call takes its byte arguments it reads for itself (properties/predict-args.ts), not
 * from kernel-api/bytes.ts, the rules both kernels share.
 *
 * What it does not cover: proc_mem_read/write (FOLL_FORCE), mremap past its argument checks,
 * mlock's success (RLIMIT_MEMLOCK, __mm_populate), pagemap, uffd, driver calls.
 */
import type { Advice, MadviseOp, MmapOp, MprotectOp, MsyncOp, MunmapOp, Op, OpName } from '../kernel-api/op.ts';
import { MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT, MINCORE_PAGES_MAX, MS_ASYNC, MS_INVALIDATE, MS_SYNC, PROT_READ, PROT_WRITE, PROT_EXEC, madviseLockMode } from '../kernel-api/op.ts';
import type { Errno, Outcome, Signal } from '../kernel-api/outcome.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import type { KernelInspect, VmaView } from '../kernel-api/state.ts';
import { SHMEM_ID_BASE } from '../kernel-api/state.ts';
import { argMadviseSpan, argMlock, argMmap, argMremap, argMsync, argRange } from './predict-args.ts';

const PROT_ALL = PROT_READ | PROT_WRITE | PROT_EXEC;

/** One area of a process's address space, as the predictor knows it (a VMA, less what it never reads). */
export type Area = {
  start: number;
  end: number;
  prot: number;
  shared: boolean;
  /** VM_MAYWRITE. */
  mayWrite: boolean;
  /** File id (regular or shmem), -1 for private anonymous memory. */
  file: number;
  /** The driver whose vm_ops the area has, or ''. */
  driver: string;
  pfnmap: boolean;
  io: boolean;
  locked: boolean;
  dontcopy: boolean;
  wipeonfork: boolean;
};

type Proc = {
  pid: number; ppid: number; uid: number; dumpable: boolean;
  areas: Area[];
  /** mm->def_flags has VM_LOCKED (mlockall(MCL_FUTURE)); undefined: not known (a fork's child). */
  defLocked: boolean | undefined;
  /** The OOM reaper has torn its mm down (MMF_UNSTABLE); it stands until its own exit. */
  oomReaped: boolean;
};

/** One outcome Linux may give: `value` absent, any value. */
export type Expect =
  | { kind: 'ok'; value?: number }
  | { kind: 'errno'; errno: Errno }
  | { kind: 'signal'; signal: Signal };

export type Prediction =
  | { known: false; why: string }
  | {
    known: true;
    /** Each outcome Linux may give; the first is the one `why` explains. */
    allowed: readonly Expect[];
    /** Why, in a kernel developer's words ("the range has a hole at 0x…"); a function when it costs a string to say. */
    why: string | (() => string);
    /** The caller's areas after the operation, given its outcome (one of `allowed`); undefined: not predicted. */
    after?: (o: Outcome) => Area[] | undefined;
    /** For an mmap without MAP_FIXED: the areas its mapping must not overlap (Linux never replaces one then). */
    place?: { free: Area[] };
  };

export const UNKNOWN = (why: string): Prediction => ({ known: false, why });
const exact = (e: Expect, why: string | (() => string), after?: (o: Outcome) => Area[] | undefined): Prediction => ({ known: true, allowed: [e], why, ...(after ? { after } : {}) });
/**
 * One of `allowed`. (A closure written as an object literal's property is named after it,
 * and tsx's keepNames makes each such name an Object.defineProperty call; passed here, it
 * is anonymous.)
 */
const oneOf = (allowed: Expect[], why: string | (() => string), after: (o: Outcome) => Area[] | undefined, place?: { free: Area[] }): Prediction =>
  place === undefined ? { known: true, allowed, why, after } : { known: true, allowed, why, after, place };
const errno = (e: Errno): Expect => ({ kind: 'errno', errno: e });
const okv = (value?: number): Expect => (value === undefined ? { kind: 'ok' } : { kind: 'ok', value });

/** A page address as Linux would print it. */
export const hex = (page: number): string => `0x${(page * 4096).toString(16)}`;

/** A known prediction's reason, as text. */
export function reason(p: { why: string | (() => string) }): string {
  return typeof p.why === 'string' ? p.why : p.why();
}

/** Whether `o` is one of `allowed`. */
export function allows(allowed: readonly Expect[], o: Outcome): boolean {
  for (const e of allowed) {
    if (e.kind !== o.kind) continue;
    if (e.kind === 'ok' ? e.value === undefined || e.value === (o as { value: number }).value
      : e.kind === 'errno' ? e.errno === (o as { errno: Errno }).errno : e.signal === (o as { signal: Signal }).signal) return true;
  }
  return false;
}

export function formatExpect(e: Expect, op?: Op): string {
  return e.kind === 'ok' ? (e.value === undefined ? 'success' : op?.op === 'mmap' ? hex(e.value) : `${e.value}`) : e.kind === 'errno' ? e.errno : e.signal;
}

export class Predictor {
  private readonly procs = new Map<number, Proc>();
  /** Regular files by id (creat), known from the kernel's file list. */
  private readonly files = new Set<number>();
  /** A fail_nth was armed: any allocation from now on may fail. */
  private failNth = false;
  /** The state is not the kernel's (a step it did not see; a fresh kernel has no process, as the predictor starts): predict nothing until the next sync. */
  stale = false;

  constructor(readonly config: Readonly<KernelConfig>) {}

  /**
   * Take the kernel's state as it now stands: its running processes and their VMAs, its
   * files. What the predictor keeps of its own (mm->def_flags, an armed fail_nth) follows
   * `op`'s outcome.
   */
  sync(k: KernelInspect, op?: Op, outcome?: Outcome, failNth = op?.op === 'fail_nth'): void {
    if (failNth) this.failNth = true;
    if (op === undefined || this.stale || WHOLE_SYNC.has(op.op)) {
      this.syncAll(k, op, outcome);
      return;
    }
    if (op.op === 'creat' && outcome?.kind === 'ok') this.files.add(outcome.value);
    const pid = (op as { pid?: number }).pid;
    const proc = pid === undefined ? undefined : this.procs.get(pid);
    if (proc === undefined || NO_VMA_CHANGE.has(op.op)) {
      if (proc !== undefined && op.op === 'set_dumpable') proc.dumpable = k.process(proc.pid)?.dumpable ?? proc.dumpable;
      return;
    }
    proc.areas = [...k.vmas(proc.pid)].map(areaOf);
    if (outcome?.kind !== 'ok') return;
    // What mm->def_flags holds is followed from mlockall's outcome.
    if (op.op === 'mlockall') proc.defLocked = (op.flags & MCL_FUTURE) !== 0;
    else if (op.op === 'munlockall') proc.defLocked = false;
  }

  /** The whole process table and every process's VMAs, and the files, from the kernel. */
  private syncAll(k: KernelInspect, op?: Op, outcome?: Outcome): void {
    const before = this.procs;
    const next = new Map<number, Proc>();
    for (const p of k.runningProcesses()) {
      const old = before.get(p.pid);
      const areas = [...k.vmas(p.pid)].map(areaOf);
      // After a step not seen, mm->def_flags is not known; a new process starts without VM_LOCKED.
      const defLocked = this.stale ? undefined : old === undefined ? false : old.defLocked;
      next.set(p.pid, { pid: p.pid, ppid: p.ppid, uid: p.uid, dumpable: p.dumpable, areas, defLocked, oomReaped: p.oomReaped });
    }
    if (op?.op === 'fork' && outcome?.kind === 'ok' && !this.stale) {
      // dup_mm: mm->def_flags & VM_INIT_DEF_MASK; VM_LOCKED is not passed on, but say so only once checked.
      const child = next.get(outcome.value);
      if (child !== undefined) child.defLocked = undefined;
    }
    this.procs.clear();
    for (const [pid, p] of next) this.procs.set(pid, p);
    this.files.clear();
    for (const f of k.files()) if (!f.shmem) this.files.add(f.id);
    this.stale = false;
  }

  /**
   * Steps it did not follow (nothing checked yet, a concurrent step, a schedule that could
   * not be emulated): stale until the next sync, and a fail_nth among them stays armed.
   */
  missed(ops: readonly Op[]): void {
    this.stale = true;
    if (ops.some((o) => o.op === 'fail_nth')) this.failNth = true;
  }

  /** What Linux returns for `op`, from the state before it. */
  predict(op: Op): Prediction {
    if (this.stale) return UNKNOWN('the predictor has not seen the state this step ran in');
    const pid = (op as { pid?: number }).pid;
    if (op.op === 'drv' || pid === undefined) return UNKNOWN(`${op.op} is not predicted`);
    const proc = this.procs.get(pid);
    if (proc === undefined) return UNKNOWN(`P${pid} is not running`);
    switch (op.op) {
      case 'mmap': return this.mmap(proc, op);
      case 'munmap': return this.munmap(proc, op);
      case 'mprotect': return this.mprotect(proc, op);
      case 'madvise': return this.madvise(proc, op);
      case 'mremap': return this.mremap(op);
      case 'mlock': case 'munlock': return this.mlock(proc, op.op, op);
      case 'mlockall': return this.mlockall(op.flags);
      case 'munlockall': return exact(okv(0), 'munlockall always succeeds');
      case 'msync': return this.msync(proc, op);
      case 'mincore': return this.mincore(proc, op.addr, op.lengthPages);
      case 'read': case 'write': return this.access(proc, op.addr, op.op === 'write');
      case 'process_vm_readv': case 'process_vm_writev': return this.processVm(proc, op.target, op.addr, op.op === 'process_vm_writev');
      default: return UNKNOWN(`${op.op} is not predicted`);
    }
  }

  /**
   * do_mmap and __get_unmapped_area (mm/mmap.c): the length, the file, then the address a
   * MAP_FIXED or MAP_FIXED_NOREPLACE mapping names (past TASK_SIZE ENOMEM, unaligned EINVAL,
   * below mmap_min_addr EPERM, an existing mapping under MAP_FIXED_NOREPLACE EEXIST), then a
   * shared writable map of an O_RDONLY fd EACCES. A driver's f_op->mmap decides for itself.
   */
  private mmap(proc: Proc, op0: MmapOp): Prediction {
    if (op0.fd !== undefined) return UNKNOWN("a driver's f_op->mmap decides");
    const r = argMmap(op0.addr, op0.lengthPages, op0.pgoff, op0.fixed === true || op0.noreplace === true);
    if ('errno' in r) return exact(errno(r.errno), 'mmap rounds its byte arguments first');
    const op = { ...op0, addr: r.addr, lengthPages: r.len };
    const len = op.lengthPages;
    if (len === 0) return exact(errno('EINVAL'), 'mmap of length 0');
    if ((op.prot & ~PROT_ALL) !== 0 || !Number.isSafeInteger(len) || len < 0 || !Number.isSafeInteger(Math.floor(op.addr))) return UNKNOWN('mmap arguments the predictor does not judge');
    if (len > this.config.taskSizePages) return exact(errno('ENOMEM'), 'mmap longer than TASK_SIZE');
    const pgoff = op.pgoff ?? 0;
    if (!Number.isSafeInteger(pgoff) || pgoff < 0 || pgoff + len > 2 ** 40) return UNKNOWN('a file offset the predictor does not judge');
    if (op.file !== undefined) {
      if (op.file >= SHMEM_ID_BASE) return exact(errno('EBADF'), 'no fd names a shmem object');
      if (!this.files.has(op.file)) return UNKNOWN(`file ${op.file} is not known`);
    }
    if (proc.areas.length + 3 >= this.config.maxMapCount) return UNKNOWN('near vm.max_map_count');
    // Past the placement: an allocation, the overcommit heuristic, mlock_future_ok.
    const later: Expect[] = [];
    if (op.locked === true || proc.defLocked !== false) later.push(errno('EAGAIN'));
    if (this.failNth) later.push(errno('ENOMEM'));
    const denied = op.file !== undefined && op.shared && op.mode === 'r' && (op.prot & PROT_WRITE) !== 0;
    if (op.fixed === true || op.noreplace === true) {
      const { taskSizePages, mmapMinAddrPages } = this.config;
      if (op.addr < 0 || op.addr + len > taskSizePages) return exact(errno('ENOMEM'), () => `a fixed address ${hex(op.addr)} + ${len} pages lies past TASK_SIZE`);
      if (!Number.isInteger(op.addr)) return exact(errno('EINVAL'), 'a fixed address not page aligned');
      if (op.addr < mmapMinAddrPages) {
        // security_mmap_addr → cap_mmap_addr: CAP_SYS_RAWIO may map below it (and an LSM may still refuse).
        if (proc.uid === 0) return UNKNOWN('root below vm.mmap_min_addr');
        return exact(errno('EPERM'), () => `a fixed address ${hex(op.addr)} below vm.mmap_min_addr`);
      }
      const over = overlapping(proc.areas, op.addr, op.addr + len);
      if (op.noreplace === true && over.length > 0) {
        return exact(errno('EEXIST'), () => `MAP_FIXED_NOREPLACE over the mapping at ${hex(over[0]!.start)}`, () => proc.areas);
      }
      if (denied) return oneOf([errno('EACCES'), ...later], 'a shared writable map of an O_RDONLY fd', (o) => (o.kind === 'errno' && o.errno === 'EACCES' ? proc.areas : undefined));
      if (op.fixed === true && splitsDriver(proc.areas, op.addr, op.addr + len)) return UNKNOWN("MAP_FIXED would split a driver's VMA (vm_ops->may_split)");
      const after = withArea(proc.areas, mmapArea(op, op.addr, len));
      return oneOf([okv(op.addr), ...later], () => `MAP_FIXED${op.noreplace === true ? '_NOREPLACE' : ''} places it at ${hex(op.addr)}`,
        (o) => (o.kind === 'ok' ? after : o.kind === 'errno' && o.errno === 'EAGAIN' ? proc.areas : undefined));
    }
    // get_unmapped_area: a free range between mmap_min_addr and mmap_base (or the hint).
    if (len > this.config.mmapBasePages / 4) return UNKNOWN('a free range may not be found');
    if (denied) return oneOf([errno('EACCES'), ...later], 'a shared writable map of an O_RDONLY fd', (o) => (o.kind === 'errno' && o.errno === 'EACCES' ? proc.areas : undefined));
    return oneOf([okv(), ...later], 'a free range is found',
      (o) => (o.kind === 'ok' ? withArea(proc.areas, mmapArea(op, o.value, len)) : o.kind === 'errno' && o.errno === 'EAGAIN' ? proc.areas : undefined), { free: proc.areas });
  }

  /** do_vmi_munmap: an unaligned start, a zero length or a range past TASK_SIZE EINVAL; else the range is gone. */
  private munmap(proc: Proc, op0: MunmapOp): Prediction {
    const r = argRange('munmap', op0.addr, op0.lengthPages);
    if ('errno' in r) return exact(errno(r.errno), 'munmap checks its start and length');
    const { addr, len } = r;
    if (len === 0 || !Number.isSafeInteger(addr) || !Number.isSafeInteger(len) || addr < 0 || len < 0 || addr + len > this.config.taskSizePages) {
      return exact(errno('EINVAL'), 'munmap of an empty range or one past TASK_SIZE', () => proc.areas);
    }
    if (this.failNth) return UNKNOWN('a split may fail to allocate');
    if (splitsDriver(proc.areas, addr, addr + len)) return UNKNOWN("a driver's VMA would be split (vm_ops->may_split)");
    return exact(okv(0), 'munmap of any range succeeds', () => cut(proc.areas, addr, addr + len));
  }

  /**
   * do_mprotect_pkey (mm/mprotect.c): VMA by VMA from the one at `start`; no VMA there
   * ENOMEM with nothing changed, a hole further on ENOMEM with everything before it changed,
   * PROT_WRITE of a VMA without VM_MAYWRITE EACCES with everything before it changed.
   */
  private mprotect(proc: Proc, op0: MprotectOp): Prediction {
    const r = argRange('mprotect', op0.addr, op0.lengthPages);
    if ('errno' in r) return exact(errno(r.errno), 'mprotect checks its start and length', () => proc.areas);
    const { addr: start, len } = r;
    const prot = op0.prot;
    if ((prot & ~PROT_ALL) !== 0) return UNKNOWN('protection bits beyond PROT_READ|PROT_WRITE|PROT_EXEC');
    if (len === 0) return exact(okv(0), 'mprotect of length 0', () => proc.areas);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(len)) return UNKNOWN('mprotect of a range beyond 2^53');
    if (len < 0 || start < 0) return exact(errno('ENOMEM'), 'mprotect of a range that wraps or starts in the kernel half', () => proc.areas);
    const end = start + len;
    if (end > this.config.taskSizePages) return UNKNOWN('mprotect of a range past TASK_SIZE');
    const over = overlapping(proc.areas, start, end);
    if (over.length === 0 || over[0]!.start > start) {
      return exact(errno('ENOMEM'), () => `no VMA at ${hex(start)}`, () => proc.areas);
    }
    let tmp = over[0]!.start;
    let result: Errno | 0 = 0;
    let why: () => string = () => `mprotect(${hex(start)}, ${len} pages) of mapped memory`;
    for (const a of over) {
      if (a.driver !== '') return UNKNOWN("a driver's VMA in the range");
      if (a.start !== tmp) { result = 'ENOMEM'; const at = tmp; why = () => `mprotect(${hex(start)}, ${len} pages) across a hole at ${hex(at)}`; break; }
      if ((prot & PROT_WRITE) !== 0 && !a.mayWrite) { result = 'EACCES'; why = () => `PROT_WRITE of the VMA at ${hex(a.start)} without VM_MAYWRITE`; break; }
      tmp = Math.min(a.end, end);
    }
    if (result === 0 && tmp < end) { result = 'ENOMEM'; const at = tmp; why = () => `mprotect(${hex(start)}, ${len} pages) past the last VMA, at ${hex(at)}`; }
    // mprotect_fixup splits (an allocation) only where the protection changes.
    if (this.failNth && over.some((a) => a.prot !== prot)) return UNKNOWN('a split may fail to allocate');
    const applied = Math.max(start, Math.min(tmp, end));
    const after = applied > start ? setAttr(proc.areas, start, applied, (a) => ({ ...a, prot })) : proc.areas;
    return exact(result === 0 ? okv(0) : errno(result), why, () => after);
  }

  /**
   * madvise (mm/madvise.c, madvise_walk_vmas): each VMA of the range in turn; a hole gives
   * ENOMEM once the rest is done; an advice a VMA refuses stops there with its errno.
   */
  private madvise(proc: Proc, op0: MadviseOp): Prediction {
    if (madviseLockMode(op0.advice) === null) return exact(errno('EINVAL'), () => `advice ${op0.advice} is not one`);
    const r = argRange('madvise', op0.addr, op0.lengthPages);
    if ('errno' in r) return exact(errno(r.errno), 'madvise checks its start and length', () => proc.areas);
    const { addr, len: lengthPages } = r;
    if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(lengthPages)) return UNKNOWN('madvise of a range beyond 2^53');
    if (lengthPages === 0) return exact(okv(0), 'madvise of length 0', () => proc.areas);
    const span = argMadviseSpan(addr, lengthPages, this.config.taskSizePages);
    let end = addr + lengthPages;
    let tail = false;
    if (span !== 'inside') {
      if ('errno' in span) return exact(errno(span.errno), 'madvise of a range past user space', () => proc.areas);
      end = addr + span.inside;
      tail = true;
    }
    if (op0.advice === 'POPULATE_READ' || op0.advice === 'POPULATE_WRITE') return this.populate(proc, addr, end, op0.advice === 'POPULATE_WRITE', tail);
    let areas = proc.areas;
    let unmapped = tail;
    let hole = -1;
    let cursor = addr;
    const changes = FLAG_ADVICE[op0.advice];
    for (const a of overlapping(proc.areas, addr, end)) {
      if (a.driver !== '') return UNKNOWN("a driver's VMA in the range");
      if (a.start > cursor) { unmapped = true; if (hole < 0) hole = cursor; }
      const from = Math.max(cursor, a.start);
      const to = Math.min(a.end, end);
      const refused = madviseRefuses(a, op0.advice);
      if (refused !== null) return exact(errno(refused), () => `MADV_${op0.advice} of the VMA at ${hex(a.start)}${a.locked ? ' (VM_LOCKED)' : a.pfnmap ? ' (VM_PFNMAP)' : ''}`, () => areas);
      if (changes !== undefined && changes(a) !== null) {
        if (this.failNth) return UNKNOWN('a split may fail to allocate');
        areas = setAttr(areas, from, to, (x) => changes(x) ?? x);
      }
      cursor = to;
    }
    if (cursor < end) { unmapped = true; if (hole < 0) hole = cursor; }
    const after = areas;
    if (unmapped) return exact(errno('ENOMEM'), () => `madvise(${hex(addr)}, ${lengthPages} pages, MADV_${op0.advice}) across a hole at ${hex(hole < 0 ? end : hole)}`, () => after);
    return exact(okv(0), () => `MADV_${op0.advice} of mapped memory`, () => after);
  }

  /**
   * madvise_populate (mm/madvise.c → faultin_page_range): page by page; no VMA ENOMEM, a
   * VM_IO|VM_PFNMAP VMA or one without the access EINVAL. A file page past EOF is EFAULT and
   * not known here: a file, shmem or driver VMA reached first is UNKNOWN.
   */
  private populate(proc: Proc, start: number, end: number, write: boolean, tail: boolean): Prediction {
    let cursor = start;
    for (const a of overlapping(proc.areas, start, end)) {
      if (a.start > cursor) return exact(errno('ENOMEM'), () => `MADV_POPULATE_${write ? 'WRITE' : 'READ'} reaches the hole at ${hex(cursor)}`);
      if (a.io || a.pfnmap || (a.prot & (write ? PROT_WRITE : PROT_READ)) === 0) return exact(errno('EINVAL'), () => `MADV_POPULATE_${write ? 'WRITE' : 'READ'} of the VMA at ${hex(a.start)} (prot ${a.prot})`);
      if (a.file !== -1 || a.driver !== '') return UNKNOWN('a file page may lie past EOF');
      if (this.failNth) return UNKNOWN('a fault may fail to allocate');
      cursor = Math.min(a.end, end);
    }
    if (cursor < end || tail) return exact(errno('ENOMEM'), () => `MADV_POPULATE_${write ? 'WRITE' : 'READ'} reaches the hole at ${hex(cursor)}`);
    return exact(okv(0), 'populating anonymous memory it may access', () => proc.areas);
  }

  /** check_mremap_params (mm/mremap.c): the argument checks only, all EINVAL. */
  private mremap(op0: Extract<Op, { op: 'mremap' }>): Prediction {
    const r = argMremap(op0.addr, op0.oldPages, op0.newPages, op0.newAddr, op0.fixed === true || op0.dontunmap === true);
    if ('errno' in r) return exact(errno(r.errno), 'mremap checks its byte arguments first');
    const op = { ...op0, oldPages: r.oldLen, newPages: r.newLen };
    if (!Number.isSafeInteger(op.newPages) || !Number.isSafeInteger(op.oldPages)) return UNKNOWN('mremap lengths beyond 2^53');
    if (op.newPages === 0) return exact(errno('EINVAL'), 'mremap to a new length of 0');
    if (op.newPages < 0 || op.newPages > this.config.taskSizePages) return exact(errno('EINVAL'), 'mremap to a new length past TASK_SIZE');
    const newAddr = op.fixed === true || op.dontunmap === true;
    if (newAddr && op.newAddr !== undefined && Number.isSafeInteger(op.newAddr) && op.newAddr >= 0 && op.newAddr + op.newPages <= this.config.taskSizePages) {
      if (op.maymove !== true) return exact(errno('EINVAL'), 'MREMAP_FIXED or MREMAP_DONTUNMAP without MREMAP_MAYMOVE');
      if (op.dontunmap === true && op.oldPages !== op.newPages) return exact(errno('EINVAL'), 'MREMAP_DONTUNMAP that resizes');
    }
    return UNKNOWN('mremap past its argument checks is not predicted');
  }

  /**
   * do_mlock / do_munlock (mm/mlock.c): apply_vma_lock_flags from the VMA at `start`; no
   * VMA there, or a hole further on, is ENOMEM (and RLIMIT_MEMLOCK's refusal is ENOMEM too).
   * munlock of mapped memory succeeds; mlock's success hangs on RLIMIT_MEMLOCK and
   * __mm_populate and is UNKNOWN.
   */
  private mlock(proc: Proc, name: 'mlock' | 'munlock', op0: { addr: number; lengthPages: number }): Prediction {
    const op = argMlock(op0.addr, op0.lengthPages);
    if (op === null || !Number.isSafeInteger(op.addr) || !Number.isSafeInteger(op.len)) return UNKNOWN(`${name} of a negative or huge length`);
    const { addr: start, len } = op;
    if (len === 0) return exact(okv(0), () => `${name} of length 0`);
    if (start < 0) return UNKNOWN(`${name} of an address in the kernel half`);
    const end = start + len;
    let cursor = start;
    for (const a of overlapping(proc.areas, start, end)) {
      if (a.start > cursor) break;
      cursor = Math.min(a.end, end);
    }
    if (cursor < end) return exact(errno('ENOMEM'), () => `${name}(${hex(start)}, ${len} pages) across a hole at ${hex(cursor)}`);
    if (name === 'mlock' || this.failNth) return UNKNOWN('RLIMIT_MEMLOCK, a split or __mm_populate may refuse');
    if (splitsDriver(proc.areas, start, end)) return UNKNOWN("a driver's VMA would be split (vm_ops->may_split)");
    return exact(okv(0), 'munlock of mapped memory');
  }

  /** SYSCALL_DEFINE1(mlockall): no flags, unknown ones or MCL_ONFAULT alone EINVAL; MCL_FUTURE alone always succeeds. */
  private mlockall(flags: number): Prediction {
    if (!Number.isSafeInteger(flags) || flags <= 0 || (flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)) !== 0 || flags === MCL_ONFAULT) {
      return exact(errno('EINVAL'), () => `mlockall(${flags}): no MCL_CURRENT or MCL_FUTURE, or unknown flags`);
    }
    if ((flags & MCL_CURRENT) === 0) return exact(okv(0), 'mlockall(MCL_FUTURE) only sets mm->def_flags');
    return UNKNOWN('MCL_CURRENT checks total_vm against RLIMIT_MEMLOCK and populates');
  }

  /**
   * SYSCALL_DEFINE3(msync) (mm/msync.c): the VMA walk; a hole ENOMEM (at once for MS_ASYNC
   * alone), MS_INVALIDATE of a VM_LOCKED VMA EBUSY; MS_SYNC of a shared file VMA fsyncs it
   * (a regular file or shmem: 0).
   */
  private msync(proc: Proc, op0: MsyncOp): Prediction {
    const op = argMsync(op0.addr, op0.lengthPages, op0.flags);
    if ('errno' in op) return exact(op.errno === 0 ? okv(0) : errno(op.errno), 'msync checks its flags, start and length first');
    const { addr: start } = op;
    const flags = op0.flags;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(op.len) || start < 0) return UNKNOWN('msync of a range beyond user space');
    const end = start + op.len;
    let cursor = start;
    let unmapped: Errno | 0 = 0;
    for (const a of overlapping(proc.areas, start, end)) {
      if (a.start > cursor) {
        if (flags === MS_ASYNC) return exact(errno('ENOMEM'), () => `msync(MS_ASYNC) reaches the hole at ${hex(cursor)}`);
        unmapped = 'ENOMEM';
      }
      if ((flags & MS_INVALIDATE) !== 0 && a.locked) return exact(errno('EBUSY'), () => `MS_INVALIDATE of the VM_LOCKED VMA at ${hex(a.start)}`);
      if (a.driver !== '' && (flags & MS_SYNC) !== 0 && a.shared) return UNKNOWN("fsync of a driver's file");
      cursor = Math.min(a.end, end);
    }
    if (cursor < end) return exact(errno('ENOMEM'), () => `msync reaches the hole at ${hex(cursor)}`);
    return exact(unmapped === 0 ? okv(0) : errno(unmapped), unmapped === 0 ? 'msync of mapped memory' : 'msync across a hole');
  }

  /** sys_mincore: access_ok ENOMEM, then VMA by VMA (vma_lookup): a hole anywhere ENOMEM; else the page count. */
  private mincore(proc: Proc, addr0: number, len0: number): Prediction {
    const r = argRange('mincore', addr0, len0);
    if ('errno' in r) return exact(errno(r.errno), 'mincore checks its start first');
    const { addr: start, len } = r;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(len) || start < 0 || len > MINCORE_PAGES_MAX) return UNKNOWN('mincore of a range the emulation limits');
    if (len < 0 || start + len > this.config.taskSizePages) return exact(errno('ENOMEM'), 'mincore of a range past TASK_SIZE');
    const end = start + len;
    let cursor = start;
    for (const a of overlapping(proc.areas, start, end)) {
      if (a.start > cursor) break;
      cursor = Math.min(a.end, end);
    }
    if (cursor < end) return exact(errno('ENOMEM'), () => `mincore(${hex(start)}, ${len} pages) reaches the hole at ${hex(cursor)}`);
    return exact(okv(len), () => `mincore of ${len} mapped pages`);
  }

  /**
   * A user load or store (do_user_addr_fault, x86 access_error): no VMA SIGSEGV; a store to a
   * VMA without VM_WRITE, a load from one without VM_READ|VM_WRITE|VM_EXEC SIGSEGV. Private
   * anonymous memory then succeeds; a file, shmem or driver page may be SIGBUS (past EOF).
   */
  private access(proc: Proc, addr: number, write: boolean): Prediction {
    // The most frequent operations: their predictions are made once (the message names the address).
    const a = areaAt(proc.areas, addr);
    if (a === undefined) return ACCESS.unmapped;
    if ((a.prot & (write ? PROT_WRITE : PROT_ALL)) === 0) return write ? ACCESS.storeDenied : ACCESS.loadDenied;
    if (a.driver !== '') return ACCESS.driver;
    if (a.file === -1) return write ? ACCESS.storeAnon : ACCESS.loadAnon;
    return write ? ACCESS.storeFile : ACCESS.loadFile;
  }

  /**
   * process_vm_readv/writev (mm/process_vm_access.c): ptrace_may_access(PTRACE_MODE_ATTACH_REALCREDS)
   * EPERM, then pin_user_pages_remote without FOLL_FORCE: no VMA, VM_IO|VM_PFNMAP, or a VMA
   * without VM_READ (VM_WRITE to write) EFAULT (check_vma_flags).
   */
  private processVm(caller: Proc, targetPid: number, addr: number, write: boolean): Prediction {
    const target = this.procs.get(targetPid);
    if (target === undefined) return UNKNOWN(`P${targetPid} is not running`);
    const name = write ? 'process_vm_writev' : 'process_vm_readv';
    const may = this.ptraceMayAttach(caller, target);
    if (may === undefined) return UNKNOWN(`whether P${caller.pid} is an ancestor of P${target.pid}`);
    if (!may) return exact(errno('EPERM'), () => `P${caller.pid} may not attach to P${target.pid}`);
    const a = areaAt(target.areas, addr);
    if (a === undefined) return exact(errno('EFAULT'), () => `${name} of ${hex(addr)} of P${target.pid}, where nothing is mapped`);
    // __oom_reap_task_mm unmapped its private pages and a fault there is SIGBUS
    // (check_stable_address_space); a shared page it left may still be reached.
    if (target.oomReaped) return UNKNOWN(`P${target.pid}'s mm was OOM-reaped`);
    if (a.io || a.pfnmap || (a.prot & (write ? PROT_WRITE : PROT_READ)) === 0) {
      return exact(errno('EFAULT'), () => `${name} of ${hex(addr)} of P${target.pid}, a VMA with prot ${a.prot}${a.pfnmap ? ' (VM_PFNMAP)' : ''}`);
    }
    if (this.failNth) return UNKNOWN('GUP may fail to allocate');
    if (a.driver !== '') return UNKNOWN("a driver's fault handler decides");
    if (a.file === -1) return exact(okv(write ? 0 : undefined), () => `${name} of private anonymous memory it may access`);
    return { known: true, allowed: [okv(write ? 0 : undefined), errno('EFAULT')], why: () => `${name} of a file page (past EOF: EFAULT)` };
  }

  /** __ptrace_may_access with Yama's ptrace_scope 1 for an attach: self, root, or the same uid, dumpable, and an ancestor. */
  private ptraceMayAttach(caller: Proc, target: Proc): boolean | undefined {
    if (caller.pid === target.pid || caller.uid === 0) return true;
    if (caller.uid !== target.uid || !target.dumpable) return false;
    if (this.config.yamaPtraceScope !== 1) return true;
    let ppid = target.ppid;
    for (let hops = 0; hops <= this.procs.size; hops++) {
      if (ppid === caller.pid) return true;
      if (ppid === 0) return false;
      const p = this.procs.get(ppid);
      // An exited ancestor is not in the running table: say nothing rather than EPERM.
      if (p === undefined) return undefined;
      ppid = p.ppid;
    }
    return undefined;
  }
}

/** The predictions of a load or store (Predictor.access), one object each. */
const SIGSEGV: Expect = { kind: 'signal', signal: 'SIGSEGV' };
const SIGBUS: Expect = { kind: 'signal', signal: 'SIGBUS' };
const ACCESS = {
  unmapped: exact(SIGSEGV, 'nothing is mapped there'),
  loadDenied: exact(SIGSEGV, 'the VMA there has none of PROT_READ, PROT_WRITE, PROT_EXEC'),
  storeDenied: exact(SIGSEGV, 'the VMA there lacks PROT_WRITE'),
  driver: UNKNOWN("a driver's fault handler decides"),
  loadAnon: exact(okv(), 'private anonymous memory it may read'),
  storeAnon: exact(okv(0), 'private anonymous memory it may write'),
  loadFile: { known: true, allowed: [okv(), SIGBUS], why: 'a file page: past EOF, SIGBUS' } as Prediction,
  storeFile: { known: true, allowed: [okv(0), SIGBUS], why: 'a file page: past EOF, SIGBUS' } as Prediction,
};

/**
 * Operations after which the whole state is taken again: they change the process table (a
 * new process, one gone, children reparented) or, being a driver's, anything.
 */
const WHOLE_SYNC: ReadonlySet<OpName> = new Set<OpName>(['spawn', 'fork', 'exit', 'oom', 'drv', 'close', 'clone']);

/** Operations that change no VMA of any process (faults, GUP, reclaim and file I/O leave vm_area_structs as they are). */
const NO_VMA_CHANGE: ReadonlySet<OpName> = new Set<OpName>([
  'read', 'write', 'mincore', 'msync', 'pread', 'pwrite', 'truncate', 'reclaim', 'fail_nth', 'creat', 'set_dumpable',
  'process_vm_readv', 'process_vm_writev', 'proc_mem_read', 'proc_mem_write', 'pagemap_read', 'map_files_readdir',
]);

/** Advices that change vm_flags, and how (null: the VMA is already as asked). */
const FLAG_ADVICE: Partial<Record<Advice, (a: Area) => Area | null>> = {
  DONTFORK: (a) => (a.dontcopy ? null : { ...a, dontcopy: true }),
  DOFORK: (a) => (!a.dontcopy ? null : { ...a, dontcopy: false }),
  WIPEONFORK: (a) => (a.wipeonfork ? null : { ...a, wipeonfork: true }),
  KEEPONFORK: (a) => (!a.wipeonfork ? null : { ...a, wipeonfork: false }),
};

/** The errno madvise_vma_behavior gives `advice` on this VMA, or null. */
function madviseRefuses(a: Area, advice: Advice): Errno | null {
  switch (advice) {
    // madvise_dontneed_free_valid_vma: VM_PFNMAP, VM_LOCKED.
    case 'DONTNEED': return a.pfnmap || a.locked ? 'EINVAL' : null;
    // madvise_free_single_vma: anonymous memory only.
    case 'FREE': return a.pfnmap || a.locked || a.file !== -1 ? 'EINVAL' : null;
    // can_madv_lru_vma.
    case 'PAGEOUT': case 'COLD': return a.pfnmap || a.locked ? 'EINVAL' : null;
    case 'WILLNEED': return null;
    // madvise_remove: VM_LOCKED or no vm_file EINVAL; not shared and may-write EACCES.
    case 'REMOVE': return a.locked || a.file === -1 ? 'EINVAL' : !a.shared || !a.mayWrite ? 'EACCES' : null;
    case 'WIPEONFORK': return a.file !== -1 || a.shared ? 'EINVAL' : null;
    case 'KEEPONFORK': case 'DONTFORK': return null;
    case 'DOFORK': return a.io ? 'EINVAL' : null;
    case 'POPULATE_READ': case 'POPULATE_WRITE': return null;
  }
}

/** The VMA an mmap of `len` pages at `start` makes (not merged with its neighbours). */
function mmapArea(op: Extract<Op, { op: 'mmap' }>, start: number, len: number): Area {
  return {
    start, end: start + len, prot: op.prot, shared: op.shared, mayWrite: !(op.shared && op.mode === 'r'),
    file: op.file ?? (op.shared ? SHMEM_ID_BASE : -1), driver: '', pfnmap: false, io: false, locked: false, dontcopy: false, wipeonfork: false,
  };
}

function areaOf(v: VmaView): Area {
  return {
    start: v.start, end: v.end, prot: v.prot, shared: v.shared, mayWrite: v.mayWrite, file: v.file, driver: v.driver,
    pfnmap: v.pfnmap, io: v.io, locked: v.locked, dontcopy: v.dontcopy, wipeonfork: v.wipeonfork,
  };
}

/**
 * A driver's VMA that [start, end) would split: __split_vma asks its vm_ops->may_split,
 * which may refuse (EINVAL), so what a call that splits it returns is the driver's to say.
 */
function splitsDriver(areas: readonly Area[], start: number, end: number): boolean {
  return overlapping(areas, start, end).some((a) => a.driver !== '' && (a.start < start || a.end > end));
}

/** The areas meeting [start, end), in address order. */
export function overlapping(areas: readonly Area[], start: number, end: number): Area[] {
  return areas.filter((a) => a.end > start && a.start < end);
}

function areaAt(areas: readonly Area[], addr: number): Area | undefined {
  return areas.find((a) => a.start <= addr && addr < a.end);
}

/** `areas` without [start, end): the areas at its edges split. */
export function cut(areas: readonly Area[], start: number, end: number): Area[] {
  const out: Area[] = [];
  for (const a of areas) {
    if (a.end <= start || a.start >= end) { out.push(a); continue; }
    if (a.start < start) out.push({ ...a, end: start });
    if (a.end > end) out.push({ ...a, start: end });
  }
  return out;
}

/** `areas` with `area` in its place (what MAP_FIXED replaces is gone). */
function withArea(areas: readonly Area[], area: Area): Area[] {
  return [...cut(areas, area.start, area.end), area].sort((x, y) => x.start - y.start);
}

/** `areas` with [start, end) changed by `f`, split at its edges. */
function setAttr(areas: readonly Area[], start: number, end: number, f: (a: Area) => Area): Area[] {
  const out: Area[] = [];
  for (const a of areas) {
    if (a.end <= start || a.start >= end) { out.push(a); continue; }
    if (a.start < start) out.push({ ...a, end: start });
    out.push(f({ ...a, start: Math.max(a.start, start), end: Math.min(a.end, end) }));
    if (a.end > end) out.push({ ...a, start: end });
  }
  return out;
}

/** The attributes the extent check compares: presence, prot, VM_DONTCOPY, VM_WIPEONFORK. */
const attrs = (a: Area): string => `${a.prot}${a.dontcopy ? 'c' : ''}${a.wipeonfork ? 'w' : ''}`;

/** `areas` as runs of equal attributes, adjacent ones joined (a merge or a split does not show). */
export function layout(areas: readonly Area[]): { start: number; end: number; attrs: string }[] {
  const out: { start: number; end: number; attrs: string }[] = [];
  for (const a of areas) {
    const last = out[out.length - 1];
    const at = attrs(a);
    if (last !== undefined && last.end === a.start && last.attrs === at) last.end = a.end;
    else out.push({ start: a.start, end: a.end, attrs: at });
  }
  return out;
}

/** The first page where two layouts differ, with what each has there; null when equal. */
export function layoutDifference(want: readonly Area[], got: readonly Area[]): { addr: number; want: string; got: string } | null {
  const x = layout(want);
  const y = layout(got);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const a = x[i];
    const b = y[i];
    if (a !== undefined && b !== undefined && a.start === b.start && a.end === b.end && a.attrs === b.attrs) continue;
    const at = (r: typeof a): string => (r === undefined ? 'nothing' : `[${hex(r.start)}, ${hex(r.end)}) prot ${r.attrs}`);
    // Where they part: the earlier start, or the earlier end when both start alike.
    const alike = a !== undefined && b !== undefined && a.start === b.start && a.attrs === b.attrs;
    const addr = alike ? Math.min(a.end, b.end) : Math.min(a?.start ?? Infinity, b?.start ?? Infinity);
    return { addr, want: at(a), got: at(b) };
  }
  return null;
}

/** The core operations the predictor judges, for the causes the invariant declares. */
export const PREDICTED_OPS: readonly OpName[] = [
  'mmap', 'munmap', 'mprotect', 'madvise', 'mremap', 'mlock', 'munlock', 'mlockall', 'munlockall', 'msync', 'mincore',
  'read', 'write', 'process_vm_readv', 'process_vm_writev',
];
