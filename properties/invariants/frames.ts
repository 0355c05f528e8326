/**
 * Invariants over frames and the PTEs that map them: references balance, mapcount agrees
 * with the page tables, no PTE names a freed frame, an anonymous page mapped writable is
 * mapped once, and the zero page stays zero and read-only.
 */
import type { Invariant, Violation } from './types.ts';
import { hex } from '../../kernel-api/format.ts';
import { referenceHolds } from './holds.ts';

/** Driver holds by pfn: references and pins a driver's own data structures name, and each pipe buffer's reference. */
function holdsByPfn(ctx: Parameters<Invariant['check']>[0]): Map<number, { refs: number; pins: number; holders: string[] }> {
  const holds = new Map<number, { refs: number; pins: number; holders: string[] }>();
  for (const h of referenceHolds(ctx.k)) {
    const entry = holds.get(h.pfn) ?? { refs: 0, pins: 0, holders: [] };
    entry.refs += h.refs;
    entry.pins += h.pins;
    entry.holders.push(h.holder);
    holds.set(h.pfn, entry);
  }
  return holds;
}

export const refcountBalance: Invariant = {
  id: 'refcount-balance',
  holds: "every frame's refcount equals the references that can be named: mappings, pins, page cache, swap cache, driver holds",
  // Which holder is wrong: a reference nobody names leaked (a pin list freed with its pages
  // still on it), or a named holder let go of more than it took.
  causes: [
    { id: 'freed-while-held', title: 'driver (or pipe buffer) holds a page that was freed' },
    { id: 'leaked-ref', title: 'page reference leaked: no PTE, cache or driver structure names it' },
    { id: 'over-released:driver-hold', title: 'driver hold over-released' },
    { id: 'over-released:swap-cache', title: 'swap cache reference over-released' },
    { id: 'over-released:page-cache', title: 'page cache reference over-released' },
    { id: 'over-released:pte', title: 'mapped page over-released' },
    { id: 'leaked-pin', title: 'FOLL_PIN pin leaked' },
    { id: 'over-unpinned', title: 'page unpinned more than pinned' },
    { id: 'zero-refcount', title: 'live page with refcount zero' },
  ],
  check(ctx) {
    const { k, census } = ctx;
    const holds = holdsByPfn(ctx);
    for (const [pfn, h] of holds) {
      if (pfn !== k.zeroPfn && k.frame(pfn) === undefined) {
        return { invariant: 'refcount-balance', cause: 'freed-while-held', pfn, message: `pfn ${pfn} is held by ${h.holders.join(', ')} but was freed` };
      }
    }
    for (const f of k.frames()) {
      if (f.kind === 'zero') continue;
      const use = census.frames.get(f.pfn);
      const held = holds.get(f.pfn) ?? { refs: 0, pins: 0, holders: [] };
      const named = (use?.normal ?? 0) + (f.file !== -1 ? 1 : 0) + (f.swapSlot !== -1 ? 1 : 0) + held.refs + held.pins;
      if (f.refcount !== named) {
        const where = use ? ` (mapped first by P${use.firstPid} at ${hex(use.firstAddr)})` : '';
        const cause = f.refcount > named ? 'leaked-ref' : held.refs + held.pins > 0 ? 'over-released:driver-hold'
          : f.swapSlot !== -1 ? 'over-released:swap-cache' : f.file !== -1 ? 'over-released:page-cache' : 'over-released:pte';
        return {
          invariant: 'refcount-balance', cause, pfn: f.pfn, pid: use?.firstPid, addr: use?.firstAddr,
          message: `pfn ${f.pfn}${where}: refcount ${f.refcount} but ${named} references can be named ` +
            `(${use?.normal ?? 0} PTEs, ${f.file !== -1 ? 1 : 0} page cache, ${f.swapSlot !== -1 ? 1 : 0} swap cache, ` +
            `${held.refs} driver refs, ${held.pins} driver pins)` +
            (cause === 'leaked-ref' ? `: ${f.refcount - named} reference${f.refcount - named === 1 ? '' : 's'} nobody holds any more leaked` : `: ${named - f.refcount} too few, a ${cause.slice('over-released:'.length).replace('-', ' ')} reference was dropped twice`),
        };
      }
      if (f.pincount !== held.pins) {
        return { invariant: 'refcount-balance', cause: f.pincount > held.pins ? 'leaked-pin' : 'over-unpinned', pfn: f.pfn, message: `pfn ${f.pfn}: pincount ${f.pincount} but drivers name ${held.pins} pins` };
      }
      if (f.refcount <= 0) {
        return { invariant: 'refcount-balance', cause: 'zero-refcount', pfn: f.pfn, message: `pfn ${f.pfn} is live with refcount ${f.refcount}` };
      }
    }
    return null;
  },
};

export const mapcount: Invariant = {
  id: 'mapcount',
  holds: "a frame's mapcount equals the non-special PTEs that map it",
  causes: [
    { id: 'too-high', title: 'mapcount above the PTEs that map the page (a missed page_remove_rmap)' },
    { id: 'too-low', title: 'mapcount below the PTEs that map the page (a missed page_add_rmap)' },
  ],
  check({ k, census }) {
    for (const f of k.frames()) {
      if (f.kind === 'zero') continue;
      const use = census.frames.get(f.pfn);
      const normal = use?.normal ?? 0;
      if (f.mapcount !== normal) {
        return {
          invariant: 'mapcount', cause: f.mapcount > normal ? 'too-high' : 'too-low', pfn: f.pfn, pid: use?.firstPid, addr: use?.firstAddr,
          message: `pfn ${f.pfn}: mapcount ${f.mapcount} but ${normal} PTEs map it` + (use ? ` (first P${use.firstPid} at ${hex(use.firstAddr)})` : ''),
        };
      }
    }
    return null;
  },
};

export const noStalePte: Invariant = {
  id: 'no-stale-pte',
  holds: 'no PTE, special ones included, points at a freed frame or a free swap slot',
  causes: [
    { id: 'freed-frame:special', title: 'special PTE (PFN map) maps a freed page' },
    { id: 'freed-frame:normal', title: 'PTE maps a freed page' },
    { id: 'free-swap-slot', title: 'swap PTE names a free swap slot' },
  ],
  check({ k, census }) {
    for (const [pfn, use] of census.frames) {
      if (pfn !== k.zeroPfn && k.frame(pfn) === undefined) {
        return {
          invariant: 'no-stale-pte', cause: use.special > 0 ? 'freed-frame:special' : 'freed-frame:normal', pfn, pid: use.firstPid, addr: use.firstAddr,
          message: `P${use.firstPid} at ${hex(use.firstAddr)} maps pfn ${pfn}, which was freed (${use.normal} normal, ${use.special} special PTEs)`,
        };
      }
    }
    const slots = new Set<number>();
    for (const slot of k.swapSlots()) slots.add(slot.slot);
    for (const [slot] of census.swapPtes) {
      if (!slots.has(slot)) return { invariant: 'no-stale-pte', cause: 'free-swap-slot', message: `a swap PTE names slot ${slot}, which is free` };
    }
    return null;
  },
};

export const exclusiveAnon: Invariant = {
  id: 'exclusive-anon',
  // Mappings through rmap count; special PTEs (PFN maps) are judged by remote-coherence.
  holds: 'an anonymous frame mapped writable is mapped by exactly one PTE, and is PageAnonExclusive',
  causes: [
    { id: 'shared-writable', title: 'anonymous page mapped writable by more than one PTE' },
    { id: 'not-exclusive', title: 'anonymous page mapped writable without PageAnonExclusive' },
  ],
  check({ k, census }) {
    for (const [pfn, use] of census.frames) {
      if (use.writable === 0) continue;
      const f = k.frame(pfn);
      if (f === undefined || f.kind !== 'anon') continue;
      const mappings = use.normal;
      const v: Violation = { invariant: 'exclusive-anon', cause: mappings !== 1 ? 'shared-writable' : 'not-exclusive', pfn, pid: use.firstPid, addr: use.firstAddr, message: '' };
      if (mappings !== 1) return { ...v, message: `anonymous pfn ${pfn} is mapped writable and ${mappings} times (first P${use.firstPid} at ${hex(use.firstAddr)})` };
      if (!f.anonExclusive) return { ...v, message: `anonymous pfn ${pfn} is mapped writable by P${use.firstPid} at ${hex(use.firstAddr)} but is not exclusive` };
    }
    return null;
  },
};

/**
 * pin-coherence: a FOLL_PIN pin on an anonymous page is a view of what the process maps
 * there, and Linux keeps it one (the PageAnonExclusive rules, mm/gup.c and mm/memory.c):
 * GUP unshares a COW-shared page before it pins it (gup_must_unshare), fork copies a
 * maybe-pinned exclusive page for the child at once instead of sharing it
 * (page_needs_cow_for_dma, copy_present_page), and reclaim does not unmap it
 * (folio_try_share_anon_rmap_pte refuses). So while it is mapped at all, a pinned anonymous
 * page is mapped by one PTE and is PageAnonExclusive; were it shared, the next write by
 * either side would COW it away from the pin (CVE-2020-29374's class, 70e806e4e645).
 */
export const pinCoherence: Invariant = {
  id: 'pin-coherence',
  holds: 'a FOLL_PIN-pinned anonymous page that is mapped is mapped by one PTE and PageAnonExclusive, so the pin sees what the process maps',
  causes: [
    { id: 'shared', title: 'pinned anonymous page mapped by more than one PTE (fork did not copy it early, or it was pinned shared)' },
    { id: 'not-exclusive', title: 'pinned anonymous page mapped without PageAnonExclusive' },
    { id: 'write-pin-zero-page', title: 'a FOLL_WRITE reference a driver holds is on the zero page (GUP did not break COW first)' },
  ],
  check({ k, census }) {
    for (const h of k.driverHolds()) {
      if (h.forWrite === true && h.pfn === k.zeroPfn) {
        return {
          invariant: 'pin-coherence', cause: 'write-pin-zero-page', pfn: h.pfn,
          message: `${h.holder} holds the zero page (pfn ${h.pfn}) by a FOLL_WRITE GUP: a write fault should have given it its own page first`,
        };
      }
    }
    for (const [pfn, use] of census.frames) {
      if (use.normal === 0) continue;
      const f = k.frame(pfn);
      if (f === undefined || f.kind !== 'anon' || f.pincount === 0) continue;
      const where = `first P${use.firstPid} at ${hex(use.firstAddr)}`;
      if (use.normal > 1) {
        return {
          invariant: 'pin-coherence', cause: 'shared', pfn, pid: use.firstPid, addr: use.firstAddr,
          message: `anonymous pfn ${pfn}, pinned ${f.pincount}× (FOLL_PIN), is mapped by ${use.normal} PTEs (${where}): a write will COW it away from the pin`,
        };
      }
      if (!f.anonExclusive) {
        return {
          invariant: 'pin-coherence', cause: 'not-exclusive', pfn, pid: use.firstPid, addr: use.firstAddr,
          message: `anonymous pfn ${pfn}, pinned ${f.pincount}× (FOLL_PIN), is mapped (${where}) but not PageAnonExclusive`,
        };
      }
    }
    return null;
  },
};

export const zeroPage: Invariant = {
  id: 'zero-page',
  holds: 'the zero page stays zero and is never mapped writable',
  causes: [
    { id: 'written', title: 'the zero page was written' },
    { id: 'mapped-writable', title: 'the zero page is mapped writable' },
  ],
  check({ k, census }) {
    const zero = k.frame(k.zeroPfn);
    if (zero === undefined || zero.value !== 0) return { invariant: 'zero-page', cause: 'written', pfn: k.zeroPfn, message: `the zero page holds ${zero?.value}` };
    const use = census.frames.get(k.zeroPfn);
    if (use !== undefined && use.writable + use.writableSpecial > 0) {
      return { invariant: 'zero-page', cause: 'mapped-writable', pfn: k.zeroPfn, pid: use.firstPid, message: `the zero page is mapped writable ${use.writable + use.writableSpecial} times (first P${use.firstPid} at ${hex(use.firstAddr)})` };
    }
    return null;
  },
};
