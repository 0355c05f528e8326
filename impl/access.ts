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
import { assert, fail } from './assert.ts';
import { frameOf, getPage, pfnValue, putPage, setPfnValue } from './frames.ts';
import { F_ANON_EXCLUSIVE, F_KIND, KIND_ANON } from './framepool.ts';
import { PTE_DIRTY, PTE_PRESENT, PTE_SOFT_DIRTY, PTE_SPECIAL, PTE_UFFD_WP, PTE_WRITE } from './pagetable.ts';
import { doWpPage, handleMmFault } from './fault.ts';
import { vmaLookup } from './vma.ts';

const userReadable = (vma: ImplVma) => (vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0;
const userWritable = (vma: ImplVma) => (vma.prot & PROT_WRITE) !== 0;

/** A user fault; an OOM from fault injection is retried once (fail-nth is one-shot). */
function userFault(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, write: boolean): 0 | 'SIGBUS' {
  let r = handleMmFault(s, proc, vma, addr, write);
  if (r === 'OOM') r = handleMmFault(s, proc, vma, addr, write);
  if (!(r !== 'OOM')) fail(`user fault at ${addr} of P${proc.pid} failed twice with VM_FAULT_OOM`);
  return r;
}

export function userRead(s: ImplState, proc: ImplProcess, addr: number): Outcome {
  const vma = vmaLookup(proc.mm, addr);
  if (vma === undefined || !userReadable(vma)) return sig('SIGSEGV');
  const pt = proc.mm.pt;
  if ((pt.flags(addr) & PTE_PRESENT) === 0) {
    if (userFault(s, proc, vma, addr, false) === 'SIGBUS') return sig('SIGBUS');
  }
  if (!((pt.flags(addr) & PTE_PRESENT) !== 0)) fail(`read at ${addr} of P${proc.pid}: no PTE after a successful fault`);
  return ok(pfnValue(s, pt.idx(addr)));
}

export function userWrite(s: ImplState, proc: ImplProcess, addr: number, value: number): Outcome {
  const vma = vmaLookup(proc.mm, addr);
  if (vma === undefined || !userWritable(vma)) return sig('SIGSEGV');
  const pt = proc.mm.pt;
  const flags = pt.flags(addr);
  if ((flags & PTE_PRESENT) === 0 || (flags & PTE_WRITE) === 0) {
    if (userFault(s, proc, vma, addr, true) === 'SIGBUS') return sig('SIGBUS');
  }
  const after = pt.flags(addr);
  if (!((after & PTE_PRESENT) !== 0 && (after & PTE_WRITE) !== 0)) fail(`write at ${addr} of P${proc.pid}: no writable PTE after a successful fault`);
  setPfnValue(s, pt.idx(addr), value >>> 0);
  pt.setFlags(addr, after | PTE_DIRTY | PTE_SOFT_DIRTY);
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

function gupVmaAllowed(vma: ImplVma, gupFlags: number): boolean {
  if (vma.io || vma.pfnmap) return false;
  const force = (gupFlags & FOLL_FORCE) !== 0;
  if ((gupFlags & FOLL_WRITE) !== 0) {
    if ((vma.prot & PROT_WRITE) === 0 && (!force || vma.shared || !vma.mayWrite)) return false;
  } else if ((vma.prot & PROT_READ) === 0 && !force) {
    return false;
  }
  return true;
}

/** /proc/<pid>/mem is 0600 and owned by root while the task is not dumpable (as in model/access.ts). */
function procMemPermission(caller: ImplProcess, target: ImplProcess): boolean {
  return caller.uid === 0 || (target.dumpable && caller.uid === target.uid);
}

/** get_user_pages_remote / pin_user_pages_remote for one page: the pfn with a reference or pin. */
export function gupOne(s: ImplState, target: ImplProcess, addr: number, gupFlags: number): number | Errno {
  const vma = vmaLookup(target.mm, addr);
  if (vma === undefined || !gupVmaAllowed(vma, gupFlags)) return 'EFAULT';
  const write = (gupFlags & FOLL_WRITE) !== 0;
  const pt = target.mm.pt;
  for (let attempt = 0; attempt < 3; attempt++) {
    const flags = pt.flags(addr);
    const present = (flags & PTE_PRESENT) !== 0;
    const needsFault = !present || (write && !canFollowWrite(s, vma, addr, flags));
    if (needsFault) {
      if ((gupFlags & FOLL_NOFAULT) !== 0) return 'EFAULT';
      const r = handleMmFault(s, target, vma, addr, write);
      if (r === 'OOM') return 'ENOMEM';
      if (r === 'SIGBUS') return 'EFAULT';
      continue;
    }
    if ((gupFlags & FOLL_PIN) !== 0 && !write && mustUnshare(s, flags, pt.idx(addr))) {
      if ((gupFlags & FOLL_NOFAULT) !== 0) return 'EFAULT';
      const r = doWpPage(s, target, vma, addr, false);
      if (r === 'OOM') return 'ENOMEM';
      continue;
    }
    return grab(s, pt.idx(addr), gupFlags);
  }
  assert(false, `GUP at ${addr} of P${target.pid} did not settle after three faults`);
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
  if (pfn === s.zeroPfn) return pfn;
  frameOf(s, pfn);
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
  if (!procMemPermission(caller, target) || !ptraceMayAccess(s, caller, target, 'attach')) return err('EACCES');
  const flags = FOLL_FORCE | FOLL_GET | (value === undefined ? 0 : FOLL_WRITE);
  const pfn = gupOne(s, target, addr, flags);
  if (typeof pfn === 'string') return err('EIO');
  const result = value === undefined ? pfnValue(s, pfn) : 0;
  if (value !== undefined) setPfnValue(s, pfn, value >>> 0);
  if (pfn !== s.zeroPfn) putPage(s, frameOf(s, pfn));
  return ok(result);
}

export function processVmAccess(s: ImplState, caller: ImplProcess, target: ImplProcess, addr: number, value?: number): Outcome {
  if (!ptraceMayAccess(s, caller, target, 'attach')) return err('EPERM');
  const flags = FOLL_PIN | (value === undefined ? 0 : FOLL_WRITE);
  const pfn = gupOne(s, target, addr, flags);
  if (typeof pfn === 'string') return err(pfn === 'ENOMEM' ? 'ENOMEM' : 'EFAULT');
  const result = value === undefined ? pfnValue(s, pfn) : 0;
  if (value !== undefined) setPfnValue(s, pfn, value >>> 0);
  unpinPage(s, pfn);
  return ok(result);
}
