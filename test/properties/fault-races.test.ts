/**
 * Two threads of one process fault the same page at once. The fault's page allocation may
 * sleep (alloc_anon_folio in do_anonymous_page, folio_prealloc in wp_page_copy and
 * do_cow_fault: GFP_HIGHUSER_MOVABLE), and so may bringing a file page into the page cache
 * (filemap_fault's invalidate_lock), so the other thread's fault can run there and fill the
 * PTE first; Linux finds it under the PTL (vmf_pte_changed, !pte_same, finish_fault's
 * !pte_none), drops its own page and the access retries onto the other's. A swap-in may
 * sleep too (its I/O, the folio lock): a MADV_DONTNEED can drop the entry meanwhile. Recorded switches put the second write at the first
 * one's allocation, on both kernels and side by side, and every invariant holds.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import { ok } from '../../kernel-api/outcome.ts';
import { COVER } from '../../kernel-api/coverage.ts';
import { FUZZ_CONFIG } from '../../harness/config.ts';
import { Session } from '../../properties/session.ts';
import { NO_PENDING, TraceCursor } from '../../properties/sched.ts';
import { replayOps } from '../../properties/trace.ts';
import { procMemNotify } from '../../strategies/proc-mem-notify.ts';

const B = 2 ** 30;

/** Replay `ops` (recorded switches run nested, as properties/trace.ts replayOps does); every step must hold. */
function replay(kernel: 'model' | 'impl' | 'diff', ops: Op[]): { s: Session; outcomes: Outcome[] } {
  const s = new Session({ kernel, config: FUZZ_CONFIG, strategies: [] });
  const outcomes: Outcome[] = [];
  const cursor = new TraceCursor(ops, 0);
  while (cursor.at < ops.length) {
    const op = cursor.take();
    const r = s.stepTop(op, op.switches === undefined ? NO_PENDING : cursor, null);
    expect(r.infeasible, JSON.stringify(op)).toBeNull();
    expect(r.violation, JSON.stringify(op)).toBeNull();
    const at = outcomes.length;
    for (const c of r.ran) outcomes[at + r.started.indexOf(c.op)] = c.outcome;
  }
  return { s, outcomes };
}

for (const kernel of ['model', 'impl', 'diff'] as const) {
  describe(`two threads fault one page at once (${kernel})`, () => {
    it('do_anonymous_page: the second write fills the PTE while the first allocates; the first drops its page and writes into the other\'s', () => {
      const { s, outcomes } = replay(kernel, [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 1, prot: 3, shared: false, fixed: true },
        { op: 'clone', pid: 1 },
        // Point 0: do_user_addr_fault's mmap_lock; point 1: alloc_anon_folio.
        { op: 'write', pid: 1, addr: B, value: 1, switches: [{ at: 1, to: 2 }] },
        { op: 'write', pid: 1, tid: 2, addr: B, value: 2 },
        { op: 'read', pid: 1, addr: B },
      ]);
      expect(outcomes.slice(3)).toEqual([ok(0), ok(0), ok(1)]);
      expect(s.primary.locks.coverage[COVER.doAnonymousPageRaced]).toBe(1);
      // One page is left, mapped once: the dropped one was freed.
      expect([...s.primary.inspect.frames()].filter((f) => f.kind === 'anon')).toMatchObject([{ mapcount: 1, refcount: 1, value: 1 }]);
    });

    it('a file fault: the second write maps the page while the first waits for the invalidate_lock; the first finds the PTE (finish_fault\'s !pte_none)', () => {
      const { s, outcomes } = replay(kernel, [
        { op: 'spawn' },
        { op: 'creat', sizePages: 1 },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 1, prot: 3, shared: true, file: 1, fixed: true },
        { op: 'clone', pid: 1 },
        // Point 0: do_user_addr_fault's mmap_lock; point 1: filemap_fault's invalidate_lock.
        { op: 'write', pid: 1, addr: B, value: 1, switches: [{ at: 1, to: 2 }] },
        { op: 'write', pid: 1, tid: 2, addr: B, value: 2 },
        { op: 'read', pid: 1, addr: B },
        { op: 'pread', file: 1, index: 0 },
      ]);
      expect(outcomes.slice(4)).toEqual([ok(0), ok(0), ok(1), ok(1)]);
      expect(s.primary.locks.coverage[COVER.fileFaultRaced]).toBe(1);
    });

    it('do_cow_fault: the second write COW-faults the private file page while the first allocates its copy; the first finds the PTE', () => {
      const { s, outcomes } = replay(kernel, [
        { op: 'spawn' },
        { op: 'creat', sizePages: 1 },
        { op: 'pwrite', file: 1, index: 0, value: 7 },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 1, prot: 3, shared: false, file: 1, fixed: true },
        { op: 'clone', pid: 1 },
        // Point 0: do_user_addr_fault's mmap_lock; point 1: do_cow_fault's folio_prealloc.
        { op: 'write', pid: 1, addr: B, value: 1, switches: [{ at: 1, to: 2 }] },
        { op: 'write', pid: 1, tid: 2, addr: B, value: 2 },
        { op: 'read', pid: 1, addr: B },
        { op: 'pread', file: 1, index: 0 },
      ]);
      expect(outcomes.slice(5)).toEqual([ok(0), ok(0), ok(1), ok(7)]);
      expect(s.primary.locks.coverage[COVER.fileFaultRaced]).toBe(1);
    });

    it('do_swap_page: the second read swaps the page in while the first sleeps in the swap-in; the first puts its reference back (!pte_same)', () => {
      const { s, outcomes } = replay(kernel, [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 1, prot: 3, shared: false, fixed: true },
        { op: 'write', pid: 1, addr: B, value: 5 },
        { op: 'reclaim', pid: 1, addr: B },
        { op: 'clone', pid: 1 },
        // Point 0: do_user_addr_fault's mmap_lock; point 1: the swap-in.
        { op: 'read', pid: 1, addr: B, switches: [{ at: 1, to: 2 }] },
        { op: 'read', pid: 1, tid: 2, addr: B },
        { op: 'write', pid: 1, addr: B, value: 6 },
      ]);
      expect(outcomes.slice(5)).toEqual([ok(5), ok(5), ok(0)]);
      expect(s.primary.locks.coverage[COVER.doSwapPageRaced]).toBe(1);
      expect([...s.primary.inspect.frames()].filter((f) => f.kind === 'anon').map((f) => [f.value, f.mapcount])).toEqual([[6, 1]]);
    });

    it('do_swap_page: a MADV_DONTNEED by another thread drops the swap entry while the fault sleeps in the swap-in; the fault puts the page back, and nothing is left', () => {
      const { s, outcomes } = replay(kernel, [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 1, prot: 3, shared: false, fixed: true },
        { op: 'write', pid: 1, addr: B, value: 5 },
        { op: 'reclaim', pid: 1, addr: B },
        { op: 'clone', pid: 1 },
        { op: 'read', pid: 1, addr: B, switches: [{ at: 1, to: 2 }] },
        { op: 'madvise', pid: 1, tid: 2, addr: B, lengthPages: 1, advice: 'DONTNEED' },
      ]);
      // The zap came first: the read retried onto an empty PTE and found the zero page.
      expect(outcomes.slice(5)).toEqual([ok(0), ok(0)]);
      expect(s.primary.locks.coverage[COVER.doSwapPageRaced]).toBe(1);
      expect([...s.primary.inspect.frames()].filter((f) => f.kind === 'anon')).toEqual([]);
      expect([...s.primary.inspect.swapSlots()]).toEqual([]);
    });

    it('wp_page_copy: the second write copies the COW-shared page while the first allocates its copy; the first drops it (!pte_same)', () => {
      const { s, outcomes } = replay(kernel, [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 1, prot: 3, shared: false, fixed: true },
        { op: 'write', pid: 1, addr: B, value: 5 },
        { op: 'clone', pid: 1 },
        { op: 'fork', pid: 1 },
        // Point 0: do_user_addr_fault's mmap_lock; point 1: folio_prealloc.
        { op: 'write', pid: 1, addr: B, value: 1, switches: [{ at: 1, to: 2 }] },
        { op: 'write', pid: 1, tid: 2, addr: B, value: 2 },
        { op: 'read', pid: 1, addr: B },
        { op: 'read', pid: 3, addr: B },
      ]);
      expect(outcomes.slice(5)).toEqual([ok(0), ok(0), ok(1), ok(5)]);
      expect(s.primary.locks.coverage[COVER.wpPageCopyRaced]).toBe(1);
      // The child's page and the parent's one copy; the first write's copy was freed.
      expect([...s.primary.inspect.frames()].filter((f) => f.kind === 'anon').map((f) => [f.value, f.mapcount, f.refcount]).sort()).toEqual([[1, 1, 1], [5, 1, 1]]);
    });
  });
}

/**
 * A fault that must bring a file page in takes mapping->invalidate_lock shared; a hole punch
 * (MADV_REMOVE) holds it for write throughout (shmem_fallocate, filemap_invalidate_lock), so
 * no fault fills the hole while it is punched: one started inside the punch (at a notifier
 * callback's mutex) would wait, and that schedule is not one the nested scheduler can take.
 * It used to run, and ghost memory, which orders the write before the punch it completed
 * inside, reported a cow-isolation failure Linux cannot show.
 */
for (const kernel of ['model', 'impl', 'diff'] as const) {
  describe(`a fault into a hole being punched waits for the punch (${kernel})`, () => {
    const ops = (at: number): Op[] => [
      { op: 'spawn' },
      { op: 'clone', pid: 1 },
      { op: 'mmap', pid: 1, addr: B, lengthPages: 3, prot: 3, shared: true, fixed: true },
      { op: 'drv', strategy: 'proc-mem-notify', call: 'open', args: { pid: 1, target: 1 } },
      // Points of the madvise: 0 do_madvise's mmap_lock, 1 filemap_invalidate_lock, 2 the notifier callback's mutex.
      { op: 'madvise', pid: 1, addr: B, lengthPages: 1, advice: 'REMOVE', switches: [{ at, to: 2 }] },
      { op: 'write', pid: 1, tid: 2, addr: B, value: 1 },
      { op: 'read', pid: 1, addr: B },
    ];
    const opts = { kernel, config: FUZZ_CONFIG, strategies: [procMemNotify] };

    it('inside the punch (at the callback\'s mutex): the write would wait for the invalidate_lock, an infeasible schedule, not a failure', () => {
      const r = replayOps(opts, ops(2));
      expect(r.failure).toBeNull();
      expect(r.infeasible).toMatch(/task 2 would wait in filemap_fault for invalidate_lock of file \d+, held by task 1/);
    });

    it('before the punch takes the lock: the write runs first, and the punch removes what it wrote', () => {
      const r = replayOps(opts, ops(1));
      expect(r.failure).toBeNull();
      expect(r.infeasible).toBeUndefined();
      expect(r.outcomes.slice(4)).toEqual([ok(0), ok(0), ok(0)]);
    });
  });
}

/**
 * MADV_DONTNEED zaps VMA by VMA under the mmap_lock for read; a thread's store may run while
 * it sleeps in a notifier callback (proc-mem-notify's mutex), before or after its page's
 * zap. Either way the read after it sees what Linux would: the store's value if the zap of
 * that VMA came first, else 0. (Ghost memory used to take the store before the whole zap,
 * as it completed first, and reported cow-isolation when the zap had come first.)
 */
for (const kernel of ['model', 'impl', 'diff'] as const) {
  describe(`a store while MADV_DONTNEED sleeps in a notifier callback (${kernel})`, () => {
    const ops = (at: number): Op[] => [
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: B + 4, lengthPages: 1, prot: 1, shared: false, fixed: true },
      { op: 'mmap', pid: 1, addr: B, lengthPages: 4, prot: 3, shared: false, fixed: true },
      { op: 'clone', pid: 1 },
      { op: 'drv', strategy: 'proc-mem-notify', call: 'open', args: { pid: 1, target: 1 } },
      // Points: 0 do_madvise's mmap_lock; 1 the callback's mutex for [B, B+4) (before its zap), 2 for [B+4, B+5).
      { op: 'madvise', pid: 1, addr: B, lengthPages: 5, advice: 'DONTNEED', switches: [{ at, to: 2 }] },
      { op: 'write', pid: 1, tid: 2, addr: B, value: 1 },
      { op: 'read', pid: 1, addr: B },
    ];
    const opts = { kernel, config: FUZZ_CONFIG, strategies: [procMemNotify] };

    it('after the zap of its VMA: the store stays, and the read sees it', () => {
      const r = replayOps(opts, ops(2));
      expect(r.failure).toBeNull();
      expect(r.outcomes.slice(5)).toEqual([ok(0), ok(0), ok(1)]);
    });

    it('before the zap of its VMA: the zap takes it, and the read sees 0', () => {
      const r = replayOps(opts, ops(1));
      expect(r.failure).toBeNull();
      expect(r.outcomes.slice(5)).toEqual([ok(0), ok(0), ok(0)]);
    });
  });
}
