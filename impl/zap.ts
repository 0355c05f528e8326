/**
 * Installing and tearing down PTEs (mm/memory.c: set_pte_at with the rmap and RSS updates,
 * zap_pte_range). A normal page loses its mapcount, rmap entry and reference; a special
 * PTE holds none; a swap entry gives back its slot. MMU notifiers hear of a range first.
 */
import type { ImplMm, ImplProcess, ImplState } from './types.ts';
import { fail } from './assert.ts';
import { frameOf, putPage, rssCounterOf } from './frames.ts';
import { F_DIRTY, F_FRESH, F_KIND, KIND_ANON } from './framepool.ts';
import { PTE_DIRTY, PTE_PRESENT, PTE_SOFT_DIRTY, PTE_SPECIAL, PTE_SWAP, PTE_WRITE } from './pagetable.ts';
import { folioFreeSwap, freeSwapAndCache } from './swap.ts';
import { invalidateEnd, invalidateRange, invalidateRangeNonblock, type InvalidateEvent } from './notifier.ts';
import { mmPtl } from './locks.ts';
import { COVER } from '../kernel-api/coverage.ts';

/** Map `pfn` at `addr` with a normal (refcounted, rmap'd) PTE; the caller passes in its reference. */
export function mapFrame(s: ImplState, mm: ImplMm, addr: number, pfn: number, write: boolean, dirty: boolean): void {
  if (!(mm.pt.flags(addr) === 0)) fail(`mapping over a live PTE at ${addr}`);
  mm.pt.set(addr, pfn, PTE_PRESENT | PTE_SOFT_DIRTY | (write ? PTE_WRITE : 0) | (dirty ? PTE_DIRTY : 0));
  s.pool.mapcount[pfn] += 1;
  s.pool.flags[pfn] &= ~F_FRESH; // folio_add_lru_vma
  s.rmap.add(pfn, mm.pid, addr);
  mm.rss[rssCounterOf(s, pfn)] += 1;
}

/** Remove one PTE (flags and pfn/slot as read) and drop what it held. */
export function zapPte(s: ImplState, mm: ImplMm, addr: number, flags: number, idx: number): void {
  mm.pt.clear(addr);
  if ((flags & PTE_SWAP) !== 0) {
    s.locks.cover(COVER.zapSwapEntry);
    mm.rss.swap -= 1;
    freeSwapAndCache(s, idx);
    return;
  }
  if ((flags & PTE_SPECIAL) !== 0) {
    s.locks.cover(COVER.zapPresentPteSpecial);
    return;
  }
  s.locks.cover(COVER.zapPresentPte);
  const pfn = frameOf(s, idx);
  const pool = s.pool;
  if ((flags & PTE_DIRTY) !== 0) pool.flags[pfn] |= F_DIRTY;
  if (!(pool.mapcount[pfn] > 0)) fail(`zap of pfn ${pfn} at ${addr} with mapcount ${pool.mapcount[pfn]}`, 'mapcount');
  pool.mapcount[pfn] -= 1;
  s.rmap.remove(pfn, mm.pid, addr);
  mm.rss[rssCounterOf(s, pfn)] -= 1;
  putPage(s, pfn);
  // free_swap_cache: an unmapped anon page need not stay in swap cache.
  if (pool.refcount[pfn] > 0 && (pool.flags[pfn] & F_KIND) === KIND_ANON && pool.mapcount[pfn] === 0) folioFreeSwap(s, pfn);
}

/** Zapping drops uffd-wp markers, as zap_pte_range does for anonymous VMAs (see model/zap.ts). */
export function dropUffdWpMarkers(mm: ImplMm, start: number, end: number): void {
  if (mm.uffdWpMarkers.size === 0) return;
  for (const addr of [...mm.uffdWpMarkers]) {
    if (addr >= start && addr < end) mm.uffdWpMarkers.delete(addr);
  }
}

/**
 * Zap every PTE of `proc` in [start, end): the MMU notifiers first (invalidate_range_start),
 * then the PTEs under the PTL, then invalidate_range_end. Non-blockable (the OOM reaper):
 * false when a callback refused, and nothing was zapped.
 */
export function zapRange(
  s: ImplState, proc: ImplProcess, start: number, end: number, event: InvalidateEvent, blockable = true,
  keep?: (flags: number, idx: number) => boolean,
): boolean {
  if (!blockable) {
    if (!invalidateRangeNonblock(s, proc.pid, start, end, event)) return false;
    zapPtes(s, proc.mm, start, end, keep);
    return true;
  }
  invalidateRange(s, proc.pid, start, end, event);
  const mm = proc.mm;
  zapPtes(s, mm, start, end, keep);
  return true;
}

/** The PTE part of zapRange, between invalidate_range_start and _end (which it ends). */
/** zapRange with no MMU notifier told: only the corruption 'oom-reap-no-notifier' zaps so. */
export function zapUnnotified(s: ImplState, proc: ImplProcess, start: number, end: number): void {
  zapPtes(s, proc.mm, start, end);
}

function zapPtes(s: ImplState, mm: ImplMm, start: number, end: number, keep?: (flags: number, idx: number) => boolean): void {
  dropUffdWpMarkers(mm, start, end);
  // The PTL around the zap (spin_lock: no scheduling point; an assertion inside ends the kernel anyway).
  const l = mmPtl(s, mm);
  s.locks.spinLock(l, 'zap_pte_range');
  mm.pt.forEach(start, end, (addr, flags, idx) => {
    if (keep === undefined || !keep(flags, idx)) zapPte(s, mm, addr, flags, idx);
  });
  s.locks.release(l, 'zap_pte_range');
  invalidateEnd(s, mm.pid);
}
