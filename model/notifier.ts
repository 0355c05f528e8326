/**
 * MMU interval notifiers (mm/mmu_notifier.c): a driver registers a range of an mm and is
 * told, before the PTEs go, of every invalidation that overlaps it. The sequence number
 * lets a driver's fault path detect a race (mmu_interval_read_begin/_retry).
 */
import type { MmuIntervalNotifierOps } from '../kernel-api/driver.ts';
import type { ModelState } from './types.ts';
import { assert } from './assert.ts';

export type ModelNotifier = {
  id: number;
  mm: number;
  start: number;
  end: number;
  ops: MmuIntervalNotifierOps;
  seq: number;
};

export type InvalidateEvent = 'unmap' | 'clear' | 'protection' | 'oom' | 'exit' | 'migrate';

/**
 * Invalidations nest when a callback zaps PTEs that lie inside its own interval (a mirror
 * of a range that contains the mirror). The kernel would recurse until its stack overflows,
 * or deadlock on the notifier's lock; past this depth the emulation says so.
 */
export const INVALIDATE_NESTING_MAX = 8;
let nesting = 0;

/** mmu_notifier_invalidate_range_start for [start, end) of pid's mm. */
export function invalidateRange(s: ModelState, pid: number, start: number, end: number, event: InvalidateEvent): void {
  const hits = [...s.notifiers.values()]
    .filter((n) => n.mm === pid && n.start < end && n.end > start)
    .sort((a, b) => a.start - b.start || a.id - b.id);
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
