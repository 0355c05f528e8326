/**
 * mremap (mm/mremap.c): shrink by unmapping the tail; grow in place when the pages after
 * the VMA are free (vma_merge_extend); otherwise move (MREMAP_MAYMOVE, MREMAP_FIXED) by
 * copying the VMA (copy_vma, which may merge at the destination) and moving its PTEs, swap
 * entries included, then unmapping the old range.
 */
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import type { MremapOp } from '../kernel-api/op.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { ModelState, Process, Vma } from './types.ts';
import { shouldFailAlloc } from './frames.ts';
import { inodeGet } from './pagecache.ts';
import { fileGet } from './driverfile.ts';
import { doMunmap, getUnmappedArea, rangeIsFree, validRange } from './mmap.ts';
import { insertVma, newVmaId, splitAround, vmaLookup } from './vma.ts';
import { assert } from './assert.ts';
import { vmaMergeExtend, vmaMergeNewRange, vmaNextOf, vmaPrevOf } from './vma-merge.ts';
import { withInvalidation } from './notifier.ts';
import { dropUffdWpMarkers, ptesIn } from './zap.ts';

export function mremap(s: ModelState, proc: Process, op: MremapOp): Outcome {
  const { addr, oldPages, newPages } = op;
  // check_mremap_params: a zero old_len is allowed ("duplicate shm area"), a zero or silly
  // (past TASK_SIZE, or negative as size_t) new_len is not.
  if ((op.fixed && !op.maymove) || newPages === 0 || newPages > s.config.taskSizePages) return err('EINVAL');
  // check_mremap_params: MREMAP_DONTUNMAP is always a move and never resizes.
  if (op.dontunmap && (!op.maymove || oldPages !== newPages)) return err('EINVAL');
  if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(newPages) || newPages < 0) return err('EINVAL');
  // vma_lookup(addr) finds nothing past TASK_SIZE, and an old range no VMA holds is EFAULT.
  if (!validRange(s, addr, oldPages)) return err('EFAULT');
  if (op.fixed) {
    // check_mremap_params: the target must fit in user space and not overlap the source,
    // before the VMA is even looked up.
    const newAddr = op.newAddr ?? 0;
    if (!validRange(s, newAddr, newPages)) return err('EINVAL');
    if (addr + oldPages > newAddr && newAddr + newPages > addr) return err('EINVAL');
  }
  // do_mremap: vma_lookup (EFAULT), then check_prep_vma, whose range checks apply only
  // when the call maps something new (it grows, or moves with MREMAP_FIXED) — all before a
  // shrink unmaps anything or MREMAP_FIXED clears the target.
  const found = vmaLookup(proc.mm, addr);
  if (found === undefined) return err('EFAULT');
  // check_prep_vma: a zero old_len duplicates a shared mapping (move_vma leaves the old range
  // alone, as do_vmi_munmap refuses its zero length); a private one is refused.
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

/** vma_to_resize: the old range must lie in one VMA that may grow. */
function vmaToResize(proc: Process, addr: number, oldPages: number, newPages: number): Vma | Errno {
  const vma = vmaLookup(proc.mm, addr);
  if (vma === undefined) return 'EFAULT';
  if (oldPages > vma.end - addr) return 'EFAULT';
  if (newPages > oldPages && (vma.dontexpand || vma.pfnmap)) return 'EFAULT';
  return vma;
}

/** mremap_to: MREMAP_FIXED. */
function mremapTo(s: ModelState, proc: Process, op: MremapOp): Outcome {
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
  s: ModelState, proc: Process, vma: Vma, addr: number, oldPages: number, newAddr: number, newPages: number, dontunmap = false,
): Outcome {
  if (proc.mm.vmas.length >= s.config.maxMapCount - 3) return err('ENOMEM');
  // prep_move_vma: a driver that refuses to split refuses the move.
  if (vma.vmOps?.may_split) {
    let e: Errno | 0 = 0;
    if (vma.start !== addr) e = vma.vmOps.may_split(vma, addr);
    if (e === 0 && vma.end !== addr + oldPages) e = vma.vmOps.may_split(vma, addr + oldPages);
    if (e !== 0) return err(e);
  }
  // MREMAP_DONTUNMAP keeps the old VMA whole (nothing is unmapped, so nothing splits it).
  // A zero old_len keeps the old VMA whole too: the copy is a second mapping of its object.
  const keepOld = dontunmap || oldPages === 0;
  const e = keepOld ? 0 : splitAround(s, proc.mm, addr, addr + oldPages);
  if (e !== 0) return err(e);
  const old = vmaLookup(proc.mm, addr)!;
  const moved = copyVma(s, proc, old, addr, newAddr, newPages);
  if (typeof moved === 'string') return err(moved);
  // The target is soft-dirty; without UFFD_FEATURE_EVENT_REMAP it loses the uffd registration
  // (mremap_userfaultfd_prep: userfaultfd_reset_ctx) and move_ptes drops the uffd-wp bits and markers.
  moved.softDirty = true;
  moved.uffdCtx = 0;
  // move_page_tables of a zero length returns at once: no invalidation, nothing to move.
  if (oldPages > 0) withInvalidation(s, proc.pid, addr, addr + oldPages, 'unmap', () => {
    for (const at of ptesIn(proc, addr, addr + oldPages)) {
      const pte = proc.mm.ptes.get(at)!;
      proc.mm.ptes.delete(at);
      // move_soft_dirty_pte: a moved entry is marked soft-dirty, present or swap.
      pte.softDirty = true;
      pte.uffdWp = false;
      proc.mm.ptes.set(newAddr + (at - addr), pte);
    }
    dropUffdWpMarkers(proc.mm, addr, addr + oldPages);
  });
  if (dontunmap) dontunmapComplete(old, moved, addr, addr + oldPages);
  else if (oldPages > 0) unmapSourceVma(s, proc, addr, addr + oldPages);
  return ok(newAddr);
}

/**
 * dontunmap_complete: the old VMA stays, its PTEs gone, and keeps VM_ACCOUNT (the oracle
 * shows it still merging with a new accountable mapping; VM_LOCKED is not emulated); when the
 * whole VMA moved its anon_vma links go (unlink_anon_vmas), so a later fault prepares a new one.
 */
function dontunmapComplete(old: Vma, moved: Vma, start: number, end: number): void {
  if (moved !== old && start === old.start && end === old.end) {
    old.anonVma = 0;
    old.forkChild = false;
  }
}

/**
 * unmap_source_vma: the old range, which holds no PTEs now, goes. It is one VMA unless the
 * copy merged into it; splitting that is not subject to fail_nth (Linux ignores a failure
 * there and leaves the old range mapped, which the model does not emulate).
 */
function unmapSourceVma(s: ModelState, proc: Process, start: number, end: number): void {
  const failNth = s.failNth;
  s.failNth = 0;
  const e = doMunmap(s, proc, start, end);
  s.failNth = failNth;
  assert(e === 0, `unmap of the mremap source [${start}, ${end}) failed: ${e}`);
}

/**
 * copy_vma: the VMA for [newAddr, newAddr + newPages) that takes `vma`'s pages from
 * `addr`. An anonymous VMA that never faulted takes the new address as vm_pgoff, so that
 * it may merge there. Merged into a neighbour (vma_merge_new_range, with `vma` as
 * copied_from), else a copy (vm_area_dup: ENOMEM when the allocation fails) with ->open run.
 */
function copyVma(s: ModelState, proc: Process, vma: Vma, addr: number, newAddr: number, newPages: number): Vma | Errno {
  const anonymous = vma.file === -1 && vma.driverFile === null;
  const pgoff = anonymous && vma.anonVma === 0 ? newAddr : vma.pgoff + (addr - vma.start);
  const merged = vmaMergeNewRange(s, proc.mm, {
    prev: vmaPrevOf(proc.mm, newAddr), middle: undefined, next: vmaNextOf(proc.mm, newAddr),
    start: newAddr, end: newAddr + newPages, pgoff, attrs: vma, anonVma: vma.anonVma, copiedFrom: vma,
  });
  if (merged !== undefined) return merged;
  if (shouldFailAlloc(s)) return 'ENOMEM';
  const copy: Vma = { ...vma, id: newVmaId(s), start: newAddr, end: newAddr + newPages, pgoff };
  if (copy.driverFile) fileGet(copy.driverFile);
  inodeGet(s, copy.file);
  insertVma(proc.mm, copy);
  copy.vmOps?.open?.(copy);
  return copy;
}
