/**
 * Invariants over counters and structure: RSS counters match the page tables, swap slot
 * counts match the entries that name them, VMAs are well formed with PTEs only inside
 * them, and nothing is left over once every process has exited and every fd is closed.
 */
import type { Invariant } from './types.ts';
import { list } from './snapshot.ts';
import { hex } from '../../kernel-api/format.ts';

export const rssCounters: Invariant = {
  id: 'rss-counters',
  holds: 'per-mm RSS counters match the page table; all zero after exit',
  check({ k, census }) {
    for (const p of k.processes()) {
      if (census.stale.has(p.pid)) continue;
      const want = census.rss.get(p.pid)!;
      const have = p.rss;
      const key = have.anon !== want.anon ? 'anon' : have.file !== want.file ? 'file' : have.shmem !== want.shmem ? 'shmem' : have.swap !== want.swap ? 'swap' : null;
      if (key !== null) {
        return { invariant: 'rss-counters', pid: p.pid, message: `P${p.pid} (${p.state}): ${key} counter is ${have[key]} but the page table has ${want[key]}` };
      }
    }
    return null;
  },
};

export const swapAccounting: Invariant = {
  id: 'swap-accounting',
  holds: "each swap slot's count equals the swap PTEs and shmem entries that name it; its cache frame points back",
  check({ k, census }) {
    const shmemRefs = new Map<number, number>();
    for (const f of k.files()) {
      for (const [, slot] of k.shmemSwap(f.id)) shmemRefs.set(slot, (shmemRefs.get(slot) ?? 0) + 1);
    }
    const slots = new Map<number, { cachePfn: number }>();
    for (const slot of k.swapSlots()) {
      slots.set(slot.slot, slot);
      const named = (census.swapPtes.get(slot.slot) ?? 0) + (shmemRefs.get(slot.slot) ?? 0);
      if (slot.count !== named) {
        return { invariant: 'swap-accounting', message: `swap slot ${slot.slot}: count ${slot.count} but ${named} entries name it` };
      }
      if (slot.cachePfn !== -1) {
        const f = k.frame(slot.cachePfn);
        if (f === undefined || f.swapSlot !== slot.slot) {
          return { invariant: 'swap-accounting', pfn: slot.cachePfn, message: `swap slot ${slot.slot} caches pfn ${slot.cachePfn}, which does not point back` };
        }
      } else if (slot.count === 0) {
        return { invariant: 'swap-accounting', message: `swap slot ${slot.slot} is allocated but nothing uses it` };
      }
    }
    for (const f of k.frames()) {
      if (f.swapSlot === -1) continue;
      const slot = slots.get(f.swapSlot);
      if (slot === undefined || slot.cachePfn !== f.pfn) {
        return { invariant: 'swap-accounting', pfn: f.pfn, message: `pfn ${f.pfn} claims swap cache slot ${f.swapSlot}, which does not cache it` };
      }
    }
    return null;
  },
};

export const vmaWellformed: Invariant = {
  id: 'vma-wellformed',
  holds: 'VMAs are sorted, disjoint, non-empty and inside user space; PTEs lie only inside VMAs',
  check({ k, config }) {
    for (const p of k.processes()) {
      let prevEnd = -1;
      const vmas = list(k.vmas(p.pid));
      for (const v of vmas) {
        const bad = v.start >= v.end ? 'is empty' : v.start < prevEnd ? 'overlaps or is out of order' :
          v.start < 0 || v.end > config.taskSizePages ? 'lies outside user space' : '';
        if (bad !== '') return { invariant: 'vma-wellformed', pid: p.pid, addr: v.start, message: `P${p.pid} map#${v.id} [${hex(v.start)}, ${hex(v.end)}) ${bad}` };
        prevEnd = v.end;
      }
      if (p.state === 'exited' && vmas.length > 0) return { invariant: 'vma-wellformed', pid: p.pid, message: `exited P${p.pid} still has ${vmas.length} VMAs` };
      let i = 0;
      for (const [addr] of k.ptes(p.pid)) {
        while (i < vmas.length && vmas[i].end <= addr) i++;
        if (i === vmas.length || vmas[i].start > addr) {
          return { invariant: 'vma-wellformed', pid: p.pid, addr, message: `P${p.pid} has a PTE at ${hex(addr)} outside every VMA` };
        }
      }
    }
    return null;
  },
};

export const noLeak: Invariant = {
  id: 'no-leak',
  holds: 'once every process has exited and every fd is closed, only the zero page, page cache of existing files, and nothing else is in use',
  check({ k }) {
    for (const p of k.processes()) if (p.state === 'running') return null;
    if (k.openFdCount() > 0) return null;
    const files = new Set<number>();
    for (const f of k.files()) if (!f.shmem) files.add(f.id);
    for (const f of k.frames()) {
      if (f.kind === 'zero' || (f.file !== -1 && files.has(f.file) && f.swapSlot === -1 && f.refcount === 1)) continue;
      return { invariant: 'no-leak', pfn: f.pfn, message: `pfn ${f.pfn} (${f.kind}, refcount ${f.refcount}, pincount ${f.pincount}) is still in use after everything exited` };
    }
    for (const slot of k.swapSlots()) return { invariant: 'no-leak', message: `swap slot ${slot.slot} is still in use after everything exited` };
    for (const f of k.files()) if (f.shmem) return { invariant: 'no-leak', message: `shmem object ${f.id} is still alive after everything exited` };
    for (const obj of k.slabObjects()) return { invariant: 'no-leak', message: `slab object ${obj.id} (${obj.tag}) is still allocated after everything exited` };
    if (k.notifierCount() > 0) return { invariant: 'no-leak', message: `${k.notifierCount()} MMU notifiers are still registered after everything exited` };
    return null;
  },
};
