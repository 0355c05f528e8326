/**
 * Address-space calls (mm/mmap.c, mm/vma.c, mm/mprotect.c): mmap with get_unmapped_area's
 * top-down search over the VMA tree's gap tracking, hint, MAP_FIXED and
 * MAP_FIXED_NOREPLACE; munmap of any range, splitting VMAs at its edges; mprotect, which
 * splits, applies VMA by VMA and stops with ENOMEM at the first hole.
 */
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import type { MmapOp, MprotectOp, MunmapOp } from '../kernel-api/op.ts';
import { PROT_EXEC, PROT_READ, PROT_WRITE } from '../kernel-api/op.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { ImplDriverFile, ImplProcess, ImplState } from './types.ts';
import { ImplVma } from './types.ts';
import { shouldFailAlloc } from './frames.ts';
import { inodeGet, newFile } from './pagecache.ts';
import { fileGet, fileRelease } from './driverfile.ts';
import { canMerge, insertVma, mergeAround, mergeRange, newVmaId, removeVma, splitAround, vmasIn } from './vma.ts';
import { zapRange } from './zap.ts';
import { invalidateEnd, invalidateRange } from './notifier.ts';
import { PTE_PRESENT, PTE_WRITE } from './pagetable.ts';

const PROT_ALL = PROT_READ | PROT_WRITE | PROT_EXEC;

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

export type MmapTarget = { file: number; pgoff: number; mayWrite: boolean; driverFile: ImplDriverFile | null;
  /** An error do_mmap returns only after placement (EACCES for a write map of an O_RDONLY fd). */
  denied?: Errno };

export function mmap(s: ImplState, proc: ImplProcess, op: MmapOp): Outcome {
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

function inodeTarget(op: MmapOp, inode: number, mode: 'r' | 'rw', pgoff: number): MmapTarget | Errno {
  const readOnlyFd = mode === 'r';
  // do_mmap checks the file mode after get_unmapped_area and MAP_FIXED_NOREPLACE's EEXIST.
  const denied = op.shared && readOnlyFd && (op.prot & PROT_WRITE) !== 0 ? 'EACCES' as const : undefined;
  return { file: inode, pgoff, mayWrite: !(op.shared && readOnlyFd), driverFile: null, ...(denied ? { denied } : {}) };
}

/** mmap_region: place and insert the VMA; shmem for shared anonymous memory; a driver's f_op->mmap. */
export function mmapRegion(s: ImplState, proc: ImplProcess, op: MmapOp, target: MmapTarget): Outcome {
  const len = op.lengthPages;
  if (proc.mm.vmas.size > s.config.maxMapCount) return err('ENOMEM');
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
    file = newFile(s, len, true).id;
    pgoff = 0;
  }
  const vma = new ImplVma(
    newVmaId(s), proc.pid, addr, addr + len, op.prot, op.shared, target.mayWrite, file,
    file === -1 && target.driverFile === null ? addr : pgoff,
    false, false, false, false, false, 0, null, target.driverFile, null,
  );
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
    const after = proc.mm.vmas.find(addr);
    const prev = proc.mm.vmas.prevOf(after === null ? Infinity : after.start);
    const next = proc.mm.vmas.nextOf(addr + len - 1);
    const merges = (prev !== null && canMerge(prev, vma)) || (next !== null && canMerge(vma, next));
    if (!merges && shouldFailAlloc(s)) {
      // The object shmem_zero_setup made for this mapping goes; one mapped through an fd
      // (map_files) belongs to its other users.
      if (file !== target.file) s.files.delete(file);
      return err('ENOMEM');
    }
  }
  if (target.driverFile !== null) fileGet(target.driverFile);
  inodeGet(s, file);
  insertVma(s, proc.mm, vma);
  mergeAround(s, proc.mm, vma);
  return ok(addr);
}

export function mprotect(s: ImplState, proc: ImplProcess, op: MprotectOp): Outcome {
  if ((op.prot & ~PROT_ALL) !== 0 || !Number.isSafeInteger(op.addr) || op.addr < 0) return err('EINVAL');
  if (op.lengthPages === 0) return ok(0);
  const start = op.addr;
  const end = op.addr + op.lengthPages;
  if (!validRange(s, start, op.lengthPages)) return err('ENOMEM');
  const vmas = vmasIn(proc.mm, start, end);
  const first = vmas[0];
  if (first === undefined || first.start > start) return err('ENOMEM');
  let cursor = start;
  let result: Errno | 0 = 0;
  for (const vma of vmas) {
    if (vma.start > cursor) { result = 'ENOMEM'; break; }
    if ((op.prot & PROT_WRITE) !== 0 && !vma.mayWrite) { result = 'EACCES'; break; }
    // Read the end before mprotect_fixup: a split keeps `vma` as the lower part.
    const to = Math.min(end, vma.end);
    const e = mprotectFixup(s, proc, Math.max(start, vma.start), to, op.prot);
    if (e !== 0) { result = e; break; }
    cursor = to;
  }
  if (result === 0 && cursor < end) result = 'ENOMEM';
  mergeRange(s, proc.mm, start, end);
  return result === 0 ? ok(0) : err(result);
}

/** mprotect_fixup: unless the protection is already `prot`, split to [start, end), set the protection, write-protect the PTEs if needed. */
function mprotectFixup(s: ImplState, proc: ImplProcess, start: number, end: number, prot: number): Errno | 0 {
  // newflags == oldflags: nothing to change, and no split (mm/mprotect.c mprotect_fixup).
  if (vmasIn(proc.mm, start, end)[0]!.prot === prot) return 0;
  const e = splitAround(s, proc.mm, start, end);
  if (e !== 0) return e;
  const target = vmasIn(proc.mm, start, end)[0];
  const removesWrite = (target.prot & PROT_WRITE) !== 0 && (prot & PROT_WRITE) === 0;
  target.prot = prot;
  if (removesWrite) {
    invalidateRange(s, proc.pid, start, end, 'protection'); // change_protection
    const pt = proc.mm.pt;
    pt.forEach(start, end, (addr, flags) => {
      if ((flags & PTE_PRESENT) !== 0 && (flags & PTE_WRITE) !== 0) pt.setFlags(addr, flags & ~PTE_WRITE);
    });
    invalidateEnd(s, proc.pid);
  }
  return 0;
}

export { removeVma };
