/**
 * corrupt() on the optimised kernel: every Corruption kind, applied to the same state in
 * the model and in impl (frames and slots named through the same process and address,
 * since pfn and slot numbers differ), leaves the two observing and inspecting alike.
 */
import { describe, expect, it } from 'vitest';
import type { Corruption, Kernel } from '../../kernel-api/kernel.ts';
import type { Op } from '../../kernel-api/op.ts';
import { ModelKernel } from '../../model/kernel.ts';
import { ImplKernel } from '../../impl/kernel.ts';
import { observe } from '../../properties/observe.ts';

/** P1 maps 4 pages, writes three, forks P2 (COW), P1's page 2 goes to swap; P3 is an unrelated process. */
const SETUP: Op[] = [
  { op: 'spawn' },
  { op: 'mmap', pid: 1, addr: 4096, lengthPages: 4, prot: 3, shared: false, fixed: true },
  { op: 'write', pid: 1, addr: 4096, value: 11 },
  { op: 'write', pid: 1, addr: 4097, value: 12 },
  { op: 'write', pid: 1, addr: 4098, value: 13 },
  { op: 'fork', pid: 1 },
  { op: 'reclaim', pid: 1, addr: 4098 },
  { op: 'spawn' },
];

function build(make: () => Kernel): Kernel {
  const k = make();
  for (const op of SETUP) k.step(op);
  return k;
}

function pteAt(k: Kernel, pid: number, addr: number) {
  for (const [a, pte] of k.inspect.ptes(pid)) if (a === addr) return pte;
  throw new Error(`no PTE at ${addr} of P${pid}`);
}

function pfnAt(k: Kernel, pid: number, addr: number): number {
  const pte = pteAt(k, pid, addr);
  if (pte.kind !== 'present') throw new Error('not present');
  return pte.pfn;
}

function slotAt(k: Kernel, pid: number, addr: number): number {
  const pte = pteAt(k, pid, addr);
  if (pte.kind !== 'swap') throw new Error('not swapped');
  return pte.slot;
}

/** Each corruption, with the kernel-specific numbers looked up in that kernel. */
const CORRUPTIONS: Array<[Corruption['kind'], (k: Kernel) => Corruption]> = [
  ['leak-ref', (k) => ({ kind: 'leak-ref', pfn: pfnAt(k, 1, 4096) })],
  ['skew-mapcount', (k) => ({ kind: 'skew-mapcount', pfn: pfnAt(k, 1, 4097) })],
  ['free-under-pte', () => ({ kind: 'free-under-pte', pid: 1, addr: 4096 })],
  ['set-value', (k) => ({ kind: 'set-value', pfn: pfnAt(k, 2, 4097), value: 99 })],
  ['make-writable', () => ({ kind: 'make-writable', pid: 2, addr: 4096 })],
  ['skew-rss', () => ({ kind: 'skew-rss', pid: 2 })],
  ['skew-swap-count', (k) => ({ kind: 'skew-swap-count', slot: slotAt(k, 1, 4098) })],
  ['pte-outside-vma', () => ({ kind: 'pte-outside-vma', pid: 1, addr: 4097, to: 9000 })],
  ['leak-frame', () => ({ kind: 'leak-frame' })],
  ['skip-ptrace-check', () => ({ kind: 'skip-ptrace-check' })],
];

/** What the invariants read besides observe(): frame views of mapped pages, swap counts, holds. */
function census(k: Kernel) {
  const frames: unknown[] = [];
  for (const p of k.inspect.processes()) {
    for (const [addr, pte] of k.inspect.ptes(p.pid)) {
      if (pte.kind === 'present') {
        const f = k.inspect.frame(pte.pfn);
        frames.push([p.pid, addr, pte.write, f === undefined ? 'freed' : [f.kind, f.refcount, f.mapcount, f.value, f.anonExclusive]]);
      }
    }
  }
  const swapCounts = [...k.inspect.swapSlots()].map((s) => s.count).sort();
  const holds = [...k.inspect.driverHolds()].map((h) => [h.holder, h.refs]);
  return { frames, swapCounts, holds, observation: observe(k.inspect) };
}

describe('impl corrupt()', () => {
  for (const [kind, corruption] of CORRUPTIONS) {
    it(`${kind} has the same effect on impl as on the model`, () => {
      const model = build(() => new ModelKernel());
      const impl = build(() => new ImplKernel());
      expect(census(impl)).toEqual(census(model));
      const before = census(impl);
      model.corrupt(corruption(model));
      impl.corrupt(corruption(impl));
      const after = census(impl);
      expect(after).toEqual(census(model));
      if (kind !== 'skip-ptrace-check') expect(after).not.toEqual(before);
    });
  }

  it('skip-ptrace-check lets an unrelated process read another through /proc/<pid>/mem', () => {
    const impl = build(() => new ImplKernel());
    const read: Op = { op: 'proc_mem_read', pid: 3, target: 1, addr: 4096 };
    expect(impl.step(read)).toEqual({ kind: 'errno', errno: 'EACCES' });
    impl.corrupt({ kind: 'skip-ptrace-check' });
    expect(impl.step(read)).toEqual({ kind: 'ok', value: 11 });
  });

  it('a freed frame under a stale PTE is no frame, and its pfn is not reused', () => {
    const impl = build(() => new ImplKernel());
    const pfn = pfnAt(impl, 1, 4096);
    impl.corrupt({ kind: 'free-under-pte', pid: 1, addr: 4096 });
    expect(impl.inspect.frame(pfn)).toBeUndefined();
    impl.step({ op: 'mmap', pid: 3, addr: 8192, lengthPages: 8, prot: 3, shared: false, fixed: true });
    for (let a = 8192; a < 8200; a++) impl.step({ op: 'write', pid: 3, addr: a, value: a });
    for (let a = 8192; a < 8200; a++) expect(pfnAt(impl, 3, a)).not.toBe(pfn);
    expect(impl.step({ op: 'read', pid: 1, addr: 4096 })).toEqual({ kind: 'ok', value: 11 });
  });
});
