/** mincore (mm/mincore.c, Linux 6.18), as model/mincore.ts: per VMA under the mmap_lock for read. */
import type { MincoreOp } from '../kernel-api/op.ts';
import { MINCORE_PAGES_MAX } from '../kernel-api/op.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import { err, okValues } from '../kernel-api/outcome.ts';
import type { ImplProcess, ImplState, ImplVma } from './types.ts';
import { vmaLookup } from './vma.ts';
import { withMmapLock } from './locks.ts';
import { PTE_PRESENT, PTE_SWAP } from './pagetable.ts';

export function mincore(s: ImplState, proc: ImplProcess, op: MincoreOp): Outcome {
  if (!Number.isSafeInteger(op.addr) || op.addr < 0 || !Number.isSafeInteger(op.lengthPages)) return err('EINVAL');
  if (op.lengthPages < 0 || op.addr + op.lengthPages > s.config.taskSizePages) return err('ENOMEM');
  if (op.lengthPages > MINCORE_PAGES_MAX) return err('EINVAL');
  const end = op.addr + op.lengthPages;
  const values: number[] = [];
  for (let addr = op.addr; addr < end;) {
    const done = withMmapLock(s, proc.mm, 'read', 'do_mincore', () => {
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

function mincorePage(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number): number {
  const flags = vma.pfnmap ? 0 : proc.mm.pt.flags(addr);
  if ((flags & PTE_PRESENT) !== 0) return 1;
  if ((flags & PTE_SWAP) !== 0) return s.swap.cachePfn[proc.mm.pt.idx(addr)] !== -1 ? 1 : 0;
  if (vma.file === -1) return 0;
  const file = s.files.get(vma.file);
  return file !== undefined && file.pagecache.has(vma.pgoff + (addr - vma.start)) ? 1 : 0;
}
