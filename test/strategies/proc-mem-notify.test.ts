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
import { procMemNotify } from '../../strategies/proc-mem-notify.ts';

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

  it('needs ptrace attach rights to open', () => {
    const out = steps([{ op: 'spawn' }, { op: 'fork', pid: 1 }, { op: 'drv', strategy: 'proc-mem-notify', call: 'open', args: { pid: 2, target: 1 } }]);
    expect(out[2]).toEqual({ kind: 'errno', errno: 'EACCES' });
  });
});
