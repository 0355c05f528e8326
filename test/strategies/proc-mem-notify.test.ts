/**
 * The worked example of README "Validating a new strategy": a coherent, read-only view of
 * another process's memory, filled at fault time and zapped by an MMU interval notifier.
 * Each test runs through a Session, so every invariant is checked after every step.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import { FUZZ_CONFIG } from '../../harness/config.ts';
import { Session } from '../../properties/session.ts';
import { ProcMemNotify, procMemNotify } from '../../strategies/proc-mem-notify.ts';
import type { StrategyDefinition } from '../../kernel-api/strategy.ts';
import { AtPoint, atNth, KERNELS, outcomeOf, ptePid, session, stepNested, stepOk } from './helpers.ts';

/** What a view showing a page its target no longer maps breaks. */
const STALE_INVARIANT = 'remote-coherence';

const A = 2 ** 35 - 2; // P1's first 2-page mmap

function steps(ops: Op[]): Outcome[] {
  const s = new Session({ kernel: 'diff', config: FUZZ_CONFIG, strategies: [procMemNotify] });
  return ops.map((op) => {
    const { outcome, violation } = s.step(op);
    expect(violation, `after ${JSON.stringify(op)}`).toBeNull();
    return outcome;
  });
}

const setup: Op[] = [
  { op: 'spawn' },
  { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false },
  { op: 'write', pid: 1, addr: A, value: 7 },
  { op: 'fork', pid: 1 },
  { op: 'drv', strategy: 'proc-mem-notify', call: 'open', args: { pid: 1, target: 2 } },
  { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 1, shared: true, fd: 3, pgoff: A },
];
const V = A - 2; // where the view lands, below the private mapping

describe('proc-mem-notify', () => {
  it('shows the target page, follows the target through COW, reclaim and munmap, and leaks nothing', () => {
    const out = steps([
      ...setup,
      { op: 'read', pid: 1, addr: V },
      { op: 'write', pid: 2, addr: A, value: 8 }, // the child breaks COW: the view is zapped
      { op: 'read', pid: 1, addr: V },
      { op: 'read', pid: 1, addr: V + 1 }, // untouched: the zero page, read-only
      { op: 'write', pid: 2, addr: A + 1, value: 9 }, // the zero page is replaced: zapped again
      { op: 'read', pid: 1, addr: V + 1 },
      { op: 'reclaim', pid: 2, addr: A },
      { op: 'read', pid: 1, addr: V },
      { op: 'munmap', pid: 2, addr: A, lengthPages: 2 },
      { op: 'read', pid: 1, addr: V },
      { op: 'exit', pid: 2 },
      { op: 'exit', pid: 1 },
    ]);
    expect(out.slice(setup.length)).toEqual([
      { kind: 'ok', value: 7 }, { kind: 'ok', value: 0 }, { kind: 'ok', value: 8 }, { kind: 'ok', value: 0 }, { kind: 'ok', value: 0 },
      { kind: 'ok', value: 9 }, { kind: 'ok', value: 1 }, { kind: 'ok', value: 8 }, { kind: 'ok', value: 0 }, { kind: 'signal', signal: 'SIGBUS' },
      { kind: 'ok', value: 0 }, { kind: 'ok', value: 0 },
    ]);
  });

  it('refuses what it cannot keep coherent: a writable, private or split view', () => {
    const out = steps([
      ...setup,
      { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, fd: 3, pgoff: A },
      { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 1, shared: false, fd: 3, pgoff: A },
      { op: 'mprotect', pid: 1, addr: V, lengthPages: 2, prot: 3 },
      { op: 'munmap', pid: 1, addr: V, lengthPages: 1 },
    ]);
    expect(out.slice(setup.length)).toEqual([
      { kind: 'errno', errno: 'EACCES' }, { kind: 'errno', errno: 'EINVAL' }, { kind: 'errno', errno: 'EACCES' }, { kind: 'errno', errno: 'EINVAL' },
    ]);
  });

  it('drops the view reference under its spinlock and frees after it: a variant that frees under it sleeps in atomic context', () => {
    const close: Op[] = [{ op: 'munmap', pid: 1, addr: V, lengthPages: 2 }, { op: 'close', pid: 1, fd: 3 }];
    const s = new Session({ kernel: 'diff', config: FUZZ_CONFIG, strategies: [procMemNotify] });
    for (const op of [...setup, { op: 'read', pid: 1, addr: V } as Op, ...close]) expect(s.step(op).violation, JSON.stringify(op)).toBeNull();
    expect([...s.primary.strategy('proc-mem-notify')!.holds()]).toEqual([]);
    const broken: StrategyDefinition = { ...procMemNotify, create: (k) => new ProcMemNotify(k, { freeUnderRefLock: true }) };
    const b = new Session({ kernel: 'diff', config: FUZZ_CONFIG, strategies: [broken] });
    for (const op of [...setup, close[0]]) expect(b.step(op).violation, JSON.stringify(op)).toBeNull();
    const v = b.step(close[1]).violation;
    expect(v?.invariant).toBe('sleep-in-atomic');
    expect(v?.message).toMatch(/proc-mem-notify:view->ref_lock/);
  });

  it('needs ptrace attach rights to open', () => {
    const out = steps([{ op: 'spawn' }, { op: 'fork', pid: 1 }, { op: 'drv', strategy: 'proc-mem-notify', call: 'open', args: { pid: 2, target: 1 } }]);
    expect(out[2]).toEqual({ kind: 'errno', errno: 'EACCES' });
  });
});

/**
 * Locking under interleaving (issue 15). P1 views P2's two pages (the first COW-shared
 * with P1, value 7; the second never touched); task 3 is a second thread of P1. Each test
 * starts one operation nested at a named scheduling point of P1's read of the view.
 */
describe('proc-mem-notify: locking under interleaving', () => {
  const T = 3; // P1's second thread
  const lockSetup: Op[] = [...setup, { op: 'clone', pid: 1 }];
  const broken: StrategyDefinition = { ...procMemNotify, create: (k) => new ProcMemNotify(k, { skipReadRetry: true }) };

  for (const kernel of KERNELS) {
    describe(`on the ${kernel}`, () => {
      const start = (strategy: StrategyDefinition = procMemNotify) => {
        const s = session(kernel, [strategy]);
        for (const op of lockSetup) stepOk(s, op);
        return s;
      };

      it('the fault takes the target page with its own mmap_lock dropped (a thread\'s mmap runs meanwhile), returns retry, and the retry installs it', () => {
        const s = start();
        const read: Op = { op: 'read', pid: 1, addr: V };
        const mmap: Op = { op: 'mmap', pid: 1, tid: T, addr: 0, lengthPages: 1, prot: 3, shared: false };
        const policy = new AtPoint(atNth(1, 'mmap_read_lock'));
        const r = stepNested(s, read, [mmap], policy);
        expect(r.infeasible).toBeNull();
        expect(r.violation).toBeNull();
        expect(r.started).toEqual([read, mmap]); // it ran while P1's read held no mmap_lock
        expect(outcomeOf(r, mmap)).toMatchObject({ kind: 'ok' });
        expect(outcomeOf(r, read)).toEqual({ kind: 'ok', value: 7 });
        // The user fault took the mmap_lock twice: once, and again after VM_FAULT_RETRY.
        expect(policy.seen.filter((p) => p.task === 1 && p.where === 'do_user_addr_fault')).toHaveLength(2);
        expect(ptePid(s, 1, V)).toMatchObject({ kind: 'present', pfn: (ptePid(s, 2, A) as { pfn: number }).pfn });
        expect([...s.primary.strategy('proc-mem-notify')!.holds()]).toEqual([]);
        // GUP ran under P2's mmap_lock alone: mmap_lock was never nested in itself.
        expect(s.primary.locks.dependencies().filter((d) => d.from === 'mmap_lock' && d.to === 'mmap_lock')).toEqual([]);
      });

      it('an invalidation at GUP\'s scheduling point (MADV_DONTNEED of the target page) makes the fault go round again, not install what it found', () => {
        const s = start();
        const read: Op = { op: 'read', pid: 1, addr: V + 1 };
        const dontneed: Op = { op: 'madvise', pid: 2, addr: A + 1, lengthPages: 1, advice: 'DONTNEED' };
        const policy = new AtPoint(atNth(1, 'get_user_pages_remote'));
        const r = stepNested(s, read, [dontneed], policy);
        expect(r.infeasible).toBeNull();
        expect(r.violation).toBeNull();
        expect(r.started).toEqual([read, dontneed]);
        expect(outcomeOf(r, read)).toEqual({ kind: 'ok', value: 0 });
        // The first retry found the sequence moved (read_retry) and went round once more.
        expect(policy.seen.filter((p) => p.task === 1 && p.where === 'do_user_addr_fault')).toHaveLength(3);
        expect(ptePid(s, 1, V + 1)).toMatchObject({ kind: 'present', pfn: (ptePid(s, 2, A + 1) as { pfn: number }).pfn });
      });

      it('a munmap of the target page between GUP and the install: the retry sees mmu_interval_read_retry and the view faults SIGBUS, as the target has no page', () => {
        const s = start();
        const read: Op = { op: 'read', pid: 1, addr: V };
        const munmap: Op = { op: 'munmap', pid: 2, addr: A, lengthPages: 1 };
        // Between the fault's two calls: the kernel taking P1's mmap_lock again for the retry.
        const r = stepNested(s, read, [munmap], new AtPoint(atNth(1, 'do_user_addr_fault', 1)));
        expect(r.infeasible).toBeNull();
        expect(r.violation).toBeNull();
        expect(r.started).toEqual([read, munmap]);
        expect(outcomeOf(r, read)).toEqual({ kind: 'signal', signal: 'SIGBUS' });
        expect(ptePid(s, 1, V)).toBeUndefined();
        expect([...s.primary.strategy('proc-mem-notify')!.holds()]).toEqual([]);
      });

      it('the same schedule with the mmu_interval_read_retry check deleted installs a stale PTE', () => {
        const s = start(broken);
        const read: Op = { op: 'read', pid: 1, addr: V };
        const munmap: Op = { op: 'munmap', pid: 2, addr: A, lengthPages: 1 };
        const r = stepNested(s, read, [munmap], new AtPoint(atNth(1, 'do_user_addr_fault', 1)));
        expect(r.infeasible).toBeNull();
        expect(r.started).toEqual([read, munmap]);
        expect(outcomeOf(r, read)).toEqual({ kind: 'ok', value: 7 });
        expect(ptePid(s, 2, A)).toBeUndefined();
        expect(ptePid(s, 1, V)).toMatchObject({ kind: 'present' });
        expect(r.violation?.invariant).toBe(STALE_INVARIANT);
      });

      it('the notifier takes the view lock: a target munmap started while the retry installs (view lock held) waits for it in the callback', () => {
        const s = start();
        const read: Op = { op: 'read', pid: 1, addr: V };
        const munmap: Op = { op: 'munmap', pid: 2, addr: A, lengthPages: 1 };
        const policy = new AtPoint(atNth(1, 'vmf_insert_pfn'));
        const r = stepNested(s, read, [munmap], policy);
        expect(r.violation).toBeNull();
        // It reached the callback's mutex_lock and went no further: a wait the nested
        // scheduler does not emulate (the munmap is abandoned or not started there).
        const after = policy.seen.slice(policy.seen.findIndex((p) => p.task === 2));
        expect(after.map((p) => `${p.task}:${p.where}`)).toEqual(['2:vm_munmap', '2:mutex_lock']);
        expect(r.ran.some((c) => c.op === munmap)).toBe(false);
        if (r.infeasible !== null) expect(r.infeasible).toMatch(/proc-mem-notify:view->lock/);
        else expect(r.started).toEqual([read]);
      });
    });
  }
});

describe('proc-mem-notify: lock-clean where seed 000 is not', () => {
  for (const kernel of KERNELS) {
    it(`on the ${kernel}: a view of the caller's own memory (the notifier is inserted at open, not under mmap's mmap_lock) shows its page`, () => {
      const s = session(kernel, [procMemNotify]);
      const out = [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false },
        { op: 'write', pid: 1, addr: A, value: 7 },
        { op: 'drv', strategy: 'proc-mem-notify', call: 'open', args: { pid: 1, target: 1 } },
        { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 1, shared: true, fd: 3, pgoff: A },
        { op: 'read', pid: 1, addr: V },
        { op: 'write', pid: 1, addr: A, value: 8 },
        { op: 'read', pid: 1, addr: V },
      ].map((op) => {
        const { outcome, violation } = s.step(op as Op);
        expect(violation, JSON.stringify(op)).toBeNull();
        return outcome;
      });
      expect(out.slice(5)).toEqual([{ kind: 'ok', value: 7 }, { kind: 'ok', value: 0 }, { kind: 'ok', value: 8 }]);
      expect(s.primary.locks.dependencies().filter((d) => d.from === 'mmap_lock' && d.to === 'mmap_lock')).toEqual([]);
    });

    it(`on the ${kernel}: the OOM reaper's non-blockable invalidation is refused where the view shows a page, and the exit then zaps it`, () => {
      const s = session(kernel, [procMemNotify]);
      for (const op of setup) stepOk(s, op);
      expect(stepOk(s, { op: 'read', pid: 1, addr: V })).toBe(7);
      const { violation } = s.step({ op: 'oom', pid: 2 });
      expect(violation).toBeNull();
      // Refused: the reaper leaves the range, so the victim keeps its page and the view shows it.
      expect(ptePid(s, 1, V)).toBeDefined();
      expect(s.step({ op: 'read', pid: 1, addr: V })).toEqual({ outcome: { kind: 'ok', value: 7 }, violation: null });
      // The victim's exit, later, zaps it blockably.
      expect(s.step({ op: 'exit', pid: 2 }).violation).toBeNull();
      expect(ptePid(s, 1, V)).toBeUndefined();
      expect(s.step({ op: 'read', pid: 1, addr: V })).toEqual({ outcome: { kind: 'signal', signal: 'SIGBUS' }, violation: null });
    });
  }
});

describe('proc-mem-notify and the OOM reaper', () => {
  // The reaper and the victim's exit are separate steps (oom_reaper, then its do_exit): a
  // reaper that forgets the MMU notifiers is seen in between, before the exit's notifier
  // would have covered for it.
  for (const kernel of ['model', 'impl'] as const) {
    it(`the view outlives the reap of the victim only as its design says, and a reaper that tells no notifier leaves it stale (${kernel})`, () => {
      const reap = (forgetful: boolean) => {
        const s = new Session({ kernel, config: FUZZ_CONFIG, strategies: [procMemNotify] });
        for (const op of [...setup, { op: 'read', pid: 1, addr: V } as Op]) expect(s.step(op).violation).toBeNull();
        if (forgetful) s.primary.corrupt({ kind: 'oom-reap-no-notifier' });
        const r = s.step({ op: 'oom', pid: 2 });
        expect(r.outcome).toEqual({ kind: 'ok', value: 0 });
        return { s, violation: r.violation };
      };
      // The design refuses the reap of a range its view shows (its lock only tried): the
      // victim keeps the page until its exit, which zaps the view.
      const sound = reap(false);
      expect(sound.violation).toBeNull();
      expect(sound.s.step({ op: 'read', pid: 1, addr: V })).toEqual({ outcome: { kind: 'ok', value: 7 }, violation: null });
      expect(sound.s.step({ op: 'exit', pid: 2 })).toEqual({ outcome: { kind: 'ok', value: 0 }, violation: null });
      expect(sound.s.step({ op: 'read', pid: 1, addr: V })).toEqual({ outcome: { kind: 'signal', signal: 'SIGBUS' }, violation: null });
      // A reaper that asks no notifier zaps the page under the view.
      const stale = reap(true).violation;
      expect(stale?.invariant).toBe('remote-coherence');
      expect(stale?.cause).toBe('oom-kill:missing-sigbus');
    });
  }
});
