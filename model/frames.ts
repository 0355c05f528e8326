/**
 * Physical frames: allocation, references and freeing (mm/page_alloc.c, mm/swap.c's
 * put_page). A frame is freed when its refcount drops to zero; the model never reuses a
 * pfn, so a stale PTE keeps pointing at a frame the `freed` map still remembers.
 */
import type { FrameKind } from '../kernel-api/state.ts';
import type { Frame, ModelState } from './types.ts';
import { assert } from './assert.ts';

/**
 * Fault injection (fail-nth): true when this allocation is the one that must fail.
 * Every allocation site in the model calls it exactly once, in a fixed order.
 */
export function shouldFailAlloc(s: ModelState): boolean {
  if (s.failNth === 0) return false;
  s.failNth -= 1;
  return s.failNth === 0;
}

/** alloc_page: a frame with refcount 1 owned by the caller, or null under fault injection. */
export function allocFrame(s: ModelState, kind: FrameKind, value: number): Frame | null {
  if (shouldFailAlloc(s)) return null;
  assert(s.frames.size < s.config.framesMax, `frames exhausted: ${s.frames.size} of framesMax ${s.config.framesMax}`);
  const frame: Frame = {
    pfn: s.nextPfn++, kind, refcount: 1, mapcount: 0, pincount: 0, dirty: false, reserved: false,
    anonExclusive: false, swapSlot: -1, file: -1, index: -1, value, lru: s.step,
  };
  if (kind === 'anon') frame.fresh = true;
  s.frames.set(frame.pfn, frame);
  return frame;
}

/** A frame the caller knows is live. */
export function frameOf(s: ModelState, pfn: number): Frame {
  const frame = s.frames.get(pfn);
  assert(frame !== undefined, `pfn ${pfn} is not a live frame`);
  return frame;
}

export function getPage(frame: Frame): void {
  assert(frame.refcount > 0, `get_page on pfn ${frame.pfn} with refcount ${frame.refcount}`);
  frame.refcount += 1;
}

/** put_page: drop one reference; the last one frees the frame. The zero page is never freed. */
export function putPage(s: ModelState, frame: Frame): void {
  if (frame.kind === 'zero') return;
  assert(frame.refcount > 0, `put_page on pfn ${frame.pfn} with refcount ${frame.refcount}`, 'refcount-balance');
  frame.refcount -= 1;
  if (frame.refcount === 0) freeFrame(s, frame);
}

function freeFrame(s: ModelState, frame: Frame): void {
  assert(frame.mapcount === 0, `pfn ${frame.pfn} freed while mapped (mapcount ${frame.mapcount})`, 'refcount-balance');
  assert(frame.pincount === 0, `pfn ${frame.pfn} freed while pinned (pincount ${frame.pincount})`, 'refcount-balance');
  assert(frame.swapSlot === -1, `freeing pfn ${frame.pfn} still in swap cache slot ${frame.swapSlot}`);
  assert(frame.file === -1, `freeing pfn ${frame.pfn} still in page cache of file ${frame.file}`);
  s.frames.delete(frame.pfn);
  s.freed.set(frame.pfn, frame);
}

/** The value a kernel access through the direct map sees, also for a freed frame. */
export function pfnValue(s: ModelState, pfn: number): number {
  const frame = s.frames.get(pfn) ?? s.freed.get(pfn);
  assert(frame !== undefined, `pfn ${pfn} was never allocated`);
  return frame.value;
}

/**
 * Store through a PTE or the direct map; a freed frame is written too, and so is the zero
 * page when a driver mapped it writable (the zero-page invariant reports that). The store
 * itself dirties no page: a store through a PTE sets the PTE's dirty bit (the caller does),
 * which reaches the folio only for a normal page, at zap or try_to_unmap
 * (zap_present_folio_ptes, try_to_unmap_one); a special PTE's never does (vm_normal_page()
 * is NULL for a PFN map or the zero page). GUP writers mark the folio dirty themselves
 * (markGupDirty), as does a driver only through set_page_dirty, which the API does not offer.
 */
export function setPfnValue(s: ModelState, pfn: number, value: number): void {
  const frame = s.frames.get(pfn) ?? s.freed.get(pfn);
  assert(frame !== undefined, `pfn ${pfn} was never allocated`);
  frame.value = value;
}

/**
 * folio_mark_dirty_lock after a write through a GUP reference (__access_remote_vm) or
 * unpin_user_pages_dirty_lock (process_vm_rw_pages): the page GUP returned is a normal one
 * (never the zero page for FOLL_WRITE; a PFN map is refused by check_vma_flags).
 */
export function markGupDirty(s: ModelState, pfn: number): void {
  if (pfn === s.zeroPfn) return;
  frameOf(s, pfn).dirty = true;
}
