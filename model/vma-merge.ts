/**
 * VMA merging as mm/vma.c does it in Linux 6.18: vma_merge_new_range (a new range — an
 * mmap, an mremap extension or copy — expands an adjacent VMA), vma_merge_existing_range
 * (a range of one VMA whose flags change merges with its neighbours) and vma_modify (that,
 * else split). Two VMAs merge only with equal flags (VM_SOFTDIRTY ignored), the same struct
 * file (one open: two mmaps of a file opened twice never merge) with contiguous vm_pgoff (anonymous VMAs too: their vm_pgoff is the address), the same
 * userfaultfd context, and compatible anon_vmas (is_mergeable_anon_vma: equal, or one has
 * none and the other is not a fork child); a VM_SPECIAL range never merges, and a VMA the
 * merge would remove must have no vm_ops->close (can_merge_remove_vma).
 */
import type { Errno } from '../kernel-api/outcome.ts';
import type { Mm, ModelState, Vma } from './types.ts';
import { assert } from './assert.ts';
import { dropVmaFileRef, splitVma } from './vma.ts';

/** The vm_flags, vm_file and userfaultfd context a range has or will have. */
export type VmaAttrs = Pick<Vma, 'prot' | 'shared' | 'mayWrite' | 'account' | 'pfnmap' | 'mixedmap' | 'io' | 'dontcopy' | 'dontexpand' | 'wipeonfork' | 'locked' | 'lockonfault' |
  'file' | 'vmFile' | 'driverFile' | 'uffdCtx'>;

/** struct vma_merge_struct: the range being placed or changed and what it will be. */
export type VmaMerge = {
  prev: Vma | undefined;
  /** The VMA being changed (vma_merge_existing_range), undefined for a new range. */
  middle: Vma | undefined;
  next: Vma | undefined;
  start: number;
  end: number;
  pgoff: number;
  /** The flags, file and userfaultfd context the range will have. */
  attrs: VmaAttrs;
  /** vmg->anon_vma: the range's anon_vma (the middle's, or an mremap source's), 0 for none. */
  anonVma: number;
  /** copy_vma's source (vmg->copied_from). */
  copiedFrom?: Vma;
};

/** VM_SPECIAL: VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP. */
export const vmaIsSpecial = (v: VmaAttrs): boolean => v.pfnmap || v.io || v.mixedmap || v.dontexpand;

/** vma_is_fork_child: an anon_vma chain of more than one (the VMA was copied at fork from a faulted parent). */
export const vmaIsForkChild = (v: Vma | undefined): boolean => v !== undefined && v.anonVma !== 0 && v.forkChild;

/** vm_flags (less VM_SOFTDIRTY), vm_file and the userfaultfd context: is_mergeable_vma. */
export function isMergeableVma(attrs: VmaAttrs, other: VmaAttrs): boolean {
  return attrs.prot === other.prot && attrs.shared === other.shared && attrs.mayWrite === other.mayWrite &&
    attrs.account === other.account && attrs.pfnmap === other.pfnmap && attrs.mixedmap === other.mixedmap &&
    attrs.io === other.io && attrs.dontcopy === other.dontcopy && attrs.dontexpand === other.dontexpand &&
    attrs.wipeonfork === other.wipeonfork && attrs.locked === other.locked && attrs.lockonfault === other.lockonfault &&
    attrs.file === other.file && attrs.vmFile === other.vmFile && attrs.driverFile === other.driverFile &&
    attrs.uffdCtx === other.uffdCtx;
}

/** is_mergeable_anon_vma, with `tgt` the neighbour the range would join. */
function isMergeableAnonVma(m: VmaMerge, tgt: Vma): boolean {
  const tgtAnon = tgt.anonVma;
  const srcAnon = m.anonVma;
  // Case 1: the neighbour takes the range's anon_vma (dup_anon_vma).
  if (tgtAnon === 0 && srcAnon !== 0) return !vmaIsForkChild(m.middle) && !vmaIsForkChild(m.copiedFrom);
  // Case 2: the range uses the neighbour's.
  if (tgtAnon !== 0 && srcAnon === 0) return !vmaIsForkChild(tgt);
  // Case 3: both none, or already shared.
  return srcAnon === tgtAnon;
}

/** can_vma_merge_before: the range may join `next` from below. */
function canVmaMergeBefore(m: VmaMerge, next: Vma): boolean {
  return isMergeableVma(m.attrs, next) && isMergeableAnonVma(m, next) && next.pgoff === m.pgoff + (m.end - m.start);
}

/** can_vma_merge_after: the range may join `prev` from above. */
function canVmaMergeAfter(m: VmaMerge, prev: Vma): boolean {
  return isMergeableVma(m.attrs, prev) && isMergeableAnonVma(m, prev) && prev.pgoff + (prev.end - prev.start) === m.pgoff;
}

function canVmaMergeLeft(m: VmaMerge): boolean {
  return m.prev !== undefined && m.prev.end === m.start && canVmaMergeAfter(m, m.prev);
}

/** can_vma_merge_right: also, when both sides merge, prev's and next's anon_vmas must agree. */
function canVmaMergeRight(m: VmaMerge, canMergeLeft: boolean): boolean {
  const { prev, next } = m;
  if (next === undefined || m.end !== next.start || !canVmaMergeBefore(m, next)) return false;
  if (!canMergeLeft) return true;
  return prev!.anonVma === 0 || next.anonVma === 0 || prev!.anonVma === next.anonVma;
}

/** can_merge_remove_vma: a VMA with a close hook is never removed by a merge. */
const canMergeRemoveVma = (v: Vma): boolean => v.vmOps?.close === undefined;

/** dup_anon_vma: a target without an anon_vma takes the source's (anon_vma_clone: its chain too). */
function dupAnonVma(dst: Vma, src: Vma): void {
  if (src.anonVma !== 0 && dst.anonVma === 0) {
    dst.anonVma = src.anonVma;
    dst.forkChild = src.forkChild;
  }
}

/** A VMA a merge removes: no ->close (checked), only its file reference goes. */
function mergeRemoveVma(s: ModelState, mm: Mm, v: Vma): void {
  assert(canMergeRemoveVma(v), `merge removes map#${v.id}, which has vm_ops->close`);
  const at = mm.vmas.indexOf(v);
  assert(at >= 0, `VMA map#${v.id} is not in its mm`);
  mm.vmas.splice(at, 1);
  dropVmaFileRef(s, v);
}

/**
 * vma_merge_new_range: the range [m.start, m.end), free but for what the caller is about to
 * unmap, expands prev, next or both (removing next). Returns the expanded VMA, or undefined.
 */
export function vmaMergeNewRange(s: ModelState, mm: Mm, m: VmaMerge): Vma | undefined {
  const { prev, next } = m;
  if (vmaIsSpecial(m.attrs) || (prev === undefined && next === undefined)) return undefined;
  const canMergeLeft = canVmaMergeLeft(m);
  const canMergeRight = canVmaMergeRight(m, canMergeLeft);
  let target: Vma | undefined;
  let { start, end, pgoff } = m;
  if (canMergeRight) {
    end = next!.end;
    target = next;
  }
  if (canMergeLeft) {
    start = prev!.start;
    target = prev;
    pgoff = prev!.pgoff;
    // Removing next is not permitted: merge with prev alone.
    if (canMergeRight && !canMergeRemoveVma(next!)) end = m.end;
  }
  if (target === undefined) return undefined;
  vmaExpand(s, mm, m, target, start, end, pgoff);
  return target;
}

/** vma_expand: `target` grows to [start, end), over next when it reaches next's end. */
function vmaExpand(s: ModelState, mm: Mm, m: VmaMerge, target: Vma, start: number, end: number, pgoff: number): void {
  const next = m.next;
  const removeNext = next !== undefined && next !== target && end === next.end;
  if (removeNext) dupAnonVma(target, next);
  if (m.copiedFrom !== undefined) dupAnonVma(target, m.copiedFrom);
  if (removeNext) mergeRemoveVma(s, mm, next);
  target.start = start;
  target.end = end;
  target.pgoff = pgoff;
}

/**
 * vma_merge_existing_range: [m.start, m.end) of m.middle is about to get m.attrs; merge it
 * into prev and/or next where it reaches the middle's edge and they are compatible.
 * Returns the VMA that now holds the range, or undefined when nothing merged.
 */
export function vmaMergeExistingRange(s: ModelState, mm: Mm, m: VmaMerge): Vma | undefined {
  const middle = m.middle!;
  const { prev, start, end } = m;
  const leftSide = start === middle.start;
  const rightSide = end === middle.end;
  if (vmaIsSpecial(m.attrs) || (!leftSide && !rightSide)) return undefined;
  const mergeLeft = leftSide && canVmaMergeLeft(m);
  let next: Vma | undefined;
  let mergeRight = false;
  if (rightSide) {
    next = mm.vmas[mm.vmas.indexOf(middle) + 1];
    m.next = next;
    mergeRight = canVmaMergeRight(m, mergeLeft);
  }
  if (!mergeLeft && !mergeRight) return undefined;
  const removeMiddle = leftSide && rightSide;
  if (removeMiddle && !canMergeRemoveVma(middle)) return undefined;
  let mergeBoth = mergeLeft && mergeRight;
  // Next cannot go: reduce to merging prev and middle.
  if (mergeBoth && !canMergeRemoveVma(next!)) {
    mergeRight = false;
    mergeBoth = false;
  }
  if (mergeBoth) {
    dupAnonVma(prev!, next!.anonVma !== 0 ? next! : middle);
    prev!.end = next!.end;
    mergeRemoveVma(s, mm, middle);
    mergeRemoveVma(s, mm, next!);
    return prev;
  }
  if (mergeLeft) {
    dupAnonVma(prev!, middle);
    prev!.end = end;
    if (removeMiddle) {
      mergeRemoveVma(s, mm, middle);
    } else {
      middle.pgoff += end - middle.start;
      middle.start = end;
    }
    return prev;
  }
  dupAnonVma(next!, middle);
  next!.pgoff -= next!.start - start;
  next!.start = start;
  if (removeMiddle) mergeRemoveVma(s, mm, middle);
  else middle.end = start;
  return next;
}

/**
 * vma_modify: [start, end) of `vma` (prev is the VMA before it, or `vma` itself when the
 * range starts inside it) is to get `attrs`' flags. Merge if possible, else split off what
 * lies outside the range (the range keeps the `vma` object). Returns the VMA that holds
 * the range, which the caller then gives the flags (vm_flags_reset), or the split's errno.
 */
export function vmaModify(s: ModelState, mm: Mm, prev: Vma | undefined, vma: Vma, start: number, end: number, attrs: VmaAttrs): Vma | Errno {
  assert(vma.start <= start && start < end && end <= vma.end, `vma_modify of [${start}, ${end}) in map#${vma.id}`);
  const merged = vmaMergeExistingRange(s, mm, {
    prev, middle: vma, next: undefined, start, end, pgoff: vma.pgoff + (start - vma.start), attrs, anonVma: vma.anonVma,
  });
  if (merged !== undefined) return merged;
  if (vma.start < start) {
    const r = splitVma(s, mm, vma, start, true);
    if (typeof r === 'string') return r;
  }
  if (vma.end > end) {
    const r = splitVma(s, mm, vma, end, false);
    if (typeof r === 'string') return r;
  }
  return vma;
}

/** The VMA before `addr` (find_vma_prev's prev): the last one ending at or below it. */
export function vmaPrevOf(mm: Mm, addr: number): Vma | undefined {
  let prev: Vma | undefined;
  for (const v of mm.vmas) {
    if (v.end > addr) break;
    prev = v;
  }
  return prev;
}

/** The first VMA starting at or above `addr`. */
export function vmaNextOf(mm: Mm, addr: number): Vma | undefined {
  return mm.vmas.find((v) => v.start >= addr);
}

/**
 * vma_merge_extend: mremap grows `vma` in place by `deltaPages`, merging the new part into
 * it and, where compatible, with the next VMA. Undefined when it cannot (a VM_SPECIAL VMA).
 */
export function vmaMergeExtend(s: ModelState, mm: Mm, vma: Vma, deltaPages: number): Vma | undefined {
  const start = vma.end;
  return vmaMergeNewRange(s, mm, {
    prev: vma, middle: undefined, next: vmaNextOf(mm, start), start, end: start + deltaPages,
    pgoff: vma.pgoff + (start - vma.start), attrs: vma, anonVma: vma.anonVma,
  });
}
