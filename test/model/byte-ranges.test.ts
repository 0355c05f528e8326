/**
 * Byte addresses and lengths (kernel-api/bytes.ts): a fraction k/4096 of a page is a byte
 * value. munmap, mprotect and madvise refuse an unaligned start with EINVAL and round a byte
 * length up to whole pages (PAGE_ALIGN), as do_vmi_munmap, do_mprotect_pkey and
 * is_valid_madvise do in Linux 6.18; both kernels call the same pageRange.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { pageRange } from '../../kernel-api/bytes.ts';
import { validateOp } from '../../kernel-api/op-schema.ts';
import { ImplKernel } from '../../impl/kernel.ts';
import { ModelKernel } from '../../model/kernel.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { RO, RW, Scenario, okv } from './helpers.ts';

const BASE = 0x1000;
const BYTE = 1 / 4096;

function fourPages(): Scenario {
  const t = new Scenario();
  t.spawn();
  expect(t.anon(1, 4, { addr: BASE })).toBe(BASE);
  for (let i = 0; i < 4; i++) expect(t.write(1, BASE + i, 10 + i)).toEqual(okv());
  return t;
}
const ranges = (t: Scenario) => t.vmas(1).map((v) => [v.start, v.end, v.prot]);
const einval = { kind: 'errno', errno: 'EINVAL' };

describe('byte addresses: an unaligned start is EINVAL and changes nothing', () => {
  for (const op of [
    { op: 'munmap', pid: 1, addr: BASE + BYTE, lengthPages: 1 },
    { op: 'mprotect', pid: 1, addr: BASE + 1 + 100 * BYTE, lengthPages: 1, prot: RO },
    { op: 'madvise', pid: 1, addr: BASE + 4095 * BYTE, lengthPages: 1, advice: 'DONTNEED' },
    // The unaligned start is checked before a zero length (mprotect, madvise return 0 for it).
    { op: 'mprotect', pid: 1, addr: BASE + BYTE, lengthPages: 0, prot: RO },
    { op: 'madvise', pid: 1, addr: BASE + BYTE, lengthPages: 0, advice: 'DONTNEED' },
  ] as Op[]) {
    it(`${op.op} at ${JSON.stringify(op)}`, () => {
      const t = fourPages();
      expect(t.step(op)).toEqual(einval);
      expect(ranges(t)).toEqual([[BASE, BASE + 4, RW]]);
      for (let i = 0; i < 4; i++) expect(t.read(1, BASE + i)).toEqual(okv(10 + i));
      t.exitAllAndExpectNoLeak();
    });
  }
});

describe('byte lengths round up to whole pages (PAGE_ALIGN)', () => {
  it('munmap of one page and one byte unmaps two pages', () => {
    const t = fourPages();
    expect(t.step({ op: 'munmap', pid: 1, addr: BASE, lengthPages: 1 + BYTE })).toEqual(okv());
    expect(ranges(t)).toEqual([[BASE + 2, BASE + 4, RW]]);
    t.exitAllAndExpectNoLeak();
  });
  it('mprotect of one byte protects one page', () => {
    const t = fourPages();
    expect(t.step({ op: 'mprotect', pid: 1, addr: BASE + 1, lengthPages: BYTE, prot: RO })).toEqual(okv());
    expect(ranges(t)).toEqual([[BASE, BASE + 1, RW], [BASE + 1, BASE + 2, RO], [BASE + 2, BASE + 4, RW]]);
    t.exitAllAndExpectNoLeak();
  });
  it('madvise(DONTNEED) of 4095 bytes zaps one page only', () => {
    const t = fourPages();
    expect(t.step({ op: 'madvise', pid: 1, addr: BASE, lengthPages: 4095 * BYTE, advice: 'DONTNEED' })).toEqual(okv());
    expect(t.read(1, BASE)).toEqual(okv(0));
    expect(t.read(1, BASE + 1)).toEqual(okv(11));
    t.exitAllAndExpectNoLeak();
  });
  it('a nonzero length that PAGE_ALIGN wraps to 0: munmap EINVAL, mprotect ENOMEM, madvise EINVAL', () => {
    // -1 byte as size_t is 2^64 - 1; PAGE_ALIGN wraps it to 0.
    expect(pageRange('munmap', BASE, -BYTE)).toEqual({ errno: 'EINVAL' });
    expect(pageRange('mprotect', BASE, -BYTE)).toEqual({ errno: 'ENOMEM' });
    expect(pageRange('madvise', BASE, -BYTE)).toEqual({ errno: 'EINVAL' });
    const t = fourPages();
    expect(t.step({ op: 'mprotect', pid: 1, addr: BASE, lengthPages: -BYTE, prot: RO })).toEqual({ kind: 'errno', errno: 'ENOMEM' });
    expect(ranges(t)).toEqual([[BASE, BASE + 4, RW]]);
    t.exitAllAndExpectNoLeak();
  });
  it('whole pages pass unchanged (every shipped integer keeps its meaning)', () => {
    expect(pageRange('munmap', BASE, 3)).toEqual({ addr: BASE, lengthPages: 3 });
    expect(pageRange('mprotect', BASE, 0)).toEqual({ addr: BASE, lengthPages: 0 });
  });
});

describe('both kernels answer byte ranges alike', () => {
  it('model and impl agree step by step', () => {
    const ops: Op[] = [
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: BASE, lengthPages: 6, prot: RW, shared: false, noreplace: true },
      { op: 'write', pid: 1, addr: BASE + 2, value: 5 },
      { op: 'munmap', pid: 1, addr: BASE + BYTE, lengthPages: 1 },
      { op: 'mprotect', pid: 1, addr: BASE + 1, lengthPages: 1 + 7 * BYTE, prot: RO },
      { op: 'madvise', pid: 1, addr: BASE + 2, lengthPages: BYTE, advice: 'DONTNEED' },
      { op: 'read', pid: 1, addr: BASE + 2 },
      { op: 'mprotect', pid: 1, addr: BASE, lengthPages: -BYTE, prot: RO },
      { op: 'munmap', pid: 1, addr: BASE + 5, lengthPages: 100 * BYTE },
    ];
    const m = new ModelKernel({ ...DEFAULT_CONFIG });
    const i = new ImplKernel({ ...DEFAULT_CONFIG });
    const outs = ops.map((op) => {
      const a = m.step(op), b = i.step(op);
      expect(b).toEqual(a);
      return a;
    });
    expect(outs[3]).toEqual(einval);
    expect(outs[6]).toEqual(okv(0));
    const vm = [...m.inspect.vmas(1)].map((v) => [v.start, v.end, v.prot]);
    expect([...i.inspect.vmas(1)].map((v) => [v.start, v.end, v.prot])).toEqual(vm);
    expect(vm).toEqual([[BASE, BASE + 1, RW], [BASE + 1, BASE + 3, RO], [BASE + 3, BASE + 5, RW]]);
  });
});

describe('schema: byte fields', () => {
  it('accepts k/4096 fractions for munmap/mprotect/madvise addresses and lengths', () => {
    expect(validateOp({ op: 'munmap', pid: 1, addr: BASE + BYTE, lengthPages: 1 + 4095 * BYTE }, [])).toBeNull();
    expect(validateOp({ op: 'madvise', pid: 1, addr: BASE, lengthPages: 3 * BYTE, advice: 'COLD' }, [])).toBeNull();
  });
  it('refuses a fraction that is not a whole number of bytes', () => {
    expect(validateOp({ op: 'munmap', pid: 1, addr: BASE + 0.5 * BYTE, lengthPages: 1 }, [])).toMatchObject({ field: 'addr' });
    expect(validateOp({ op: 'mprotect', pid: 1, addr: BASE, lengthPages: 1 / 3, prot: 1 }, [])).toMatchObject({ field: 'lengthPages' });
  });
  it('still refuses fractions where a field holds whole pages', () => {
    expect(validateOp({ op: 'read', pid: 1, addr: BASE + BYTE }, [])).toMatchObject({ field: 'addr' });
  });
});
