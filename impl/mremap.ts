/**
 * mremap (mm/mremap.c): shrink by unmapping the tail; grow in place when the pages after
 * the VMA are free; otherwise move (MREMAP_MAYMOVE, MREMAP_FIXED) by copying the VMA and
 * moving its PTEs — rmap entries follow — then removing the old range.
 */
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import type { MremapOp } from '../kernel-api/op.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { ImplProcess, ImplState, ImplVma } from './types.ts';
import { shouldFailAlloc } from './frames.ts';
import { inodeGet } from './pagecache.ts';
import { fileGet } from './driverfile.ts';
import { doMunmap, getUnmappedArea, rangeIsFree, validRange } from './mmap.ts';
import { insertVma, newVmaId, splitAround, vmaLookup } from './vma.ts';
import { fail } from './assert.ts';
import { vmaMergeExtend, vmaMergeNewRange, vmaNextOf, vmaPrevOf } from './vma-merge.ts';
import { invalidateEnd, invalidateRange } from './notifier.ts';
import { PTE_PRESENT, PTE_SOFT_DIRTY, PTE_SPECIAL, PTE_UFFD_WP } from './pagetable.ts';
import { dropUffdWpMarkers } from './zap.ts';

export function mremap(s: ImplState, proc: ImplProcess, op: MremapOp): Outcome {
  const { addr, oldPages, newPages } = op;
  // check_mremap_params: a zero old_len is allowed ("duplicate shm area"), a zero or silly
  // (past TASK_SIZE, or negative as size_t) new_len is not (model/mremap.ts).
  if ((op.fixed && !op.maymove) || newPages === 0 || newPages > s.config.taskSizePages) return err('EINVAL');
  // check_mremap_params: MREMAP_DONTUNMAP is always a move and never resizes.
  if (op.dontunmap && (!op.maymove || oldPages !== newPages)) return err('EINVAL');
  if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(newPages) || newPages < 0) return err('EINVAL');
  // vma_lookup(addr) finds nothing past TASK_SIZE, and an old range no VMA holds is EFAULT.
  if (!validRange(s, addr, oldPages)) return err('EFAULT');
  if (op.fixed) {
    // check_mremap_params, before the VMA lookup (as model/mremap.ts).
    const newAddr = op.newAddr ?? 0;
    if (!validRange(s, newAddr, newPages)) return err('EINVAL');
    if (addr + oldPages > newAddr && newAddr + newPages > addr) return err('EINVAL');
  }
  // do_mremap: vma_lookup (EFAULT), then check_prep_vma, whose range checks apply only
  // when the call maps something new (it grows, or moves with MREMAP_FIXED) — all before a
  // shrink unmaps anything or MREMAP_FIXED clears the target.
  const found = vmaLookup(proc.mm, addr);
  if (found === undefined) return err('EFAULT');
  // check_prep_vma: a zero old_len duplicates a shared mapping; a private one is refused.
  if (oldPages === 0 && !found.shared) return err('EINVAL');
  // check_prep_vma: a DONTUNMAP move maps something new (vrm_implies_new_addr) and refuses
  // VM_DONTEXPAND | VM_PFNMAP VMAs.
  if (op.dontunmap) {
    const v = vmaLookup(proc.mm, addr)!;
    if (v.dontexpand || v.pfnmap) return err('EINVAL');
  }
  if (op.fixed || op.dontunmap || newPages > oldPages) {
    // A shrinking MREMAP_FIXED may cross VMA boundaries and gaps in the part it unmaps:
    // check_prep_vma measures a MREMAP_SHRINK by its new length, as mremap_to always did.
    const prepared = vmaToResize(proc, addr, Math.min(oldPages, newPages), newPages);
    if (typeof prepared === 'string') return err(prepared);
  }
  if (op.fixed) return mremapTo(s, proc, op);
  if (op.dontunmap) {
    // mremap_to without MREMAP_FIXED: vrm_set_new_addr's get_unmapped_area, then move_vma.
    const vma = vmaToResize(proc, addr, oldPages, newPages);
    if (typeof vma === 'string') return err(vma);
    const to = getUnmappedArea(s, proc, 0, newPages);
    if (typeof to === 'string') return err(to);
    return moveVma(s, proc, vma, addr, oldPages, to, newPages, true);
  }
  if (oldPages >= newPages) {
    if (oldPages > newPages) {
      const e = doMunmap(s, proc, addr + newPages, addr + oldPages);
      if (e !== 0) return err(e);
    }
    return ok(addr);
  }
  const vma = vmaToResize(proc, addr, oldPages, newPages);
  if (typeof vma === 'string') return err(vma);
  if (addr + oldPages === vma.end && vma.end + (newPages - oldPages) <= s.config.taskSizePages &&
      rangeIsFree(proc, vma.end, vma.end + (newPages - oldPages))) {
    // expand_vma_in_place: vma_merge_extend, which a VM_SPECIAL VMA (VM_IO, VM_MIXEDMAP) fails.
    const grown = vmaMergeExtend(s, proc.mm, vma, newPages - oldPages);
    if (grown === undefined) return err('ENOMEM');
    grown.softDirty = true;
    return ok(addr);
  }
  if (!op.maymove) return err('ENOMEM');
  const newAddr = getUnmappedArea(s, proc, 0, newPages);
  if (typeof newAddr === 'string') return err(newAddr);
  return moveVma(s, proc, vma, addr, oldPages, newAddr, newPages);
}

function vmaToResize(proc: ImplProcess, addr: number, oldPages: number, newPages: number): ImplVma | Errno {
  const vma = vmaLookup(proc.mm, addr);
  if (vma === undefined) return 'EFAULT';
  if (oldPages > vma.end - addr) return 'EFAULT';
  if (newPages > oldPages && (vma.dontexpand || vma.pfnmap)) return 'EFAULT';
  return vma;
}

function mremapTo(s: ImplState, proc: ImplProcess, op: MremapOp): Outcome {
  const newAddr = op.newAddr ?? 0;
  let oldPages = op.oldPages;
  // get_unmapped_area(MAP_FIXED)'s security_mmap_addr, as mmap's (cap_mmap_addr).
  if (newAddr < s.config.mmapMinAddrPages && proc.uid !== 0) return err('EPERM');
  let e = doMunmap(s, proc, newAddr, newAddr + op.newPages);
  if (e !== 0) return err(e);
  if (oldPages > op.newPages) {
    e = doMunmap(s, proc, op.addr + op.newPages, op.addr + oldPages);
    if (e !== 0) return err(e);
    oldPages = op.newPages;
  }
  const vma = vmaToResize(proc, op.addr, oldPages, op.newPages);
  if (typeof vma === 'string') return err(vma);
  return moveVma(s, proc, vma, op.addr, oldPages, newAddr, op.newPages, op.dontunmap === true);
}

/**
 * move_vma: copy_vma at the new address (merging with a neighbour there when it can, else a
 * new VMA on which ->open runs), move_page_tables, then unmap the old range (->close runs
 * on the old part). The old range is split off first, so that an allocation failure
 * leaves nothing moved; the layout is the one Linux makes splitting it at the unmap (a
 * never-faulted VMA whose copy merges into the old VMA ends the same). The copy keeps
 * vm_private_data.
 */
function moveVma(
  s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, oldPages: number, newAddr: number, newPages: number, dontunmap = false,
): Outcome {
  const mm = proc.mm;
  if (mm.vmas.size >= s.config.maxMapCount - 3) return err('ENOMEM');
  // prep_move_vma: a driver that refuses to split refuses the move.
  if (vma.vmOps?.may_split) {
    let e: Errno | 0 = 0;
    if (vma.start !== addr) e = vma.vmOps.may_split(vma, addr);
    if (e === 0 && vma.end !== addr + oldPages) e = vma.vmOps.may_split(vma, addr + oldPages);
    if (e !== 0) return err(e);
  }
  // MREMAP_DONTUNMAP, or a zero old_len, keeps the old VMA whole (model/mremap.ts).
  const keepOld = dontunmap || oldPages === 0;
  const e = keepOld ? 0 : splitAround(s, mm, addr, addr + oldPages);
  if (e !== 0) return err(e);
  const old = vmaLookup(mm, addr)!;
  const moved = copyVma(s, proc, old, addr, newAddr, newPages);
  if (typeof moved === 'string') return err(moved);
  // The target is soft-dirty and, without UFFD_FEATURE_EVENT_REMAP, unregistered; move_ptes
  // drops the uffd-wp bits and markers.
  moved.softDirty = true;
  moved.uffdCtx = 0;
  // move_page_tables of a zero length returns at once: no invalidation, nothing to move.
  if (oldPages > 0) {
    invalidateRange(s, proc.pid, addr, addr + oldPages, 'unmap');
    const pt = mm.pt;
    for (const at of pt.collect(addr, addr + oldPages)) {
      const flags = pt.flags(at);
      const idx = pt.idx(at);
      const to = newAddr + (at - addr);
      pt.clear(at);
      // move_soft_dirty_pte: a moved entry is marked soft-dirty, present or swap.
      pt.set(to, idx, (flags | PTE_SOFT_DIRTY) & ~PTE_UFFD_WP);
      if ((flags & PTE_PRESENT) !== 0 && (flags & PTE_SPECIAL) === 0) s.rmap.move(idx, proc.pid, at, to);
    }
    dropUffdWpMarkers(mm, addr, addr + oldPages);
    invalidateEnd(s, proc.pid);
  }
  if (dontunmap) {
    // dontunmap_complete: the old VMA keeps VM_ACCOUNT; a wholly moved one loses its anon_vma.
    if (moved !== old && addr === old.start && addr + oldPages === old.end) {
      old.anonVma = 0;
      old.forkChild = false;
    }
  } else if (oldPages > 0) {
    unmapSourceVma(s, proc, addr, addr + oldPages);
  }
  return ok(newAddr);
}

/** unmap_source_vma: one VMA unless the copy merged into it; that split is not subject to fail_nth (as model/mremap.ts). */
function unmapSourceVma(s: ImplState, proc: ImplProcess, start: number, end: number): void {
  const failNth = s.failNth;
  s.failNth = 0;
  const e = doMunmap(s, proc, start, end);
  s.failNth = failNth;
  if (e !== 0) fail(`unmap of the mremap source [${start}, ${end}) failed: ${e}`);
}

/**
 * copy_vma: merged into a neighbour of the destination (vma_merge_new_range, `vma` as
 * copied_from; a never-faulted anonymous VMA takes the new address as vm_pgoff), else a
 * copy (vm_area_dup: ENOMEM when the allocation fails) with ->open run.
 */
function copyVma(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, newAddr: number, newPages: number): ImplVma | Errno {
  const anonymous = vma.file === -1 && vma.driverFile === null;
  const pgoff = anonymous && vma.anonVma === 0 ? newAddr : vma.pgoff + (addr - vma.start);
  const merged = vmaMergeNewRange(s, proc.mm, {
    prev: vmaPrevOf(proc.mm, newAddr), middle: undefined, next: vmaNextOf(proc.mm, newAddr),
    start: newAddr, end: newAddr + newPages, pgoff, attrs: vma, anonVma: vma.anonVma, copiedFrom: vma,
  });
  if (merged !== undefined) return merged;
  if (shouldFailAlloc(s)) return 'ENOMEM';
  const copy = vma.dup(newVmaId(s));
  copy.start = newAddr;
  copy.end = newAddr + newPages;
  copy.pgoff = pgoff;
  if (copy.driverFile) fileGet(copy.driverFile);
  inodeGet(s, copy.file);
  insertVma(s, proc.mm, copy);
  copy.vmOps?.open?.(copy);
  return copy;
}
