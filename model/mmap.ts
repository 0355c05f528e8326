/**
 * Address-space calls (mm/mmap.c, mm/vma.c, mm/mprotect.c): mmap with get_unmapped_area's
 * top-down search, hint, MAP_FIXED and MAP_FIXED_NOREPLACE; munmap of any range, splitting
 * VMAs at its edges; mprotect, which splits, applies VMA by VMA and stops with ENOMEM at
 * the first hole as do_mprotect_pkey does.
 */
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import type { MmapOp, MprotectOp, MunmapOp } from '../kernel-api/op.ts';
import { PROT_EXEC, PROT_READ, PROT_WRITE } from '../kernel-api/op.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { ModelDriverFile, ModelState, Process, Vma } from './types.ts';
import { shouldFailAlloc } from './frames.ts';
import { inodeGet } from './pagecache.ts';
import { fileGet, fileRelease } from './driverfile.ts';
import { newFile } from './pagecache.ts';
import { canMerge, insertVma, mergeAround, mergeRange, newVmaId, removeVma, splitAround, vmasIn } from './vma.ts';
import { zapRange } from './zap.ts';
import { withInvalidation } from './notifier.ts';

const PROT_ALL = PROT_READ | PROT_WRITE | PROT_EXEC;

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
export type MmapTarget = { file: number; pgoff: number; mayWrite: boolean; driverFile: ModelDriverFile | null;
  /** An error do_mmap returns only after placement (EACCES for a write map of an O_RDONLY fd). */
  denied?: Errno };

export function mmap(s: ModelState, proc: Process, op: MmapOp): Outcome {
  const len = op.lengthPages;
  if (len === 0 || (op.prot & ~PROT_ALL) !== 0) return err('EINVAL');
  if (!Number.isSafeInteger(len) || len < 0 || !Number.isSafeInteger(op.addr) || op.addr < 0) return err('EINVAL');
  if (len > s.config.taskSizePages) return err('ENOMEM');
  let target: MmapTarget = { file: -1, pgoff: 0, mayWrite: true, driverFile: null };
  const pgoff = op.pgoff ?? 0;
  if (!Number.isSafeInteger(pgoff) || pgoff < 0 || pgoff + len > 2 ** 52) return err('EOVERFLOW');
  if (op.fd !== undefined) {
    const open = proc.fds.get(op.fd);
    if (open === undefined) return err('EBADF');
    // ksys_mmap_pgoff holds its own reference (fget) until it is done: a close by another
    // thread meanwhile drops only the fd table's.
    fileGet(open);
    try {
      if (open.inode === -1) return mmapRegion(s, proc, op, { file: -1, pgoff, mayWrite: true, driverFile: open });
      const t = inodeTarget(op, open.inode, open.mode, pgoff);
      return typeof t === 'string' ? err(t) : mmapRegion(s, proc, op, t);
    } finally {
      fileRelease(s, open);
    }
  } else if (op.file !== undefined) {
    const file = s.files.get(op.file);
    if (file === undefined || file.shmem) return err('EBADF');
    const t = inodeTarget(op, file.id, op.mode ?? 'rw', pgoff);
    if (typeof t === 'string') return err(t);
    target = t;
  }
  return mmapRegion(s, proc, op, target);
}

/** A mapping of an inode through an fd opened with `mode`: a shared writable map needs O_RDWR. */
function inodeTarget(op: MmapOp, inode: number, mode: 'r' | 'rw', pgoff: number): MmapTarget | Errno {
  const readOnlyFd = mode === 'r';
  // do_mmap checks the file mode after get_unmapped_area and MAP_FIXED_NOREPLACE's EEXIST.
  const denied = op.shared && readOnlyFd && (op.prot & PROT_WRITE) !== 0 ? 'EACCES' as const : undefined;
  return { file: inode, pgoff, mayWrite: !(op.shared && readOnlyFd), driverFile: null, ...(denied ? { denied } : {}) };
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
    if (op.addr + len > s.config.taskSizePages) return err('ENOMEM');
    if (op.addr < s.config.mmapMinAddrPages) return err('EPERM');
    if (op.noreplace && !rangeIsFree(proc, op.addr, op.addr + len)) return err('EEXIST');
    addr = op.addr;
  } else {
    const found = getUnmappedArea(s, proc, op.addr, len);
    if (typeof found === 'string') return err(found);
    addr = found;
  }
  if (target.denied !== undefined) return err(target.denied);
  if (op.fixed) {
    const e = doMunmap(s, proc, addr, addr + len);
    if (e !== 0) return err(e);
  }
  let file = target.file;
  let pgoff = target.pgoff;
  if (file === -1 && op.shared && target.driverFile === null) {
    file = newFile(s, len, true).id; // shmem_zero_setup
    pgoff = 0;
  }
  const vma: Vma = {
    id: newVmaId(s), mm: proc.pid, start: addr, end: addr + len, prot: op.prot, shared: op.shared,
    mayWrite: target.mayWrite, file, pgoff: file === -1 && target.driverFile === null ? addr : pgoff,
    pfnmap: false, mixedmap: false, io: false, dontcopy: false, dontexpand: false, anonVma: 0,
    vmOps: null, driverFile: target.driverFile, privateData: null, softDirty: true, uffdCtx: 0,
  };
  if (target.driverFile !== null) {
    // __mmap_new_file_vma: the VMA is allocated, then f_op->mmap runs on it; when the
    // driver refuses, unmap_region undoes whatever it mapped already (no ->close).
    if (shouldFailAlloc(s)) return err('ENOMEM');
    const e = target.driverFile.fop.mmap?.(target.driverFile, vma) ?? 'ENODEV';
    if (e !== 0) {
      zapRange(s, proc, addr, addr + len, 'unmap');
      return err(e);
    }
  } else {
    // vma_merge_new_range: a VMA that extends a neighbour needs no allocation.
    const prev = proc.mm.vmas.filter((v) => v.end <= addr).at(-1);
    const next = proc.mm.vmas.find((v) => v.start >= addr + len);
    const merges = (prev !== undefined && canMerge(prev, vma)) || (next !== undefined && canMerge(vma, next));
    if (!merges && shouldFailAlloc(s)) {
      // The object shmem_zero_setup made for this mapping goes; one mapped through an fd
      // (map_files) belongs to its other users.
      if (file !== target.file) s.files.delete(file);
      return err('ENOMEM');
    }
  }
  if (target.driverFile !== null) fileGet(target.driverFile);
  inodeGet(s, file);
  insertVma(proc.mm, vma);
  mergeAround(s, proc.mm, vma);
  return ok(addr);
}

/** do_mprotect_pkey. */
export function mprotect(s: ModelState, proc: Process, op: MprotectOp): Outcome {
  if ((op.prot & ~PROT_ALL) !== 0 || !Number.isSafeInteger(op.addr) || op.addr < 0) return err('EINVAL');
  if (op.lengthPages === 0) return ok(0);
  const start = op.addr;
  const end = op.addr + op.lengthPages;
  if (!validRange(s, start, op.lengthPages)) return err('ENOMEM');
  const first = vmasIn(proc.mm, start, end)[0];
  if (first === undefined || first.start > start) return err('ENOMEM');
  let cursor = start;
  let result: Errno | 0 = 0;
  for (const vma of vmasIn(proc.mm, start, end)) {
    if (vma.start > cursor) { result = 'ENOMEM'; break; }
    if ((op.prot & PROT_WRITE) !== 0 && !vma.mayWrite) { result = 'EACCES'; break; }
    // Read the end before mprotect_fixup: a split keeps `vma` as the lower part, so
    // vma.end afterwards is the split point, not the end of what was just changed.
    const to = Math.min(end, vma.end);
    const e = mprotectFixup(s, proc, vma, Math.max(start, vma.start), to, op.prot);
    if (e !== 0) { result = e; break; }
    cursor = to;
  }
  if (result === 0 && cursor < end) result = 'ENOMEM';
  mergeRange(s, proc.mm, start, end);
  return result === 0 ? ok(0) : err(result);
}

/** mprotect_fixup: unless the protection is already `prot`, split `vma` to [start, end), set its protection, write-protect its PTEs if needed. */
function mprotectFixup(s: ModelState, proc: Process, vma: Vma, start: number, end: number, prot: number): Errno | 0 {
  // newflags == oldflags: nothing to change, and no split (mm/mprotect.c mprotect_fixup).
  if (vma.prot === prot) return 0;
  const e = splitAround(s, proc.mm, start, end);
  if (e !== 0) return e;
  const target = vmasIn(proc.mm, start, end)[0];
  const removesWrite = (target.prot & PROT_WRITE) !== 0 && (prot & PROT_WRITE) === 0;
  target.prot = prot;
  if (removesWrite) {
    withInvalidation(s, proc.pid, start, end, 'protection', () => { // change_protection
      for (const [addr, pte] of proc.mm.ptes) {
        if (addr >= start && addr < end && pte.kind === 'present') pte.write = false;
      }
    });
  }
  return 0;
}

export { removeVma };
