/**
 * MREMAP_DONTUNMAP on the running kernel (mm/mremap.c, 6.18): hand-written traces that must
 * agree with the model step by step, /proc/<pid>/maps one line per VMA included.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { checkTrace } from '../../harness/oracle.ts';
import { oracle, oracleBinary } from './helpers.ts';

const RW = 3;
const A = 1000;
const map = (pid: number, addr: number, lengthPages: number, prot: number, extra: Partial<Extract<Op, { op: 'mmap' }>> = {}): Op =>
  ({ op: 'mmap', pid, addr, lengthPages, prot, shared: false, fixed: true, ...extra });
const e = (errno: string) => ({ kind: 'errno', errno });

function agree(ops: Op[]) {
  const v = checkTrace(oracleBinary(), ops);
  if (v.result !== 'agree') throw new Error(`${v.result} at step ${v.step + 1} (${JSON.stringify(ops[v.step])}): ${JSON.stringify(v.differences, null, 1)}`);
  return v.kernel;
}

describe.skipIf(!oracle().ok)('oracle: MREMAP_DONTUNMAP as Linux 6.18', () => {
  it('anonymous pages move; the old range stays mapped and reads zero; a file mapping refaults the file', () => {
    const k = agree([
      { op: 'spawn' }, map(1, A, 2, RW), { op: 'write', pid: 1, addr: A, value: 7 }, { op: 'write', pid: 1, addr: A + 1, value: 8 },
      { op: 'mremap', pid: 1, addr: A, oldPages: 2, newPages: 2, maymove: true, fixed: true, newAddr: A + 10, dontunmap: true },
      { op: 'read', pid: 1, addr: A + 10 }, { op: 'read', pid: 1, addr: A }, { op: 'write', pid: 1, addr: A + 1, value: 9 },
      { op: 'creat', sizePages: 1 }, { op: 'pwrite', file: 1, index: 0, value: 5 }, map(1, A + 20, 1, RW, { file: 1 }),
      { op: 'write', pid: 1, addr: A + 20, value: 6 },
      { op: 'mremap', pid: 1, addr: A + 20, oldPages: 1, newPages: 1, maymove: true, dontunmap: true },
      { op: 'read', pid: 1, addr: A + 20 },
    ]);
    const out = k.steps.map((s) => s.outcome);
    expect([out[5], out[6], out[13]]).toEqual([{ kind: 'ok', value: 7 }, { kind: 'ok', value: 0 }, { kind: 'ok', value: 5 }]);
    const maps = k.steps[4].processes[0].maps.map((m) => [m.start, m.end]);
    expect(maps).toEqual([[A, A + 2], [A + 10, A + 12]]);
  });

  it('part of a VMA: the old VMA stays whole; EINVAL without MAYMOVE or with a new length', () => {
    const k = agree([
      { op: 'spawn' }, map(1, A, 4, RW), { op: 'write', pid: 1, addr: A + 1, value: 1 },
      { op: 'mremap', pid: 1, addr: A + 1, oldPages: 2, newPages: 2, maymove: true, fixed: true, newAddr: A + 10, dontunmap: true },
      { op: 'mremap', pid: 1, addr: A, oldPages: 1, newPages: 1, dontunmap: true },
      { op: 'mremap', pid: 1, addr: A, oldPages: 1, newPages: 2, maymove: true, dontunmap: true },
      { op: 'read', pid: 1, addr: A + 11 },
    ]);
    const out = k.steps.map((s) => s.outcome);
    expect([out[4], out[5], out[6]]).toEqual([e('EINVAL'), e('EINVAL'), { kind: 'ok', value: 0 }]);
    expect(k.steps[3].processes[0].maps.map((m) => [m.start, m.end])).toEqual([[A, A + 4], [A + 10, A + 12]]);
  });

  it('the old VMA keeps VM_ACCOUNT (a new writable mapping next to it merges); a faulted copy keeps its vm_pgoff', () => {
    for (const write of [true, false]) {
      const k = agree([
        { op: 'spawn' }, map(1, A, 2, RW), ...(write ? [{ op: 'write', pid: 1, addr: A, value: 1 } as Op] : []),
        { op: 'mremap', pid: 1, addr: A, oldPages: 2, newPages: 2, maymove: true, fixed: true, newAddr: A + 10, dontunmap: true },
        map(1, A + 2, 1, RW), map(1, A + 12, 1, RW),
      ]);
      const maps = k.steps.at(-1)!.processes[0].maps.map((m) => [m.start, m.end]);
      expect(maps).toEqual(write ? [[A, A + 3], [A + 10, A + 12], [A + 12, A + 13]] : [[A, A + 3], [A + 10, A + 13]]);
    }
  });
});
