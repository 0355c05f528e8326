/**
 * Causes: every invariant declares the ways it can break beside its check, and a failure
 * names one of them; the signature of a repro is its strategy, invariant and cause.
 */
import { describe, expect, it } from 'vitest';
import { causeOf, causeTitle, INVARIANTS, RAISED } from '../../properties/invariants/index.ts';
import { replayOps } from '../../properties/trace.ts';
import { Session } from '../../properties/session.ts';
import { FUZZ_CONFIG } from '../../harness/config.ts';
import { procMemMmap } from '../../strategies/proc-mem-mmap.ts';
import { failureSignature } from '../../harness/repro.ts';
import type { Op } from '../../kernel-api/op.ts';
import type { InvariantId } from '../../kernel-api/strategy.ts';

const pmm = procMemMmap.prelude!(FUZZ_CONFIG);
const PAGE = FUZZ_CONFIG.mmapBasePages - 2;
const session = (kernel: 'model' | 'impl') => ({ kernel, config: FUZZ_CONFIG, strategies: [procMemMmap], only: new Set(['remote-coherence' as const]) });

describe('causes', () => {
  it('each invariant declares its causes, ids unique, each with a title', () => {
    for (const inv of [...INVARIANTS, ...RAISED]) {
      expect(inv.causes.length, inv.id).toBeGreaterThan(0);
      const ids = inv.causes.map((c) => c.id);
      expect(new Set(ids).size, inv.id).toBe(ids.length);
      for (const c of inv.causes) expect(c.title, `${inv.id}/${c.id}`).not.toBe('');
    }
  });

  for (const kernel of ['model', 'impl'] as const) {
    it(`remote-coherence tells apart which side changed and says so (${kernel})`, () => {
      // The target (P2) breaks COW on the page the mirror shows.
      const cow: Op[] = [...pmm, { op: 'write', pid: 2, addr: PAGE, value: 9 }];
      const a = replayOps(session(kernel), cow).failure!;
      expect(a.cause).toBe('cow-break:old-frame');
      expect(a.message).toMatch(new RegExp(`the mirror still maps the frame the target had before its COW break at step ${pmm.length + 1}; P2 now has pfn \\d+`));
      // The target exits: the view outlives the mm.
      const exit: Op[] = [...pmm, { op: 'exit', pid: 2 }];
      const b = replayOps(session(kernel), exit).failure!;
      expect(b.cause).toBe('exit:dead-mm');
      expect(b.message).toMatch(new RegExp(`P2 exited at step ${pmm.length + 1}`));
      // The target zaps it.
      const zap: Op[] = [...pmm, { op: 'madvise', pid: 2, addr: PAGE, lengthPages: 1, advice: 'DONTNEED' }];
      expect(replayOps(session(kernel), zap).failure!.cause).toBe('dontneed:old-frame');
      // MADV_FREE of the page once it is swapped out drops the swap entry: the free side.
      const free: Op[] = [...pmm, { op: 'reclaim', pid: 2, addr: PAGE }, { op: 'madvise', pid: 2, addr: PAGE, lengthPages: 1, advice: 'FREE' }];
      const f = replayOps(session(kernel), free).failure!;
      expect(f.cause).toBe('free:old-frame');
      expect(f.message).toMatch(new RegExp(`before MADV_FREE dropped it at step ${pmm.length + 2}; P2 now has no page there`));
      // MADV_POPULATE_WRITE breaks COW as the store does: the same flaw, not another.
      const populate: Op[] = [...pmm, { op: 'madvise', pid: 2, addr: PAGE, lengthPages: 1, advice: 'POPULATE_WRITE' }];
      expect(replayOps(session(kernel), populate).failure!.cause).toBe('cow-break:old-frame');
      // Two causes of one invariant are two signatures.
      const sig = (ops: Op[], f: { invariant: InvariantId; cause?: string; message: string }) => failureSignature({ strategy: 'proc-mem-mmap', ops, ...f });
      expect(sig(cow, a)).not.toBe(sig(exit, b));
      expect(causeTitle('remote-coherence', a.cause!)).toMatch(/COW/);
    });

    it(`remote-coherence: a hole punched in the target's file by another process is the truncate side (${kernel})`, () => {
      // P1 maps the file P2 (its child) maps, mirrors P2's page, and punches the hole itself.
      const ops: Op[] = [
        { op: 'spawn' }, { op: 'creat', sizePages: 1 },
        { op: 'mmap', pid: 1, addr: 34359738362, lengthPages: 1, prot: 1, shared: true, file: 1 },
        { op: 'fork', pid: 1 }, { op: 'read', pid: 2, addr: 34359738362 },
        { op: 'drv', strategy: 'proc-mem-mmap', call: 'open', args: { pid: 1, target: 2 } },
        { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 1, shared: false, fd: 3, pgoff: 34359738362 },
        { op: 'madvise', pid: 1, addr: 34359738362, lengthPages: 1, advice: 'REMOVE' },
      ];
      const f = replayOps(session(kernel), ops).failure!;
      expect(f.cause).toBe('truncate:old-frame');
      expect(f.message).toMatch(/the mirror still maps the frame MADV_REMOVE punched out of the page cache at step 8/);
    });

    it(`reclaim of a page GUP still holds is not incoherence: it stays in the swap cache and the target maps it again (${kernel})`, () => {
      const s = new Session(session(kernel));
      for (const op of pmm) expect(s.step(op).violation).toBeNull();
      // Reclaim unmaps the target's PTE; GUP's reference keeps the frame in the swap cache.
      expect(s.step({ op: 'reclaim', pid: 2, addr: PAGE }).violation).toBeNull();
      const pte = new Map(s.view.ptes(2)).get(PAGE)!;
      expect(pte.kind).toBe('swap');
      const shown = [...s.view.ptes(1)].find(([a]) => a === PAGE - 16)![1];
      const slot = [...s.view.swapSlots()].find((x) => pte.kind === 'swap' && x.slot === pte.slot)!;
      expect(shown.kind === 'present' && shown.pfn).toBe(slot.cachePfn);
      // The target's next access maps that same frame.
      expect(s.step({ op: 'read', pid: 2, addr: PAGE })).toEqual({ outcome: { kind: 'ok', value: 7 }, violation: null });
      const again = new Map(s.view.ptes(2)).get(PAGE)!;
      expect(again.kind === 'present' && again.pfn).toBe(slot.cachePfn);
    });
  }

  for (const kernel of ['model', 'impl'] as const) {
    it(`a piece of the mirror that mremap moved still shows the target page it carries (${kernel})`, () => {
      // P1 mirrors 4 pages of P2 at MIRROR, P2 having written the first; mremap moves the
      // first mirror page onto the fourth. It shows P2's first page there, as its vm_pgoff says.
      const TARGET = FUZZ_CONFIG.mmapBasePages - 2400, MIRROR = TARGET - 1300;
      const ops: Op[] = [
        { op: 'spawn' }, { op: 'mmap', pid: 1, addr: TARGET, lengthPages: 8, prot: 3, shared: false },
        { op: 'spawn', uid: 0 }, { op: 'write', pid: 1, addr: TARGET, value: 5 },
        { op: 'drv', strategy: 'proc-mem-mmap', call: 'open', args: { pid: 2, target: 1 } },
        { op: 'mmap', pid: 2, addr: MIRROR, lengthPages: 4, prot: 1, shared: true, fd: 3, pgoff: TARGET },
      ];
      const s = new Session(session(kernel));
      for (const op of ops) expect(s.step(op).violation).toBeNull();
      const moved = s.step({ op: 'mremap', pid: 2, addr: MIRROR, oldPages: 1, newPages: 1, maymove: true, fixed: true, newAddr: MIRROR + 3 });
      expect(moved).toEqual({ outcome: { kind: 'ok', value: MIRROR + 3 }, violation: null });
      expect(s.step({ op: 'read', pid: 2, addr: MIRROR + 3 })).toEqual({ outcome: { kind: 'ok', value: 5 }, violation: null });
      // The moved piece is still judged: the target unmapping the page it shows is incoherence.
      const f = s.step({ op: 'munmap', pid: 1, addr: TARGET, lengthPages: 1 }).violation!;
      expect(f.cause).toBe('unmap:old-frame');
      expect(f.addr).toBe(MIRROR + 3);
    });
  }

  it('names a raised failure by its message, as syzkaller titles an oops', () => {
    expect(causeOf({ invariant: 'slab', message: 'model: kfree of slab object 3 that is not allocated (double free)' })).toBe('double-free');
    expect(causeOf({ invariant: 'kernel-assert', message: 'model: swap slot 4 freed twice' })).toBe(causeOf({ invariant: 'kernel-assert', message: 'impl: swap slot 9 freed twice' }));
    expect(causeOf({ invariant: 'differential', message: 'impl threw where the model returned = 0: impl: x' }, { op: 'write', pid: 1, addr: 1, value: 1 })).toBe('threw:write');
  });
  it('a store through a mirror nested in its own process\'s exit is store-through-mirror, judged by the VMA it was made through', () => {
    // P1's thread stores through the proc-mem-mmap view of P2's private file page while P1 is
    // preempted in exit_mmap; at quiescence P1 has no VMA left, yet the store went through one.
    const ops: Op[] = [
      { op: 'spawn' }, { op: 'creat', sizePages: 1 },
      { op: 'mmap', pid: 1, addr: 34359738362, lengthPages: 1, prot: 1, shared: false, file: 1 },
      { op: 'fork', pid: 1 }, { op: 'read', pid: 2, addr: 34359738362 }, { op: 'clone', pid: 1 },
      { op: 'drv', strategy: 'proc-mem-mmap', call: 'open', args: { pid: 1, target: 2 } },
      { op: 'mmap', pid: 1, addr: 34359738348, lengthPages: 1, prot: 3, shared: true, fd: 3, pgoff: 34359738362 },
      { op: 'exit', pid: 1, switches: [{ at: 0, to: 3 }] },
      { op: 'write', pid: 1, addr: 34359738348, value: 1, tid: 3 },
    ];
    const r = replayOps({ kernel: 'model', config: FUZZ_CONFIG, strategies: [procMemMmap], only: new Set(['file-integrity'] as const) }, ops);
    expect(r.failure?.invariant).toBe('file-integrity');
    expect(r.failure?.cause).toBe('store-through-mirror');
  });
});
