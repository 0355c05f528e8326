/**
 * VMAs of one mm, kept in a sorted array (the maple tree's role, done plainly): lookup,
 * split (__split_vma, with vm_ops->may_split and ->open), merge of compatible neighbours
 * (vma_merge: same flags, file and contiguous pgoff, compatible anon_vma, no ->close), and
 * removal (remove_vma: ->close, then the file reference goes).
 */
import type { Errno } from '../kernel-api/outcome.ts';
import type { Mm, ModelState, Vma } from './types.ts';
import { assert } from './assert.ts';
import { shouldFailAlloc } from './frames.ts';
import { fileRelease } from './driverfile.ts';
import { inodeGet, inodePut } from './pagecache.ts';

/** find_vma: the first VMA with end > addr (it may start above addr). */
export function findVma(mm: Mm, addr: number): Vma | undefined {
  return mm.vmas.find((v) => v.end > addr);
}

/** vma_lookup: the VMA containing addr. */
export function vmaLookup(mm: Mm, addr: number): Vma | undefined {
  const vma = findVma(mm, addr);
  return vma !== undefined && vma.start <= addr ? vma : undefined;
}

/** VMAs overlapping [start, end), in address order. */
export function vmasIn(mm: Mm, start: number, end: number): Vma[] {
  return mm.vmas.filter((v) => v.end > start && v.start < end);
}

export function insertVma(mm: Mm, vma: Vma): void {
  assert(vma.start < vma.end, `empty VMA [${vma.start}, ${vma.end})`);
  const at = mm.vmas.findIndex((v) => v.start >= vma.end);
  const index = at === -1 ? mm.vmas.length : at;
  if (index > 0) assert(mm.vmas[index - 1].end <= vma.start, `VMA [${vma.start}, ${vma.end}) overlaps its predecessor`);
  mm.vmas.splice(index, 0, vma);
}

export function newVmaId(s: ModelState): number {
  return s.nextVmaId++;
}

/**
 * __split_vma: split `vma` at `addr`, keeping `vma` as the lower part. Returns the upper
 * part, or an errno (ENOMEM past max_map_count or when vm_area_dup fails).
 */
export function splitVma(s: ModelState, mm: Mm, vma: Vma, addr: number): Vma | Errno {
  assert(vma.start < addr && addr < vma.end, `split of [${vma.start}, ${vma.end}) at ${addr}`);
  if (vma.vmOps?.may_split) {
    const e = vma.vmOps.may_split(vma, addr);
    if (e !== 0) return e;
  }
  if (mm.vmas.length >= s.config.maxMapCount) return 'ENOMEM';
  if (shouldFailAlloc(s)) return 'ENOMEM';
  const upper: Vma = { ...vma, id: newVmaId(s), start: addr, pgoff: vma.pgoff + (addr - vma.start) };
  vma.end = addr;
  if (upper.driverFile) upper.driverFile.refcount += 1;
  inodeGet(s, upper.file);
  insertVma(mm, upper);
  upper.vmOps?.open?.(upper);
  return upper;
}

/** Split so that no VMA straddles `start` or `end`. Stops at the first failure. */
export function splitAround(s: ModelState, mm: Mm, start: number, end: number): Errno | 0 {
  for (const edge of [start, end]) {
    const vma = vmaLookup(mm, edge);
    if (vma !== undefined && vma.start < edge) {
      const r = splitVma(s, mm, vma, edge);
      if (typeof r === 'string') return r;
    }
  }
  return 0;
}

/** The flags that must be equal for two VMAs to merge (vm_flags less VM_SOFTDIRTY). */
function sameFlags(a: Vma, b: Vma): boolean {
  return a.prot === b.prot && a.shared === b.shared && a.mayWrite === b.mayWrite && a.file === b.file &&
    a.pfnmap === b.pfnmap && a.mixedmap === b.mixedmap && a.io === b.io && a.dontcopy === b.dontcopy &&
    a.dontexpand === b.dontexpand && a.vmOps === b.vmOps && a.driverFile === b.driverFile && a.uffdCtx === b.uffdCtx;
}

/** is_mergeable_vma + is_mergeable_anon_vma, for `a` directly below `b`. */
export function canMerge(a: Vma, b: Vma): boolean {
  if (a.end !== b.start || !sameFlags(a, b)) return false;
  if (a.pfnmap || a.io || a.mixedmap || a.dontexpand) return false; // VM_SPECIAL never merges
  if (a.vmOps?.close) return false;
  if (a.file !== -1 && a.pgoff + (a.end - a.start) !== b.pgoff) return false;
  return a.anonVma === 0 || b.anonVma === 0 || a.anonVma === b.anonVma;
}

/** Merge `vma` with its neighbours where compatible; returns the surviving VMA. */
export function mergeAround(s: ModelState, mm: Mm, vma: Vma): Vma {
  let at = mm.vmas.indexOf(vma);
  assert(at >= 0, `VMA map#${vma.id} is not in its mm`);
  const next = mm.vmas[at + 1];
  if (next !== undefined && canMerge(vma, next)) {
    vma.end = next.end;
    vma.anonVma ||= next.anonVma;
    vma.softDirty ||= next.softDirty;
    mm.vmas.splice(at + 1, 1);
    dropVmaFileRef(s, next);
  }
  const prev = mm.vmas[at - 1];
  if (prev !== undefined && canMerge(prev, vma)) {
    prev.end = vma.end;
    prev.anonVma ||= vma.anonVma;
    prev.softDirty ||= vma.softDirty;
    mm.vmas.splice(at, 1);
    dropVmaFileRef(s, vma);
    return prev;
  }
  return vma;
}

/** Merge every adjacent pair in [start, end) that can merge (after mprotect or madvise). */
export function mergeRange(s: ModelState, mm: Mm, start: number, end: number): void {
  for (const vma of vmasIn(mm, start - 1, end + 1)) {
    if (mm.vmas.includes(vma)) mergeAround(s, mm, vma);
  }
}

function dropVmaFileRef(s: ModelState, vma: Vma): void {
  if (vma.driverFile) fileRelease(s, vma.driverFile);
  inodePut(s, vma.file);
}

/** remove_vma: vm_ops->close, then the file reference. The caller zapped the PTEs already. */
export function removeVma(s: ModelState, mm: Mm, vma: Vma): void {
  const at = mm.vmas.indexOf(vma);
  assert(at >= 0, `VMA map#${vma.id} is not in its mm`);
  mm.vmas.splice(at, 1);
  vma.vmOps?.close?.(vma);
  dropVmaFileRef(s, vma);
}
