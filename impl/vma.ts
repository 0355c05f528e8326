/**
 * VMA operations over the VMA tree (mm/vma.c): lookup, split (__split_vma with
 * vm_ops->may_split and ->open), merge of compatible neighbours (vma_merge) and removal
 * (remove_vma: ->close, then the file reference). i_mmap membership follows the tree.
 */
import type { Errno } from '../kernel-api/outcome.ts';
import type { ImplMm, ImplState, ImplVma } from './types.ts';
import { fail } from './assert.ts';
import { shouldFailAlloc } from './frames.ts';
import { fileRelease } from './driverfile.ts';
import { inodeGet, inodePut } from './pagecache.ts';

/** vma_lookup: the VMA containing addr. */
export function vmaLookup(mm: ImplMm, addr: number): ImplVma | undefined {
  return mm.vmas.lookup(addr) ?? undefined;
}

export function vmasIn(mm: ImplMm, start: number, end: number): ImplVma[] {
  return mm.vmas.inRange(start, end);
}

/** Insert into the mm's tree and the inode's i_mmap. */
export function insertVma(s: ImplState, mm: ImplMm, vma: ImplVma): void {
  mm.vmas.insert(vma);
  if (vma.file !== -1) s.files.get(vma.file)?.immap.add(vma);
}

function unlinkVma(s: ImplState, mm: ImplMm, vma: ImplVma): void {
  mm.vmas.remove(vma);
  if (vma.file !== -1) s.files.get(vma.file)?.immap.delete(vma);
}

export function newVmaId(s: ImplState): number {
  return s.nextVmaId++;
}

/** __split_vma: split at `addr`, keeping `vma` as the lower part; the upper part or an errno. */
export function splitVma(s: ImplState, mm: ImplMm, vma: ImplVma, addr: number): ImplVma | Errno {
  if (!(vma.start < addr && addr < vma.end)) fail(`split of [${vma.start}, ${vma.end}) at ${addr}`);
  if (vma.vmOps?.may_split) {
    const e = vma.vmOps.may_split(vma, addr);
    if (e !== 0) return e;
  }
  if (mm.vmas.size >= s.config.maxMapCount) return 'ENOMEM';
  if (shouldFailAlloc(s)) return 'ENOMEM';
  const upper = vma.dup(newVmaId(s));
  upper.start = addr;
  upper.pgoff = vma.pgoff + (addr - vma.start);
  vma.end = addr;
  mm.vmas.updated(vma);
  if (upper.driverFile) upper.driverFile.refcount += 1;
  inodeGet(s, upper.file);
  insertVma(s, mm, upper);
  upper.vmOps?.open?.(upper);
  return upper;
}

/** Split so that no VMA straddles `start` or `end`. Stops at the first failure. */
export function splitAround(s: ImplState, mm: ImplMm, start: number, end: number): Errno | 0 {
  for (const edge of [start, end]) {
    const vma = vmaLookup(mm, edge);
    if (vma !== undefined && vma.start < edge) {
      const r = splitVma(s, mm, vma, edge);
      if (typeof r === 'string') return r;
    }
  }
  return 0;
}

function sameFlags(a: ImplVma, b: ImplVma): boolean {
  return a.prot === b.prot && a.shared === b.shared && a.mayWrite === b.mayWrite && a.file === b.file &&
    a.pfnmap === b.pfnmap && a.mixedmap === b.mixedmap && a.io === b.io && a.dontcopy === b.dontcopy &&
    a.dontexpand === b.dontexpand && a.vmOps === b.vmOps && a.driverFile === b.driverFile && a.uffdCtx === b.uffdCtx;
}

/** is_mergeable_vma + is_mergeable_anon_vma, for `a` directly below `b`. */
export function canMerge(a: ImplVma, b: ImplVma): boolean {
  if (a.end !== b.start || !sameFlags(a, b)) return false;
  if (a.pfnmap || a.io || a.mixedmap || a.dontexpand) return false;
  if (a.vmOps?.close) return false;
  if (a.file !== -1 && a.pgoff + (a.end - a.start) !== b.pgoff) return false;
  return a.anonVma === 0 || b.anonVma === 0 || a.anonVma === b.anonVma;
}

/** Merge `vma` with its neighbours where compatible; returns the surviving VMA. */
export function mergeAround(s: ImplState, mm: ImplMm, vma: ImplVma): ImplVma {
  if (!(mm.vmas.has(vma))) fail(`VMA map#${vma.id} is not in its mm`);
  const next = mm.vmas.nextOf(vma.start);
  if (next !== null && canMerge(vma, next)) {
    unlinkVma(s, mm, next);
    vma.end = next.end;
    mm.vmas.updated(vma);
    vma.anonVma ||= next.anonVma;
    vma.softDirty ||= next.softDirty;
    dropVmaFileRef(s, next);
  }
  const prev = mm.vmas.prevOf(vma.start);
  if (prev !== null && canMerge(prev, vma)) {
    unlinkVma(s, mm, vma);
    prev.end = vma.end;
    mm.vmas.updated(prev);
    prev.anonVma ||= vma.anonVma;
    prev.softDirty ||= vma.softDirty;
    dropVmaFileRef(s, vma);
    return prev;
  }
  return vma;
}

/** Merge every adjacent pair in [start, end) that can merge (after mprotect or madvise). */
export function mergeRange(s: ImplState, mm: ImplMm, start: number, end: number): void {
  for (const vma of vmasIn(mm, start - 1, end + 1)) {
    if (mm.vmas.has(vma)) mergeAround(s, mm, vma);
  }
}

function dropVmaFileRef(s: ImplState, vma: ImplVma): void {
  if (vma.driverFile) fileRelease(s, vma.driverFile);
  inodePut(s, vma.file);
}

/** remove_vma: vm_ops->close, then the file reference. The caller zapped the PTEs already. */
export function removeVma(s: ImplState, mm: ImplMm, vma: ImplVma): void {
  if (!(mm.vmas.has(vma))) fail(`VMA map#${vma.id} is not in its mm`);
  unlinkVma(s, mm, vma);
  vma.vmOps?.close?.(vma);
  dropVmaFileRef(s, vma);
}
