/**
 * mlock, mlock2(MLOCK_ONFAULT), munlock, mlockall(MCL_FUTURE), munlockall and MAP_LOCKED on the
 * running kernel: the model and Linux agree step by step (outcomes, maps uncoalesced — a
 * VM_LOCKED VMA never merges with an unlocked one — and pagemap), and the kernel's answers
 * are pinned: mlock faults pages in (present in pagemap), mlock2(ONFAULT) does not, a locked
 * VMA refuses MADV_DONTNEED and MADV_PAGEOUT (EINVAL), a hole is ENOMEM, fork does not lock
 * the child's copy.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { formatOutcome } from '../../kernel-api/outcome.ts';
import { PM_PRESENT } from '../../kernel-api/op.ts';
import { checkTrace } from '../../harness/oracle.ts';
import { oracle, oracleBinary } from './helpers.ts';

const RW = 3;
const A = 1000;
const BYTE = 1 / 4096;

let present: boolean[][] = [];

function agree(ops: Op[]): string[] {
  const v = checkTrace(oracleBinary(), ops);
  if (v.result !== 'agree') throw new Error(`${v.result} at step ${v.step + 1} (${JSON.stringify(ops[v.step])}): ${JSON.stringify(v.differences, null, 1)}`);
  present = v.kernel.steps.map((s) => (s.outcome.kind === 'ok' && s.outcome.values !== undefined ? s.outcome.values.map((x) => (x & PM_PRESENT) !== 0) : []));
  return v.kernel.steps.map((s) => formatOutcome(s.outcome));
}

describe.skipIf(!oracle().ok)('oracle: mlock and friends agree with Linux', () => {
  it('mlock populates and splits, ONFAULT does not populate, locked VMAs refuse DONTNEED and PAGEOUT, holes are ENOMEM', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 6, prot: RW, shared: false, noreplace: true },
      { op: 'mlock', pid: 1, addr: A + 1 + 7 * BYTE, lengthPages: 1 }, // bytes widen to pages 1 and 2
      { op: 'pagemap_read', pid: 1, target: 1, addr: A, count: 4 },
      { op: 'madvise', pid: 1, addr: A, lengthPages: 3, advice: 'DONTNEED' },
      { op: 'madvise', pid: 1, addr: A + 1, lengthPages: 1, advice: 'PAGEOUT' },
      { op: 'mlock', pid: 1, addr: A + 4, lengthPages: 1, onfault: true },
      { op: 'pagemap_read', pid: 1, target: 1, addr: A + 4, count: 1 },
      { op: 'mlock', pid: 1, addr: A + 5, lengthPages: 3 },
      { op: 'munlock', pid: 1, addr: A + 1, lengthPages: 1 },
      { op: 'madvise', pid: 1, addr: A + 1, lengthPages: 1, advice: 'DONTNEED' },
      { op: 'fork', pid: 1 },
      { op: 'madvise', pid: 2, addr: A + 2, lengthPages: 1, advice: 'DONTNEED' },
    ]);
    expect(out[2]).toBe('= 0');
    expect(present[3]).toEqual([false, true, true, false]);
    expect(present[7]).toEqual([false]); // MLOCK_ONFAULT
    expect(out[4]).toBe('-EINVAL');
    expect(out[5]).toBe('-EINVAL');
    expect(out[8]).toBe('-ENOMEM');
    expect(out[10]).toBe('= 0');
    expect(out[12]).toBe('= 0'); // the child's copy is not locked
  });

  it('MAP_LOCKED and mlockall(MCL_FUTURE) lock new mappings and fault them in; munlockall undoes it', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 2, prot: RW, shared: false, noreplace: true, locked: true },
      { op: 'pagemap_read', pid: 1, target: 1, addr: A, count: 2 },
      { op: 'madvise', pid: 1, addr: A, lengthPages: 1, advice: 'DONTNEED' },
      { op: 'mlockall', pid: 1, flags: 2 },
      { op: 'mmap', pid: 1, addr: A + 4, lengthPages: 1, prot: RW, shared: false, noreplace: true },
      { op: 'pagemap_read', pid: 1, target: 1, addr: A + 4, count: 1 },
      { op: 'munlockall', pid: 1 },
      { op: 'madvise', pid: 1, addr: A, lengthPages: 5, advice: 'DONTNEED' },
      { op: 'mlockall', pid: 1, flags: 4 },
      { op: 'mlockall', pid: 1, flags: 8 },
    ]);
    expect(present[2]).toEqual([true, true]);
    expect(out[3]).toBe('-EINVAL');
    expect(present[6]).toEqual([true]); // MCL_FUTURE
    expect(out[8]).toBe('-ENOMEM'); // the hole between, after the mapped parts were zapped
    expect(out.slice(9)).toEqual(['-EINVAL', '-EINVAL']);
  });

  it('a locked mapping that mremap grows in place has its new pages faulted in', () => {
    agree([
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 1, prot: RW, shared: false, noreplace: true },
      { op: 'mlock', pid: 1, addr: A, lengthPages: 1 },
      { op: 'mremap', pid: 1, addr: A, oldPages: 1, newPages: 3 },
      { op: 'pagemap_read', pid: 1, target: 1, addr: A, count: 3 },
    ]);
    expect(present[4]).toEqual([true, true, true]);
  });

  it('mprotect making a private locked VMA writable breaks COW at once; MADV_REMOVE refuses a locked VMA', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: 5, shared: false, noreplace: true },
      { op: 'read', pid: 1, addr: A + 3 },
      { op: 'mlock', pid: 1, addr: A + 3, lengthPages: 1 },
      { op: 'mprotect', pid: 1, addr: A + 3, lengthPages: 1, prot: RW },
      { op: 'pagemap_read', pid: 1, target: 1, addr: A + 3, count: 1 },
      { op: 'mmap', pid: 1, addr: A + 8, lengthPages: 1, prot: RW, shared: true, noreplace: true, locked: true },
      { op: 'madvise', pid: 1, addr: A + 8, lengthPages: 1, advice: 'REMOVE' },
    ]);
    expect(present[5]).toEqual([true]);
    expect(out[7]).toBe('-EINVAL');
  });
});
