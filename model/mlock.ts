/**
 * mlock, mlock2(MLOCK_ONFAULT), munlock, mlockall, munlockall (mm/mlock.c, Linux 6.18), and
 * the population MAP_LOCKED asks for (mm/gup.c __mm_populate).
 *
 * do_mlock: the byte range widens to whole pages (kernel-api/bytes.ts mlockPages); an
 * unprivileged process may lock RLIMIT_MEMLOCK's default of pages (MLOCK_LIMIT_PAGES, counting
 * what it has locked outside the range: count_mm_mlocked_page_nr), root (CAP_IPC_LOCK) any;
 * then under mmap_lock for write apply_vma_lock_flags walks the VMAs: ENOMEM at a hole (the
 * VMAs before it keep their new flags), mlock_fixup each (vma_modify_flags: split or merge;
 * a VM_SPECIAL VMA is left as it is and counted nowhere). Then __mm_populate under mmap_lock
 * for read faults the pages in, VMA by VMA: VM_IO and VM_PFNMAP VMAs and VM_LOCKONFAULT ones
 * are skipped; a write fault where the VMA is writable and private (breaking COW), FOLL_FORCE
 * unless PROT_NONE (whose GUP fails: EFAULT). __mlock_posix_error_return: EFAULT → ENOMEM,
 * ENOMEM → EAGAIN. mlockall(MCL_CURRENT) populates everything ignoring errors (mm_populate).
 * Not emulated: the mlock LRU (VM_LOCKED pages are simply skipped by reclaim), mm->locked_vm
 * as a counter (it is the VM_LOCKED VMAs' pages, counted when needed).
 */
import type { MlockOp, MunlockOp } from '../kernel-api/op.ts';
import { MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT, MLOCK_LIMIT_PAGES, PROT_WRITE } from '../kernel-api/op.ts';
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { ModelState, Process, Vma } from './types.ts';
import { findVma } from './vma.ts';
import { vmaIsSpecial, vmaModify, vmaPrevOf } from './vma-merge.ts';
import { withMmapLock } from './locks.ts';
import { taskAlive } from './process.ts';
import { GUP_FAULT, handleMmFault } from './fault.ts';
import { GUP_ATTEMPTS_MAX } from './access.ts';
import { assert } from './assert.ts';

type LockFlags = { readonly locked: boolean; readonly lockonfault: boolean };
const UNLOCKED: LockFlags = { locked: false, lockonfault: false };

/** Pages of VM_LOCKED VMAs (mm->locked_vm), less those inside [start, end). */
function lockedOutside(proc: Process, start: number, end: number): number {
  let n = 0;
  for (const v of proc.mm.vmas) {
    if (!v.locked) continue;
    n += (v.end - v.start) - Math.max(0, Math.min(end, v.end) - Math.max(start, v.start));
  }
  return n;
}

/** mlock_future_ok: may `pages` more be locked (CAP_IPC_LOCK: root may lock any number)? */
export function mlockFutureOk(proc: Process, pages: number): boolean {
  return proc.uid === 0 || pages + lockedOutside(proc, 0, 0) <= MLOCK_LIMIT_PAGES;
}

/** mlock_fixup: `flags` on [start, end) of `vma`; a VM_SPECIAL VMA, or one already so, is left alone. */
function mlockFixup(s: ModelState, proc: Process, prev: Vma | undefined, vma: Vma, start: number, end: number, flags: LockFlags): Vma | Errno {
  if ((vma.locked === flags.locked && vma.lockonfault === flags.lockonfault) || vmaIsSpecial(vma)) return vma;
  const target = vmaModify(s, proc.mm, prev, vma, start, end, { ...vma, ...flags });
  if (typeof target === 'string') return target;
  target.locked = flags.locked;
  target.lockonfault = flags.lockonfault;
  return target;
}

/** apply_vma_lock_flags over [start, end): ENOMEM at a hole, after the VMAs before it. */
function applyVmaLockFlags(s: ModelState, proc: Process, start: number, end: number, flags: LockFlags): Errno | 0 {
  if (end === start) return 0;
  let vma = findVma(proc.mm, start);
  if (vma === undefined || vma.start > start) return 'ENOMEM';
  let prev = vma.start < start ? vma : vmaPrevOf(proc.mm, start);
  let nstart = start;
  let tmp = vma.start;
  for (let steps = 0; vma !== undefined && vma.start < end; steps++) {
    assert(steps <= proc.mm.vmas.length + 1, `mlock walk of [${start}, ${end}) does not end`);
    if (vma.start !== tmp) return 'ENOMEM';
    tmp = Math.min(vma.end, end);
    const r = mlockFixup(s, proc, prev, vma, nstart, tmp, flags);
    if (typeof r === 'string') return r;
    prev = r;
    tmp = r.end;
    nstart = tmp;
    vma = findVma(proc.mm, tmp);
  }
  return tmp < end ? 'ENOMEM' : 0;
}

/**
 * __mm_populate over [start, end), under mmap_lock for read: an error ends it unless
 * `ignoreErrors` (mm_populate), which goes on with the next VMA.
 */
export function mmPopulate(s: ModelState, proc: Process, start: number, end: number, ignoreErrors: boolean): Errno | 0 {
  return withMmapLock(s, proc.pid, 'read', '__mm_populate', () => {
    // Killed while it waited (a fatal signal: GUP gives -EINTR, the task dies): nothing more.
    if (!taskAlive(s, proc)) return 'ESRCH' as const;
    return s.locks.uninterrupted(() => populateRange(s, proc, start, end, ignoreErrors));
  });
}

/** __mm_populate's walk, VMA by VMA, once it holds mmap_lock (no other task starts inside: LockTable.uninterrupted). */
function populateRange(s: ModelState, proc: Process, start: number, end: number, ignoreErrors: boolean): Errno | 0 {
  for (let addr = start; addr < end;) {
    const vma = findVma(proc.mm, addr);
    if (vma === undefined || vma.start >= end) break;
    addr = Math.max(addr, vma.start);
    const stop = Math.min(vma.end, end);
    if (vma.io || vma.pfnmap || vma.lockonfault) {
      addr = stop;
      continue;
    }
    const e = populateVmaPageRange(s, proc, vma, addr, stop);
    if (e !== 0 && !ignoreErrors) return e;
    addr = stop;
  }
  return 0;
}

/** populate_vma_page_range: __get_user_pages with FOLL_TOUCH, FOLL_WRITE on a private writable VMA, FOLL_FORCE unless PROT_NONE. */
export function populateVmaPageRange(s: ModelState, proc: Process, vma: Vma, start: number, end: number): Errno | 0 {
  if (vma.lockonfault) return 0;
  if (vma.prot === 0) return 'EFAULT'; // check_vma_flags: no VM_READ and no FOLL_FORCE
  const write = (vma.prot & PROT_WRITE) !== 0 && !vma.shared;
  for (let addr = start; addr < end; addr++) {
    for (let attempt = 0; ; attempt++) {
      if (attempt >= GUP_ATTEMPTS_MAX) return 'EFAULT';
      const pte = proc.mm.ptes.get(addr);
      if (pte?.kind === 'present' && (!write || pte.write)) break;
      const r = handleMmFault(s, proc, vma, addr, write, GUP_FAULT);
      if (r === 'OOM') return 'ENOMEM';
      if (r === 'SIGBUS') return 'EFAULT';
      s.locks.preemptPoint('populate_vma_page_range');
    }
  }
  return 0;
}

/**
 * do_mlock / do_munlock on a whole-page range (mlockPages), the part under mmap_lock for
 * write (the caller takes it): the limit, then apply_vma_lock_flags. `null`: a negative length.
 */
export function mlockRange(s: ModelState, proc: Process, op: MlockOp | MunlockOp | null): Outcome {
  const lock = op === null || op.op === 'mlock';
  // A negative length is huge as size_t: over the limit (ENOMEM), or for root end < start (EINVAL).
  if (op === null) return err(proc.uid === 0 || !lock ? 'EINVAL' : 'ENOMEM');
  const start = op.addr;
  const end = op.addr + op.lengthPages;
  const flags: LockFlags = op.op === 'mlock' ? { locked: true, lockonfault: op.onfault === true } : UNLOCKED;
  if (lock && proc.uid !== 0 && op.lengthPages + lockedOutside(proc, start, end) > MLOCK_LIMIT_PAGES) return err('ENOMEM');
  const e = applyVmaLockFlags(s, proc, start, end, flags);
  return e === 0 ? ok(0) : err(e);
}

/** do_mlock's __mm_populate once mmap_lock is dropped, its error as mlock gives it (__mlock_posix_error_return). */
export function mlockPopulate(s: ModelState, proc: Process, op: MlockOp): Outcome {
  const e = mmPopulate(s, proc, op.addr, op.addr + op.lengthPages, false);
  return e === 0 ? ok(0) : err(e === 'EFAULT' ? 'ENOMEM' : e === 'ENOMEM' ? 'EAGAIN' : e);
}

/** mlockall(flags) or munlockall (flags 0), under mmap_lock for write (the caller takes it): mm->def_flags for MCL_FUTURE, every VMA for MCL_CURRENT. */
export function mlockallFlags(s: ModelState, proc: Process, flags: number, unlockAll: boolean): Outcome {
  const f = flags;
  if (!unlockAll && (!Number.isSafeInteger(f) || f <= 0 || (f & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)) !== 0 || f === MCL_ONFAULT)) return err('EINVAL');
  let total = 0;
  for (const v of proc.mm.vmas) total += v.end - v.start;
  if ((f & MCL_CURRENT) !== 0 && proc.uid !== 0 && total > MLOCK_LIMIT_PAGES) return err('ENOMEM');
  // apply_mlockall_flags
  proc.mm.defLocked = (f & MCL_FUTURE) !== 0;
  proc.mm.defLockOnFault = (f & MCL_FUTURE) !== 0 && (f & MCL_ONFAULT) !== 0;
  if ((f & MCL_FUTURE) !== 0 && (f & MCL_CURRENT) === 0) return ok(0);
  const to: LockFlags = (f & MCL_CURRENT) !== 0 ? { locked: true, lockonfault: (f & MCL_ONFAULT) !== 0 } : UNLOCKED;
  let prev: Vma | undefined;
  for (let vma: Vma | undefined = proc.mm.vmas[0]; vma !== undefined;) {
    const r = mlockFixup(s, proc, prev, vma, vma.start, vma.end, to);
    // An error is ignored: the walk goes on (apply_mlockall_flags).
    const at = typeof r === 'string' ? vma : r;
    prev = at;
    vma = findVma(proc.mm, at.end);
  }
  return ok(0);
}
