/**
 * MMU interval notifiers (mm/mmu_notifier.c): invalidations reach the notifiers of the mm
 * they overlap, in (start, id) order, found through the mm's interval tree.
 */
import type { ImplState } from './types.ts';
import { assert } from './assert.ts';

export type InvalidateEvent = 'unmap' | 'clear' | 'protection' | 'oom' | 'exit' | 'migrate';

/**
 * Invalidations nest when a callback zaps PTEs that lie inside its own interval (a mirror
 * of a range that contains the mirror). The kernel would recurse until its stack overflows,
 * or deadlock on the notifier's lock; past this depth the emulation says so.
 */
export const INVALIDATE_NESTING_MAX = 8;
let nesting = 0;

/** mmu_notifier_invalidate_range_start for [start, end) of pid's mm. */
export function invalidateRange(s: ImplState, pid: number, start: number, end: number, event: InvalidateEvent): void {
  if (s.notifiers.size === 0) return;
  const tree = s.notifierTrees.get(pid);
  if (tree === undefined || tree.size === 0) return;
  const hits = [...tree.overlapping(start, end)];
  if (hits.length === 0) return;
  assert(nesting < INVALIDATE_NESTING_MAX, `MMU notifier invalidation of P${pid} [${start}, ${end}) nested ${nesting} deep: a callback re-enters its own interval (kernel stack overflow or deadlock)`);
  nesting += 1;
  try {
    for (const n of hits) {
      n.seq += 2;
      n.ops.invalidate(n, { start: Math.max(start, n.start), end: Math.min(end, n.end), event });
    }
  } finally {
    nesting -= 1;
  }
}
