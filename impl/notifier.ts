/**
 * MMU interval notifiers (mm/mmu_notifier.c): invalidations reach the notifiers of the mm
 * they overlap, in (start, id) order, found through the mm's interval tree.
 */
import type { ImplState } from './types.ts';

export type InvalidateEvent = 'unmap' | 'clear' | 'protection' | 'oom' | 'exit' | 'migrate';

/** mmu_notifier_invalidate_range_start for [start, end) of pid's mm. */
export function invalidateRange(s: ImplState, pid: number, start: number, end: number, event: InvalidateEvent): void {
  if (s.notifiers.size === 0) return;
  const tree = s.notifierTrees.get(pid);
  if (tree === undefined || tree.size === 0) return;
  for (const n of tree.overlapping(start, end)) {
    n.seq += 2;
    n.ops.invalidate(n, { start: Math.max(start, n.start), end: Math.min(end, n.end), event });
  }
}
