/**
 * Address-space calls (mm/mmap.c, mm/vma.c, mm/mprotect.c): mmap with get_unmapped_area's
 * top-down search over the VMA tree's gap tracking, hint, MAP_FIXED and
 * MAP_FIXED_NOREPLACE; munmap of any range, splitting VMAs at its edges; mprotect, which
 * splits, applies VMA by VMA and stops with ENOMEM at the first hole.
 */
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import type { MmapOp, MprotectOp, MunmapOp } from '../kernel-api/op.ts';
import { PROT_WRITE } from '../kernel-api/op.ts';
import { mprotectGrows, PROT_RWX } from '../kernel-api/bytes.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { ImplDriverFile, ImplProcess, ImplState } from './types.ts';
import { ImplVma } from './types.ts';
import { shouldFailAlloc } from './frames.ts';
import { inodeGet, newFile } from './pagecache.ts';
import { fileGet, fileRelease } from './driverfile.ts';
import { insertVma, newVmaId, removeVma, splitAround, vmaLookup, vmasIn } from './vma.ts';
import type { VmaMerge } from './vma-merge.ts';
import { isMergeableVma, vmaAttrs, vmaIsSpecial, vmaMergeExistingRange, vmaMergeNewRange, vmaModify, vmaNextOf, vmaPrevOf } from './vma-merge.ts';
import { mlockFutureOk, populateVmaPageRange } from './mlock.ts';
import { zapRange } from './zap.ts';
import { fail } from './assert.ts';
import { invalidateEnd, invalidateRange } from './notifier.ts';
import { PTE_PRESENT, PTE_WRITE } from './pagetable.ts';


export function validRange(s: ImplState, addr: number, lengthPages: number): boolean {
  return Number.isSafeInteger(addr) && Number.isSafeInteger(lengthPages) && addr >= 0 && lengthPages >= 0 &&
    addr + lengthPages <= s.config.taskSizePages;
}

export function rangeIsFree(proc: ImplProcess, start: number, end: number): boolean {
  const v = proc.mm.vmas.find(start);
  return v === null || v.start >= end;
}

/** get_unmapped_area, top-down below mmap_base. */
export function getUnmappedArea(s: ImplState, proc: ImplProcess, hint: number, lengthPages: number): number | Errno {
  const { mmapMinAddrPages: low, mmapBasePages: high, taskSizePages } = s.config;
  if (lengthPages > taskSizePages) return 'ENOMEM';
  if (hint !== 0 && hint >= low && hint + lengthPages <= taskSizePages && rangeIsFree(proc, hint, hint + lengthPages)) return hint;
  return proc.mm.vmas.unmappedAreaTopDown(low, high, lengthPages) ?? 'ENOMEM';
}

/** do_vmi_munmap of [start, end): split at the edges, zap, then remove the VMAs. */
export function doMunmap(s: ImplState, proc: ImplProcess, start: number, end: number): Errno | 0 {
  const e = splitAround(s, proc.mm, start, end);
  if (e !== 0) return e;
  for (const vma of vmasIn(proc.mm, start, end)) {
    zapRange(s, proc, vma.start, vma.end, 'unmap');
    removeVma(s, proc.mm, vma);
  }
  return 0;
}

export function munmap(s: ImplState, proc: ImplProcess, op: MunmapOp): Outcome {
  if (op.lengthPages === 0 || !validRange(s, op.addr, op.lengthPages)) return err('EINVAL');
  const e = doMunmap(s, proc, op.addr, op.addr + op.lengthPages);
  return e === 0 ? ok(0) : err(e);
}

export type MmapTarget = { file: number; pgoff: number; mayWrite: boolean;
  /** The struct file mapped (vm_file): an fd's, or one do_mmap opened for this call alone; 0 for anonymous memory. */
  vmFile: number; driverFile: ImplDriverFile | null;
  /** An error do_mmap returns only after placement (EACCES for a write map of an O_RDONLY fd). */
  denied?: Errno };

export function mmap(s: ImplState, proc: ImplProcess, op: MmapOp): Outcome {
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

function inodeTarget(op: MmapOp, inode: number, mode: 'r' | 'rw', pgoff: number, vmFile: number): MmapTarget | Errno {
  const readOnlyFd = mode === 'r';
  // do_mmap checks the file mode after get_unmapped_area and MAP_FIXED_NOREPLACE's EEXIST.
  const denied = op.shared && readOnlyFd && (op.prot & PROT_WRITE) !== 0 ? 'EACCES' as const : undefined;
  return { file: inode, pgoff, mayWrite: !(op.shared && readOnlyFd), vmFile, driverFile: null, ...(denied ? { denied } : {}) };
}

/** mmap_region: place and insert the VMA; shmem for shared anonymous memory; a driver's f_op->mmap. */
export function mmapRegion(s: ImplState, proc: ImplProcess, op: MmapOp, target: MmapTarget): Outcome {
  const len = op.lengthPages;
  if (proc.mm.vmas.size > s.config.maxMapCount) return err('ENOMEM');
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
    file = newFile(s, len, true).id;
    pgoff = 0;
    vmFile = s.nextDriverFileId++;
  }
  const vma = new ImplVma(
    newVmaId(s), proc.pid, addr, addr + len, op.prot, op.shared, target.mayWrite, file,
    file === -1 && target.driverFile === null ? addr : pgoff,
    false, false, false, false, false, 0, null, target.driverFile, null,
  );
  vma.account = !op.shared && (op.prot & PROT_WRITE) !== 0; // accountable_mapping
  vma.vmFile = vmFile;
  // MAP_LOCKED, and mm->def_flags after mlockall(MCL_FUTURE).
  vma.locked = op.locked === true || proc.mm.defLocked;
  vma.lockonfault = proc.mm.defLockOnFault;
  // vma_merge_new_range, before any VMA is allocated or f_op->mmap runs.
  const merge: VmaMerge = {
    prev: vmaPrevOf(proc.mm, addr), middle: undefined, next: vmaNextOf(proc.mm, addr), start: addr, end: addr + len,
    pgoff: vma.pgoff, attrs: vma, anonVma: 0,
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
    const before = vma.dup(vma.id);
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
    insertVma(s, proc.mm, vma);
    // The driver changed the flags to mergeable ones: try again (map->retry_merge).
    if (!isMergeableVma(before, vma) && !vmaIsSpecial(vma)) {
      vmaMergeExistingRange(s, proc.mm, { ...merge, middle: vma, next: undefined, attrs: vma });
    }
    return ok(addr);
  }
  inodeGet(s, file);
  insertVma(s, proc.mm, vma);
  return ok(addr);
}

/** do_mprotect_pkey: VMA by VMA, each through mprotect_fixup with the VMA before it as prev. */
export function mprotect(s: ImplState, proc: ImplProcess, op: MprotectOp): Outcome {
  // The checks before mmap_lock (prot's among them) are mprotectArgs', at the entry. A
  // negative start is an address in the kernel's half (size_t): no VMA there, ENOMEM.
  if (!Number.isSafeInteger(op.addr)) return err('EINVAL');
  if (op.lengthPages === 0) return ok(0);
  const prot = op.prot & PROT_RWX;
  const start = op.addr;
  const end = op.addr + op.lengthPages;
  let vma: ImplVma | undefined = validRange(s, start, op.lengthPages) ? vmaLookup(proc.mm, start) : undefined;
  const grows = mprotectGrows(op.prot, start, vma !== undefined && vma.start < end ? vma : undefined);
  if (grows !== null) return err(grows);
  if (vma === undefined) return err('ENOMEM');
  let prev = vma.start < start ? vma : vmaPrevOf(proc.mm, start);
  let cursor = start;
  let result: Errno | 0 = 0;
  const stepsMax = proc.mm.vmas.size; // each step passes one of the VMAs there at the start
  for (let steps = 0; vma !== undefined && vma.start < end; steps++) {
    if (steps >= stepsMax) fail(`mprotect walk of [${start}, ${end}) does not end`);
    if (vma.start > cursor) { result = 'ENOMEM'; break; }
    if ((prot & PROT_WRITE) !== 0 && !vma.mayWrite) { result = 'EACCES'; break; }
    const fixed = mprotectFixup(s, proc, vma, prev, cursor, Math.min(end, vma.end), prot);
    if (typeof fixed === 'string') { result = fixed; break; }
    prev = fixed;
    cursor = fixed.end; // vma_iter_end: a merge may have reached past the range
    vma = vmaNextOf(proc.mm, cursor);
  }
  if (result === 0 && cursor < end) result = 'ENOMEM';
  return result === 0 ? ok(0) : err(result);
}

/**
 * mprotect_fixup: unless the flags are already the new ones, vma_modify_flags (merge, else
 * split), set the protection (VM_ACCOUNT as mprotect_fixup sets and drops it), and
 * write-protect the PTEs if needed. Returns the VMA now holding the range.
 */
function mprotectFixup(
  s: ImplState, proc: ImplProcess, vma: ImplVma, prev: ImplVma | undefined, start: number, end: number, prot: number,
): ImplVma | Errno {
  if (vma.prot === prot) return vma;
  let account = vma.account;
  if ((prot & PROT_WRITE) !== 0) {
    if (!vma.account && (vma.prot & PROT_WRITE) === 0 && !vma.shared) account = true;
  } else if (vma.account && vma.file === -1 && vma.driverFile === null && vma.anonVma === 0) {
    account = false; // an anonymous VMA that never faulted gives its commitment back
  }
  const target = vmaModify(s, proc.mm, prev, vma, start, end, vmaAttrs(vma, { prot, account }));
  if (typeof target === 'string') return target;
  const removesWrite = (vma.prot & PROT_WRITE) !== 0 && (prot & PROT_WRITE) === 0;
  // A private VM_LOCKED VMA becoming writable has its pages COW-broken now (populate_vma_page_range).
  const populates = vma.locked && (vma.prot & PROT_WRITE) === 0 && !vma.shared && (prot & PROT_WRITE) !== 0;
  target.prot = prot;
  target.account = account;
  if (removesWrite) {
    invalidateRange(s, proc.pid, start, end, 'protection'); // change_protection
    const pt = proc.mm.pt;
    pt.forEach(start, end, (addr, flags) => {
      if ((flags & PTE_PRESENT) !== 0 && (flags & PTE_WRITE) !== 0) pt.setFlags(addr, flags & ~PTE_WRITE);
    });
    invalidateEnd(s, proc.pid);
  }
  if (populates) s.locks.uninterrupted(() => populateVmaPageRange(s, proc, target, start, end)); // errors ignored
  return target;
}

export { removeVma };
