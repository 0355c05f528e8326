/**
 * Byte addresses and lengths on the running kernel: unaligned starts, byte lengths and a
 * length PAGE_ALIGN wraps to 0, for munmap, mprotect, madvise, mincore, mremap, mmap and
 * UFFDIO_REGISTER. The model and Linux must
 * agree step by step, and the kernel's errnos are pinned too.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { formatOutcome } from '../../kernel-api/outcome.ts';
import { checkTrace } from '../../harness/oracle.ts';
import { oracle, oracleBinary } from './helpers.ts';

const RW = 3;
const R = 1;
const A = 1000;
const BYTE = 1 / 4096;

describe.skipIf(!oracle().ok)('oracle: byte addresses and lengths agree with Linux', () => {
  it('unaligned starts are EINVAL; byte lengths round up to pages; a wrapped length is EINVAL/ENOMEM', () => {
    const ops: Op[] = [
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 8, prot: RW, shared: false, noreplace: true },
      { op: 'write', pid: 1, addr: A + 2, value: 7 },
      { op: 'munmap', pid: 1, addr: A + BYTE, lengthPages: 1 },
      { op: 'mprotect', pid: 1, addr: A + 1 + 100 * BYTE, lengthPages: 1, prot: R },
      { op: 'madvise', pid: 1, addr: A + 2 + 4095 * BYTE, lengthPages: 1, advice: 'DONTNEED' },
      { op: 'mprotect', pid: 1, addr: A + BYTE, lengthPages: 0, prot: R },
      { op: 'madvise', pid: 1, addr: A + BYTE, lengthPages: 0, advice: 'COLD' },
      { op: 'read', pid: 1, addr: A + 2 },
      { op: 'madvise', pid: 1, addr: A + 2, lengthPages: BYTE, advice: 'DONTNEED' },
      { op: 'read', pid: 1, addr: A + 2 },
      { op: 'mprotect', pid: 1, addr: A + 3, lengthPages: 1 + BYTE, prot: R },
      { op: 'write', pid: 1, addr: A + 4, value: 1 },
      { op: 'munmap', pid: 1, addr: A + 6, lengthPages: 4095 * BYTE },
      { op: 'read', pid: 1, addr: A + 6 },
      { op: 'mprotect', pid: 1, addr: A, lengthPages: -BYTE, prot: R },
      { op: 'madvise', pid: 1, addr: A, lengthPages: -BYTE, advice: 'DONTNEED' },
      { op: 'munmap', pid: 1, addr: A, lengthPages: -BYTE },
    ];
    const v = checkTrace(oracleBinary(), ops);
    if (v.result !== 'agree') {
      throw new Error(`${v.result} at step ${v.step + 1} (${JSON.stringify(ops[v.step])}): ${JSON.stringify(v.differences, null, 1)}`);
    }
    const out = v.kernel.steps.map((s) => formatOutcome(s.outcome));
    expect(out.slice(3, 8)).toEqual(['-EINVAL', '-EINVAL', '-EINVAL', '-EINVAL', '-EINVAL']);
    expect(out[8]).toBe('= 7');
    expect(out[10]).toBe('= 0');
    expect(out[12]).toBe('SIGSEGV');
    expect(out[14]).toBe('SIGSEGV');
    expect(out.slice(15)).toEqual(['-ENOMEM', '-EINVAL', '-EINVAL']);
  });

  it('mincore: an unaligned start is EINVAL, a partial last page counts, a negative length is ENOMEM', () => {
    const ops: Op[] = [
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: false, noreplace: true },
      { op: 'write', pid: 1, addr: A + 1, value: 7 },
      { op: 'mincore', pid: 1, addr: A + BYTE, lengthPages: 1 },
      { op: 'mincore', pid: 1, addr: A, lengthPages: 1 + BYTE },
      { op: 'mincore', pid: 1, addr: A + 1, lengthPages: BYTE },
      { op: 'mincore', pid: 1, addr: A, lengthPages: 0 },
      { op: 'mincore', pid: 1, addr: A + 3, lengthPages: 1 + BYTE },
      { op: 'mincore', pid: 1, addr: A, lengthPages: -BYTE },
    ];
    const v = checkTrace(oracleBinary(), ops);
    if (v.result !== 'agree') {
      throw new Error(`${v.result} at step ${v.step + 1} (${JSON.stringify(ops[v.step])}): ${JSON.stringify(v.differences, null, 1)}`);
    }
    const out = v.kernel.steps.map((s) => s.outcome);
    expect(formatOutcome(out[3]!)).toBe('-EINVAL');
    expect(out[4]).toMatchObject({ kind: 'ok', values: [0, 1] });
    expect(out[5]).toMatchObject({ kind: 'ok', values: [1] });
    expect(formatOutcome(out[7]!)).toBe('-ENOMEM'); // the partial page past the mapping is a hole
    expect(formatOutcome(out[8]!)).toBe('-ENOMEM');
  });

  it('mremap: an unaligned addr or fixed new_addr is EINVAL, byte lengths round up, a wrapped new length is EINVAL', () => {
    const ops: Op[] = [
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 2, prot: RW, shared: false, noreplace: true },
      { op: 'write', pid: 1, addr: A, value: 7 },
      { op: 'mremap', pid: 1, addr: A + BYTE, oldPages: 1, newPages: 1, maymove: true },
      { op: 'mremap', pid: 1, addr: A, oldPages: 1, newPages: 1, maymove: true, fixed: true, newAddr: A + 8 + BYTE },
      { op: 'mremap', pid: 1, addr: A, oldPages: 2, newPages: -BYTE },
      { op: 'mremap', pid: 1, addr: A, oldPages: 1 + BYTE, newPages: 2 + 100 * BYTE, maymove: true, fixed: true, newAddr: A + 8 },
      { op: 'read', pid: 1, addr: A + 8 },
      { op: 'read', pid: 1, addr: A + 10 },
      { op: 'mremap', pid: 1, addr: A + 8, oldPages: 3, newPages: BYTE },
      { op: 'read', pid: 1, addr: A + 8 },
      { op: 'read', pid: 1, addr: A + 9 },
    ];
    const v = checkTrace(oracleBinary(), ops);
    if (v.result !== 'agree') {
      throw new Error(`${v.result} at step ${v.step + 1} (${JSON.stringify(ops[v.step])}): ${JSON.stringify(v.differences, null, 1)}`);
    }
    const out = v.kernel.steps.map((s) => formatOutcome(s.outcome));
    expect(out.slice(3, 6)).toEqual(['-EINVAL', '-EINVAL', '-EINVAL']);
    expect(out.slice(7, 9)).toEqual(['= 7', '= 0']); // 1 page + 1 byte moved as 2 pages, grown to 3
    expect(out.slice(10)).toEqual(['= 7', 'SIGSEGV']); // shrunk to one page
  });

  it('mmap: an unaligned offset or fixed address is EINVAL, a hint rounds down, a byte length rounds up, a negative one is ENOMEM', () => {
    const ops: Op[] = [
      { op: 'spawn' },
      { op: 'creat', sizePages: 4 },
      { op: 'pwrite', file: 1, index: 1, value: 5 },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 1, prot: RW, shared: false, fixed: true, file: 1, pgoff: BYTE },
      { op: 'mmap', pid: 1, addr: A + BYTE, lengthPages: 1, prot: RW, shared: false, fixed: true },
      { op: 'mmap', pid: 1, addr: A + 2 * BYTE, lengthPages: 1, prot: RW, shared: false, noreplace: true },
      { op: 'mmap', pid: 1, addr: A, lengthPages: -BYTE, prot: RW, shared: false },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 1 + BYTE, prot: R, shared: true, fixed: true, file: 1, pgoff: 1 },
      { op: 'read', pid: 1, addr: A },
      { op: 'read', pid: 1, addr: A + 1 },
      { op: 'mmap', pid: 1, addr: A + 8 + 100 * BYTE, lengthPages: 1, prot: RW, shared: false },
      { op: 'write', pid: 1, addr: A + 8, value: 3 },
    ];
    const v = checkTrace(oracleBinary(), ops);
    if (v.result !== 'agree') {
      throw new Error(`${v.result} at step ${v.step + 1} (${JSON.stringify(ops[v.step])}): ${JSON.stringify(v.differences, null, 1)}`);
    }
    const out = v.kernel.steps.map((s) => formatOutcome(s.outcome));
    expect(out.slice(3, 7)).toEqual(['-EINVAL', '-EINVAL', '-EINVAL', '-ENOMEM']);
    expect(out.slice(8, 10)).toEqual(['= 5', '= 0']); // 1 page + 1 byte of the file from page 1: two pages
    expect(v.model.steps[10]!.outcome).toEqual({ kind: 'ok', value: A + 8 }); // the hint, rounded down
  });

  it('UFFDIO_REGISTER: an unaligned start or a byte length is EINVAL, not rounded', () => {
    const ops: Op[] = [
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 2, prot: RW, shared: false, noreplace: true },
      { op: 'uffd_register_wp', pid: 1, addr: A + BYTE, lengthPages: 1, async: true },
      { op: 'uffd_register_wp', pid: 1, addr: A, lengthPages: 1 + BYTE, async: true },
      { op: 'uffd_register_wp', pid: 1, addr: A, lengthPages: 2, async: true },
    ];
    const v = checkTrace(oracleBinary(), ops);
    if (v.result === 'skipped') return; // no UFFD_FEATURE_WP_ASYNC here: the oracle says so
    if (v.result !== 'agree') {
      throw new Error(`${v.result} at step ${v.step + 1} (${JSON.stringify(ops[v.step])}): ${JSON.stringify(v.differences, null, 1)}`);
    }
    expect(v.kernel.steps.slice(2).map((s) => formatOutcome(s.outcome))).toEqual(['-EINVAL', '-EINVAL', '= 0']);
  });
});
