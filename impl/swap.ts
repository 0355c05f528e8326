/**
 * Swap: slots with a use count (swap_map) and a swap cache (mm/swap_state.c,
 * mm/swapfile.c), over the swap map. A slot lives while its count or its swap cache frame
 * does; free_swap_and_cache and folio_free_swap drop the cache frame once unused.
 */
import { F_FRESH } from './framepool.ts';
import type { ImplState } from './types.ts';
import { fail } from './assert.ts';
import { putPage, shouldFailAlloc } from './frames.ts';
import { COVER } from '../kernel-api/coverage.ts';

export function assertSlot(s: ImplState, slot: number): number {
  if (!(s.swap.isLive(slot))) fail(`swap slot ${slot} is not allocated`);
  return slot;
}

/** get_swap_page: a fresh slot with count 0, or -1 when swap is full or allocation fails. */
export function allocSwapSlot(s: ImplState, value: number): number {
  if (s.swap.liveCount >= s.config.swapSlotsMax) return -1;
  if (shouldFailAlloc(s)) return -1;
  return s.swap.alloc(value);
}

/** add_to_swap_cache: the cache holds one reference on the frame. */
export function addToSwapCache(s: ImplState, pfn: number, slot: number): void {
  if (!(s.pool.swapSlot(pfn) === -1)) fail(`pfn ${pfn} already in swap cache`);
  if (!(s.swap.cachePfn[slot] === -1)) fail(`slot ${slot} already caches pfn ${s.swap.cachePfn[slot]}`);
  s.pool.owner[pfn] = slot;
  s.swap.cachePfn[slot] = pfn;
  s.pool.refcount[pfn] += 1;
  s.pool.flags[pfn] &= ~F_FRESH;
}

function deleteFromSwapCache(s: ImplState, pfn: number): void {
  const slot = assertSlot(s, s.pool.swapSlot(pfn));
  s.swap.cachePfn[slot] = -1;
  s.pool.owner[pfn] = -1;
  if (s.swap.count[slot] === 0) s.swap.release(slot);
  putPage(s, pfn);
}

/** folio_free_swap: drop a swap cache copy no swap entry names any more. */
export function folioFreeSwap(s: ImplState, pfn: number): boolean {
  const slot = s.pool.swapSlot(pfn);
  if (slot === -1) return false;
  if (s.swap.count[assertSlot(s, slot)] > 0) return false;
  s.locks.cover(COVER.folioFreeSwap);
  deleteFromSwapCache(s, pfn);
  return true;
}

/** free_swap_and_cache: one swap entry is gone. */
export function freeSwapAndCache(s: ImplState, slot: number): void {
  s.locks.cover(COVER.freeSwapAndCache);
  assertSlot(s, slot);
  if (!(s.swap.count[slot] > 0)) fail(`swap slot ${slot} freed with count ${s.swap.count[slot]}`);
  s.swap.count[slot] -= 1;
  if (s.swap.count[slot] > 0) return;
  const pfn = s.swap.cachePfn[slot];
  if (pfn === -1) {
    s.swap.release(slot);
    return;
  }
  if (!(s.pool.isLive(pfn))) fail(`swap cache pfn ${pfn} of slot ${slot} is not live`);
  if (s.pool.mapcount[pfn] === 0 && s.pool.refcount[pfn] === 1) deleteFromSwapCache(s, pfn);
}

/** swap_duplicate: fork copies a swap entry. */
export function swapDuplicate(s: ImplState, slot: number): void {
  s.swap.count[assertSlot(s, slot)] += 1;
}
