/**
 * Memory access: user loads and stores through the MMU, and the remote paths —
 * /proc/<pid>/mem (access_remote_vm with FOLL_FORCE) and process_vm_readv/writev
 * (pin_user_pages_remote without it) — over GUP (mm/gup.c), with ptrace_may_access
 * (kernel/ptrace.c, plus Yama's descendant rule for PTRACE_MODE_ATTACH).
 */
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok, sig } from '../kernel-api/outcome.ts';
import { FOLL_FORCE, FOLL_GET, FOLL_NOFAULT, FOLL_PIN, FOLL_WRITE, type PtraceMode } from '../kernel-api/driver.ts';
import { PROT_EXEC, PROT_READ, PROT_WRITE } from '../kernel-api/op.ts';
import type { ModelState, PresentPte, Process, Pte, Vma } from './types.ts';
import { assert } from './assert.ts';
import { frameOf, getPage, markGupDirty, pfnValue, putPage, setPfnValue } from './frames.ts';
import { doWpPage, GUP_FAULT, handleMmFault, type VmFault } from './fault.ts';
import { vmaLookup } from './vma.ts';
import { taskAlive } from './process.ts';
import { mmapLock, releaseIfHeld, runDeferredFput, withMmapLock } from './locks.ts';
import type { FaultFlags } from '../kernel-api/driver.ts';
import { COVER } from '../kernel-api/coverage.ts';

/** x86 without protection keys: any of r/w/x lets user space read. */
const userReadable = (vma: Vma) => (vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0;
const userWritable = (vma: Vma) => (vma.prot & PROT_WRITE) !== 0;

/** The VMA exists and its protection lets user space make the access. */
function accessAllowed(vma: Vma | undefined, write: boolean): vma is Vma {
  return vma !== undefined && (write ? userWritable(vma) : userReadable(vma));
}

/** The PTE is present and permits the access (the MMU's check, no fault). */
function ptePermits(pte: Pte | undefined, write: boolean): pte is PresentPte {
  return pte?.kind === 'present' && (!write || pte.write);
}

/**
 * A user fault. An OOM from fault injection is retried as the arch fault handler does
 * after pagefault_out_of_memory; fail-nth is one-shot, so the retry succeeds.
 */
function userFault(s: ModelState, proc: Process, vma: Vma, addr: number, write: boolean, flags: FaultFlags): Exclude<VmFault, 'OOM'> {
  let r = handleMmFault(s, proc, vma, addr, write, flags);
  if (r === 'OOM') {
    s.locks.cover(COVER.faultOomRetry);
    r = handleMmFault(s, proc, vma, addr, write, flags);
  }
  assert(r !== 'OOM', `user fault at ${addr} of P${proc.pid} failed twice with VM_FAULT_OOM`);
  return r;
}

/** How often a user fault may come back VM_FAULT_RETRY before the emulation calls it a livelock. */
export const FAULT_RETRIES_MAX = 4;

/**
 * A user load or store at `addr`: no fault (and no lock) when the PTE is present and
 * permits it. Otherwise the fault: mmap_lock for read (lock_mm_and_find_vma), the VMA and
 * its permissions, handle_mm_fault with FAULT_FLAG_ALLOW_RETRY. A handler that returns
 * VM_FAULT_RETRY released the mmap_lock: retake it, find the VMA again (it may be gone),
 * and fault again with FAULT_FLAG_TRIED. A successful fault whose PTE another task took
 * away meanwhile (the handler slept) lets the access retry.
 */
function userAccess(s: ModelState, proc: Process, addr: number, write: boolean): PresentPte | 'SIGSEGV' | 'SIGBUS' | 'ESRCH' {
  const pte0 = proc.mm.ptes.get(addr);
  if (accessAllowed(vmaLookup(proc.mm, addr), write) && ptePermits(pte0, write)) return pte0;
  const lock = mmapLock(s, proc.pid);
  s.locks.cover(COVER.doUserAddrFault);
  s.locks.acquire(lock, 'read', 'do_user_addr_fault');
  try {
    let retries = 0;
    for (let faults = 0; ; faults++) {
      // Another thread's exit_group may have run at the lock's point: the task is dead (ESRCH).
      if (!taskAlive(s, proc)) return 'ESRCH';
      const vma = vmaLookup(proc.mm, addr);
      if (!accessAllowed(vma, write)) {
        s.locks.cover(COVER.badArea);
        return 'SIGSEGV';
      }
      const pte = proc.mm.ptes.get(addr);
      if (ptePermits(pte, write)) return pte;
      const points = s.locks.points;
      assert(faults <= FAULT_RETRIES_MAX, `${write ? 'write' : 'read'} at ${addr} of P${proc.pid}: no ${write ? 'writable ' : ''}PTE after ${faults} successful faults`);
      const r = userFault(s, proc, vma, addr, write, { allowRetry: true, tried: retries > 0 });
      if (r === 'SIGBUS') {
        s.locks.cover(COVER.faultSigbus);
        return 'SIGBUS';
      }
      if (r === 'RETRY') {
        s.locks.cover(COVER.faultRetry);
        retries += 1;
        if (retries > FAULT_RETRIES_MAX) s.locks.waitForFailedTrylock('do_user_addr_fault');
        assert(retries <= FAULT_RETRIES_MAX, `fault at ${addr} of P${proc.pid} retried forever (${retries} times VM_FAULT_RETRY)`);
        s.locks.acquire(lock, 'read', 'do_user_addr_fault');
        continue;
      }
      if (s.locks.points === points) {
        const after = proc.mm.ptes.get(addr);
        assert(ptePermits(after, write), `${write ? 'write' : 'read'} at ${addr} of P${proc.pid}: no ${write ? 'writable ' : ''}PTE after a successful fault`);
      }
    }
  } finally {
    releaseIfHeld(s, lock, 'do_user_addr_fault');
    runDeferredFput(s);
  }
}

export function userRead(s: ModelState, proc: Process, addr: number): Outcome {
  const pte = userAccess(s, proc, addr, false);
  if (pte === 'ESRCH') return err(pte);
  if (typeof pte === 'string') return sig(pte);
  return ok(pfnValue(s, pte.pfn));
}

export function userWrite(s: ModelState, proc: Process, addr: number, value: number): Outcome {
  const pte = userAccess(s, proc, addr, true);
  if (pte === 'ESRCH') return err(pte);
  if (typeof pte === 'string') return sig(pte);
  storeThroughPte(s, pte, value);
  return ok(0);
}

function storeThroughPte(s: ModelState, pte: PresentPte, value: number): void {
  setPfnValue(s, pte.pfn, value >>> 0);
  pte.dirty = true;
  pte.softDirty = true;
}

/** ptrace_may_access (__ptrace_may_access + Yama for attach modes). */
export function ptraceMayAccess(s: ModelState, caller: Process, target: Process, mode: PtraceMode): boolean {
  if (caller.pid === target.pid || s.skipPtraceCheck) return true;
  if (caller.uid === 0) return true; // CAP_SYS_PTRACE
  if (caller.uid !== target.uid || !target.dumpable) return false;
  if (mode === 'attach' && s.config.yamaPtraceScope === 1) return isAncestor(s, caller.pid, target);
  return true;
}

function isAncestor(s: ModelState, ancestor: number, proc: Process): boolean {
  for (let p = s.processes.get(proc.ppid), hops = 0; p !== undefined && hops < s.processes.size; p = s.processes.get(p.ppid), hops++) {
    if (p.pid === ancestor) return true;
  }
  return false;
}

/** check_vma_flags of GUP. */
function gupVmaAllowed(s: ModelState, vma: Vma, gupFlags: number): boolean {
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

/** How often GUP faults a page in and finds it gone again before it gives up (EFAULT). */
export const GUP_ATTEMPTS_MAX = 4;

/**
 * get_user_pages_remote / pin_user_pages_remote for one page, with the target's mmap_lock
 * held: fault it in unless FOLL_NOFAULT, take a reference (FOLL_GET) or a pin (FOLL_PIN),
 * return its pfn. A read-only pin of a shared anonymous page unshares it first
 * (gup_must_unshare). After a fault, __get_user_pages's cond_resched() is a scheduling
 * point before it looks the page up again; a page already present passes none.
 */
export function gupOne(s: ModelState, target: Process, addr: number, gupFlags: number): number | Errno {
  const vma = vmaLookup(target.mm, addr);
  s.locks.cover(COVER.gup);
  if (vma === undefined) {
    s.locks.cover(COVER.gupNoVma);
    return 'EFAULT';
  }
  if (!gupVmaAllowed(s, vma, gupFlags)) return 'EFAULT';
  const write = (gupFlags & FOLL_WRITE) !== 0;
  for (let attempt = 0; attempt < GUP_ATTEMPTS_MAX; attempt++) {
    const pte = target.mm.ptes.get(addr);
    const needsFault = pte?.kind !== 'present' || (write && !canFollowWrite(s, vma, pte));
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
    if ((gupFlags & FOLL_PIN) !== 0 && !write && mustUnshare(s, pte)) {
      if ((gupFlags & FOLL_NOFAULT) !== 0) {
        s.locks.cover(COVER.gupNofault);
        return 'EFAULT';
      }
      s.locks.cover(COVER.gupUnshare);
      const r = doWpPage(s, target, vma, addr, pte, false);
      if (r === 'OOM') {
        s.locks.cover(COVER.gupFaultEnomem);
        return 'ENOMEM';
      }
      s.locks.preemptPoint('get_user_pages_remote');
      continue;
    }
    s.locks.cover(COVER.gupFollowPage);
    return grab(s, pte, gupFlags);
  }
  s.locks.cover(COVER.gupRetriesExhausted);
  return 'EFAULT';
}

/** can_follow_write_pte: a read-only PTE may be written through with FOLL_FORCE only if the anonymous page is exclusive. */
function canFollowWrite(s: ModelState, vma: Vma, pte: PresentPte): boolean {
  if (pte.write) return true;
  // can_follow_write_pte: a uffd-wp PTE must take the write fault that resolves it.
  if ((vma.prot & PROT_WRITE) !== 0 || pte.special || pte.uffdWp) return false;
  const frame = frameOf(s, pte.pfn);
  return frame.kind === 'anon' && frame.anonExclusive;
}

function mustUnshare(s: ModelState, pte: PresentPte): boolean {
  if (pte.special) return false;
  const frame = frameOf(s, pte.pfn);
  return frame.kind === 'anon' && !frame.anonExclusive;
}

function grab(s: ModelState, pte: PresentPte, gupFlags: number): number {
  if (pte.pfn === s.zeroPfn) {
    s.locks.cover(COVER.gupZeroPage);
    return pte.pfn;
  }
  const frame = frameOf(s, pte.pfn);
  s.locks.cover((gupFlags & FOLL_PIN) !== 0 ? COVER.gupPin : COVER.gupGet);
  if ((gupFlags & FOLL_PIN) !== 0) frame.pincount += 1;
  if ((gupFlags & (FOLL_PIN | FOLL_GET)) !== 0) getPage(frame);
  return frame.pfn;
}

/** unpin_user_page. */
export function unpinPage(s: ModelState, pfn: number): void {
  if (pfn === s.zeroPfn) return;
  const frame = frameOf(s, pfn);
  assert(frame.pincount > 0, `unpin of pfn ${pfn} with pincount 0`, 'refcount-balance');
  frame.pincount -= 1;
  putPage(s, frame);
}

/**
 * The open's own permission check, before ptrace's: /proc/<pid>/mem is mode 0600 and
 * task_dump_owner makes a non-dumpable task's proc files root's — so without
 * CAP_DAC_OVERRIDE (uid 0 here) even the task itself cannot open it (fs/proc/base.c).
 */
function procMemPermission(caller: Process, target: Process): boolean {
  return caller.uid === 0 || (target.dumpable && caller.uid === target.uid);
}

/** access_remote_vm for /proc/<pid>/mem: FOLL_FORCE, a reference held only while copying. */
export function procMemAccess(s: ModelState, caller: Process, target: Process, addr: number, value?: number): Outcome {
  if (!procMemPermission(caller, target) || !ptraceMayAccess(s, caller, target, 'attach')) {
    s.locks.cover(COVER.procMemEacces);
    return err('EACCES');
  }
  s.locks.cover(COVER.procMemAccess);
  const flags = FOLL_FORCE | FOLL_GET | (value === undefined ? 0 : FOLL_WRITE);
  // __access_remote_vm: the target's mmap_lock for read around the GUP, the copy and the put.
  return withMmapLock(s, target.pid, 'read', 'access_remote_vm', () => {
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

/** process_vm_readv / writev of one page: a FOLL_PIN (FOLL_WRITE to write), then unpin. */
export function processVmAccess(s: ModelState, caller: Process, target: Process, addr: number, value?: number): Outcome {
  if (!ptraceMayAccess(s, caller, target, 'attach')) {
    s.locks.cover(COVER.processVmEperm);
    return err('EPERM');
  }
  s.locks.cover(COVER.processVmRw);
  const flags = FOLL_PIN | (value === undefined ? 0 : FOLL_WRITE);
  // process_vm_rw_single_vec: the target's mmap_lock for read around the pin only.
  const pfn = withMmapLock(s, target.pid, 'read', 'process_vm_rw_single_vec', () => gupOne(s, target, addr, flags));
  if (typeof pfn === 'string') return err(pfn === 'ENOMEM' ? 'ENOMEM' : 'EFAULT');
  const result = value === undefined ? pfnValue(s, pfn) : 0;
  if (value !== undefined) {
    setPfnValue(s, pfn, value >>> 0);
    markGupDirty(s, pfn); // unpin_user_pages_dirty_lock(..., vm_write)
  }
  unpinPage(s, pfn);
  return ok(result);
}
