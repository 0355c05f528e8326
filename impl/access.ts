/**
 * Memory access: user loads and stores through the MMU, and the remote paths —
 * /proc/<pid>/mem (access_remote_vm with FOLL_FORCE) and process_vm_readv/writev
 * (pin_user_pages_remote) — over GUP (mm/gup.c), with ptrace_may_access and Yama.
 */
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok, sig } from '../kernel-api/outcome.ts';
import { FOLL_FORCE, FOLL_GET, FOLL_NOFAULT, FOLL_PIN, FOLL_WRITE, type PtraceMode } from '../kernel-api/driver.ts';
import { PROT_EXEC, PROT_READ, PROT_WRITE } from '../kernel-api/op.ts';
import type { ImplProcess, ImplState, ImplVma } from './types.ts';
import { fail } from './assert.ts';
import { frameOf, getPage, markGupDirty, pfnValue, putPage, setPfnValue } from './frames.ts';
import { F_ANON_EXCLUSIVE, F_KIND, KIND_ANON } from './framepool.ts';
import { PTE_DIRTY, PTE_PRESENT, PTE_SOFT_DIRTY, PTE_SPECIAL, PTE_UFFD_WP, PTE_WRITE } from './pagetable.ts';
import { doWpPage, GUP_FAULT, handleMmFault, type VmFault } from './fault.ts';
import { mmLock, releaseIfHeld, runDeferredFput, withMmapLock } from './locks.ts';
import type { FaultFlags } from '../kernel-api/driver.ts';
import { COVER } from '../kernel-api/coverage.ts';
import { vmaLookup } from './vma.ts';
import { taskAlive } from './process.ts';

const userReadable = (vma: ImplVma) => (vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0;
const userWritable = (vma: ImplVma) => (vma.prot & PROT_WRITE) !== 0;

/** A user fault; an OOM from fault injection is retried once (fail-nth is one-shot). */
function userFault(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, write: boolean, ff: FaultFlags): Exclude<VmFault, 'OOM'> {
  let r = handleMmFault(s, proc, vma, addr, write, ff);
  if (r === 'OOM') {
    s.locks.cover(COVER.faultOomRetry);
    r = handleMmFault(s, proc, vma, addr, write, ff);
  }
  if (!(r !== 'OOM')) fail(`user fault at ${addr} of P${proc.pid} failed twice with VM_FAULT_OOM`);
  return r;
}

/** How often a user fault may come back VM_FAULT_RETRY before the emulation calls it a livelock. */
export const FAULT_RETRIES_MAX = 4;

/** The VMA lets user space make the access (a function, not a closure: hot, and closures cost). */
function allowed(vma: ImplVma | undefined, write: boolean): vma is ImplVma {
  return vma !== undefined && (write ? userWritable(vma) : userReadable(vma));
}

/** The PTE at `addr` is present and permits the access (the MMU's check, no fault). */
function permits(pt: ImplProcess['mm']['pt'], addr: number, write: boolean): boolean {
  const flags = pt.flags(addr);
  return (flags & PTE_PRESENT) !== 0 && (!write || (flags & PTE_WRITE) !== 0);
}

/**
 * A user load or store at `addr`: no fault (and no lock) when the PTE is present and
 * permits it. Otherwise the fault: mmap_lock for read (lock_mm_and_find_vma), the VMA and
 * its permissions, handle_mm_fault with FAULT_FLAG_ALLOW_RETRY. A handler that returns
 * VM_FAULT_RETRY released the mmap_lock: retake it, find the VMA again (it may be gone),
 * and fault again with FAULT_FLAG_TRIED. A successful fault whose PTE another task took
 * away meanwhile (the handler slept) lets the access retry. Returns with the PTE at `addr`
 * present and permitting the access, or the signal.
 */
function userAccess(s: ImplState, proc: ImplProcess, addr: number, write: boolean): 0 | 'SIGSEGV' | 'SIGBUS' | 'ESRCH' {
  const pt = proc.mm.pt;
  if (allowed(vmaLookup(proc.mm, addr), write) && permits(pt, addr, write)) return 0;
  const lock = mmLock(s, proc.mm);
  s.locks.cover(COVER.doUserAddrFault);
  s.locks.acquire(lock, 'read', 'do_user_addr_fault');
  try {
    let retries = 0;
    for (let faults = 0; ; faults++) {
      // Another thread's exit_group may have run at the lock's point: the task is dead (ESRCH).
      if (!taskAlive(s, proc)) return 'ESRCH';
      const vma = vmaLookup(proc.mm, addr);
      if (!allowed(vma, write)) {
        s.locks.cover(COVER.badArea);
        return 'SIGSEGV';
      }
      if (permits(pt, addr, write)) return 0;
      const points = s.locks.points;
      if (!(faults <= FAULT_RETRIES_MAX)) fail(`${write ? 'write' : 'read'} at ${addr} of P${proc.pid}: no ${write ? 'writable ' : ''}PTE after ${faults} successful faults`);
      const r = userFault(s, proc, vma, addr, write, { allowRetry: true, tried: retries > 0 });
      if (r === 'SIGBUS') {
        s.locks.cover(COVER.faultSigbus);
        return 'SIGBUS';
      }
      if (r === 'RETRY') {
        s.locks.cover(COVER.faultRetry);
        retries += 1;
        if (retries > FAULT_RETRIES_MAX) s.locks.waitForFailedTrylock('do_user_addr_fault');
        if (!(retries <= FAULT_RETRIES_MAX)) fail(`fault at ${addr} of P${proc.pid} retried forever (${retries} times VM_FAULT_RETRY)`);
        s.locks.acquire(lock, 'read', 'do_user_addr_fault');
        continue;
      }
      if (s.locks.points === points && !permits(pt, addr, write)) {
        fail(`${write ? 'write' : 'read'} at ${addr} of P${proc.pid}: no ${write ? 'writable ' : ''}PTE after a successful fault`);
      }
    }
  } finally {
    releaseIfHeld(s, lock, 'do_user_addr_fault');
    runDeferredFput(s);
  }
}

export function userRead(s: ImplState, proc: ImplProcess, addr: number): Outcome {
  const r = userAccess(s, proc, addr, false);
  if (r === 'ESRCH') return err(r);
  if (r !== 0) return sig(r);
  return ok(pfnValue(s, proc.mm.pt.idx(addr)));
}

export function userWrite(s: ImplState, proc: ImplProcess, addr: number, value: number): Outcome {
  const r = userAccess(s, proc, addr, true);
  if (r === 'ESRCH') return err(r);
  if (r !== 0) return sig(r);
  const pt = proc.mm.pt;
  setPfnValue(s, pt.idx(addr), value >>> 0);
  pt.setFlags(addr, pt.flags(addr) | PTE_DIRTY | PTE_SOFT_DIRTY);
  return ok(0);
}

/** ptrace_may_access (__ptrace_may_access + Yama for attach modes). */
export function ptraceMayAccess(s: ImplState, caller: ImplProcess, target: ImplProcess, mode: PtraceMode): boolean {
  if (caller.pid === target.pid || s.skipPtraceCheck) return true;
  if (caller.uid === 0) return true;
  if (caller.uid !== target.uid || !target.dumpable) return false;
  if (mode === 'attach' && s.config.yamaPtraceScope === 1) return isAncestor(s, caller.pid, target);
  return true;
}

function isAncestor(s: ImplState, ancestor: number, proc: ImplProcess): boolean {
  for (let p = s.processes.get(proc.ppid), hops = 0; p !== undefined && hops < s.processes.size; p = s.processes.get(p.ppid), hops++) {
    if (p.pid === ancestor) return true;
  }
  return false;
}

function gupVmaAllowed(s: ImplState, vma: ImplVma, gupFlags: number): boolean {
  if (vma.io || vma.pfnmap) {
    s.locks.cover(COVER.gupVmIoPfnmap);
    return false;
  }
  const force = (gupFlags & FOLL_FORCE) !== 0;
  if ((gupFlags & FOLL_WRITE) !== 0) {
    if ((vma.prot & PROT_WRITE) === 0 && (!force || vma.shared || !vma.mayWrite)) {
      s.locks.cover(COVER.gupVmaFlags);
      return false;
    }
  } else if ((vma.prot & PROT_READ) === 0 && !force) {
    s.locks.cover(COVER.gupVmaFlags);
    return false;
  }
  return true;
}

/** /proc/<pid>/mem is 0600 and owned by root while the task is not dumpable (as in model/access.ts). */
function procMemPermission(caller: ImplProcess, target: ImplProcess): boolean {
  return caller.uid === 0 || (target.dumpable && caller.uid === target.uid);
}

/** How often GUP faults a page in and finds it gone again before it gives up (EFAULT). */
export const GUP_ATTEMPTS_MAX = 4;

/**
 * get_user_pages_remote / pin_user_pages_remote for one page, with the target's mmap_lock
 * held: the pfn with a reference or pin. After a fault, __get_user_pages's cond_resched()
 * is a scheduling point before it looks the page up again; a page already present passes none.
 */
export function gupOne(s: ImplState, target: ImplProcess, addr: number, gupFlags: number): number | Errno {
  const vma = vmaLookup(target.mm, addr);
  s.locks.cover(COVER.gup);
  if (vma === undefined) {
    s.locks.cover(COVER.gupNoVma);
    return 'EFAULT';
  }
  if (!gupVmaAllowed(s, vma, gupFlags)) return 'EFAULT';
  const write = (gupFlags & FOLL_WRITE) !== 0;
  const pt = target.mm.pt;
  for (let attempt = 0; attempt < GUP_ATTEMPTS_MAX; attempt++) {
    const flags = pt.flags(addr);
    const present = (flags & PTE_PRESENT) !== 0;
    const needsFault = !present || (write && !canFollowWrite(s, vma, addr, flags));
    if (needsFault) {
      if ((gupFlags & FOLL_NOFAULT) !== 0) {
        s.locks.cover(COVER.gupNofault);
        return 'EFAULT';
      }
      s.locks.cover(COVER.gupFaultin);
      if (write && (vma.prot & PROT_WRITE) === 0) s.locks.cover(COVER.gupForceCow);
      const r = handleMmFault(s, target, vma, addr, write, GUP_FAULT);
      if (r === 'OOM') {
        s.locks.cover(COVER.gupFaultEnomem);
        return 'ENOMEM';
      }
      if (r === 'SIGBUS') {
        s.locks.cover(COVER.gupFaultEfault);
        return 'EFAULT';
      }
      s.locks.preemptPoint('get_user_pages_remote');
      continue;
    }
    if ((gupFlags & FOLL_PIN) !== 0 && !write && mustUnshare(s, flags, pt.idx(addr))) {
      if ((gupFlags & FOLL_NOFAULT) !== 0) {
        s.locks.cover(COVER.gupNofault);
        return 'EFAULT';
      }
      s.locks.cover(COVER.gupUnshare);
      const r = doWpPage(s, target, vma, addr, false);
      if (r === 'OOM') {
        s.locks.cover(COVER.gupFaultEnomem);
        return 'ENOMEM';
      }
      s.locks.preemptPoint('get_user_pages_remote');
      continue;
    }
    s.locks.cover(COVER.gupFollowPage);
    return grab(s, pt.idx(addr), gupFlags);
  }
  s.locks.cover(COVER.gupRetriesExhausted);
  return 'EFAULT';
}

function canFollowWrite(s: ImplState, vma: ImplVma, addr: number, flags: number): boolean {
  if ((flags & PTE_WRITE) !== 0) return true;
  // can_follow_write_pte: a uffd-wp PTE must take the write fault that resolves it.
  if ((vma.prot & PROT_WRITE) !== 0 || (flags & (PTE_SPECIAL | PTE_UFFD_WP)) !== 0) return false;
  const pfn = frameOf(s, s.processes.get(vma.mm)!.mm.pt.idx(addr));
  return (s.pool.flags[pfn] & F_KIND) === KIND_ANON && (s.pool.flags[pfn] & F_ANON_EXCLUSIVE) !== 0;
}

function mustUnshare(s: ImplState, flags: number, pfn: number): boolean {
  if ((flags & PTE_SPECIAL) !== 0) return false;
  frameOf(s, pfn);
  return (s.pool.flags[pfn] & F_KIND) === KIND_ANON && (s.pool.flags[pfn] & F_ANON_EXCLUSIVE) === 0;
}

function grab(s: ImplState, pfn: number, gupFlags: number): number {
  if (pfn === s.zeroPfn) {
    s.locks.cover(COVER.gupZeroPage);
    return pfn;
  }
  frameOf(s, pfn);
  s.locks.cover((gupFlags & FOLL_PIN) !== 0 ? COVER.gupPin : COVER.gupGet);
  if ((gupFlags & FOLL_PIN) !== 0) s.pool.setPins(pfn, s.pool.pins(pfn) + 1);
  if ((gupFlags & (FOLL_PIN | FOLL_GET)) !== 0) getPage(s, pfn);
  return pfn;
}

export function unpinPage(s: ImplState, pfn: number): void {
  if (pfn === s.zeroPfn) return;
  frameOf(s, pfn);
  if (!(s.pool.pins(pfn) > 0)) fail(`unpin of pfn ${pfn} with pincount 0`, 'refcount-balance');
  s.pool.setPins(pfn, s.pool.pins(pfn) - 1);
  putPage(s, pfn);
}

export function procMemAccess(s: ImplState, caller: ImplProcess, target: ImplProcess, addr: number, value?: number): Outcome {
  if (!procMemPermission(caller, target) || !ptraceMayAccess(s, caller, target, 'attach')) {
    s.locks.cover(COVER.procMemEacces);
    return err('EACCES');
  }
  s.locks.cover(COVER.procMemAccess);
  const flags = FOLL_FORCE | FOLL_GET | (value === undefined ? 0 : FOLL_WRITE);
  // __access_remote_vm: the target's mmap_lock for read around the GUP, the copy and the put.
  return withMmapLock(s, target.mm, 'read', 'access_remote_vm', () => {
    const pfn = gupOne(s, target, addr, flags);
    if (typeof pfn === 'string') return err('EIO');
    const result = value === undefined ? pfnValue(s, pfn) : 0;
    if (value !== undefined) {
      setPfnValue(s, pfn, value >>> 0);
      markGupDirty(s, pfn); // folio_mark_dirty_lock
    }
    if (pfn !== s.zeroPfn) putPage(s, frameOf(s, pfn));
    return ok(result);
  });
}

export function processVmAccess(s: ImplState, caller: ImplProcess, target: ImplProcess, addr: number, value?: number): Outcome {
  if (!ptraceMayAccess(s, caller, target, 'attach')) {
    s.locks.cover(COVER.processVmEperm);
    return err('EPERM');
  }
  s.locks.cover(COVER.processVmRw);
  const flags = FOLL_PIN | (value === undefined ? 0 : FOLL_WRITE);
  // process_vm_rw_single_vec: the target's mmap_lock for read around the pin only.
  const pfn = withMmapLock(s, target.mm, 'read', 'process_vm_rw_single_vec', () => gupOne(s, target, addr, flags));
  if (typeof pfn === 'string') return err(pfn === 'ENOMEM' ? 'ENOMEM' : 'EFAULT');
  const result = value === undefined ? pfnValue(s, pfn) : 0;
  if (value !== undefined) {
    setPfnValue(s, pfn, value >>> 0);
    markGupDirty(s, pfn); // unpin_user_pages_dirty_lock(..., vm_write)
  }
  unpinPage(s, pfn);
  return ok(result);
}
