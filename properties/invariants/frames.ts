/**
 * Invariants over frames and the PTEs that map them: references balance, mapcount agrees
 * with the page tables, no PTE names a freed frame, an anonymous page mapped writable is
 * mapped once, and the zero page stays zero and read-only.
 */
import type { Invariant, Violation } from './types.ts';
import { hex } from '../../kernel-api/format.ts';

/** Driver holds by pfn: references and pins a driver's own data structures name. */
function holdsByPfn(ctx: Parameters<Invariant['check']>[0]): Map<number, { refs: number; pins: number; holders: string[] }> {
  const holds = new Map<number, { refs: number; pins: number; holders: string[] }>();
  for (const h of ctx.k.driverHolds()) {
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
  check(ctx) {
    const { k, census } = ctx;
    const holds = holdsByPfn(ctx);
    for (const [pfn, h] of holds) {
      if (pfn !== k.zeroPfn && k.frame(pfn) === undefined) {
        return { invariant: 'refcount-balance', pfn, message: `pfn ${pfn} is held by ${h.holders.join(', ')} but was freed` };
      }
    }
    for (const f of k.frames()) {
      if (f.kind === 'zero') continue;
      const use = census.frames.get(f.pfn);
      const held = holds.get(f.pfn) ?? { refs: 0, pins: 0, holders: [] };
      const named = (use?.normal ?? 0) + (f.file !== -1 ? 1 : 0) + (f.swapSlot !== -1 ? 1 : 0) + held.refs + held.pins;
      if (f.refcount !== named) {
        const where = use ? ` (mapped first by P${use.firstPid} at ${hex(use.firstAddr)})` : '';
        return {
          invariant: 'refcount-balance', pfn: f.pfn, pid: use?.firstPid, addr: use?.firstAddr,
          message: `pfn ${f.pfn}${where}: refcount ${f.refcount} but ${named} references can be named ` +
            `(${use?.normal ?? 0} PTEs, ${f.file !== -1 ? 1 : 0} page cache, ${f.swapSlot !== -1 ? 1 : 0} swap cache, ` +
            `${held.refs} driver refs, ${held.pins} driver pins)`,
        };
      }
      if (f.pincount !== held.pins) {
        return { invariant: 'refcount-balance', pfn: f.pfn, message: `pfn ${f.pfn}: pincount ${f.pincount} but drivers name ${held.pins} pins` };
      }
      if (f.refcount <= 0) {
        return { invariant: 'refcount-balance', pfn: f.pfn, message: `pfn ${f.pfn} is live with refcount ${f.refcount}` };
      }
    }
    return null;
  },
};

export const mapcount: Invariant = {
  id: 'mapcount',
  holds: "a frame's mapcount equals the non-special PTEs that map it",
  check({ k, census }) {
    for (const f of k.frames()) {
      if (f.kind === 'zero') continue;
      const use = census.frames.get(f.pfn);
      const normal = use?.normal ?? 0;
      if (f.mapcount !== normal) {
        return {
          invariant: 'mapcount', pfn: f.pfn, pid: use?.firstPid, addr: use?.firstAddr,
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
  check({ k, census }) {
    for (const [pfn, use] of census.frames) {
      if (pfn !== k.zeroPfn && k.frame(pfn) === undefined) {
        return {
          invariant: 'no-stale-pte', pfn, pid: use.firstPid, addr: use.firstAddr,
          message: `P${use.firstPid} at ${hex(use.firstAddr)} maps pfn ${pfn}, which was freed (${use.normal} normal, ${use.special} special PTEs)`,
        };
      }
    }
    const slots = new Set<number>();
    for (const slot of k.swapSlots()) slots.add(slot.slot);
    for (const [slot] of census.swapPtes) {
      if (!slots.has(slot)) return { invariant: 'no-stale-pte', message: `a swap PTE names slot ${slot}, which is free` };
    }
    return null;
  },
};

export const exclusiveAnon: Invariant = {
  id: 'exclusive-anon',
  // Mappings through rmap count; special PTEs (PFN maps) are judged by remote-coherence.
  holds: 'an anonymous frame mapped writable is mapped by exactly one PTE, and is PageAnonExclusive',
  check({ k, census }) {
    for (const [pfn, use] of census.frames) {
      if (use.writable === 0) continue;
      const f = k.frame(pfn);
      if (f === undefined || f.kind !== 'anon') continue;
      const mappings = use.normal;
      const v: Violation = { invariant: 'exclusive-anon', pfn, pid: use.firstPid, addr: use.firstAddr, message: '' };
      if (mappings !== 1) return { ...v, message: `anonymous pfn ${pfn} is mapped writable and ${mappings} times (first P${use.firstPid} at ${hex(use.firstAddr)})` };
      if (!f.anonExclusive) return { ...v, message: `anonymous pfn ${pfn} is mapped writable by P${use.firstPid} at ${hex(use.firstAddr)} but is not exclusive` };
    }
    return null;
  },
};

export const zeroPage: Invariant = {
  id: 'zero-page',
  holds: 'the zero page stays zero and is never mapped writable',
  check({ k, census }) {
    const zero = k.frame(k.zeroPfn);
    if (zero === undefined || zero.value !== 0) return { invariant: 'zero-page', pfn: k.zeroPfn, message: `the zero page holds ${zero?.value}` };
    const use = census.frames.get(k.zeroPfn);
    if (use !== undefined && use.writable + use.writableSpecial > 0) {
      return { invariant: 'zero-page', pfn: k.zeroPfn, pid: use.firstPid, message: `the zero page is mapped writable ${use.writable + use.writableSpecial} times (first P${use.firstPid} at ${hex(use.firstAddr)})` };
    }
    return null;
  },
};
