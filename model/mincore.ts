/**
 * mincore (mm/mincore.c, Linux 6.18): the residency of each page. sys_mincore takes the
 * mmap_lock for read around each do_mincore, which covers one VMA (a hole there: ENOMEM,
 * vma_lookup). mincore_pte_range: a present PTE is 1 (the zero page and special PTEs too);
 * a swap entry is 1 while its page is in the swap cache (mincore_swap); an empty PTE or a
 * uffd-wp marker (pte_none_mostly) is a hole: mincore_unmapped_range asks the page cache
 * of the VMA's file (mincore_page; shmem's swapped pages have no swap cache here), and
 * anonymous memory says 0. A VM_PFNMAP VMA is all hole to walk_page_range (walk_page_test).
 * can_do_mincore always holds: the caller owns or may write every file emulated.
 */
import type { MincoreOp } from '../kernel-api/op.ts';
import { MINCORE_PAGES_MAX } from '../kernel-api/op.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import { err, okValues } from '../kernel-api/outcome.ts';
import type { ModelState, Process, Vma } from './types.ts';
import { vmaLookup } from './vma.ts';
import { withMmapLock } from './locks.ts';
import { slotOf } from './swap.ts';

export function mincore(s: ModelState, proc: Process, op: MincoreOp): Outcome {
  if (!Number.isSafeInteger(op.addr) || op.addr < 0 || !Number.isSafeInteger(op.lengthPages)) return err('EINVAL');
  // access_ok: the range must lie below TASK_SIZE (a negative size_t is huge).
  if (op.lengthPages < 0 || op.addr + op.lengthPages > s.config.taskSizePages) return err('ENOMEM');
  if (op.lengthPages > MINCORE_PAGES_MAX) return err('EINVAL');
  const end = op.addr + op.lengthPages;
  const values: number[] = [];
  for (let addr = op.addr; addr < end;) {
    const done = withMmapLock(s, proc.pid, 'read', 'do_mincore', () => {
      const vma = vmaLookup(proc.mm, addr);
      if (vma === undefined) return false;
      const stop = Math.min(vma.end, end);
      for (; addr < stop; addr++) values.push(mincorePage(s, proc, vma, addr));
      return true;
    });
    if (!done) return err('ENOMEM');
  }
  return okValues(values.length, values);
}

function mincorePage(s: ModelState, proc: Process, vma: Vma, addr: number): number {
  const pte = vma.pfnmap ? undefined : proc.mm.ptes.get(addr);
  if (pte?.kind === 'present') return 1;
  if (pte?.kind === 'swap') return slotOf(s, pte.slot).cachePfn !== -1 ? 1 : 0;
  if (vma.file === -1) return 0;
  const file = s.files.get(vma.file);
  return file !== undefined && file.pagecache.has(vma.pgoff + (addr - vma.start)) ? 1 : 0;
}
