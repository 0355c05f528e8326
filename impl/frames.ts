/**
 * Frame allocation, references and freeing (mm/page_alloc.c, put_page) over the frame
 * pool. Every allocation site calls shouldFailAlloc exactly once, in the model's order,
 * so fail-nth fails the same allocation in both kernels.
 */
import type { RssCounters } from '../kernel-api/state.ts';
import type { ImplState } from './types.ts';
import { fail } from './assert.ts';
import { F_DIRTY, F_EXPOSED, F_FRESH, F_KIND, KIND_ANON, KIND_SHMEM, KIND_ZERO, KIND_DRIVER } from './framepool.ts';

/** Fault injection (fail-nth): true when this allocation is the one that must fail. */
export function shouldFailAlloc(s: ImplState): boolean {
  if (s.failNth === 0) return false;
  s.failNth -= 1;
  return s.failNth === 0;
}

/** alloc_page: a pfn with refcount 1 owned by the caller, or -1 under fault injection. */
export function allocFrame(s: ImplState, kind: number, value: number): number {
  if (shouldFailAlloc(s)) return -1;
  const pfn = s.pool.take(kind, value, s.step);
  if (kind !== KIND_DRIVER && kind !== KIND_ZERO) s.lru.add(pfn);
  if (kind === KIND_ANON) s.pool.flags[pfn] |= F_FRESH;
  return pfn;
}

/** Assert `pfn` is a live frame and return it. */
export function frameOf(s: ImplState, pfn: number): number {
  if (!(s.pool.isLive(pfn))) fail(`pfn ${pfn} is not a live frame`);
  return pfn;
}

export function getPage(s: ImplState, pfn: number): void {
  if (!(s.pool.refcount[pfn] > 0)) fail(`get_page on pfn ${pfn} with refcount ${s.pool.refcount[pfn]}`);
  s.pool.refcount[pfn] += 1;
}

/** put_page: drop one reference; the last one frees the frame. The zero page is never freed. */
export function putPage(s: ImplState, pfn: number): void {
  const pool = s.pool;
  if ((pool.flags[pfn] & F_KIND) === KIND_ZERO) return;
  if (!(pool.refcount[pfn] > 0)) fail(`put_page on pfn ${pfn} with refcount ${pool.refcount[pfn]}`, 'refcount-balance');
  pool.refcount[pfn] -= 1;
  if (pool.refcount[pfn] === 0) freeFrame(s, pfn);
}

function freeFrame(s: ImplState, pfn: number): void {
  const pool = s.pool;
  if (!(pool.mapcount[pfn] === 0)) fail(`pfn ${pfn} freed while mapped (mapcount ${pool.mapcount[pfn]})`, 'refcount-balance');
  if (!(pool.pins(pfn) === 0)) fail(`pfn ${pfn} freed while pinned (pincount ${pool.pins(pfn)})`, 'refcount-balance');
  if (!(pool.swapSlot(pfn) === -1)) fail(`freeing pfn ${pfn} still in swap cache slot ${pool.swapSlot(pfn)}`);
  if (!(pool.file(pfn) === -1)) fail(`freeing pfn ${pfn} still in page cache of file ${pool.file(pfn)}`);
  s.lru.del(pfn);
  pool.release(pfn);
}

/** The pfn was handed to a driver: when freed it is quarantined, so stale uses see its last value. */
export function exposePfn(s: ImplState, pfn: number): void {
  if (s.pool.wasAllocated(pfn)) s.pool.flags[pfn] |= F_EXPOSED;
}

/** The value a kernel access through the direct map sees, also for a freed frame. */
export function pfnValue(s: ImplState, pfn: number): number {
  if (!(s.pool.wasAllocated(pfn))) fail(`pfn ${pfn} was never allocated`);
  return s.pool.value[pfn];
}

/**
 * Store through a PTE or the direct map (a remote or driver write); a freed frame is written
 * too, and so is the zero page when a driver mapped it writable (the zero-page invariant
 * reports that), as model/frames.ts does: the store dirties no page (a special PTE's dirty
 * bit never reaches one; a normal PTE's does at zap or try_to_unmap).
 */
export function setPfnValue(s: ImplState, pfn: number, value: number): void {
  if (!(s.pool.wasAllocated(pfn))) fail(`pfn ${pfn} was never allocated`);
  s.pool.value[pfn] = value;
}

/**
 * folio_mark_dirty_lock / unpin_user_pages_dirty_lock after a GUP write: the store itself
 * dirties only a PTE (setPfnValue), as model/frames.ts markGupDirty.
 */
export function markGupDirty(s: ImplState, pfn: number): void {
  if (pfn === s.zeroPfn) return;
  s.pool.flags[frameOf(s, pfn)] |= F_DIRTY;
}

/** mm_counter(): which RSS counter a mapped frame is accounted in. */
export function rssCounterOf(s: ImplState, pfn: number): keyof RssCounters {
  const kind = s.pool.flags[pfn] & F_KIND;
  if (kind === KIND_ANON) return 'anon';
  if (kind === KIND_SHMEM) return 'shmem';
  return 'file';
}
