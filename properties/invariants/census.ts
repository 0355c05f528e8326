/**
 * One walk over every PTE of every process, shared by the invariants of a step: who maps
 * each frame, who names each swap slot, and what each process's RSS counters should be.
 * It reads only the inspection interface, never a kernel's own counters.
 */
import type { KernelInspect, PteView, RssCounters } from '../../kernel-api/state.ts';

export type FrameUse = {
  /** Present, non-special PTEs: these hold a reference and a mapcount. */
  normal: number;
  /** Special PTEs (PFN maps, the zero page): no reference, no mapcount. */
  special: number;
  /** Normal PTEs that allow writes. */
  writable: number;
  /** Special PTEs that allow writes. */
  writableSpecial: number;
  /** The first mapping seen, for messages. */
  firstPid: number;
  firstAddr: number;
};

export type Census = {
  frames: Map<number, FrameUse>;
  /** Swap PTEs per slot. */
  swapPtes: Map<number, number>;
  /** What each process's counters should be, from its PTEs. */
  rss: Map<number, RssCounters>;
  /** Processes with a PTE on a freed frame: their counters cannot be recounted. */
  stale: Set<number>;
};

export function takeCensus(k: KernelInspect): Census {
  const census: Census = { frames: new Map(), swapPtes: new Map(), rss: new Map(), stale: new Set() };
  for (const p of k.processes()) {
    const rss: RssCounters = { anon: 0, file: 0, shmem: 0, swap: 0 };
    census.rss.set(p.pid, rss);
    for (const [addr, pte] of k.ptes(p.pid)) countPte(k, census, rss, p.pid, addr, pte);
  }
  return census;
}

function countPte(k: KernelInspect, census: Census, rss: RssCounters, pid: number, addr: number, pte: PteView): void {
  if (pte.kind === 'swap') {
    census.swapPtes.set(pte.slot, (census.swapPtes.get(pte.slot) ?? 0) + 1);
    rss.swap += 1;
    return;
  }
  let use = census.frames.get(pte.pfn);
  if (use === undefined) {
    use = { normal: 0, special: 0, writable: 0, writableSpecial: 0, firstPid: pid, firstAddr: addr };
    census.frames.set(pte.pfn, use);
  }
  if (pte.special) {
    use.special += 1;
    if (pte.write) use.writableSpecial += 1;
    return;
  }
  use.normal += 1;
  if (pte.write) use.writable += 1;
  const frame = k.frame(pte.pfn);
  if (frame === undefined) {
    census.stale.add(pid); // no-stale-pte reports it
    return;
  }
  if (frame.kind === 'anon') rss.anon += 1;
  else if (frame.kind === 'shmem') rss.shmem += 1;
  else rss.file += 1;
}
