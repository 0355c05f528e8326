/**
 * VMAs of one mm, kept in a sorted array (the maple tree's role, done plainly): lookup,
 * split (__split_vma, with vm_ops->may_split and ->open) and removal (remove_vma: ->close,
 * then the file reference goes). Merging is vma-merge.ts.
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
 * __split_vma: split `vma` at `addr`. The new VMA is the part below `addr` when `newBelow`
 * (and `vma` keeps the part above), else the part above. Returns the new VMA, or an errno
 * (->may_split's, or ENOMEM past max_map_count or when vm_area_dup fails). ->open runs on
 * the new VMA.
 */
export function splitVma(s: ModelState, mm: Mm, vma: Vma, addr: number, newBelow: boolean): Vma | Errno {
  assert(vma.start < addr && addr < vma.end, `split of [${vma.start}, ${vma.end}) at ${addr}`);
  if (vma.vmOps?.may_split) {
    const e = vma.vmOps.may_split(vma, addr);
    if (e !== 0) return e;
  }
  if (mm.vmas.length >= s.config.maxMapCount) return 'ENOMEM';
  if (shouldFailAlloc(s)) return 'ENOMEM';
  let created: Vma;
  if (newBelow) {
    created = { ...vma, id: newVmaId(s), end: addr };
    vma.pgoff += addr - vma.start;
    vma.start = addr;
  } else {
    created = { ...vma, id: newVmaId(s), start: addr, pgoff: vma.pgoff + (addr - vma.start) };
    vma.end = addr;
  }
  if (created.driverFile) created.driverFile.refcount += 1;
  inodeGet(s, created.file);
  insertVma(mm, created);
  created.vmOps?.open?.(created);
  return created;
}

/**
 * Split so that no VMA straddles `start` or `end`, as munmap and vma_modify do: the VMAs
 * inside keep their objects, the parts outside are the new ones. Stops at the first failure.
 */
export function splitAround(s: ModelState, mm: Mm, start: number, end: number): Errno | 0 {
  for (const [edge, newBelow] of [[start, true], [end, false]] as const) {
    const vma = vmaLookup(mm, edge);
    if (vma !== undefined && vma.start < edge) {
      const r = splitVma(s, mm, vma, edge, newBelow);
      if (typeof r === 'string') return r;
    }
  }
  return 0;
}

/** A VMA's references on its files: the driver file and the inode. */
export function dropVmaFileRef(s: ModelState, vma: Vma): void {
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
