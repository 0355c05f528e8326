/**
 * madvise (mm/madvise.c): DONTNEED zaps (private copies vanish, shared pages stay in their
 * object), PAGEOUT reclaims pages this process maps alone, COLD ages them, DONTFORK and
 * DOFORK set VM_DONTCOPY (splitting, unless it is already as asked). Unmapped parts give ENOMEM after the mapped parts
 * are done, as madvise_walk_vmas does.
 */
import type { Advice, MadviseOp } from '../kernel-api/op.ts';
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { Frame, ModelState, Process, Vma } from './types.ts';
import { frameOf } from './frames.ts';
import { validRange } from './mmap.ts';
import { mergeRange, splitAround, vmasIn } from './vma.ts';
import { ptesIn, zapRange } from './zap.ts';
import { shrinkFrame } from './reclaim.ts';

const ADVICES: readonly Advice[] = ['DONTNEED', 'PAGEOUT', 'COLD', 'DONTFORK', 'DOFORK'];

export function madvise(s: ModelState, proc: Process, op: MadviseOp): Outcome {
  if (!ADVICES.includes(op.advice) || !Number.isSafeInteger(op.addr) || op.addr < 0) return err('EINVAL');
  if (op.lengthPages === 0) return ok(0);
  if (!validRange(s, op.addr, op.lengthPages)) return err('EINVAL');
  const start = op.addr;
  const end = op.addr + op.lengthPages;
  let unmapped = false;
  let cursor = start;
  for (const vma of vmasIn(proc.mm, start, end)) {
    if (vma.start > cursor) unmapped = true;
    cursor = vma.end;
    const e = madviseVma(s, proc, vma, Math.max(start, vma.start), Math.min(end, vma.end), op.advice);
    if (e !== 0) return err(e);
  }
  if (cursor < end) unmapped = true;
  if (op.advice === 'DONTFORK' || op.advice === 'DOFORK') mergeRange(s, proc.mm, start, end);
  return unmapped ? err('ENOMEM') : ok(0);
}

function madviseVma(s: ModelState, proc: Process, vma: Vma, start: number, end: number, advice: Advice): Errno | 0 {
  switch (advice) {
    case 'DONTNEED':
      if (vma.pfnmap) return 'EINVAL';
      zapRange(s, proc, start, end, 'clear');
      return 0;
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
      return 0;
    case 'DONTFORK':
    case 'DOFORK': {
      if (advice === 'DOFORK' && vma.io) return 'EINVAL';
      // The flags are already what the advice asks: no split (madvise_update_vma).
      if (vma.dontcopy === (advice === 'DONTFORK')) return 0;
      const e = splitAround(s, proc.mm, start, end);
      if (e !== 0) return e === 'ENOMEM' ? 'EAGAIN' : e;
      for (const v of vmasIn(proc.mm, start, end)) v.dontcopy = advice === 'DONTFORK';
      return 0;
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
