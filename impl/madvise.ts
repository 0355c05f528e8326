/**
 * madvise (mm/madvise.c): DONTNEED zaps, PAGEOUT reclaims pages this process maps alone,
 * COLD ages them, DONTFORK and DOFORK set VM_DONTCOPY (vma_modify_flags: merging or splitting, unless it is already as asked). Unmapped parts give
 * ENOMEM after the mapped parts are done, as madvise_walk_vmas does.
 */
import type { Advice, MadviseOp } from '../kernel-api/op.ts';
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { ImplProcess, ImplState, ImplVma } from './types.ts';
import { frameOf } from './frames.ts';
import { F_KIND, F_RESERVED, KIND_DRIVER } from './framepool.ts';
import { PTE_PRESENT, PTE_SPECIAL } from './pagetable.ts';
import { validRange } from './mmap.ts';
import { vmaAttrs, vmaModify, vmaPrevOf } from './vma-merge.ts';
import { fail } from './assert.ts';
import { zapRange } from './zap.ts';
import { shrinkFrame } from './reclaim.ts';

const ADVICES: readonly Advice[] = ['DONTNEED', 'PAGEOUT', 'COLD', 'DONTFORK', 'DOFORK'];

/** madvise_walk_vmas: VMA by VMA with the VMA before as prev; a hole gives ENOMEM after the rest is done. */
export function madvise(s: ImplState, proc: ImplProcess, op: MadviseOp): Outcome {
  if (!ADVICES.includes(op.advice) || !Number.isSafeInteger(op.addr) || op.addr < 0) return err('EINVAL');
  if (op.lengthPages === 0) return ok(0);
  if (!validRange(s, op.addr, op.lengthPages)) return err('EINVAL');
  const lastEnd = op.addr + op.lengthPages;
  let start = op.addr;
  let unmapped = false;
  let vma: ImplVma | null = proc.mm.vmas.find(start);
  let prev = vma !== null && vma.start < start ? vma : vmaPrevOf(proc.mm, start);
  const stepsMax = proc.mm.vmas.size + 1; // each step passes one of the VMAs there at the start
  for (let steps = 0; ; steps++) {
    if (steps >= stepsMax) fail(`madvise walk of [${op.addr}, ${lastEnd}) does not end`);
    if (vma === null) return err('ENOMEM');
    if (start < vma.start) {
      unmapped = true;
      start = vma.start;
      if (start >= lastEnd) break;
    }
    let end = Math.min(vma.end, lastEnd);
    const r = madviseVma(s, proc, prev, vma, start, end, op.advice);
    if (typeof r === 'string') return err(r);
    prev = r;
    if (end < r.end) end = r.end;
    if (end >= lastEnd) break;
    vma = proc.mm.vmas.find(end);
    start = end;
  }
  return unmapped ? err('ENOMEM') : ok(0);
}

/** madvise_vma_behavior for [start, end) of `vma`; returns the VMA now holding the range. */
function madviseVma(
  s: ImplState, proc: ImplProcess, prev: ImplVma | undefined, vma: ImplVma, start: number, end: number, advice: Advice,
): ImplVma | Errno {
  switch (advice) {
    case 'DONTNEED':
      if (vma.pfnmap) return 'EINVAL';
      zapRange(s, proc, start, end, 'clear');
      return vma;
    case 'PAGEOUT':
    case 'COLD':
      if (vma.pfnmap) return 'EINVAL';
      for (const [pfn, seq] of unsharedFrames(s, proc, start, end)) {
        // A notifier callback of an earlier frame's reclaim may have slept and let another
        // task free this one (reclaim needs no mmap_lock), and the pfn may be another frame's now.
        if (!s.pool.isLive(pfn) || s.pool.seq[pfn] !== seq) continue;
        if (advice === 'COLD') s.lru.touch(pfn, 0);
        else shrinkFrame(s, pfn);
      }
      return vma;
    case 'DONTFORK':
    case 'DOFORK': {
      if (advice === 'DOFORK' && vma.io) return 'EINVAL';
      const dontcopy = advice === 'DONTFORK';
      // madvise_update_vma: the flags are already what the advice asks, nothing to do.
      if (vma.dontcopy === dontcopy) return vma;
      const target = vmaModify(s, proc.mm, prev, vma, start, end, vmaAttrs(vma, { dontcopy }));
      if (typeof target === 'string') return target === 'ENOMEM' ? 'EAGAIN' : target;
      target.dontcopy = dontcopy;
      return target;
    }
  }
}

/** Frames mapped in [start, end) by a normal PTE and by no other mapping (mapcount 1), with their allocation sequence numbers. */
function unsharedFrames(s: ImplState, proc: ImplProcess, start: number, end: number): Array<[number, number]> {
  const pfns: Array<[number, number]> = [];
  const pool = s.pool;
  proc.mm.pt.forEach(start, end, (_addr, flags, idx) => {
    if ((flags & PTE_PRESENT) === 0 || (flags & PTE_SPECIAL) !== 0) return;
    const pfn = frameOf(s, idx);
    if (pool.mapcount[pfn] === 1 && (pool.flags[pfn] & F_KIND) !== KIND_DRIVER && (pool.flags[pfn] & F_RESERVED) === 0) pfns.push([pfn, pool.seq[pfn]]);
  });
  return pfns;
}
