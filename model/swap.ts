/**
 * Swap: slots with a use count (swap_map) and a swap cache (mm/swap_state.c, mm/swapfile.c).
 * A slot lives while its count or its swap cache frame does; free_swap_and_cache and
 * folio_free_swap drop the cache frame once no swap entry names the slot.
 */
import type { Frame, ModelState, SwapSlot } from './types.ts';
import { assert } from './assert.ts';
import { frameOf, putPage, shouldFailAlloc } from './frames.ts';
import { COVER } from '../kernel-api/coverage.ts';

export function slotOf(s: ModelState, slot: number): SwapSlot {
  const entry = s.swap.get(slot);
  assert(entry !== undefined, `swap slot ${slot} is not allocated`);
  return entry;
}

/** get_swap_page: a fresh slot with count 0, or null when swap is full or allocation fails. */
export function allocSwapSlot(s: ModelState, value: number): SwapSlot | null {
  if (s.swap.size >= s.config.swapSlotsMax) return null;
  if (shouldFailAlloc(s)) return null;
  const entry: SwapSlot = { slot: s.nextSlot++, count: 0, cachePfn: -1, value };
  s.swap.set(entry.slot, entry);
  return entry;
}

/** add_to_swap_cache: the cache holds one reference on the frame. */
export function addToSwapCache(frame: Frame, entry: SwapSlot): void {
  assert(frame.swapSlot === -1, `pfn ${frame.pfn} already in swap cache`);
  assert(entry.cachePfn === -1, `slot ${entry.slot} already caches pfn ${entry.cachePfn}`);
  frame.swapSlot = entry.slot;
  entry.cachePfn = frame.pfn;
  frame.refcount += 1;
  if (frame.fresh === true) delete frame.fresh; // a swap-in folio goes on the LRU with the swap cache
}

/** Drop the frame from the swap cache (its reference too); frees the slot if unused. */
function deleteFromSwapCache(s: ModelState, frame: Frame): void {
  const entry = slotOf(s, frame.swapSlot);
  entry.cachePfn = -1;
  frame.swapSlot = -1;
  if (entry.count === 0) s.swap.delete(entry.slot);
  putPage(s, frame);
}

/**
 * folio_free_swap: when no swap entry names the frame's slot any more, the swap cache
 * copy is pointless; drop it. Returns true if it was dropped.
 */
export function folioFreeSwap(s: ModelState, frame: Frame): boolean {
  if (frame.swapSlot === -1) return false;
  if (slotOf(s, frame.swapSlot).count > 0) return false;
  s.locks.cover(COVER.folioFreeSwap);
  deleteFromSwapCache(s, frame);
  return true;
}

/**
 * free_swap_and_cache: one swap entry is gone. When it was the last and the cached frame is
 * unmapped and otherwise unreferenced, both go.
 */
export function freeSwapAndCache(s: ModelState, slot: number): void {
  s.locks.cover(COVER.freeSwapAndCache);
  const entry = slotOf(s, slot);
  assert(entry.count > 0, `swap slot ${slot} freed with count ${entry.count}`);
  entry.count -= 1;
  if (entry.count > 0) return;
  if (entry.cachePfn === -1) {
    s.swap.delete(slot);
    return;
  }
  const frame = frameOf(s, entry.cachePfn);
  if (frame.mapcount === 0 && frame.refcount === 1) deleteFromSwapCache(s, frame);
}

/** swap_duplicate: fork copies a swap entry. */
export function swapDuplicate(s: ModelState, slot: number): void {
  slotOf(s, slot).count += 1;
}

/** The value a swap entry stands for: the cached frame's if there is one, else the slot's. */
export function swapValue(s: ModelState, slot: number): number {
  const entry = slotOf(s, slot);
  return entry.cachePfn === -1 ? entry.value : frameOf(s, entry.cachePfn).value;
}
