/**
 * Shrinking under the step time limit (harness/shrink-limited.ts), with the pool's hang
 * canary (a driver call that never returns): a campaign's hang, a prefix of its run up to
 * the hung step, shrinks to what still hangs; the shrinker never waits on a candidate past
 * the limit.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Op } from '../../kernel-api/op.ts';
import { FUZZ_CONFIG } from '../../harness/config.ts';
import { shrinkLimited } from '../../harness/shrink-limited.ts';

const MODULES = [join(import.meta.dirname, 'fixtures', 'canaries.ts')];
const BASE = { kernel: 'model', strategy: 'canary-hang', config: FUZZ_CONFIG };
const SPIN: Op = { op: 'drv', strategy: 'canary-hang', call: 'spin', args: { pid: 1 } };

describe('shrinkLimited', () => {
  it('shrinks a hang to the steps it needs, each candidate run past twice the limit', () => {
    const ops: Op[] = [
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: 100, lengthPages: 2, prot: 3, shared: false, fixed: true },
      { op: 'write', pid: 1, addr: 100, value: 1 },
      { op: 'fork', pid: 1 },
      { op: 'write', pid: 2, addr: 101, value: 2 },
      SPIN,
    ];
    const s = shrinkLimited(BASE, ops, 'hang', 'step-timeout', 300, MODULES);
    expect(s.limitMs).toBe(600);
    expect(s.before).toMatchObject({ invariant: 'hang', cause: 'step-timeout', step: 5 });
    expect(s.after).toMatchObject({ invariant: 'hang', step: s.ops.length - 1 });
    expect(s.ops.at(-1)).toEqual(SPIN);
    expect(s.ops.length).toBeLessThanOrEqual(2);
    expect(s.hangs).toBeGreaterThan(0);
  });

  it('leaves a trace that does not hang as it is', () => {
    const ops: Op[] = [{ op: 'spawn' }, { op: 'exit', pid: 1 }];
    const s = shrinkLimited(BASE, ops, 'hang', 'step-timeout', 300, MODULES);
    expect(s.before).toBeNull();
    expect(s.ops).toEqual(ops);
    expect(s.hangs).toBe(0);
  });
});
