/**
 * madvise (mm/madvise.c): DONTNEED zaps (private copies vanish, shared pages stay in their
 * object), PAGEOUT reclaims pages this process maps alone, COLD ages them, DONTFORK and
 * DOFORK set VM_DONTCOPY (vma_modify_flags: merging or splitting, unless it is already as asked). Unmapped parts give ENOMEM after the mapped parts
 * are done, as madvise_walk_vmas does.
 */
import type { Advice, MadviseOp } from '../kernel-api/op.ts';
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { Frame, ModelState, Process, Vma } from './types.ts';
import { frameOf } from './frames.ts';
import { validRange } from './mmap.ts';
import { findVma } from './vma.ts';
import { vmaModify, vmaPrevOf } from './vma-merge.ts';
import { assert } from './assert.ts';
import { ptesIn, zapRange } from './zap.ts';
import { shrinkFrame } from './reclaim.ts';

const ADVICES: readonly Advice[] = ['DONTNEED', 'PAGEOUT', 'COLD', 'DONTFORK', 'DOFORK'];

/** madvise_walk_vmas: VMA by VMA with the VMA before as prev; a hole gives ENOMEM after the rest is done. */
export function madvise(s: ModelState, proc: Process, op: MadviseOp): Outcome {
  if (!ADVICES.includes(op.advice) || !Number.isSafeInteger(op.addr) || op.addr < 0) return err('EINVAL');
  if (op.lengthPages === 0) return ok(0);
  if (!validRange(s, op.addr, op.lengthPages)) return err('EINVAL');
  const lastEnd = op.addr + op.lengthPages;
  let start = op.addr;
  let unmapped = false;
  let vma = findVma(proc.mm, start);
  let prev = vma !== undefined && vma.start < start ? vma : vmaPrevOf(proc.mm, start);
  // A limit on the walk: each step moves `start` past one of the VMAs there at the start.
  const stepsMax = proc.mm.vmas.length + 1;
  for (let steps = 0; ; steps++) {
    assert(steps < stepsMax, `madvise walk of [${op.addr}, ${lastEnd}) does not end`);
    if (vma === undefined) return err('ENOMEM');
    if (start < vma.start) {
      unmapped = true;
      start = vma.start;
      if (start >= lastEnd) break;
    }
    let end = Math.min(vma.end, lastEnd);
    const r = madviseVma(s, proc, prev, vma, start, end, op.advice);
    if (typeof r === 'string') return err(r);
    vma = r;
    prev = vma;
    if (end < vma.end) end = vma.end;
    if (end >= lastEnd) break;
    vma = findVma(proc.mm, end);
    start = end;
  }
  return unmapped ? err('ENOMEM') : ok(0);
}

/** madvise_vma_behavior for [start, end) of `vma`; returns the VMA now holding the range. */
function madviseVma(s: ModelState, proc: Process, prev: Vma | undefined, vma: Vma, start: number, end: number, advice: Advice): Vma | Errno {
  switch (advice) {
    case 'DONTNEED':
      if (vma.pfnmap) return 'EINVAL';
      zapRange(s, proc, start, end, 'clear');
      return vma;
    case 'PAGEOUT':
    case 'COLD':
      if (vma.pfnmap) return 'EINVAL';
      for (const frame of unsharedFrames(s, proc, start, end)) {
        // A notifier callback of an earlier frame's reclaim may have slept and let another
        // task free this one (reclaim needs no mmap_lock).
        if (s.frames.get(frame.pfn) !== frame) continue;
        if (advice === 'COLD') frame.lru = 0;
        else shrinkFrame(s, frame);
      }
      return vma;
    case 'DONTFORK':
    case 'DOFORK': {
      if (advice === 'DOFORK' && vma.io) return 'EINVAL';
      const dontcopy = advice === 'DONTFORK';
      // madvise_update_vma: the flags are already what the advice asks, nothing to do.
      if (vma.dontcopy === dontcopy) return vma;
      const target = vmaModify(s, proc.mm, prev, vma, start, end, { ...vma, dontcopy });
      if (typeof target === 'string') return target === 'ENOMEM' ? 'EAGAIN' : target;
      target.dontcopy = dontcopy;
      return target;
    }
  }
}

/** Frames mapped in [start, end) by a normal PTE and by no other mapping (mapcount 1). */
function unsharedFrames(s: ModelState, proc: Process, start: number, end: number): Frame[] {
  const frames: Frame[] = [];
  for (const addr of ptesIn(proc, start, end)) {
    const pte = proc.mm.ptes.get(addr)!;
    if (pte.kind !== 'present' || pte.special) continue;
    const frame = frameOf(s, pte.pfn);
    if (frame.mapcount === 1 && frame.kind !== 'driver' && !frame.reserved) frames.push(frame);
  }
  return frames;
}
