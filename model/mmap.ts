/**
 * Address-space calls (mm/mmap.c, mm/vma.c, mm/mprotect.c): mmap with get_unmapped_area's
 * top-down search, hint, MAP_FIXED and MAP_FIXED_NOREPLACE; munmap of any range, splitting
 * VMAs at its edges; mprotect, which splits, applies VMA by VMA and stops with ENOMEM at
 * the first hole as do_mprotect_pkey does.
 */
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import type { MmapOp, MprotectOp, MunmapOp } from '../kernel-api/op.ts';
import { PROT_WRITE } from '../kernel-api/op.ts';
import { mprotectGrows, PROT_RWX } from '../kernel-api/bytes.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { ModelDriverFile, ModelState, Process, Vma } from './types.ts';
import { shouldFailAlloc } from './frames.ts';
import { inodeGet } from './pagecache.ts';
import { fileGet, fileRelease } from './driverfile.ts';
import { newFile } from './pagecache.ts';
import { insertVma, newVmaId, removeVma, splitAround, vmasIn } from './vma.ts';
import type { VmaMerge } from './vma-merge.ts';
import { isMergeableVma, vmaIsSpecial, vmaMergeExistingRange, vmaMergeNewRange, vmaModify, vmaNextOf, vmaPrevOf } from './vma-merge.ts';
import { assert } from './assert.ts';
import { mlockFutureOk, populateVmaPageRange } from './mlock.ts';
import { zapRange } from './zap.ts';
import { withInvalidation } from './notifier.ts';


export function validRange(s: ModelState, addr: number, lengthPages: number): boolean {
  return Number.isSafeInteger(addr) && Number.isSafeInteger(lengthPages) && addr >= 0 && lengthPages >= 0 &&
    addr + lengthPages <= s.config.taskSizePages;
}

export function rangeIsFree(proc: Process, start: number, end: number): boolean {
  return vmasIn(proc.mm, start, end).length === 0;
}

/** get_unmapped_area, top-down below mmap_base (vm_unmapped_area with VM_UNMAPPED_AREA_TOPDOWN). */
export function getUnmappedArea(s: ModelState, proc: Process, hint: number, lengthPages: number): number | Errno {
  const { mmapMinAddrPages: low, mmapBasePages: high, taskSizePages } = s.config;
  if (lengthPages > taskSizePages) return 'ENOMEM';
  if (hint !== 0 && hint >= low && hint + lengthPages <= taskSizePages && rangeIsFree(proc, hint, hint + lengthPages)) return hint;
  let top = high;
  for (let i = proc.mm.vmas.length - 1; i >= -1; i--) {
    const vma = proc.mm.vmas[i];
    const gapStart = Math.max(vma === undefined ? low : vma.end, low);
    if (vma !== undefined && vma.start >= top) continue;
    if (top - gapStart >= lengthPages) return top - lengthPages;
    if (vma !== undefined) top = Math.min(top, vma.start);
  }
  return 'ENOMEM';
}

/** do_vmi_munmap of [start, end): split at the edges, zap, then remove the VMAs. */
export function doMunmap(s: ModelState, proc: Process, start: number, end: number): Errno | 0 {
  const e = splitAround(s, proc.mm, start, end);
  if (e !== 0) return e;
  for (const vma of vmasIn(proc.mm, start, end)) {
    zapRange(s, proc, vma.start, vma.end, 'unmap');
    removeVma(s, proc.mm, vma);
  }
  return 0;
}

export function munmap(s: ModelState, proc: Process, op: MunmapOp): Outcome {
  if (op.lengthPages === 0 || !validRange(s, op.addr, op.lengthPages)) return err('EINVAL');
  const e = doMunmap(s, proc, op.addr, op.addr + op.lengthPages);
  return e === 0 ? ok(0) : err(e);
}

/** What a new VMA maps: anonymous memory, a shmem object, a file, or a driver file. */
export type MmapTarget = { file: number; pgoff: number; mayWrite: boolean;
  /** The struct file mapped (vm_file): an fd's, or one do_mmap opened for this call alone; 0 for anonymous memory. */
  vmFile: number; driverFile: ModelDriverFile | null;
  /** An error do_mmap returns only after placement (EACCES for a write map of an O_RDONLY fd). */
  denied?: Errno };

export function mmap(s: ModelState, proc: Process, op: MmapOp): Outcome {
  const len = op.lengthPages;
  // ksys_mmap_pgoff's fget comes first; prot is not checked (mmapPages kept its VM_* bits).
  if (op.fd !== undefined && !proc.fds.has(op.fd)) return err('EBADF');
  if (len === 0) return err('EINVAL');
  // A negative address: a hint is ignored, a fixed one is past TASK_SIZE (ENOMEM, below). A
  // fixed one may be a byte address (mmapPages rounded the rest): EINVAL below, in its place.
  if (!Number.isSafeInteger(len) || !Number.isSafeInteger(Math.floor(op.addr))) return err('EINVAL');
  // A negative length, read as size_t, is past TASK_SIZE once PAGE_ALIGNed (or wraps to 0): ENOMEM.
  if (len < 0 || len > s.config.taskSizePages) return err('ENOMEM');
  let target: MmapTarget = { file: -1, pgoff: 0, mayWrite: true, vmFile: 0, driverFile: null };
  const pgoff = op.pgoff ?? 0;
  if (!Number.isSafeInteger(pgoff) || pgoff < 0 || pgoff + len > 2 ** 52) return err('EOVERFLOW');
  if (op.fd !== undefined) {
    const open = proc.fds.get(op.fd);
    if (open === undefined) return err('EBADF');
    // ksys_mmap_pgoff holds its own reference (fget) until it is done: a close by another
    // thread meanwhile drops only the fd table's.
    fileGet(open);
    try {
      if (open.inode === -1) return mmapRegion(s, proc, op, { file: -1, pgoff, mayWrite: true, vmFile: open.id, driverFile: open });
      const t = inodeTarget(op, open.inode, open.mode, pgoff, open.id);
      return typeof t === 'string' ? err(t) : mmapRegion(s, proc, op, t);
    } finally {
      fileRelease(s, open);
    }
  } else if (op.file !== undefined) {
    const file = s.files.get(op.file);
    if (file === undefined || file.shmem) return err('EBADF');
    // The op opens the file for this mmap alone: a struct file no other mapping shares.
    const t = inodeTarget(op, file.id, op.mode ?? 'rw', pgoff, s.nextDriverFileId++);
    if (typeof t === 'string') return err(t);
    target = t;
  }
  return mmapRegion(s, proc, op, target);
}

/** A mapping of an inode through an fd opened with `mode`: a shared writable map needs O_RDWR. */
function inodeTarget(op: MmapOp, inode: number, mode: 'r' | 'rw', pgoff: number, vmFile: number): MmapTarget | Errno {
  const readOnlyFd = mode === 'r';
  // do_mmap checks the file mode after get_unmapped_area and MAP_FIXED_NOREPLACE's EEXIST.
  const denied = op.shared && readOnlyFd && (op.prot & PROT_WRITE) !== 0 ? 'EACCES' as const : undefined;
  return { file: inode, pgoff, mayWrite: !(op.shared && readOnlyFd), vmFile, driverFile: null, ...(denied ? { denied } : {}) };
}

/**
 * mmap_region: place and insert the VMA. Shared anonymous memory gets a shmem object;
 * a driver file's f_op->mmap runs on the new VMA and may refuse it.
 */
export function mmapRegion(s: ModelState, proc: Process, op: MmapOp, target: MmapTarget): Outcome {
  const len = op.lengthPages;
  if (proc.mm.vmas.length > s.config.maxMapCount) return err('ENOMEM');
  let addr: number;
  if (op.fixed || op.noreplace) {
    if (op.addr < 0 || op.addr + len > s.config.taskSizePages) return err('ENOMEM'); // __get_unmapped_area: addr > TASK_SIZE - len
    if (!Number.isInteger(op.addr)) return err('EINVAL'); // then offset_in_page(addr)
    // then security_mmap_addr: cap_mmap_addr lets only CAP_SYS_RAWIO (uid 0 here) below mmap_min_addr.
    if (op.addr < s.config.mmapMinAddrPages && proc.uid !== 0) return err('EPERM');
    if (op.noreplace && !rangeIsFree(proc, op.addr, op.addr + len)) return err('EEXIST');
    addr = op.addr;
  } else {
    const found = getUnmappedArea(s, proc, op.addr, len);
    if (typeof found === 'string') return err(found);
    addr = found;
  }
  // do_mmap: can_do_mlock holds (RLIMIT_MEMLOCK is not 0); mlock_future_ok for a VM_LOCKED mapping.
  if ((op.locked === true || proc.mm.defLocked) && !mlockFutureOk(proc, len)) return err('EAGAIN');
  if (target.denied !== undefined) return err(target.denied);
  if (op.fixed) {
    const e = doMunmap(s, proc, addr, addr + len);
    if (e !== 0) return err(e);
  }
  let file = target.file;
  let pgoff = target.pgoff;
  let vmFile = target.vmFile;
  if (file === -1 && op.shared && target.driverFile === null) {
    file = newFile(s, len, true).id; // shmem_zero_setup
    pgoff = 0;
    vmFile = s.nextDriverFileId++;
  }
  const vma: Vma = {
    id: newVmaId(s), mm: proc.pid, start: addr, end: addr + len, prot: op.prot, shared: op.shared,
    mayWrite: target.mayWrite, file, pgoff: file === -1 && target.driverFile === null ? addr : pgoff,
    pfnmap: false, mixedmap: false, io: false, dontcopy: false, dontexpand: false, wipeonfork: false, anonVma: 0, forkChild: false,
    // MAP_LOCKED, and mm->def_flags after mlockall(MCL_FUTURE).
    locked: op.locked === true || proc.mm.defLocked, lockonfault: proc.mm.defLockOnFault,
    account: accountableMapping(op), vmFile, vmOps: null, driverFile: target.driverFile, privateData: null, softDirty: true, uffdCtx: 0,
  };
  // vma_merge_new_range, before any VMA is allocated or f_op->mmap runs: a range that
  // expands a neighbour needs neither (a driver's mmap is not called for it).
  const prev = vmaPrevOf(proc.mm, addr);
  const merge: VmaMerge = {
    prev, middle: undefined, next: vmaNextOf(proc.mm, addr), start: addr, end: addr + len, pgoff: vma.pgoff, attrs: vma, anonVma: 0,
  };
  const merged = vmaMergeNewRange(s, proc.mm, merge);
  if (merged !== undefined) {
    merged.softDirty = true; // __mmap_complete
    return ok(addr);
  }
  if (shouldFailAlloc(s)) {
    // The object shmem_zero_setup made for this mapping goes; one mapped through an fd
    // (map_files) belongs to its other users.
    if (file !== target.file) s.files.delete(file);
    return err('ENOMEM');
  }
  if (target.driverFile !== null) {
    // __mmap_new_file_vma: f_op->mmap runs on the new VMA; when the driver refuses,
    // unmap_region undoes whatever it mapped already (no ->close).
    const before = { ...vma };
    const e = target.driverFile.fop.mmap?.(target.driverFile, vma) ?? 'ENODEV';
    if (e !== 0) {
      zapRange(s, proc, addr, addr + len, 'unmap');
      return err(e);
    }
    // __mmap_complete: a VM_SPECIAL mapping is not locked.
    if (vmaIsSpecial(vma)) {
      vma.locked = false;
      vma.lockonfault = false;
    }
    fileGet(target.driverFile);
    inodeGet(s, file);
    insertVma(proc.mm, vma);
    // The driver changed the flags to mergeable ones: try again (map->retry_merge).
    if (!isMergeableVma(before, vma) && !vmaIsSpecial(vma)) {
      vmaMergeExistingRange(s, proc.mm, { ...merge, middle: vma, next: undefined, attrs: vma });
    }
    return ok(addr);
  }
  inodeGet(s, file);
  insertVma(proc.mm, vma);
  return ok(addr);
}

/** accountable_mapping: a private writable mapping commits memory (VM_ACCOUNT). */
function accountableMapping(op: MmapOp): boolean {
  return !op.shared && (op.prot & PROT_WRITE) !== 0;
}

/** do_mprotect_pkey: VMA by VMA, each through mprotect_fixup with the VMA before it as prev. */
export function mprotect(s: ModelState, proc: Process, op: MprotectOp): Outcome {
  // The checks before mmap_lock (prot's among them) are mprotectArgs', at the entry. A
  // negative start is an address in the kernel's half (size_t): no VMA there, ENOMEM.
  if (!Number.isSafeInteger(op.addr)) return err('EINVAL');
  if (op.lengthPages === 0) return ok(0);
  const prot = op.prot & PROT_RWX;
  const start = op.addr;
  const end = op.addr + op.lengthPages;
  let vma: Vma | undefined = validRange(s, start, op.lengthPages) ? vmasIn(proc.mm, start, end)[0] : undefined;
  const grows = mprotectGrows(op.prot, start, vma);
  if (grows !== null) return err(grows);
  if (vma === undefined || vma.start > start) return err('ENOMEM');
  let prev = vma.start < start ? vma : vmaPrevOf(proc.mm, start);
  let cursor = start;
  let result: Errno | 0 = 0;
  // A limit on the walk: each step moves `cursor` past one of the VMAs there at the start.
  const stepsMax = proc.mm.vmas.length;
  for (let steps = 0; vma !== undefined && vma.start < end; steps++) {
    assert(steps < stepsMax, `mprotect walk of [${start}, ${end}) does not end`);
    if (vma.start > cursor) { result = 'ENOMEM'; break; }
    if ((prot & PROT_WRITE) !== 0 && !vma.mayWrite) { result = 'EACCES'; break; }
    const to = Math.min(end, vma.end);
    const fixed = mprotectFixup(s, proc, vma, prev, cursor, to, prot);
    if (typeof fixed === 'string') { result = fixed; break; }
    prev = fixed;
    cursor = fixed.end; // vma_iter_end: a merge may have reached past `to`
    vma = vmaNextOf(proc.mm, cursor);
  }
  if (result === 0 && cursor < end) result = 'ENOMEM';
  return result === 0 ? ok(0) : err(result);
}

/**
 * mprotect_fixup: unless the flags are already the new ones, vma_modify_flags (merge, else
 * split) [start, end) of `vma`, then set the protection and write-protect the PTEs if
 * needed. VM_ACCOUNT follows: set when a mapping not yet committed becomes writable,
 * dropped when an anonymous one that never faulted stops being writable. Returns the VMA
 * now holding the range (the next call's prev).
 */
function mprotectFixup(s: ModelState, proc: Process, vma: Vma, prev: Vma | undefined, start: number, end: number, prot: number): Vma | Errno {
  // newflags == oldflags: nothing to change, and no split.
  if (vma.prot === prot) return vma;
  let account = vma.account;
  if ((prot & PROT_WRITE) !== 0) {
    if (!vma.account && (vma.prot & PROT_WRITE) === 0 && !vma.shared) account = true;
  } else if (vma.account && vmaIsAnonymous(vma) && vma.anonVma === 0) {
    account = false;
  }
  const target = vmaModify(s, proc.mm, prev, vma, start, end, { ...vma, prot, account });
  if (typeof target === 'string') return target;
  const removesWrite = (vma.prot & PROT_WRITE) !== 0 && (prot & PROT_WRITE) === 0;
  // A private VM_LOCKED VMA becoming writable has its pages COW-broken now (populate_vma_page_range).
  const populates = vma.locked && (vma.prot & PROT_WRITE) === 0 && !vma.shared && (prot & PROT_WRITE) !== 0;
  target.prot = prot; // vm_flags_reset
  target.account = account;
  if (removesWrite) {
    withInvalidation(s, proc.pid, start, end, 'protection', () => { // change_protection
      for (const [addr, pte] of proc.mm.ptes) {
        if (addr >= start && addr < end && pte.kind === 'present') pte.write = false;
      }
    });
  }
  if (populates) s.locks.uninterrupted(() => populateVmaPageRange(s, proc, target, start, end)); // errors ignored
  return target;
}

/** vma_is_anonymous: private anonymous memory (no vm_ops; shmem and files have them). */
const vmaIsAnonymous = (vma: Vma): boolean => vma.file === -1 && vma.driverFile === null;

export { removeVma };
