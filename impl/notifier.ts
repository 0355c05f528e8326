/**
 * MMU interval notifiers (mm/mmu_notifier.c): invalidations reach the notifiers of the mm
 * they overlap, in (start, id) order, found through the mm's interval tree.
 *
 * An invalidation is in progress from invalidate_range_start (before the callbacks) to
 * invalidate_range_end (after the PTEs changed); mmu_interval_read_begin and
 * mmu_interval_notifier_remove wait for it (impl/driverapi.ts). Callbacks are called with
 * whatever the invalidating path holds; in the OOM reaper's non-blocking invalidation the
 * task is atomic (LockTable.enterAtomic) and a callback may refuse (returns false).
 *
 * `invalidateRange` is the start and `invalidateEnd` the end: the end pops the current
 * task's latest invalidation of that mm. A task's invalidations nest (a callback's own zap
 * starts and ends inside its caller's), so last-in first-out per task is exact. Every piece
 * of this state is per task or per mm, never module-level: another task's operation runs
 * nested at a callback's scheduling point.
 */
import type { ActiveInvalidation, ImplNotifier, ImplState } from './types.ts';
import { assert } from './assert.ts';
import { COVER, notifierEventPoint } from '../kernel-api/coverage.ts';

export type InvalidateEvent = 'unmap' | 'clear' | 'protection' | 'oom' | 'exit' | 'migrate';

/**
 * Invalidations nest when a callback zaps PTEs that lie inside its own interval (a mirror
 * of a range that contains the mirror). The kernel would recurse until its stack overflows,
 * or deadlock on the notifier's lock; past this depth the emulation says so. The depth is
 * per task: another task's invalidation running nested at a scheduling point is not nesting.
 */
export const INVALIDATE_NESTING_MAX = 8;

/**
 * No notifier exists and no invalidation is in progress: this one can have no callback,
 * so nothing runs between its start and its end — no scheduling point, no driver code —
 * and nobody can see it in progress. It is not recorded (the common case, kept cheap);
 * its end finds nothing to end, as no other invalidation can start meanwhile either.
 */
function unobserved(s: ImplState): boolean {
  return s.notifiers.size === 0 && s.invalidations.size === 0;
}

/** The token of an invalidation nobody could see (unobserved): nothing to end. */
const UNTRACKED: ActiveInvalidation = Object.freeze({ pid: -1, start: 0, end: 0, task: -1 });

function push(s: ImplState, inv: ActiveInvalidation): void {
  const list = s.invalidations.get(inv.pid);
  if (list === undefined) s.invalidations.set(inv.pid, [inv]);
  else list.push(inv);
}

function pop(s: ImplState, inv: ActiveInvalidation): void {
  const list = s.invalidations.get(inv.pid);
  const at = list === undefined ? -1 : list.lastIndexOf(inv);
  assert(at >= 0, `invalidate_range_end of P${inv.pid} [${inv.start}, ${inv.end}) that is not in progress`);
  list!.splice(at, 1);
  if (list!.length === 0) s.invalidations.delete(inv.pid);
}

/**
 * Call the callbacks of `hits` for [start, end); false when `blockable` is false and one
 * refused (the rest are not called, as mn_itree_invalidate stops at -EAGAIN).
 */
function callCallbacks(s: ImplState, hits: readonly ImplNotifier[], pid: number, start: number, end: number, event: InvalidateEvent, blockable: boolean): boolean {
  const task = s.locks.current;
  const nesting = s.notifierNesting.get(task) ?? 0;
  assert(nesting < INVALIDATE_NESTING_MAX, `MMU notifier invalidation of P${pid} [${start}, ${end}) nested ${nesting} deep: a callback re-enters its own interval (kernel stack overflow or deadlock)`);
  s.notifierNesting.set(task, nesting + 1);
  if (!blockable) s.locks.enterAtomic();
  try {
    for (const n of hits) {
      // A callback of an earlier notifier may have removed this one.
      if (s.notifiers.get(n.id) !== n) continue;
      n.seq += 2;
      s.locks.cover(notifierEventPoint(event));
      const fine = n.ops.invalidate(n, { start: Math.max(start, n.start), end: Math.min(end, n.end), event, blockable });
      // A blockable range never fails (Linux WARNs and goes on); a non-blockable one stops here.
      if (!fine && !blockable) return false;
    }
    return true;
  } finally {
    if (!blockable) s.locks.exitAtomic();
    if (nesting === 0) s.notifierNesting.delete(task);
    else s.notifierNesting.set(task, nesting);
  }
}

/** The notifiers of pid's mm overlapping [start, end), in (start, id) order (a snapshot). */
function hitsOf(s: ImplState, pid: number, start: number, end: number): ImplNotifier[] {
  if (s.notifiers.size === 0) return [];
  const tree = s.notifierTrees.get(pid);
  return tree === undefined || tree.size === 0 ? [] : tree.overlapping(start, end);
}

/**
 * mmu_notifier_invalidate_range_start for [start, end) of pid's mm: the invalidation is in
 * progress until the matching invalidateEnd (after the PTEs changed).
 */
export function invalidateRange(s: ImplState, pid: number, start: number, end: number, event: InvalidateEvent): ActiveInvalidation {
  s.locks.cover(COVER.invalidateRangeStart);
  if (unobserved(s)) return UNTRACKED;
  const inv: ActiveInvalidation = { pid, start, end, task: s.locks.current };
  push(s, inv);
  const hits = hitsOf(s, pid, start, end);
  if (hits.length === 0) return inv;
  try {
    callCallbacks(s, hits, pid, start, end, event, true);
  } catch (e) {
    pop(s, inv);
    throw e;
  }
  return inv;
}

/** mmu_notifier_invalidate_range_end of the current task's latest invalidation of pid's mm. */
export function invalidateEnd(s: ImplState, pid: number): void {
  const list = s.invalidations.get(pid);
  const task = s.locks.current;
  if (list !== undefined) {
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i]!.task === task) {
        pop(s, list[i]!);
        return;
      }
    }
  }
  // None in progress: the start was skipped (a planted bug of bench/planted.ts drops one);
  // a stale entry would be worse than none, so there is nothing to end.
}

/**
 * mmu_notifier_invalidate_range_start_nonblock (the OOM reaper): the callbacks run atomic
 * with `blockable: false`. False when one refused: nothing is in progress any more, and the
 * caller leaves the range alone. True: in progress until invalidateEnd.
 */
export function invalidateRangeNonblock(s: ImplState, pid: number, start: number, end: number, event: InvalidateEvent): boolean {
  s.locks.cover(COVER.invalidateNonblock);
  if (unobserved(s)) return true;
  const inv: ActiveInvalidation = { pid, start, end, task: s.locks.current };
  push(s, inv);
  const hits = hitsOf(s, pid, start, end);
  if (hits.length === 0) return true;
  let fine: boolean;
  try {
    fine = callCallbacks(s, hits, pid, start, end, event, false);
  } catch (e) {
    pop(s, inv);
    throw e;
  }
  if (!fine) {
    s.locks.cover(COVER.invalidateNonblockRefused);
    pop(s, inv);
  }
  return fine;
}

/** invalidate_range_start, `f` (the PTE changes), invalidate_range_end. */
export function withInvalidation<T>(s: ImplState, pid: number, start: number, end: number, event: InvalidateEvent, f: () => T): T {
  const inv = invalidateRange(s, pid, start, end, event);
  let r: T;
  try {
    r = f();
  } catch (e) {
    if (s.invalidations.get(pid)?.includes(inv) === true) pop(s, inv);
    throw e;
  }
  if (inv !== UNTRACKED) pop(s, inv);
  return r;
}

/** The in-progress invalidations of `pid`'s mm overlapping [start, end) (any, when start/end are absent), oldest first. */
export function activeInvalidations(s: ImplState, pid: number, start = -Infinity, end = Infinity): ActiveInvalidation[] {
  const list = s.invalidations.get(pid);
  if (list === undefined) return [];
  return list.filter((i) => i.start < end && i.end > start);
}
