/**
 * msync on the running kernel: the model and Linux agree step by step (outcomes, maps,
 * contents), and the kernel's answers are pinned: the argument checks (unknown flags, an
 * unaligned start, MS_ASYNC with MS_SYNC: EINVAL), a length rounding to nothing is 0, a hole
 * is ENOMEM (MS_ASYNC alone at once), MS_INVALIDATE of a VM_LOCKED VMA is EBUSY, and a
 * store after MS_SYNC still lands (the PTE was write-protected and clean, folio_mkclean).
 */
import { describe, expect, it } from 'vitest';
import { MS_ASYNC, MS_INVALIDATE, MS_SYNC } from '../../kernel-api/op.ts';
import { agreeOutcomes as agree, oracle } from './helpers.ts';

const RW = 3;
const A = 1000;
const BYTE = 1 / 4096;


describe.skipIf(!oracle().ok)('oracle: msync agrees with Linux', () => {
  it('argument checks, holes, EBUSY under MS_INVALIDATE of a locked VMA, and stores after MS_SYNC', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'creat', sizePages: 4 },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: true, file: 1, noreplace: true },
      { op: 'write', pid: 1, addr: A + 1, value: 7 },
      { op: 'msync', pid: 1, addr: A, lengthPages: 4, flags: MS_SYNC },
      { op: 'write', pid: 1, addr: A + 1, value: 8 },
      { op: 'read', pid: 1, addr: A + 1 },
      { op: 'msync', pid: 1, addr: A + BYTE, lengthPages: 1, flags: MS_SYNC },
      { op: 'msync', pid: 1, addr: A, lengthPages: 1, flags: MS_SYNC | MS_ASYNC },
      { op: 'msync', pid: 1, addr: A, lengthPages: 1, flags: 8 },
      { op: 'msync', pid: 1, addr: A, lengthPages: -0.5, flags: MS_SYNC },
      { op: 'msync', pid: 1, addr: A + 2, lengthPages: 4, flags: MS_SYNC },
      { op: 'msync', pid: 1, addr: A - 2, lengthPages: 4, flags: MS_ASYNC },
      { op: 'msync', pid: 1, addr: A - 2, lengthPages: 4, flags: MS_SYNC },
      { op: 'msync', pid: 1, addr: A + 1, lengthPages: 2 * BYTE, flags: MS_ASYNC },
      { op: 'mlock', pid: 1, addr: A + 3, lengthPages: 1 },
      { op: 'msync', pid: 1, addr: A, lengthPages: 4, flags: MS_SYNC },
      { op: 'msync', pid: 1, addr: A, lengthPages: 4, flags: MS_INVALIDATE },
      { op: 'msync', pid: 1, addr: A, lengthPages: 3, flags: MS_INVALIDATE | MS_SYNC },
      { op: 'pread', file: 1, index: 1 },
    ]);
    expect(out[4]).toBe('= 0');
    expect(out[6]).toBe('= 8');
    expect(out.slice(7, 10)).toEqual(['-EINVAL', '-EINVAL', '-EINVAL']);
    expect(out[10]).toBe('= 0');
    expect(out.slice(11, 14)).toEqual(['-ENOMEM', '-ENOMEM', '-ENOMEM']);
    expect(out[14]).toBe('= 0');
    expect(out[16]).toBe('= 0');
    expect(out[17]).toBe('-EBUSY');
    expect(out[18]).toBe('= 0');
    expect(out[19]).toBe('= 8');
  });
});
