/**
 * MMU interval notifiers (mm/mmu_notifier.c): a driver registers a range of an mm and is
 * told, before the PTEs go, of every invalidation that overlaps it. The sequence number
 * lets a driver's fault path detect a race (mmu_interval_read_begin/_retry).
 *
 * An invalidation is in progress from invalidate_range_start (before the callbacks) to
 * invalidate_range_end (after the PTEs changed); mmu_interval_read_begin and
 * mmu_interval_notifier_remove wait for it (model/driverapi.ts). Callbacks are called with
 * whatever the invalidating path holds; in the OOM reaper's non-blocking invalidation the
 * task is atomic (LockTable.enterAtomic) and a callback may refuse (returns false).
 */
import type { MmuIntervalNotifierOps } from '../kernel-api/driver.ts';
import type { Tid } from '../kernel-api/sched.ts';
import type { ModelState } from './types.ts';
import { assert } from './assert.ts';
import { COVER, notifierEventPoint } from '../kernel-api/coverage.ts';

export type ModelNotifier = {
  id: number;
  mm: number;
  start: number;
  end: number;
  ops: MmuIntervalNotifierOps;
  seq: number;
};

export type InvalidateEvent = 'unmap' | 'clear' | 'protection' | 'oom' | 'exit' | 'migrate';

/** An invalidation between its start and its end: of [start, end) of `pid`'s mm, by `task`. */
export type ActiveInvalidation = { readonly pid: number; readonly start: number; readonly end: number; readonly task: Tid };

/**
 * Invalidations nest when a callback zaps PTEs that lie inside its own interval (a mirror
 * of a range that contains the mirror). The kernel would recurse until its stack overflows,
 * or deadlock on the notifier's lock; past this depth the emulation says so. The depth is
 * per task: another task's invalidation running nested at a scheduling point is not nesting.
 */
export const INVALIDATE_NESTING_MAX = 8;

/**
 * mmu_notifier_invalidate_range_start for [start, end) of pid's mm. Returns the in-progress
 * invalidation to pass to invalidateRangeEnd, or null when `blockable` is false and a
 * callback refused (mmu_notifier_invalidate_range_start_nonblock's -EAGAIN: the range is
 * left alone, and nothing is in progress any more).
 */
export function invalidateRangeStart(s: ModelState, pid: number, start: number, end: number, event: InvalidateEvent, blockable = true): ActiveInvalidation | null {
  s.locks.cover(blockable ? COVER.invalidateRangeStart : COVER.invalidateNonblock);
  const task = s.locks.current;
  const inv: ActiveInvalidation = { pid, start, end, task };
  s.invalidations.push(inv);
  if (s.notifiers.size === 0) return inv;
  const hits = [...s.notifiers.values()]
    .filter((n) => n.mm === pid && n.start < end && n.end > start)
    .sort((a, b) => a.start - b.start || a.id - b.id);
  if (hits.length === 0) return inv;
  const nesting = s.notifierNesting.get(task) ?? 0;
  assert(nesting < INVALIDATE_NESTING_MAX, `MMU notifier invalidation of P${pid} [${start}, ${end}) nested ${nesting} deep: a callback re-enters its own interval (kernel stack overflow or deadlock)`);
  s.notifierNesting.set(task, nesting + 1);
  if (!blockable) s.locks.enterAtomic();
  let refused = false;
  try {
    for (const n of hits) {
      // A callback of an earlier notifier may have removed this one.
      if (s.notifiers.get(n.id) !== n) continue;
      n.seq += 2;
      s.locks.cover(notifierEventPoint(event));
      const fine = n.ops.invalidate(n, { start: Math.max(start, n.start), end: Math.min(end, n.end), event, blockable });
      // A blockable range never fails (Linux WARNs and goes on); a non-blockable one stops here.
      if (!fine && !blockable) {
        refused = true;
        break;
      }
    }
  } catch (e) {
    invalidateRangeEnd(s, inv);
    throw e;
  } finally {
    if (!blockable) s.locks.exitAtomic();
    if (nesting === 0) s.notifierNesting.delete(task);
    else s.notifierNesting.set(task, nesting);
  }
  if (refused) {
    s.locks.cover(COVER.invalidateNonblockRefused);
    invalidateRangeEnd(s, inv);
    return null;
  }
  return inv;
}

/** mmu_notifier_invalidate_range_end: the invalidation is no longer in progress. */
export function invalidateRangeEnd(s: ModelState, inv: ActiveInvalidation): void {
  // The latest one, nearly always (invalidations nest): a pop.
  if (s.invalidations[s.invalidations.length - 1] === inv) {
    s.invalidations.pop();
    return;
  }
  const at = s.invalidations.lastIndexOf(inv);
  assert(at >= 0, `invalidate_range_end of P${inv.pid} [${inv.start}, ${inv.end}) that is not in progress`);
  s.invalidations.splice(at, 1);
}

/** invalidate_range_start, `f` (the PTE changes), invalidate_range_end. */
export function withInvalidation<T>(s: ModelState, pid: number, start: number, end: number, event: InvalidateEvent, f: () => T): T {
  const inv = invalidateRangeStart(s, pid, start, end, event)!;
  let r: T;
  try {
    r = f();
  } catch (e) {
    if (s.invalidations.includes(inv)) invalidateRangeEnd(s, inv);
    throw e;
  }
  invalidateRangeEnd(s, inv);
  return r;
}

/** The in-progress invalidations of `pid`'s mm overlapping [start, end) (any, when start/end are absent). */
export function activeInvalidations(s: ModelState, pid: number, start = -Infinity, end = Infinity): ActiveInvalidation[] {
  return s.invalidations.filter((i) => i.pid === pid && i.start < end && i.end > start);
}
