/**
 * mincore on the running kernel: hand-written traces that must agree with the model step by
 * step, each pinning the kernel's vector; and the one documented divergence, tmpfs-read-hole.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { checkTrace } from '../../harness/oracle.ts';
import { oracle, oracleBinary } from './helpers.ts';

const A = 1000;
const map = (pid: number, addr: number, lengthPages: number, prot: number, extra: Partial<Extract<Op, { op: 'mmap' }>> = {}): Op =>
  ({ op: 'mmap', pid, addr, lengthPages, prot, shared: false, fixed: true, ...extra });
const mincore = (pid: number, addr: number, lengthPages: number): Op => ({ op: 'mincore', pid, addr, lengthPages });
const vec = (values: number[]) => ({ kind: 'ok', value: values.length, values });

describe.skipIf(!oracle().ok)('oracle: mincore as Linux 6.18', () => {
  it('anonymous, shmem and file mappings: present pages, page-cache holes, ENOMEM at a hole', () => {
    const ops: Op[] = [
      { op: 'spawn' }, map(1, A, 4, 3), { op: 'write', pid: 1, addr: A, value: 1 }, { op: 'read', pid: 1, addr: A + 1 },
      mincore(1, A, 4), mincore(1, A, 5),
      { op: 'creat', sizePages: 4 }, { op: 'pwrite', file: 1, index: 2, value: 5 }, map(1, A + 10, 4, 3, { shared: true, file: 1 }),
      mincore(1, A + 10, 4),
      map(1, A + 20, 2, 3, { shared: true }), { op: 'write', pid: 1, addr: A + 21, value: 3 }, mincore(1, A + 20, 2),
      { op: 'fork', pid: 1 }, mincore(2, A + 20, 2), mincore(2, A, 2),
    ];
    const v = checkTrace(oracleBinary(), ops);
    expect(v.result, JSON.stringify(v.differences)).toBe('agree');
    const out = v.kernel.steps.map((s) => s.outcome);
    expect([out[4], out[5], out[9], out[12]]).toEqual([vec([1, 1, 0, 0]), { kind: 'errno', errno: 'ENOMEM' }, vec([0, 0, 1, 0]), vec([0, 1])]);
    // The child: the shmem page is in the cache (its PTE was not copied), the anonymous pages were.
    expect([out[14], out[15]]).toEqual([vec([0, 1]), vec([1, 1])]);
  });

  it('a pread of a hole caches a page in the model, not on tmpfs: documented, and only there', () => {
    const ops: Op[] = [
      { op: 'spawn' }, { op: 'creat', sizePages: 4 }, map(1, A, 4, 1, { file: 1 }), { op: 'pread', file: 1, index: 2 }, mincore(1, A, 4),
    ];
    const v = checkTrace(oracleBinary(), ops);
    expect(v.result).toBe('documented');
    expect(v.documented).toEqual(['tmpfs-read-hole']);
    expect(v.kernel.steps[4].outcome).toEqual(vec([0, 0, 0, 0]));
  });
});
