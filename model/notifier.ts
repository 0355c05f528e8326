/**
 * MMU interval notifiers (mm/mmu_notifier.c): a driver registers a range of an mm and is
 * told, before the PTEs go, of every invalidation that overlaps it. The sequence number
 * lets a driver's fault path detect a race (mmu_interval_read_begin/_retry).
 */
import type { MmuIntervalNotifierOps } from '../kernel-api/driver.ts';
import type { ModelState } from './types.ts';

export type ModelNotifier = {
  id: number;
  mm: number;
  start: number;
  end: number;
  ops: MmuIntervalNotifierOps;
  seq: number;
};

export type InvalidateEvent = 'unmap' | 'clear' | 'protection' | 'oom' | 'exit' | 'migrate';

/** mmu_notifier_invalidate_range_start for [start, end) of pid's mm. */
export function invalidateRange(s: ModelState, pid: number, start: number, end: number, event: InvalidateEvent): void {
  const hits = [...s.notifiers.values()]
    .filter((n) => n.mm === pid && n.start < end && n.end > start)
    .sort((a, b) => a.start - b.start || a.id - b.id);
  for (const n of hits) {
    n.seq += 2;
    n.ops.invalidate(n, { start: Math.max(start, n.start), end: Math.min(end, n.end), event });
  }
}
