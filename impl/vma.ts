/**
 * VMA operations over the VMA tree (mm/vma.c): lookup, split (__split_vma with
 * vm_ops->may_split and ->open) and removal (remove_vma: ->close, then the file
 * reference). i_mmap membership follows the tree. Merging is vma-merge.ts.
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

/**
 * __split_vma: split at `addr`. The new VMA is the part below `addr` when `newBelow` (and
 * `vma` keeps the part above), else the part above. Returns the new VMA or an errno;
 * ->open runs on the new VMA.
 */
export function splitVma(s: ImplState, mm: ImplMm, vma: ImplVma, addr: number, newBelow: boolean): ImplVma | Errno {
  if (!(vma.start < addr && addr < vma.end)) fail(`split of [${vma.start}, ${vma.end}) at ${addr}`);
  if (vma.vmOps?.may_split) {
    const e = vma.vmOps.may_split(vma, addr);
    if (e !== 0) return e;
  }
  if (mm.vmas.size >= s.config.maxMapCount) return 'ENOMEM';
  if (shouldFailAlloc(s)) return 'ENOMEM';
  const created = vma.dup(newVmaId(s));
  if (newBelow) {
    created.end = addr;
    vmaSetRange(mm, vma, addr, vma.end, vma.pgoff + (addr - vma.start));
  } else {
    created.start = addr;
    created.pgoff = vma.pgoff + (addr - vma.start);
    vmaSetRange(mm, vma, vma.start, addr, vma.pgoff);
  }
  if (created.driverFile) created.driverFile.refcount += 1;
  inodeGet(s, created.file);
  insertVma(s, mm, created);
  created.vmOps?.open?.(created);
  return created;
}

/**
 * vma_set_range on a VMA in the tree, in place: callers keep `vma` between its neighbours
 * (a split or merge moves an edge only into space no other VMA holds), so the order by
 * vm_start holds and the augmentation is recomputed along its path.
 */
export function vmaSetRange(mm: ImplMm, vma: ImplVma, start: number, end: number, pgoff: number): void {
  if (!(start < end)) fail(`empty VMA [${start}, ${end}) for map#${vma.id}`);
  const prev = mm.vmas.prevOf(vma.start);
  const next = mm.vmas.nextOf(vma.start);
  if (prev !== null && prev.end > start) fail(`map#${vma.id} set to [${start}, ${end}) overlaps [${prev.start}, ${prev.end})`);
  if (next !== null && next.start < end) fail(`map#${vma.id} set to [${start}, ${end}) overlaps [${next.start}, ${next.end})`);
  vma.start = start;
  vma.end = end;
  vma.pgoff = pgoff;
  mm.vmas.updated(vma);
}

/**
 * Split so that no VMA straddles `start` or `end`, as munmap and vma_modify do: the VMAs
 * inside keep their objects, the parts outside are the new ones. Stops at the first failure.
 */
export function splitAround(s: ImplState, mm: ImplMm, start: number, end: number): Errno | 0 {
  for (const [edge, newBelow] of [[start, true], [end, false]] as const) {
    const vma = vmaLookup(mm, edge);
    if (vma !== undefined && vma.start < edge) {
      const r = splitVma(s, mm, vma, edge, newBelow);
      if (typeof r === 'string') return r;
    }
  }
  return 0;
}

/** Unlink a VMA a merge removed: out of the tree and i_mmap, its file references dropped (no ->close). */
export function mergeUnlinkVma(s: ImplState, mm: ImplMm, vma: ImplVma): void {
  if (!(mm.vmas.has(vma))) fail(`VMA map#${vma.id} is not in its mm`);
  unlinkVma(s, mm, vma);
  dropVmaFileRef(s, vma);
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
