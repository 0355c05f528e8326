/**
 * Deliberate corruptions of the optimised kernel's state, one per invariant, with the
 * same effect as model/corrupt.ts: each changes exactly one fact, so the invariant that
 * watches it — and no other — fails.
 */
import type { Corruption } from '../kernel-api/kernel.ts';
import type { ImplProcess, ImplState } from './types.ts';
import { fail } from './assert.ts';
import { allocFrame, frameOf } from './frames.ts';
import { F_EXPOSED, KIND_ANON } from './framepool.ts';
import { PTE_PRESENT, PTE_SPECIAL, PTE_WRITE } from './pagetable.ts';
import { assertSlot } from './swap.ts';

function processOf(s: ImplState, pid: number): ImplProcess {
  const proc = s.processes.get(pid);
  if (!(proc !== undefined)) fail(`corruption names unknown P${pid}`);
  return proc;
}

export function corruptImpl(s: ImplState, c: Corruption): void {
  switch (c.kind) {
    case 'leak-ref': s.pool.refcount[frameOf(s, c.pfn)] += 1; return;
    case 'skew-mapcount': s.pool.mapcount[frameOf(s, c.pfn)] += 1; return;
    case 'set-value':
      // Frames hold 32-bit values (DESIGN.md); a wider one could not be stored as given.
      if (!(c.value === c.value >>> 0)) fail(`set-value of ${c.value}: a page holds a 32-bit unsigned value`);
      s.pool.value[frameOf(s, c.pfn)] = c.value;
      return;
    case 'skew-rss': processOf(s, c.pid).mm.rss.anon += 1; return;
    case 'skew-swap-count': s.swap.count[assertSlot(s, c.slot)] += 1; return;
    case 'skip-ptrace-check': s.skipPtraceCheck = true; return;
    case 'skip-fork-dma-copy': s.skipForkDmaCopy = true; return;
    case 'oom-reap-no-notifier': s.oomReapNoNotifier = true; return;
    case 'free-under-pte': {
      // The frame vanishes as if put_page had freed it; the PTE and its accounting stay,
      // and the pfn is quarantined so the stale PTE keeps naming a freed frame.
      const pt = processOf(s, c.pid).mm.pt;
      if (!((pt.flags(c.addr) & PTE_PRESENT) !== 0)) fail(`no present PTE at ${c.addr} of P${c.pid}`);
      const pfn = frameOf(s, pt.idx(c.addr));
      s.pool.flags[pfn] |= F_EXPOSED;
      s.lru.del(pfn);
      s.pool.release(pfn);
      return;
    }
    case 'set-vma-prot': {
      const vma = processOf(s, c.pid).mm.vmas.lookup(c.addr);
      if (!(vma !== null && vma !== undefined)) fail(`no VMA at ${c.addr} of P${c.pid}`);
      vma.prot = c.prot;
      return;
    }
    case 'make-writable': {
      const pt = processOf(s, c.pid).mm.pt;
      const flags = pt.flags(c.addr);
      if (!((flags & PTE_PRESENT) !== 0)) fail(`no present PTE at ${c.addr} of P${c.pid}`);
      pt.setFlags(c.addr, flags | PTE_WRITE);
      return;
    }
    case 'pte-outside-vma': {
      const proc = processOf(s, c.pid);
      const pt = proc.mm.pt;
      const flags = pt.flags(c.addr);
      if (!(flags !== 0)) fail(`no PTE at ${c.addr} of P${c.pid}`);
      const idx = pt.idx(c.addr);
      pt.clear(c.addr);
      pt.set(c.to, idx, flags);
      if ((flags & PTE_PRESENT) !== 0 && (flags & PTE_SPECIAL) === 0) s.rmap.move(idx, proc.pid, c.addr, c.to);
      return;
    }
    case 'leak-frame': {
      const pfn = allocFrame(s, KIND_ANON, 0xdead);
      if (!(pfn !== -1)) fail('leak-frame allocation failed');
      s.strayHolds.set(pfn, 'leaked-by-corruption');
      return;
    }
  }
}
