/**
 * The outcome predictor (properties/predict.ts) and the `outcome` invariant: on hand traces
 * it predicts what Linux 6.18 returns, from the state before each step, and says UNKNOWN
 * where it cannot know; each cause of `outcome` fails when the outcome or the state after
 * the step is wrong (a deliberately wrong outcome, or a kernel corrupted as a flaw would
 * leave it: model/corrupt.ts and impl/corrupt.ts `set-vma-prot`). Run against both kernels.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import { err, ok, sig } from '../../kernel-api/outcome.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { takeCensus, type Violation } from '../../properties/invariants/index.ts';
import { outcomeInvariant } from '../../properties/invariants/outcome.ts';
import { Session } from '../../properties/session.ts';
import { formatExpect, Predictor, type Prediction } from '../../properties/predict.ts';

const B = 2 ** 30; // a fixed address, far from where top-down placement puts things

function session(kernel: 'model' | 'impl'): Session {
  return new Session({ kernel, config: DEFAULT_CONFIG, strategies: [] });
}

/** Step `ops`; none may break an invariant (the outcome invariant among them). */
function run(s: Session, ops: Op[]): Outcome[] {
  return ops.map((op) => {
    const { outcome, violation } = s.step(op);
    expect(violation, `unexpected violation after ${JSON.stringify(op)}`).toBeNull();
    return outcome;
  });
}

/** The outcome invariant's verdict, as if `op` had just returned `outcome` on the kernel as it stands. */
function judge(s: Session, op: Op, outcome: Outcome, prediction?: Prediction): Violation | null {
  const k = s.primary.inspect;
  const predictor = prediction === undefined ? s.predictor : ({ predict: () => prediction } as unknown as Predictor);
  return outcomeInvariant.check({ k, config: s.opts.config, census: takeCensus(k), ghost: s.ghost, op, outcome, remoteViews: [], predictor });
}

/** What the predictor says of `op` now, as text ("ENOMEM", "success or SIGBUS", "unknown"). */
function said(s: Session, op: Op): string {
  const p = s.predictor.predict(op);
  return p.known ? p.allowed.map((e) => formatExpect(e, op)).join(' or ') : 'unknown';
}

/** P1 with [B, B+2) and [B+3, B+5) mapped read-write, a hole at B+2. */
function holed(kernel: 'model' | 'impl'): Session {
  const s = session(kernel);
  run(s, [
    { op: 'spawn' },
    { op: 'mmap', pid: 1, addr: B, lengthPages: 2, prot: 3, shared: false, fixed: true },
    { op: 'mmap', pid: 1, addr: B + 3, lengthPages: 2, prot: 3, shared: false, fixed: true },
  ]);
  return s;
}

for (const kernel of ['model', 'impl'] as const) {
  describe(`the outcome predictor on hand traces (${kernel})`, () => {
    it('predicts the errno of argument checks, holes and placement before each step, and each holds', () => {
      const s = holed(kernel);
      // Each prediction is made before its step; the step then runs and `outcome` judges it.
      const cases: [Op, string, Outcome][] = [
        [{ op: 'mprotect', pid: 1, addr: B, lengthPages: 5, prot: 1 }, 'ENOMEM', err('ENOMEM')],
        [{ op: 'mprotect', pid: 1, addr: B + 2, lengthPages: 1, prot: 1 }, 'ENOMEM', err('ENOMEM')],
        [{ op: 'mprotect', pid: 1, addr: B + 1 / 4096, lengthPages: 1, prot: 1 }, 'EINVAL', err('EINVAL')],
        [{ op: 'mmap', pid: 1, addr: B + 1, lengthPages: 1, prot: 3, shared: false, noreplace: true }, 'EEXIST', err('EEXIST')],
        // Into the hole: it is placed there (the first mprotect made [B, B+2) read-only; the hole stays).
        [{ op: 'mmap', pid: 1, addr: B + 2, lengthPages: 1, prot: 1, shared: false, noreplace: true }, '0x40000002000', ok(B + 2)],
        [{ op: 'mmap', pid: 1, addr: 0, lengthPages: 0, prot: 3, shared: false }, 'EINVAL', err('EINVAL')],
        [{ op: 'mmap', pid: 1, addr: 4, lengthPages: 1, prot: 3, shared: false, fixed: true }, 'EPERM', err('EPERM')],
        [{ op: 'munmap', pid: 1, addr: B + 0.5, lengthPages: 1 }, 'EINVAL', err('EINVAL')],
        [{ op: 'read', pid: 1, addr: B - 1 }, 'SIGSEGV', sig('SIGSEGV')],
        [{ op: 'write', pid: 1, addr: B + 2, value: 1 }, 'SIGSEGV', sig('SIGSEGV')],
        [{ op: 'write', pid: 1, addr: B + 3, value: 7 }, '0', ok(0)],
        [{ op: 'madvise', pid: 1, addr: B + 4, lengthPages: 3, advice: 'DONTFORK' }, 'ENOMEM', err('ENOMEM')],
        [{ op: 'mincore', pid: 1, addr: B + 4, lengthPages: 2 }, 'ENOMEM', err('ENOMEM')],
        [{ op: 'munlock', pid: 1, addr: B + 4, lengthPages: 2 }, 'ENOMEM', err('ENOMEM')],
        [{ op: 'mlockall', pid: 1, flags: 4 }, 'EINVAL', err('EINVAL')],
        [{ op: 'msync', pid: 1, addr: B, lengthPages: 2, flags: 5 }, 'EINVAL', err('EINVAL')],
        [{ op: 'process_vm_writev', pid: 1, target: 1, addr: B + 2, value: 1 }, 'EFAULT', err('EFAULT')],
        [{ op: 'mremap', pid: 1, addr: B, oldPages: 1, newPages: 1, dontunmap: true, maymove: true, newAddr: B + 10, fixed: false }, 'unknown', ok(0)],
      ];
      for (const [op, want, outcome] of cases) {
        expect(said(s, op), JSON.stringify(op)).toBe(want);
        const { outcome: got, violation } = s.step(op);
        expect(violation, JSON.stringify(op)).toBeNull();
        if (want !== 'unknown') expect(got, JSON.stringify(op)).toEqual(expect.objectContaining(outcome.kind === 'ok' ? { kind: 'ok', value: (outcome as { value: number }).value } : outcome));
      }
    });

    it('predicts how far mprotect got: applied up to the hole, nothing past it', () => {
      const s = holed(kernel);
      run(s, [{ op: 'mprotect', pid: 1, addr: B + 1, lengthPages: 4, prot: 1 }]);
      const prots = [...s.primary.inspect.vmas(1)].map((v) => [v.start - B, v.end - B, v.prot]);
      expect(prots).toEqual([[0, 1, 3], [1, 2, 1], [3, 5, 3]]);
    });

    it('EINVAL for MADV_DONTNEED and MADV_PAGEOUT of a VM_LOCKED VMA, learnt from mlockall(MCL_FUTURE) and MAP_LOCKED', () => {
      const s = session(kernel);
      run(s, [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: B + 4, lengthPages: 1, prot: 3, shared: false, fixed: true, locked: true },
        { op: 'mlockall', pid: 1, flags: 2 },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 2, prot: 3, shared: false, fixed: true },
      ]);
      const dontneed: Op = { op: 'madvise', pid: 1, addr: B, lengthPages: 1, advice: 'DONTNEED' };
      const pageout: Op = { op: 'madvise', pid: 1, addr: B + 4, lengthPages: 1, advice: 'PAGEOUT' };
      expect(said(s, dontneed)).toBe('EINVAL');
      expect(said(s, pageout)).toBe('EINVAL');
      run(s, [dontneed, pageout]);
      // Under mlockall(MCL_FUTURE) an mmap may be EAGAIN (RLIMIT_MEMLOCK), which the predictor does not track.
      expect(said(s, { op: 'mmap', pid: 1, addr: B + 8, lengthPages: 1, prot: 3, shared: false, fixed: true })).toBe('0x40000008000 or EAGAIN');
      run(s, [{ op: 'munlockall', pid: 1 }]);
      expect(said(s, { op: 'mmap', pid: 1, addr: B + 8, lengthPages: 1, prot: 3, shared: false, fixed: true })).toBe('0x40000008000');
      expect(said(s, dontneed)).toBe('0');
    });

    it('says UNKNOWN where Linux decides by what it does not track, and after fail_nth', () => {
      const s = holed(kernel);
      expect(said(s, { op: 'mlock', pid: 1, addr: B, lengthPages: 2 })).toBe('unknown');
      expect(said(s, { op: 'reclaim', count: 1 })).toBe('unknown');
      expect(said(s, { op: 'munmap', pid: 1, addr: B, lengthPages: 1 })).toBe('0');
      run(s, [{ op: 'fail_nth', nth: 3 }]);
      expect(said(s, { op: 'munmap', pid: 1, addr: B, lengthPages: 1 })).toBe('unknown');
      // An argument check comes before any allocation: still known.
      expect(said(s, { op: 'munmap', pid: 1, addr: B, lengthPages: 0 })).toBe('EINVAL');
    });

    it('process_vm_writev: EPERM without ptrace rights, EFAULT where the target lacks PROT_WRITE', () => {
      const s = session(kernel);
      run(s, [
        { op: 'spawn' }, { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 1, prot: 1, shared: false, fixed: true },
        { op: 'fork', pid: 1 },
      ]);
      const ro: Op = { op: 'process_vm_writev', pid: 1, target: 3, addr: B, value: 5 };
      expect(said(s, ro)).toBe('EFAULT');
      expect(said(s, { op: 'process_vm_readv', pid: 1, target: 3, addr: B })).toBe('success');
      expect(said(s, { op: 'process_vm_readv', pid: 2, target: 3, addr: B })).toBe('EPERM');
      run(s, [ro, { op: 'process_vm_readv', pid: 1, target: 3, addr: B }, { op: 'process_vm_readv', pid: 2, target: 3, addr: B }]);
    });

    it('process_vm_writev of an OOM-reaped target standing until its exit: not success (the reaper took its pages, a fault there is SIGBUS)', () => {
      const s = session(kernel);
      run(s, [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 1, prot: 3, shared: false, fixed: true },
        { op: 'write', pid: 1, addr: B, value: 7 },
        { op: 'fork', pid: 1 },
      ]);
      const w: Op = { op: 'process_vm_writev', pid: 1, target: 2, addr: B, value: 5 };
      expect(said(s, w)).toBe('0');
      run(s, [{ op: 'oom', pid: 2 }]);
      expect(said(s, w)).toBe('unknown');
      // The kernels give EFAULT (GUP's fault: check_stable_address_space), and the step holds.
      expect(run(s, [w])).toEqual([err('EFAULT')]);
    });
  });

  describe(`outcome fails when the outcome or the state after it is wrong (${kernel})`, () => {
    it('errno:mprotect — success across a hole', () => {
      const s = holed(kernel);
      const v = judge(s, { op: 'mprotect', pid: 1, addr: B, lengthPages: 4, prot: 1 }, ok(0));
      expect(v?.cause).toBe('errno:mprotect');
      expect(v?.message).toBe('mprotect(0x40000000000, 4 pages) returned = 0 (mprotect(0x40000000000, 4 pages) across a hole at 0x40000002000): Linux returns ENOMEM');
    });

    it('address:mmap — MAP_FIXED_NOREPLACE over a mapping, MAP_FIXED elsewhere, a hint over a mapping', () => {
      const s = holed(kernel);
      const noreplace = judge(s, { op: 'mmap', pid: 1, addr: B, lengthPages: 1, prot: 3, shared: false, noreplace: true }, ok(B));
      expect(noreplace?.cause).toBe('address:mmap');
      expect(noreplace?.message).toMatch(/MAP_FIXED_NOREPLACE over the mapping at 0x40000000000\): Linux returns EEXIST/);
      expect(judge(s, { op: 'mmap', pid: 1, addr: B + 2, lengthPages: 1, prot: 3, shared: false, fixed: true }, ok(B + 9))?.cause).toBe('address:mmap');
      const hinted = judge(s, { op: 'mmap', pid: 1, addr: B, lengthPages: 1, prot: 3, shared: false }, ok(B + 1));
      expect(hinted?.cause).toBe('address:mmap');
      expect(hinted?.message).toMatch(/over the mapping at 0x40000000000: without MAP_FIXED Linux never replaces one/);
    });

    it('errno:<op> of argument checks, holes and protection', () => {
      const s = holed(kernel);
      const wrong: [Op, Outcome, string][] = [
        [{ op: 'mmap', pid: 1, addr: 0, lengthPages: 0, prot: 3, shared: false }, err('ENOMEM'), 'errno:mmap'],
        [{ op: 'munmap', pid: 1, addr: B, lengthPages: 0 }, ok(0), 'errno:munmap'],
        [{ op: 'madvise', pid: 1, addr: B, lengthPages: 3, advice: 'DONTNEED' }, ok(0), 'errno:madvise'],
        [{ op: 'mremap', pid: 1, addr: B, oldPages: 1, newPages: 0, maymove: true }, err('EFAULT'), 'errno:mremap'],
        [{ op: 'munlock', pid: 1, addr: B, lengthPages: 3 }, ok(0), 'errno:munlock'],
        [{ op: 'mlock', pid: 1, addr: B + 2, lengthPages: 1 }, ok(0), 'errno:mlock'],
        [{ op: 'mlockall', pid: 1, flags: 0 }, ok(0), 'errno:mlockall'],
        [{ op: 'munlockall', pid: 1 }, err('EPERM'), 'errno:munlockall'],
        [{ op: 'msync', pid: 1, addr: B, lengthPages: 3, flags: 1 }, ok(0), 'errno:msync'],
        [{ op: 'mincore', pid: 1, addr: B, lengthPages: 2 }, ok(1), 'errno:mincore'],
        [{ op: 'process_vm_readv', pid: 1, target: 1, addr: B + 2 }, ok(0), 'errno:process_vm_readv'],
        [{ op: 'process_vm_writev', pid: 1, target: 1, addr: B - 1, value: 3 }, ok(0), 'errno:process_vm_writev'],
      ];
      for (const [op, outcome, cause] of wrong) expect(judge(s, op, outcome)?.cause, JSON.stringify(op)).toBe(cause);
    });

    it('signal:read and signal:write — a load from a hole that succeeds, a store to a mapped page that faults', () => {
      const s = holed(kernel);
      const load = judge(s, { op: 'read', pid: 1, addr: B + 2 }, ok(0));
      expect(load?.cause).toBe('signal:read');
      expect(load?.message).toBe('a load from 0x40000002000 returned = 0 (nothing is mapped there): Linux returns SIGSEGV');
      run(s, [{ op: 'mprotect', pid: 1, addr: B, lengthPages: 1, prot: 1 }]);
      expect(judge(s, { op: 'write', pid: 1, addr: B, value: 1 }, ok(0))?.cause).toBe('signal:write');
      expect(judge(s, { op: 'write', pid: 1, addr: B + 1, value: 1 }, sig('SIGSEGV'))?.cause).toBe('signal:write');
    });

    it('extent:mprotect — mprotect applied past the hole (a corrupted VMA)', () => {
      const s = holed(kernel);
      const op: Op = { op: 'mprotect', pid: 1, addr: B, lengthPages: 5, prot: 1 };
      const before = s.predictor.predict(op);
      const outcome = s.primary.step(op);
      expect(outcome).toEqual(err('ENOMEM'));
      // Right as it stands: applied up to the hole.
      expect(judge(s, op, outcome, before)).toBeNull();
      // As if it had gone on past the hole.
      s.primary.corrupt({ kind: 'set-vma-prot', pid: 1, addr: B + 3, prot: 1 });
      const v = judge(s, op, outcome, before);
      expect(v?.cause).toBe('extent:mprotect');
      expect(v?.message).toMatch(/returned -ENOMEM \(.*across a hole at 0x40000002000\), and at 0x40000003000 P1 has \[0x40000003000, 0x40000005000\) prot 1: Linux leaves \[0x40000003000, 0x40000005000\) prot 3/);
    });

    it('extent:munmap, extent:madvise, extent:mmap — success that left the address space as it was', () => {
      const s = holed(kernel);
      // Each judged without running: the kernel's state is what a call that did nothing leaves.
      expect(judge(s, { op: 'munmap', pid: 1, addr: B, lengthPages: 1 }, ok(0))?.cause).toBe('extent:munmap');
      expect(judge(s, { op: 'madvise', pid: 1, addr: B, lengthPages: 1, advice: 'DONTFORK' }, ok(0))?.cause).toBe('extent:madvise');
      expect(judge(s, { op: 'mmap', pid: 1, addr: B, lengthPages: 1, prot: 1, shared: false, fixed: true }, ok(B))?.cause).toBe('extent:mmap');
      // And the same calls, run, are judged right.
      run(s, [
        { op: 'munmap', pid: 1, addr: B, lengthPages: 1 },
        { op: 'madvise', pid: 1, addr: B + 3, lengthPages: 1, advice: 'DONTFORK' },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 1, prot: 1, shared: false, fixed: true },
      ]);
    });

    it('a session reports a corrupted mprotect as outcome (the state the next call sees)', () => {
      const s = holed(kernel);
      // The VMA past the hole was made read-only behind the predictor's back: the predictor
      // synced it after the last step, so a store there is predicted SIGSEGV; a kernel that
      // lets it through is wrong. (A kernel can only be made to do so by a corruption.)
      run(s, [{ op: 'mprotect', pid: 1, addr: B + 3, lengthPages: 2, prot: 1 }]);
      expect(said(s, { op: 'write', pid: 1, addr: B + 3, value: 1 })).toBe('SIGSEGV');
      s.primary.corrupt({ kind: 'set-vma-prot', pid: 1, addr: B + 3, prot: 3 });
      const { violation } = s.step({ op: 'write', pid: 1, addr: B + 3, value: 1 });
      expect(violation?.invariant).toBe('outcome');
      expect(violation?.cause).toBe('signal:write');
    });
  });
}
