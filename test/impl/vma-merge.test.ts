/**
 * The merge rules of mm/vma.c, ported from Linux's own unit tests (tools/testing/vma/vma.c:
 * test_simple_merge, test_simple_modify, test_merge_new, test_vma_merge_special_flags,
 * test_vma_merge_with_close, test_vma_merge_new_with_close, test_merge_existing,
 * test_anon_vma_non_mergeable, test_dup_anon_vma, test_merge_extend, test_copy_vma) and
 * the 6.18 fork-child rule, run on both kernels' vma-merge.ts. Addresses are in pages (the
 * C tests' 0x1000 units); every VMA is private anonymous RW unless a case says otherwise.
 * Then the same rules through the system calls: mmap, mprotect, madvise, mremap, fork.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { PROT_READ, PROT_WRITE } from '../../kernel-api/op.ts';
import type { VmOperations } from '../../kernel-api/driver.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { ModelKernel } from '../../model/kernel.ts';
import type { Vma } from '../../model/types.ts';
import { insertVma as modelInsertVma } from '../../model/vma.ts';
import * as modelMerge from '../../model/vma-merge.ts';
import { ImplKernel } from '../../impl/kernel.ts';
import { ImplVma } from '../../impl/types.ts';
import { insertVma as implInsertVma } from '../../impl/vma.ts';
import * as implMerge from '../../impl/vma-merge.ts';

const RW = PROT_READ | PROT_WRITE;
const CLOSE_OPS: VmOperations = { name: 'dummy_close', close: () => {} };

/** The fields a case sets or reads: both kernels' VMAs have them. */
type TestVma = {
  id: number; start: number; end: number; pgoff: number; prot: number; anonVma: number; forkChild: boolean;
  vmOps: VmOperations | null; pfnmap: boolean; io: boolean; mixedmap: boolean; dontexpand: boolean; dontcopy: boolean;
};
type Attrs = Partial<Pick<TestVma, 'prot' | 'pfnmap' | 'io' | 'mixedmap' | 'dontexpand' | 'dontcopy'>>;
type Merge = {
  prev?: TestVma; middle?: TestVma; next?: TestVma; start: number; end: number; pgoff: number; attrs?: Attrs;
  anonVma?: number; copiedFrom?: TestVma;
};

/** One kernel's mm and merge functions behind one shape, as the C tests' alloc_and_link_vma and merge_new/merge_existing. */
interface MergeKernel {
  link(start: number, end: number, pgoff: number, attrs?: Attrs): TestVma;
  vmas(): [number, number, number][];
  mergeNew(m: Merge): TestVma | undefined;
  mergeExisting(m: Merge): TestVma | undefined;
  modify(prev: TestVma | undefined, vma: TestVma, start: number, end: number, attrs: Attrs): TestVma | string;
  extend(vma: TestVma, deltaPages: number): TestVma | undefined;
}

function modelKernel(): MergeKernel {
  const k = new ModelKernel(DEFAULT_CONFIG);
  k.step({ op: 'spawn' });
  const s = k.state;
  const mm = s.processes.get(1)!.mm;
  const base = (start: number, end: number, pgoff: number): Vma => ({
    id: s.nextVmaId++, mm: 1, start, end, prot: RW, shared: false, mayWrite: true, file: -1, vmFile: 0, pgoff, pfnmap: false,
    mixedmap: false, io: false, dontcopy: false, dontexpand: false, wipeonfork: false, locked: false, lockonfault: false, anonVma: 0, forkChild: false, account: true,
    vmOps: null, driverFile: null, privateData: null, softDirty: false, uffdCtx: 0,
  });
  const attrsOf = (a: Attrs | undefined): Vma => ({ ...base(0, 1, 0), ...a });
  const merge = (m: Merge): modelMerge.VmaMerge => ({
    prev: m.prev as Vma | undefined, middle: m.middle as Vma | undefined, next: m.next as Vma | undefined,
    start: m.start, end: m.end, pgoff: m.pgoff, attrs: attrsOf(m.attrs), anonVma: m.anonVma ?? m.middle?.anonVma ?? 0,
    copiedFrom: m.copiedFrom as Vma | undefined,
  });
  return {
    link: (start, end, pgoff, attrs) => {
      const v = { ...base(start, end, pgoff), ...attrs };
      modelInsertVma(mm, v);
      return v;
    },
    vmas: () => mm.vmas.map((v) => [v.start, v.end, v.pgoff]),
    mergeNew: (m) => modelMerge.vmaMergeNewRange(s, mm, merge(m)),
    mergeExisting: (m) => modelMerge.vmaMergeExistingRange(s, mm, merge(m)),
    modify: (prev, vma, start, end, attrs) => modelMerge.vmaModify(s, mm, prev as Vma | undefined, vma as Vma, start, end, { ...(vma as Vma), ...attrs }),
    extend: (vma, delta) => modelMerge.vmaMergeExtend(s, mm, vma as Vma, delta),
  };
}

function implKernel(): MergeKernel {
  const k = new ImplKernel(DEFAULT_CONFIG);
  k.step({ op: 'spawn' });
  const s = k.state;
  const mm = s.processes.get(1)!.mm;
  const base = (start: number, end: number, pgoff: number): ImplVma => {
    const v = new ImplVma(s.nextVmaId++, 1, start, end, RW, false, true, -1, pgoff, false, false, false, false, false, 0, null, null, null);
    v.account = true;
    v.softDirty = false;
    return v;
  };
  const attrsOf = (a: Attrs | undefined): ImplVma => Object.assign(base(0, 1, 0), a);
  const merge = (m: Merge): implMerge.VmaMerge => ({
    prev: m.prev as ImplVma | undefined, middle: m.middle as ImplVma | undefined, next: m.next as ImplVma | undefined,
    start: m.start, end: m.end, pgoff: m.pgoff, attrs: attrsOf(m.attrs), anonVma: m.anonVma ?? m.middle?.anonVma ?? 0,
    copiedFrom: m.copiedFrom as ImplVma | undefined,
  });
  return {
    link: (start, end, pgoff, attrs) => {
      const v = Object.assign(base(start, end, pgoff), attrs);
      implInsertVma(s, mm, v);
      return v;
    },
    vmas: () => mm.vmas.inRange(0, Infinity).map((v) => [v.start, v.end, v.pgoff]),
    mergeNew: (m) => implMerge.vmaMergeNewRange(s, mm, merge(m)),
    mergeExisting: (m) => implMerge.vmaMergeExistingRange(s, mm, merge(m)),
    modify: (prev, vma, start, end, attrs) =>
      implMerge.vmaModify(s, mm, prev as ImplVma | undefined, vma as ImplVma, start, end, Object.assign((vma as ImplVma).dup(vma.id), attrs)),
    extend: (vma, delta) => implMerge.vmaMergeExtend(s, mm, vma as ImplVma, delta),
  };
}

const KERNELS: [string, () => MergeKernel][] = [['model', modelKernel], ['impl', implKernel]];

describe.each(KERNELS)('vma merge rules of Linux 6.18 on the %s', (_name, make) => {
  it('test_simple_merge: a new range between compatible prev and next merges all three', () => {
    const k = make();
    const prev = k.link(0, 1, 0);
    const next = k.link(2, 3, 2);
    expect(k.mergeNew({ prev, next, start: 1, end: 2, pgoff: 1 })).toBe(prev);
    expect(k.vmas()).toEqual([[0, 3, 0]]);
  });

  it('test_simple_modify: a change in the middle of a VMA splits it in three; the middle keeps the VMA', () => {
    const k = make();
    const vma = k.link(0, 3, 0);
    const r = k.modify(vma, vma, 1, 2, { prot: PROT_READ });
    expect(r).toBe(vma);
    expect(k.vmas()).toEqual([[0, 1, 0], [1, 2, 1], [2, 3, 2]]);
  });

  it('test_merge_new: pgoff must be contiguous, anonymous VMAs too', () => {
    const k = make();
    const prev = k.link(0, 2, 0);
    const next = k.link(4, 6, 7); // vm_pgoff 7, not 4: no merge from below
    expect(k.mergeNew({ prev, next, start: 2, end: 4, pgoff: 2 })).toBe(prev);
    expect(k.vmas()).toEqual([[0, 4, 0], [4, 6, 7]]);
    const k2 = make();
    const p2 = k2.link(0, 2, 0);
    expect(k2.mergeNew({ prev: p2, start: 2, end: 4, pgoff: 5 })).toBeUndefined();
  });

  it('test_vma_merge_special_flags: VM_IO, VM_DONTEXPAND, VM_PFNMAP, VM_MIXEDMAP never merge, new or existing', () => {
    for (const flag of ['io', 'dontexpand', 'pfnmap', 'mixedmap'] as const) {
      const k = make();
      const prev = k.link(0, 3, 0, { [flag]: true });
      expect(k.mergeNew({ prev, start: 3, end: 4, pgoff: 3, attrs: { [flag]: true } }), flag).toBeUndefined();
      const vma = k.link(3, 4, 3);
      expect(k.mergeExisting({ prev, middle: vma, start: 3, end: 4, pgoff: 3, attrs: { [flag]: true } }), flag).toBeUndefined();
      expect(k.vmas()).toEqual([[0, 3, 0], [3, 4, 3]]);
    }
  });

  it('test_vma_merge_with_close: a new range does not remove a next with ->close, it only expands prev', () => {
    const k = make();
    const prev = k.link(0, 3, 0);
    const next = k.link(5, 9, 5, {});
    next.vmOps = CLOSE_OPS;
    expect(k.mergeNew({ prev, next, start: 3, end: 5, pgoff: 3 })).toBe(prev);
    expect(k.vmas()).toEqual([[0, 5, 0], [5, 9, 5]]);
  });

  it('test_vma_merge_with_close: a changed VMA with ->close that a merge would remove does not merge', () => {
    // PPPVV: vma has close, the whole of it would go into prev.
    const a = make();
    const prevA = a.link(0, 3, 0);
    const vmaA = a.link(3, 5, 3, { prot: PROT_READ });
    vmaA.vmOps = CLOSE_OPS;
    expect(a.mergeExisting({ prev: prevA, middle: vmaA, start: 3, end: 5, pgoff: 3 })).toBeUndefined();
    // VVNNNN: vma has close, the whole of it would go into next.
    const b = make();
    const vmaB = b.link(3, 5, 3, { prot: PROT_READ });
    b.link(5, 9, 5);
    vmaB.vmOps = CLOSE_OPS;
    expect(b.mergeExisting({ middle: vmaB, start: 3, end: 5, pgoff: 3 })).toBeUndefined();
    // PPPVVNNNN, vma has close: nothing.
    const c = make();
    const prevC = c.link(0, 3, 0);
    const vmaC = c.link(3, 5, 3, { prot: PROT_READ });
    c.link(5, 9, 5);
    vmaC.vmOps = CLOSE_OPS;
    expect(c.mergeExisting({ prev: prevC, middle: vmaC, start: 3, end: 5, pgoff: 3 })).toBeUndefined();
    expect(c.vmas()).toEqual([[0, 3, 0], [3, 5, 3], [5, 9, 5]]);
    // PPPVVNNNN, next has close: reduced to prev and vma.
    const d = make();
    const prevD = d.link(0, 3, 0);
    const vmaD = d.link(3, 5, 3, { prot: PROT_READ });
    const nextD = d.link(5, 9, 5);
    nextD.vmOps = CLOSE_OPS;
    expect(d.mergeExisting({ prev: prevD, middle: vmaD, start: 3, end: 5, pgoff: 3 })).toBe(prevD);
    expect(d.vmas()).toEqual([[0, 5, 0], [5, 9, 5]]);
  });

  it('test_vma_merge_new_with_close: prev and next both with ->close: prev expands, next stays', () => {
    const k = make();
    const prev = k.link(0, 2, 0);
    const next = k.link(5, 7, 5);
    prev.vmOps = CLOSE_OPS;
    next.vmOps = CLOSE_OPS;
    expect(k.mergeNew({ prev, next, start: 2, end: 5, pgoff: 2 })).toBe(prev);
    expect(k.vmas()).toEqual([[0, 5, 0], [5, 7, 5]]);
    expect(prev.vmOps).toBe(CLOSE_OPS);
  });

  it('test_merge_existing: right partial and full span, left partial and full span, both, and ranges that cannot merge', () => {
    // Merge right, partial span: VVVVNNN → VNNNNNN; close hooks on both have no impact.
    const a = make();
    const vmaA = a.link(2, 6, 2, { prot: PROT_READ });
    const nextA = a.link(6, 9, 6);
    vmaA.vmOps = CLOSE_OPS;
    nextA.vmOps = CLOSE_OPS;
    vmaA.anonVma = 1;
    expect(a.mergeExisting({ prev: vmaA, middle: vmaA, start: 3, end: 6, pgoff: 3 })).toBe(nextA);
    expect(a.vmas()).toEqual([[2, 3, 2], [3, 9, 3]]);
    expect(nextA.anonVma).toBe(1);
    // Merge right, full span: VVVVNNN → NNNNNNN.
    const b = make();
    const vmaB = b.link(2, 6, 2, { prot: PROT_READ });
    const nextB = b.link(6, 9, 6);
    nextB.vmOps = CLOSE_OPS;
    vmaB.anonVma = 1;
    expect(b.mergeExisting({ middle: vmaB, start: 2, end: 6, pgoff: 2 })).toBe(nextB);
    expect(b.vmas()).toEqual([[2, 9, 2]]);
    expect(nextB.anonVma).toBe(1);
    // Merge left, partial span: PPPVVVV → PPPPPPV.
    const c = make();
    const prevC = c.link(0, 3, 0);
    const vmaC = c.link(3, 7, 3, { prot: PROT_READ });
    prevC.vmOps = CLOSE_OPS;
    vmaC.vmOps = CLOSE_OPS;
    vmaC.anonVma = 1;
    expect(c.mergeExisting({ prev: prevC, middle: vmaC, start: 3, end: 6, pgoff: 3 })).toBe(prevC);
    expect(c.vmas()).toEqual([[0, 6, 0], [6, 7, 6]]);
    expect(prevC.anonVma).toBe(1);
    // Merge left, full span: PPPVVVV → PPPPPPP.
    const d = make();
    const prevD = d.link(0, 3, 0);
    const vmaD = d.link(3, 7, 3, { prot: PROT_READ });
    prevD.vmOps = CLOSE_OPS;
    vmaD.anonVma = 1;
    expect(d.mergeExisting({ prev: prevD, middle: vmaD, start: 3, end: 7, pgoff: 3 })).toBe(prevD);
    expect(d.vmas()).toEqual([[0, 7, 0]]);
    // Merge both: PPPVVVVNNN → PPPPPPPPPP.
    const e = make();
    const prevE = e.link(0, 3, 0);
    const vmaE = e.link(3, 7, 3, { prot: PROT_READ });
    e.link(7, 9, 7);
    prevE.vmOps = CLOSE_OPS;
    vmaE.anonVma = 1;
    expect(e.mergeExisting({ prev: prevE, middle: vmaE, start: 3, end: 7, pgoff: 3 })).toBe(prevE);
    expect(e.vmas()).toEqual([[0, 9, 0]]);
    expect(prevE.anonVma).toBe(1);
    // Ranges inside the VMA, touching neither edge, never merge.
    const f = make();
    f.link(0, 3, 0);
    const vmaF = f.link(3, 8, 3, { prot: PROT_READ });
    f.link(8, 10, 8);
    for (const [start, end] of [[4, 5], [5, 6], [6, 7], [4, 7], [4, 6]]) {
      expect(f.mergeExisting({ prev: vmaF, middle: vmaF, start, end, pgoff: start }), `[${start}, ${end})`).toBeUndefined();
    }
    expect(f.vmas()).toEqual([[0, 3, 0], [3, 8, 3], [8, 10, 8]]);
  });

  it('test_anon_vma_non_mergeable: prev and next with different anon_vmas: only prev and the range merge', () => {
    const a = make();
    const prevA = a.link(0, 3, 0);
    const vmaA = a.link(3, 7, 3, { prot: PROT_READ });
    const nextA = a.link(7, 9, 7);
    prevA.anonVma = 1;
    nextA.anonVma = 2;
    expect(a.mergeExisting({ prev: prevA, middle: vmaA, start: 3, end: 7, pgoff: 3 })).toBe(prevA);
    expect(a.vmas()).toEqual([[0, 7, 0], [7, 9, 7]]);
    const b = make();
    const prevB = b.link(0, 3, 0);
    const nextB = b.link(7, 9, 7);
    prevB.anonVma = 1;
    nextB.anonVma = 2;
    expect(b.mergeNew({ prev: prevB, next: nextB, start: 3, end: 7, pgoff: 3 })).toBe(prevB);
    expect(b.vmas()).toEqual([[0, 7, 0], [7, 9, 7]]);
  });

  it('test_dup_anon_vma: prev without an anon_vma takes next\'s when both merge', () => {
    const k = make();
    const prev = k.link(0, 3, 0);
    const vma = k.link(3, 5, 3, { prot: PROT_READ });
    const next = k.link(5, 8, 5);
    next.anonVma = 7;
    expect(k.mergeExisting({ prev, middle: vma, start: 3, end: 5, pgoff: 3 })).toBe(prev);
    expect(prev.anonVma).toBe(7);
    expect(k.vmas()).toEqual([[0, 8, 0]]);
  });

  it('is_mergeable_anon_vma (6.18): a fork child\'s anon_vma is not shared with a range that has none, nor given to a neighbour', () => {
    // A new range (no anon_vma) next to a faulted fork child: no merge (case 2).
    const a = make();
    const prevA = a.link(0, 3, 0);
    prevA.anonVma = 1;
    prevA.forkChild = true;
    expect(a.mergeNew({ prev: prevA, start: 3, end: 5, pgoff: 3 })).toBeUndefined();
    // The same next to a VMA whose anon_vma chain is singular: merges.
    prevA.forkChild = false;
    expect(a.mergeNew({ prev: prevA, start: 3, end: 5, pgoff: 3 })).toBe(prevA);
    // A faulted fork child changed to match an unfaulted neighbour: no merge (case 1).
    const b = make();
    const prevB = b.link(0, 3, 0);
    const vmaB = b.link(3, 5, 3, { prot: PROT_READ });
    vmaB.anonVma = 2;
    vmaB.forkChild = true;
    expect(b.mergeExisting({ prev: prevB, middle: vmaB, start: 3, end: 5, pgoff: 3 })).toBeUndefined();
    // An mremap copy of a faulted fork child next to an unfaulted VMA: no merge (copied_from).
    const c = make();
    const prevC = c.link(0, 3, 0);
    const src = c.link(10, 12, 3);
    src.anonVma = 3;
    src.forkChild = true;
    expect(c.mergeNew({ prev: prevC, start: 3, end: 5, pgoff: 3, anonVma: 3, copiedFrom: src })).toBeUndefined();
    src.forkChild = false;
    expect(c.mergeNew({ prev: prevC, start: 3, end: 5, pgoff: 3, anonVma: 3, copiedFrom: src })).toBe(prevC);
    expect(prevC.anonVma).toBe(3); // vma_expand duplicated the copied VMA's anon_vma
  });

  it('test_merge_extend: mremap growing a VMA in place merges it with the next one it reaches', () => {
    const k = make();
    const vma = k.link(0, 1, 0);
    k.link(3, 4, 3);
    expect(k.extend(vma, 2)).toBe(vma);
    expect(k.vmas()).toEqual([[0, 4, 0]]);
    const special = make();
    const io = special.link(0, 1, 0, { io: true });
    expect(special.extend(io, 2)).toBeUndefined();
  });
});

/** The rules through the system calls, on both kernels; each step's VMAs as [start, end, perms]. */
describe.each([['model', () => new ModelKernel(DEFAULT_CONFIG)], ['impl', () => new ImplKernel(DEFAULT_CONFIG)]] as const)(
  'VMA merges through the system calls on the %s', (_name, make) => {
    const B = 1000;
    function run(ops: Op[]): { kernel: ReturnType<typeof make>; maps: (pid: number) => [number, number, number][] } {
      const kernel = make();
      for (const op of ops) kernel.step(op);
      return { kernel, maps: (pid) => [...kernel.inspect.vmas(pid)].map((v) => [v.start, v.end, v.prot]) };
    }

    it('mmap next to a faulted VMA of a fork child does not merge; next to the parent\'s it does', () => {
      const { maps } = run([
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 2, prot: RW, shared: false, fixed: true },
        { op: 'write', pid: 1, addr: B, value: 1 },
        { op: 'fork', pid: 1 },
        { op: 'mmap', pid: 2, addr: B + 2, lengthPages: 2, prot: RW, shared: false, fixed: true },
        { op: 'mmap', pid: 1, addr: B + 2, lengthPages: 2, prot: RW, shared: false, fixed: true },
      ]);
      expect(maps(2)).toEqual([[B, B + 2, RW], [B + 2, B + 4, RW]]);
      expect(maps(1)).toEqual([[B, B + 4, RW]]);
    });

    it('mprotect keeps VM_ACCOUNT of a faulted private writable VMA, so it does not merge with a read-only neighbour', () => {
      const ops: Op[] = [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 2, prot: PROT_READ, shared: false, fixed: true },
        { op: 'mmap', pid: 1, addr: B + 2, lengthPages: 2, prot: RW, shared: false, fixed: true },
      ];
      const faulted = run([...ops, { op: 'write', pid: 1, addr: B + 2, value: 1 },
        { op: 'mprotect', pid: 1, addr: B + 2, lengthPages: 2, prot: PROT_READ }]);
      expect(faulted.maps(1)).toEqual([[B, B + 2, PROT_READ], [B + 2, B + 4, PROT_READ]]);
      // Never faulted: VM_ACCOUNT is dropped and the two merge.
      const unfaulted = run([...ops, { op: 'mprotect', pid: 1, addr: B + 2, lengthPages: 2, prot: PROT_READ }]);
      expect(unfaulted.maps(1)).toEqual([[B, B + 4, PROT_READ]]);
      // Made writable, a read-only VMA gets VM_ACCOUNT and merges with a writable neighbour.
      const writable = run([...ops, { op: 'mprotect', pid: 1, addr: B, lengthPages: 2, prot: RW }]);
      expect(writable.maps(1)).toEqual([[B, B + 4, RW]]);
    });

    it('two mmaps of one file never merge (each opens the file: two struct files); a split of one merges back', () => {
      const ops: Op[] = [
        { op: 'spawn' }, { op: 'creat', sizePages: 8 },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 2, prot: PROT_READ, shared: false, fixed: true, file: 1, pgoff: 0 },
        { op: 'mmap', pid: 1, addr: B + 2, lengthPages: 4, prot: PROT_READ, shared: false, fixed: true, file: 1, pgoff: 2 },
      ];
      expect(run(ops).maps(1)).toEqual([[B, B + 2, PROT_READ], [B + 2, B + 6, PROT_READ]]);
      const back = run([...ops, { op: 'mprotect', pid: 1, addr: B + 3, lengthPages: 1, prot: RW },
        { op: 'mprotect', pid: 1, addr: B + 3, lengthPages: 1, prot: PROT_READ }]);
      // mprotect_fixup set VM_ACCOUNT on the part made writable (private), and kept it: no merge back.
      expect(back.maps(1)).toEqual([[B, B + 2, PROT_READ], [B + 2, B + 3, PROT_READ], [B + 3, B + 4, PROT_READ], [B + 4, B + 6, PROT_READ]]);
      const shared = run([
        { op: 'spawn' }, { op: 'creat', sizePages: 8 },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 4, prot: PROT_READ, shared: true, fixed: true, file: 1, pgoff: 0 },
        { op: 'mprotect', pid: 1, addr: B + 1, lengthPages: 1, prot: RW },
        { op: 'mprotect', pid: 1, addr: B + 1, lengthPages: 1, prot: PROT_READ },
      ]);
      expect(shared.maps(1)).toEqual([[B, B + 4, PROT_READ]]);
    });

    it('madvise DONTFORK then DOFORK of part of a VMA splits it and merges it back', () => {
      const ops: Op[] = [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 6, prot: RW, shared: false, fixed: true },
        { op: 'madvise', pid: 1, addr: B + 2, lengthPages: 2, advice: 'DONTFORK' },
      ];
      expect(run(ops).maps(1)).toEqual([[B, B + 2, RW], [B + 2, B + 4, RW], [B + 4, B + 6, RW]]);
      const back = run([...ops, { op: 'madvise', pid: 1, addr: B + 2, lengthPages: 2, advice: 'DOFORK' }]);
      expect(back.maps(1)).toEqual([[B, B + 6, RW]]);
    });

    it('an mprotect or madvise walk whose merges remove VMAs ends where Linux ends it', () => {
      const top = DEFAULT_CONFIG.mmapBasePages; // top-down placement starts here
      const madvised = run([
        { op: 'spawn' }, { op: 'mmap', pid: 1, addr: 0, lengthPages: 7, prot: PROT_READ, shared: false },
        { op: 'madvise', pid: 1, addr: top - 6, lengthPages: 1, advice: 'DONTFORK' },
        { op: 'munmap', pid: 1, addr: top - 5, lengthPages: 5 },
      ]);
      expect(madvised.kernel.step({ op: 'madvise', pid: 1, addr: top - 7, lengthPages: 3, advice: 'DOFORK' }))
        .toEqual({ kind: 'errno', errno: 'ENOMEM' });
      expect(madvised.maps(1)).toEqual([[top - 7, top - 5, PROT_READ]]);
      const protected_ = run([
        { op: 'spawn' }, { op: 'mmap', pid: 1, addr: 0, lengthPages: 4, prot: PROT_READ, shared: false },
        { op: 'mmap', pid: 1, addr: top - 7, lengthPages: 1, prot: PROT_WRITE, shared: false },
        { op: 'mmap', pid: 1, addr: 0, lengthPages: 3, prot: RW, shared: false },
        { op: 'mprotect', pid: 1, addr: top - 9, lengthPages: 1, prot: PROT_READ },
      ]);
      expect(protected_.kernel.step({ op: 'mprotect', pid: 1, addr: top - 10, lengthPages: 7, prot: PROT_READ }))
        .toEqual({ kind: 'errno', errno: 'ENOMEM' });
      expect(protected_.maps(1)).toEqual([[top - 10, top - 6, PROT_READ], [top - 4, top, PROT_READ]]);
    });

    it('an mremap move whose split fails (fail_nth) moves nothing', () => {
      const { kernel, maps } = run([
        { op: 'spawn' }, { op: 'mmap', pid: 1, addr: B, lengthPages: 8, prot: PROT_READ, shared: false, fixed: true },
        { op: 'fail_nth', nth: 1 },
      ]);
      expect(kernel.step({ op: 'mremap', pid: 1, addr: B + 3, oldPages: 1, newPages: 2, maymove: true })).toEqual({ kind: 'errno', errno: 'ENOMEM' });
      expect(maps(1)).toEqual([[B, B + 8, PROT_READ]]);
    });

    it('mremap moving a faulted anonymous VMA next to its old neighbour does not merge (vm_pgoff kept); an unfaulted one does', () => {
      const ops = (fault: boolean): Op[] => [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: B, lengthPages: 2, prot: RW, shared: false, fixed: true },
        { op: 'mmap', pid: 1, addr: B + 10, lengthPages: 2, prot: RW, shared: false, fixed: true },
        ...(fault ? [{ op: 'write', pid: 1, addr: B + 10, value: 1 } as Op] : []),
        { op: 'mremap', pid: 1, addr: B + 10, oldPages: 2, newPages: 2, maymove: true, fixed: true, newAddr: B + 2 },
      ];
      expect(run(ops(true)).maps(1)).toEqual([[B, B + 2, RW], [B + 2, B + 4, RW]]);
      expect(run(ops(false)).maps(1)).toEqual([[B, B + 4, RW]]);
    });
  });
