/**
 * Deliberate corruptions of the model's state, one per invariant, for the tests that show
 * each invariant can fail. Each changes exactly one fact and nothing that would also break
 * another invariant.
 */
import type { Corruption } from '../kernel-api/kernel.ts';
import type { ModelState } from './types.ts';
import { assert } from './assert.ts';
import { allocFrame, frameOf } from './frames.ts';
import { slotOf } from './swap.ts';

function processOf(s: ModelState, pid: number) {
  const proc = s.processes.get(pid);
  assert(proc !== undefined, `corruption names unknown P${pid}`);
  return proc;
}

export function corruptModel(s: ModelState, c: Corruption): void {
  switch (c.kind) {
    case 'leak-ref': frameOf(s, c.pfn).refcount += 1; return;
    case 'skew-mapcount': frameOf(s, c.pfn).mapcount += 1; return;
    case 'set-value': frameOf(s, c.pfn).value = c.value; return;
    case 'skew-rss': processOf(s, c.pid).mm.rss.anon += 1; return;
    case 'skew-swap-count': slotOf(s, c.slot).count += 1; return;
    case 'skip-ptrace-check': s.skipPtraceCheck = true; return;
    case 'skip-fork-dma-copy': s.skipForkDmaCopy = true; return;
    case 'oom-reap-no-notifier': s.oomReapNoNotifier = true; return;
    case 'free-under-pte': {
      // The frame vanishes as if put_page had freed it; the PTE and its accounting stay.
      const pte = processOf(s, c.pid).mm.ptes.get(c.addr);
      assert(pte?.kind === 'present', `no present PTE at ${c.addr} of P${c.pid}`);
      const frame = frameOf(s, pte.pfn);
      s.frames.delete(frame.pfn);
      s.freed.set(frame.pfn, frame);
      return;
    }
    case 'make-writable': {
      const pte = processOf(s, c.pid).mm.ptes.get(c.addr);
      assert(pte?.kind === 'present', `no present PTE at ${c.addr} of P${c.pid}`);
      pte.write = true;
      return;
    }
    case 'pte-outside-vma': {
      const mm = processOf(s, c.pid).mm;
      const pte = mm.ptes.get(c.addr);
      assert(pte !== undefined, `no PTE at ${c.addr} of P${c.pid}`);
      mm.ptes.delete(c.addr);
      mm.ptes.set(c.to, pte);
      return;
    }
    case 'set-vma-prot': {
      const vma = processOf(s, c.pid).mm.vmas.find((v) => v.start <= c.addr && c.addr < v.end);
      assert(vma !== undefined, `no VMA at ${c.addr} of P${c.pid}`);
      vma.prot = c.prot;
      return;
    }
    case 'leak-frame': {
      const frame = allocFrame(s, 'anon', 0xdead);
      assert(frame !== null, 'leak-frame allocation failed');
      s.strayHolds.set(frame.pfn, 'leaked-by-corruption');
      return;
    }
  }
}
