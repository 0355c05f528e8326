/**
 * Invariants over counters and structure: RSS counters match the page tables, swap slot
 * counts match the entries that name them, VMAs are well formed with PTEs only inside
 * them, and nothing is left over once every process has exited and every fd is closed.
 */
import { referenceHolds } from './holds.ts';
import type { KernelInspect, VmaView } from '../../kernel-api/state.ts';
import type { Invariant } from './types.ts';
import { list } from './snapshot.ts';
import { hex } from '../../kernel-api/format.ts';

export const rssCounters: Invariant = {
  id: 'rss-counters',
  holds: 'per-mm RSS counters match the page table; all zero after exit',
  causes: ['anon', 'file', 'shmem', 'swap'].map((c) => ({ id: c, title: `MM_${c === 'swap' ? 'SWAPENTS' : `${c.toUpperCase()}PAGES`} counter does not match the page table` })),
  check({ k, census }) {
    for (const p of k.processes()) {
      if (census.stale.has(p.pid)) continue;
      const want = census.rss.get(p.pid)!;
      const have = p.rss;
      const key = have.anon !== want.anon ? 'anon' : have.file !== want.file ? 'file' : have.shmem !== want.shmem ? 'shmem' : have.swap !== want.swap ? 'swap' : null;
      if (key !== null) {
        return { invariant: 'rss-counters', cause: key, pid: p.pid, message: `P${p.pid} (${p.state}): ${key} counter is ${have[key]} but the page table has ${want[key]}` };
      }
    }
    return null;
  },
};

export const swapAccounting: Invariant = {
  id: 'swap-accounting',
  holds: "each swap slot's count equals the swap PTEs and shmem entries that name it; its cache frame points back",
  causes: [
    { id: 'count', title: "swap slot's swap_map count does not match the entries naming it" },
    { id: 'cache-backpointer', title: "swap cache frame of a slot does not point back" },
    { id: 'unused-slot', title: 'swap slot allocated but unused' },
    { id: 'frame-backpointer', title: 'page claims a swap cache slot that does not cache it' },
  ],
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
        return { invariant: 'swap-accounting', cause: 'count', message: `swap slot ${slot.slot}: count ${slot.count} but ${named} entries name it` };
      }
      if (slot.cachePfn !== -1) {
        const f = k.frame(slot.cachePfn);
        if (f === undefined || f.swapSlot !== slot.slot) {
          return { invariant: 'swap-accounting', cause: 'cache-backpointer', pfn: slot.cachePfn, message: `swap slot ${slot.slot} caches pfn ${slot.cachePfn}, which does not point back` };
        }
      } else if (slot.count === 0) {
        return { invariant: 'swap-accounting', cause: 'unused-slot', message: `swap slot ${slot.slot} is allocated but nothing uses it` };
      }
    }
    for (const f of k.frames()) {
      if (f.swapSlot === -1) continue;
      const slot = slots.get(f.swapSlot);
      if (slot === undefined || slot.cachePfn !== f.pfn) {
        return { invariant: 'swap-accounting', cause: 'frame-backpointer', pfn: f.pfn, message: `pfn ${f.pfn} claims swap cache slot ${f.swapSlot}, which does not cache it` };
      }
    }
    return null;
  },
};

export const vmaWellformed: Invariant = {
  id: 'vma-wellformed',
  holds: 'VMAs are sorted, disjoint, non-empty and inside user space; PTEs lie only inside VMAs, special ones only in VM_PFNMAP or VM_MIXEDMAP VMAs',
  causes: [
    { id: 'empty', title: 'empty VMA' },
    { id: 'overlap', title: 'VMAs overlap or are out of order' },
    { id: 'outside-user', title: 'VMA outside user space' },
    { id: 'exited-with-vmas', title: 'exited mm still has VMAs' },
    { id: 'pte-outside-vma', title: 'PTE outside every VMA' },
    { id: 'special-pte-normal-vma', title: 'special PTE in a VMA without VM_PFNMAP or VM_MIXEDMAP' },
    { id: 'page-pte-pfnmap', title: 'a page mapped by a normal PTE in a VM_PFNMAP VMA' },
  ],
  check({ k, config }) {
    for (const p of k.processes()) {
      let prevEnd = -1;
      const vmas = list(k.vmas(p.pid));
      for (const v of vmas) {
        const bad = v.start >= v.end ? 'is empty' : v.start < prevEnd ? 'overlaps or is out of order' :
          v.start < 0 || v.end > config.taskSizePages ? 'lies outside user space' : '';
        const cause = v.start >= v.end ? 'empty' : v.start < prevEnd ? 'overlap' : 'outside-user';
        if (bad !== '') return { invariant: 'vma-wellformed', cause, pid: p.pid, addr: v.start, message: `P${p.pid} map#${v.id} [${hex(v.start)}, ${hex(v.end)}) ${bad}` };
        prevEnd = v.end;
      }
      if (p.state === 'exited' && vmas.length > 0) return { invariant: 'vma-wellformed', cause: 'exited-with-vmas', pid: p.pid, message: `exited P${p.pid} still has ${vmas.length} VMAs` };
      let i = 0;
      for (const [addr, pte] of k.ptes(p.pid)) {
        while (i < vmas.length && vmas[i].end <= addr) i++;
        if (i === vmas.length || vmas[i].start > addr) {
          return { invariant: 'vma-wellformed', cause: 'pte-outside-vma', pid: p.pid, addr, message: `P${p.pid} has a PTE at ${hex(addr)} outside every VMA` };
        }
        if (pte.kind === 'present') {
          const bad = specialPteMisplaced(k, vmas[i], pte.pfn, pte.special);
          if (bad !== null) return { invariant: 'vma-wellformed', cause: bad.cause, pid: p.pid, addr, pfn: pte.pfn, message: `P${p.pid} map#${vmas[i].id} at ${hex(addr)}: ${bad.message}` };
        }
      }
    }
    return null;
  },
};

/**
 * Special PTEs and VMA flags as vm_normal_page relies on them (mm/memory.c): a special PTE
 * (no struct page to count: remap_pfn_range, vmf_insert_pfn) only in a VM_PFNMAP or
 * VM_MIXEDMAP VMA, the zero page aside — elsewhere vm_normal_page would take the pfn for a
 * page and refcount, rmap and dirty it ("Bad page map"); and in a VM_PFNMAP VMA that is not
 * VM_MIXEDMAP no page but a COW copy (anonymous) under a normal PTE — vm_insert_page refuses
 * a VM_PFNMAP VMA (BUG_ON) and makes it VM_MIXEDMAP.
 */
function specialPteMisplaced(k: KernelInspect, vma: VmaView, pfn: number, special: boolean): { cause: string; message: string } | null {
  if (pfn === k.zeroPfn) return null;
  if (special && !vma.pfnmap && !vma.mixedmap) {
    return { cause: 'special-pte-normal-vma', message: `special PTE of pfn ${pfn} in a VMA without VM_PFNMAP or VM_MIXEDMAP (vm_normal_page would treat it as a page)` };
  }
  if (!special && vma.pfnmap && !vma.mixedmap) {
    const kind = k.frame(pfn)?.kind;
    if (kind !== undefined && kind !== 'anon') {
      return { cause: 'page-pte-pfnmap', message: `${kind} page pfn ${pfn} mapped by a normal PTE in a VM_PFNMAP VMA (only a COW copy may be)` };
    }
  }
  return null;
}

export const noLeak: Invariant = {
  id: 'no-leak',
  holds: 'once every process has exited and every fd is closed, only the zero page, page cache of existing files, and nothing else is in use',
  // Which holder leaked: a page a driver structure still holds (its list was never
  // released), a pin, a swap cache or page cache reference, a reference nobody names, or
  // an object (slab, swap slot, shmem inode, notifier).
  causes: [
    { id: 'page:driver-hold', title: 'page leaked: a driver structure still holds it after everything exited' },
    { id: 'page:pin', title: 'page leaked: still pinned after everything exited' },
    { id: 'page:swap-cache', title: 'page leaked in the swap cache' },
    { id: 'page:page-cache', title: 'page cache page leaked with an extra reference' },
    { id: 'page:unnamed-ref', title: 'page leaked: a reference nobody names' },
    { id: 'swap-slot', title: 'swap slot leaked' },
    { id: 'shmem-object', title: 'shmem object leaked' },
    { id: 'slab-object', title: 'slab object leaked' },
    { id: 'notifier', title: 'MMU notifier left registered' },
  ],
  check({ k }) {
    for (const p of k.processes()) if (p.state === 'running') return null;
    if (k.openFdCount() > 0) return null;
    const files = new Set<number>();
    for (const f of k.files()) if (!f.shmem) files.add(f.id);
    for (const f of k.frames()) {
      if (f.kind === 'zero' || (f.file !== -1 && files.has(f.file) && f.swapSlot === -1 && f.refcount === 1)) continue;
      const holders = [...referenceHolds(k)].filter((h) => h.pfn === f.pfn).map((h) => h.holder);
      const cause = holders.length > 0 ? 'page:driver-hold' : f.pincount > 0 ? 'page:pin' : f.swapSlot !== -1 ? 'page:swap-cache' : f.file !== -1 ? 'page:page-cache' : 'page:unnamed-ref';
      return {
        invariant: 'no-leak', cause, pfn: f.pfn,
        message: `pfn ${f.pfn} (${f.kind}, refcount ${f.refcount}, pincount ${f.pincount}) is still in use after everything exited` +
          (holders.length > 0 ? `: ${holders.join(', ')} still holds it, never released` : cause === 'page:unnamed-ref' ? ': a reference nobody holds any more' : ''),
      };
    }
    for (const slot of k.swapSlots()) return { invariant: 'no-leak', cause: 'swap-slot', message: `swap slot ${slot.slot} is still in use after everything exited` };
    for (const f of k.files()) if (f.shmem) return { invariant: 'no-leak', cause: 'shmem-object', message: `shmem object ${f.id} is still alive after everything exited` };
    for (const obj of k.slabObjects()) return { invariant: 'no-leak', cause: 'slab-object', message: `slab object ${obj.id} (${obj.tag}) is still allocated after everything exited` };
    if (k.notifierCount() > 0) return { invariant: 'no-leak', cause: 'notifier', message: `${k.notifierCount()} MMU notifiers are still registered after everything exited` };
    return null;
  },
};
