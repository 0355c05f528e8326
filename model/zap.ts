/**
 * Tearing down PTEs (mm/memory.c zap_pte_range, unmap_mapping_range). A normal page loses
 * its mapcount and reference; a special PTE (PFN map, zero page) holds none; a swap entry
 * gives back its slot. MMU notifiers hear of the range first.
 */
import type { Frame, ModelState, Mm, Process, Pte, RssCounters } from './types.ts';
import { assert } from './assert.ts';
import { frameOf, putPage } from './frames.ts';
import { folioFreeSwap, freeSwapAndCache } from './swap.ts';
import { invalidateRangeEnd, invalidateRangeStart, type InvalidateEvent } from './notifier.ts';
import { withPtl } from './locks.ts';
import { COVER } from '../kernel-api/coverage.ts';

/** mm_counter(): which RSS counter a mapped frame is accounted in. */
export function rssCounterOf(frame: Frame): keyof RssCounters {
  if (frame.kind === 'anon') return 'anon';
  if (frame.kind === 'shmem') return 'shmem';
  return 'file';
}

/** Map `frame` at `addr` with a normal (refcounted, rmap'd) PTE; the caller holds the reference it passes in. */
export function mapFrame(mm: Mm, addr: number, frame: Frame, write: boolean, dirty: boolean): void {
  assert(!mm.ptes.has(addr), `mapping over a live PTE at ${addr}`);
  mm.ptes.set(addr, { kind: 'present', pfn: frame.pfn, write, dirty, softDirty: true, special: false, uffdWp: false });
  frame.mapcount += 1;
  if (frame.fresh === true) delete frame.fresh; // folio_add_lru_vma
  mm.rss[rssCounterOf(frame)] += 1;
}

/** Remove one PTE and drop what it held. */
export function zapPte(s: ModelState, mm: Mm, addr: number, pte: Pte): void {
  mm.ptes.delete(addr);
  if (pte.kind === 'swap') {
    s.locks.cover(COVER.zapSwapEntry);
    mm.rss.swap -= 1;
    freeSwapAndCache(s, pte.slot);
    return;
  }
  if (pte.special) {
    s.locks.cover(COVER.zapPresentPteSpecial);
    return;
  }
  s.locks.cover(COVER.zapPresentPte);
  const frame = frameOf(s, pte.pfn);
  if (pte.dirty) frame.dirty = true;
  assert(frame.mapcount > 0, `zap of pfn ${frame.pfn} at ${addr} with mapcount ${frame.mapcount}`, 'mapcount');
  frame.mapcount -= 1;
  mm.rss[rssCounterOf(frame)] -= 1;
  putPage(s, frame);
  // free_swap_cache: an unmapped anon page need not stay in swap cache.
  if (frame.refcount > 0 && frame.kind === 'anon' && frame.mapcount === 0) folioFreeSwap(s, frame);
}

/**
 * Zap every PTE of `proc` in [start, end) for which `keep` is false: the MMU notifiers
 * first (invalidate_range_start), then the PTEs under the PTL, then invalidate_range_end.
 * Non-blockable (the OOM reaper): false when a callback refused, and nothing was zapped.
 */
export function zapRange(
  s: ModelState, proc: Process, start: number, end: number, event: InvalidateEvent,
  keep: (addr: number, pte: Pte) => boolean = () => false, blockable = true,
): boolean {
  const inv = invalidateRangeStart(s, proc.pid, start, end, event, blockable);
  if (inv === null) return false;
  try {
    dropUffdWpMarkers(proc.mm, start, end);
    withPtl(s, proc.pid, 'zap_pte_range', () => {
      for (const addr of ptesIn(proc, start, end)) {
        const pte = proc.mm.ptes.get(addr)!;
        if (!keep(addr, pte)) zapPte(s, proc.mm, addr, pte);
      }
    });
  } finally {
    if (s.invalidations.includes(inv)) invalidateRangeEnd(s, inv);
  }
  return true;
}

/** zapRange with no MMU notifier told: only the corruption 'oom-reap-no-notifier' zaps so. */
export function zapUnnotified(s: ModelState, proc: Process, start: number, end: number): void {
  dropUffdWpMarkers(proc.mm, start, end);
  withPtl(s, proc.pid, 'zap_pte_range', () => {
    for (const addr of ptesIn(proc, start, end)) zapPte(s, proc.mm, addr, proc.mm.ptes.get(addr)!);
  });
}

/**
 * Zapping drops uffd-wp markers, as zap_pte_range does for anonymous VMAs. (File VMAs keep
 * them in Linux unless ZAP_FLAG_DROP_MARKER, and get new ones for zapped uffd-wp PTEs;
 * not emulated.)
 */
export function dropUffdWpMarkers(mm: Mm, start: number, end: number): void {
  for (const addr of [...mm.uffdWpMarkers]) {
    if (addr >= start && addr < end) mm.uffdWpMarkers.delete(addr);
  }
}

/** Addresses of the PTEs of `proc` in [start, end), in address order. */
export function ptesIn(proc: Process, start: number, end: number): number[] {
  return [...proc.mm.ptes.keys()].filter((a) => a >= start && a < end).sort((a, b) => a - b);
}
