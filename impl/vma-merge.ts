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
import type { ImplMm, ImplState, ImplVma } from './types.ts';
import { assert } from './assert.ts';
import { mergeUnlinkVma, splitVma, vmaSetRange } from './vma.ts';

/** The vm_flags, vm_file and userfaultfd context a range has or will have. */
export type VmaAttrs = Pick<ImplVma, 'prot' | 'shared' | 'mayWrite' | 'account' | 'pfnmap' | 'mixedmap' | 'io' | 'dontcopy' | 'dontexpand' | 'wipeonfork' | 'locked' | 'lockonfault' |
  'file' | 'vmFile' | 'driverFile' | 'uffdCtx'>;

/** The attributes of `vma` with `change` applied: what a vma_modify is asked to give it (no copy of the whole VMA). */
export function vmaAttrs(vma: VmaAttrs, change: Partial<VmaAttrs>): VmaAttrs {
  return {
    prot: vma.prot, shared: vma.shared, mayWrite: vma.mayWrite, account: vma.account, pfnmap: vma.pfnmap, mixedmap: vma.mixedmap,
    io: vma.io, dontcopy: vma.dontcopy, dontexpand: vma.dontexpand, wipeonfork: vma.wipeonfork, locked: vma.locked, lockonfault: vma.lockonfault, file: vma.file, vmFile: vma.vmFile, driverFile: vma.driverFile,
    uffdCtx: vma.uffdCtx, ...change,
  };
}

/** struct vma_merge_struct: the range being placed or changed and what it will be. */
export type VmaMerge = {
  prev: ImplVma | undefined;
  /** The VMA being changed (vma_merge_existing_range), undefined for a new range. */
  middle: ImplVma | undefined;
  next: ImplVma | undefined;
  start: number;
  end: number;
  pgoff: number;
  /** The flags, file and userfaultfd context the range will have. */
  attrs: VmaAttrs;
  /** vmg->anon_vma: the range's anon_vma (the middle's, or an mremap source's), 0 for none. */
  anonVma: number;
  /** copy_vma's source (vmg->copied_from). */
  copiedFrom?: ImplVma;
};

/** VM_SPECIAL: VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP. */
export const vmaIsSpecial = (v: VmaAttrs): boolean => v.pfnmap || v.io || v.mixedmap || v.dontexpand;

/** vma_is_fork_child: an anon_vma chain of more than one (the VMA was copied at fork from a faulted parent). */
export const vmaIsForkChild = (v: ImplVma | undefined): boolean => v !== undefined && v.anonVma !== 0 && v.forkChild;

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
function isMergeableAnonVma(m: VmaMerge, tgt: ImplVma): boolean {
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
function canVmaMergeBefore(m: VmaMerge, next: ImplVma): boolean {
  return isMergeableVma(m.attrs, next) && isMergeableAnonVma(m, next) && next.pgoff === m.pgoff + (m.end - m.start);
}

/** can_vma_merge_after: the range may join `prev` from above. */
function canVmaMergeAfter(m: VmaMerge, prev: ImplVma): boolean {
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
const canMergeRemoveVma = (v: ImplVma): boolean => v.vmOps?.close === undefined;

/** dup_anon_vma: a target without an anon_vma takes the source's (anon_vma_clone: its chain too). */
function dupAnonVma(dst: ImplVma, src: ImplVma): void {
  if (src.anonVma !== 0 && dst.anonVma === 0) {
    dst.anonVma = src.anonVma;
    dst.forkChild = src.forkChild;
  }
}

/** A VMA a merge removes: no ->close (checked), only its file reference goes. */
function mergeRemoveVma(s: ImplState, mm: ImplMm, v: ImplVma): void {
  assert(canMergeRemoveVma(v), `merge removes map#${v.id}, which has vm_ops->close`);
  mergeUnlinkVma(s, mm, v);
}

/**
 * vma_merge_new_range: the range [m.start, m.end), free but for what the caller is about to
 * unmap, expands prev, next or both (removing next). Returns the expanded VMA, or undefined.
 */
export function vmaMergeNewRange(s: ImplState, mm: ImplMm, m: VmaMerge): ImplVma | undefined {
  const { prev, next } = m;
  if (vmaIsSpecial(m.attrs) || (prev === undefined && next === undefined)) return undefined;
  const canMergeLeft = canVmaMergeLeft(m);
  const canMergeRight = canVmaMergeRight(m, canMergeLeft);
  let target: ImplVma | undefined;
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
function vmaExpand(s: ImplState, mm: ImplMm, m: VmaMerge, target: ImplVma, start: number, end: number, pgoff: number): void {
  const next = m.next;
  const removeNext = next !== undefined && next !== target && end === next.end;
  if (removeNext) dupAnonVma(target, next);
  if (m.copiedFrom !== undefined) dupAnonVma(target, m.copiedFrom);
  if (removeNext) mergeRemoveVma(s, mm, next);
  vmaSetRange(mm, target, start, end, pgoff);
}

/**
 * vma_merge_existing_range: [m.start, m.end) of m.middle is about to get m.attrs; merge it
 * into prev and/or next where it reaches the middle's edge and they are compatible.
 * Returns the VMA that now holds the range, or undefined when nothing merged.
 */
export function vmaMergeExistingRange(s: ImplState, mm: ImplMm, m: VmaMerge): ImplVma | undefined {
  const middle = m.middle!;
  const { prev, start, end } = m;
  const leftSide = start === middle.start;
  const rightSide = end === middle.end;
  if (vmaIsSpecial(m.attrs) || (!leftSide && !rightSide)) return undefined;
  const mergeLeft = leftSide && canVmaMergeLeft(m);
  let next: ImplVma | undefined;
  let mergeRight = false;
  if (rightSide) {
    next = mm.vmas.nextOf(middle.start) ?? undefined;
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
  // Ranges shrink before others grow, so the tree never holds two overlapping VMAs.
  if (mergeBoth) {
    dupAnonVma(prev!, next!.anonVma !== 0 ? next! : middle);
    const nextEnd = next!.end;
    mergeRemoveVma(s, mm, middle);
    mergeRemoveVma(s, mm, next!);
    vmaSetRange(mm, prev!, prev!.start, nextEnd, prev!.pgoff);
    return prev;
  }
  if (mergeLeft) {
    dupAnonVma(prev!, middle);
    if (removeMiddle) mergeRemoveVma(s, mm, middle);
    else vmaSetRange(mm, middle, end, middle.end, middle.pgoff + (end - middle.start));
    vmaSetRange(mm, prev!, prev!.start, end, prev!.pgoff);
    return prev;
  }
  dupAnonVma(next!, middle);
  if (removeMiddle) mergeRemoveVma(s, mm, middle);
  else vmaSetRange(mm, middle, middle.start, start, middle.pgoff);
  vmaSetRange(mm, next!, start, next!.end, next!.pgoff - (next!.start - start));
  return next;
}

/**
 * vma_modify: [start, end) of `vma` (prev is the VMA before it, or `vma` itself when the
 * range starts inside it) is to get `attrs`' flags. Merge if possible, else split off what
 * lies outside the range (the range keeps the `vma` object). Returns the VMA that holds
 * the range, which the caller then gives the flags (vm_flags_reset), or the split's errno.
 */
export function vmaModify(s: ImplState, mm: ImplMm, prev: ImplVma | undefined, vma: ImplVma, start: number, end: number, attrs: VmaAttrs): ImplVma | Errno {
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
export function vmaPrevOf(mm: ImplMm, addr: number): ImplVma | undefined {
  const at = mm.vmas.find(addr);
  return mm.vmas.prevOf(at === null ? Infinity : at.start) ?? undefined;
}

/** The first VMA starting at or above `addr`. */
export function vmaNextOf(mm: ImplMm, addr: number): ImplVma | undefined {
  const at = mm.vmas.find(addr);
  if (at === null || at.start >= addr) return at ?? undefined;
  return mm.vmas.nextOf(at.start) ?? undefined;
}

/**
 * vma_merge_extend: mremap grows `vma` in place by `deltaPages`, merging the new part into
 * it and, where compatible, with the next VMA. Undefined when it cannot (a VM_SPECIAL VMA).
 */
export function vmaMergeExtend(s: ImplState, mm: ImplMm, vma: ImplVma, deltaPages: number): ImplVma | undefined {
  const start = vma.end;
  return vmaMergeNewRange(s, mm, {
    prev: vma, middle: undefined, next: vmaNextOf(mm, start), start, end: start + deltaPages,
    pgoff: vma.pgoff + (start - vma.start), attrs: vma, anonVma: vma.anonVma,
  });
}
