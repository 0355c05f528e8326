/**
 * The advices of issue 17 on the running kernel: WIPEONFORK / KEEPONFORK, POPULATE_READ /
 * POPULATE_WRITE and WILLNEED, hand-written traces that must agree with the model step by
 * step (outcomes, /proc/<pid>/maps one line per VMA, pagemap and contents of every page).
 * Each pins the kernel's answer too, so a trace agreeing on a wrong answer is noticed.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import { checkTrace } from '../../harness/oracle.ts';
import { oracle, oracleBinary } from './helpers.ts';

const R = 1;
const W = 2;
const RW = 3;
const A = 1000; // inside the oracle's region

function agree(ops: Op[]): { outcomes: Outcome[]; pages: (pid: number, addr: number) => { present: boolean; value?: number } | undefined } {
  const v = checkTrace(oracleBinary(), ops);
  if (v.result !== 'agree') {
    throw new Error(`${v.result} at step ${v.step + 1} (${JSON.stringify(ops[v.step])}): ${JSON.stringify(v.differences, null, 1)}`);
  }
  const last = v.kernel.steps.at(-1)!;
  return {
    outcomes: v.kernel.steps.map((s) => s.outcome),
    pages: (pid, addr) => last.processes.find((p) => p.pid === pid)?.pages.get(addr),
  };
}

const map = (pid: number, addr: number, lengthPages: number, prot: number, extra: Partial<Extract<Op, { op: 'mmap' }>> = {}): Op =>
  ({ op: 'mmap', pid, addr, lengthPages, prot, shared: false, fixed: true, ...extra });
const madv = (pid: number, addr: number, lengthPages: number, advice: Extract<Op, { op: 'madvise' }>['advice']): Op =>
  ({ op: 'madvise', pid, addr, lengthPages, advice });
const e = (errno: string) => ({ kind: 'errno', errno });

describe.skipIf(!oracle().ok)('oracle: MADV_WIPEONFORK, POPULATE_*, WILLNEED as Linux 6.18', () => {
  it('a fork child reads zeroes in a WIPEONFORK range and the copied data elsewhere; KEEPONFORK merges back', () => {
    const r = agree([
      { op: 'spawn' }, map(1, A, 3, RW),
      { op: 'write', pid: 1, addr: A, value: 1 }, { op: 'write', pid: 1, addr: A + 1, value: 2 }, { op: 'write', pid: 1, addr: A + 2, value: 3 },
      madv(1, A + 1, 1, 'WIPEONFORK'), { op: 'fork', pid: 1 },
      { op: 'read', pid: 2, addr: A }, { op: 'read', pid: 2, addr: A + 1 }, { op: 'read', pid: 1, addr: A + 1 },
      madv(1, A + 1, 1, 'KEEPONFORK'),
    ]);
    expect(r.outcomes.slice(7, 10)).toEqual([{ kind: 'ok', value: 1 }, { kind: 'ok', value: 0 }, { kind: 'ok', value: 2 }]);
  });

  it('WIPEONFORK on a shared or file mapping is EINVAL; the VMAs before it keep the flag', () => {
    const r = agree([
      { op: 'spawn' }, map(1, A, 2, RW), map(1, A + 2, 2, RW, { shared: true }), madv(1, A, 4, 'WIPEONFORK'),
      { op: 'creat', sizePages: 1 }, map(1, A + 10, 1, RW, { file: 1 }), madv(1, A + 10, 1, 'WIPEONFORK'),
    ]);
    expect(r.outcomes[3]).toEqual(e('EINVAL'));
    expect(r.outcomes[6]).toEqual(e('EINVAL'));
  });

  it('POPULATE_READ maps the zero page, POPULATE_WRITE a written page, and breaks COW after fork', () => {
    const r = agree([
      { op: 'spawn' }, map(1, A, 2, RW), madv(1, A, 2, 'POPULATE_READ'),
      { op: 'write', pid: 1, addr: A, value: 5 }, { op: 'fork', pid: 1 }, madv(1, A, 2, 'POPULATE_WRITE'),
      { op: 'read', pid: 2, addr: A },
    ]);
    expect(r.outcomes[2]).toEqual({ kind: 'ok', value: 0 });
    expect(r.pages(1, A)).toMatchObject({ present: true, value: 5 });
    expect(r.pages(1, A + 1)).toMatchObject({ present: true });
  });

  it('POPULATE errors: a hole ENOMEM after the pages before, no VM_WRITE / VM_READ EINVAL, past EOF EFAULT', () => {
    const r = agree([
      { op: 'spawn' }, map(1, A, 1, RW), map(1, A + 2, 1, RW), madv(1, A, 3, 'POPULATE_WRITE'),
      map(1, A + 5, 1, R), madv(1, A + 5, 1, 'POPULATE_WRITE'), map(1, A + 7, 1, W), madv(1, A + 7, 1, 'POPULATE_READ'),
      { op: 'creat', sizePages: 1 }, map(1, A + 10, 2, RW, { file: 1 }), madv(1, A + 10, 2, 'POPULATE_READ'),
    ]);
    expect([r.outcomes[3], r.outcomes[5], r.outcomes[7], r.outcomes[10]]).toEqual([e('ENOMEM'), e('EINVAL'), e('EINVAL'), e('EFAULT')]);
    expect(r.pages(1, A)).toMatchObject({ present: true });
    expect(r.pages(1, A + 2)?.present ?? false).toBe(false);
  });

  it('WILLNEED maps nothing and a hole is ENOMEM', () => {
    const r = agree([{ op: 'spawn' }, map(1, A, 2, RW), madv(1, A, 2, 'WILLNEED'), madv(1, A, 3, 'WILLNEED')]);
    expect(r.outcomes.slice(2)).toEqual([{ kind: 'ok', value: 0 }, e('ENOMEM')]);
    expect(r.pages(1, A)?.present ?? false).toBe(false);
  });
});

describe.skipIf(!oracle().ok)('oracle: MADV_REMOVE as Linux 6.18', () => {
  it('a hole in a shared file mapping reads zero and is gone from the file; private COW copies keep their values', () => {
    const r = agree([
      { op: 'spawn' }, { op: 'creat', sizePages: 2 }, { op: 'pwrite', file: 1, index: 0, value: 10 }, { op: 'pwrite', file: 1, index: 1, value: 11 },
      map(1, A, 2, RW, { file: 1, shared: true }), map(1, A + 10, 2, RW, { file: 1 }),
      // Writes, not reads: a read fault of a file page maps its neighbours too (fault-around, documented).
      { op: 'write', pid: 1, addr: A, value: 10 }, { op: 'write', pid: 1, addr: A + 10, value: 98 }, { op: 'write', pid: 1, addr: A + 11, value: 99 },
      madv(1, A, 2, 'REMOVE'),
      { op: 'read', pid: 1, addr: A + 1 }, { op: 'read', pid: 1, addr: A + 10 }, { op: 'read', pid: 1, addr: A + 11 }, { op: 'pread', file: 1, index: 0 },
    ]);
    expect(r.outcomes.slice(9)).toEqual([{ kind: 'ok', value: 0 }, { kind: 'ok', value: 0 }, { kind: 'ok', value: 98 }, { kind: 'ok', value: 99 }, { kind: 'ok', value: 0 }]);
  });

  it('on shmem the fork child sees the hole; EINVAL on private anonymous memory, EACCES on a private or read-only file mapping', () => {
    const r = agree([
      { op: 'spawn' }, map(1, A, 2, RW, { shared: true }), { op: 'write', pid: 1, addr: A, value: 4 }, { op: 'write', pid: 1, addr: A + 1, value: 5 },
      { op: 'fork', pid: 1 }, madv(1, A + 1, 1, 'REMOVE'), { op: 'read', pid: 2, addr: A }, { op: 'read', pid: 2, addr: A + 1 },
      map(1, A + 10, 1, RW), madv(1, A + 10, 1, 'REMOVE'),
      { op: 'creat', sizePages: 1 }, map(1, A + 20, 1, RW, { file: 1 }), madv(1, A + 20, 1, 'REMOVE'),
      map(1, A + 30, 1, R, { file: 1, shared: true, mode: 'r' }), madv(1, A + 30, 1, 'REMOVE'),
    ]);
    expect([r.outcomes[5], r.outcomes[6], r.outcomes[7]]).toEqual([{ kind: 'ok', value: 0 }, { kind: 'ok', value: 4 }, { kind: 'ok', value: 0 }]);
    expect([r.outcomes[9], r.outcomes[12], r.outcomes[14]]).toEqual([e('EINVAL'), e('EACCES'), e('EACCES')]);
  });

  it('a private mapping that maps the page-cache page loses it too (unmap_mapping_range) and rereads zero', () => {
    const r = agree([
      { op: 'spawn' }, { op: 'creat', sizePages: 1 }, { op: 'pwrite', file: 1, index: 0, value: 7 },
      map(1, A, 1, RW, { file: 1, shared: true }), map(1, A + 10, 1, RW, { file: 1 }),
      { op: 'read', pid: 1, addr: A + 10 }, madv(1, A, 1, 'REMOVE'), { op: 'read', pid: 1, addr: A + 10 },
    ]);
    expect([r.outcomes[5], r.outcomes[7]]).toEqual([{ kind: 'ok', value: 7 }, { kind: 'ok', value: 0 }]);
  });
});
