import { describe, expect, it } from 'vitest';
import { ModelKernel } from '../../model/kernel.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import type { StrategyDefinition } from '../../kernel-api/strategy.ts';
import { kbufFault } from '../../strategies/kbuf-fault.ts';
import { kbufRemap } from '../../strategies/kbuf-remap.ts';
import { ASDF, BUFFER_PAGES } from '../../strategies/kbuf-common.ts';
import { AtPoint, KERNELS, liveFrames, okValue, outcomeOf, presentPfn, pteAt, session, stepNested, stepOk } from './helpers.ts';
import type { Op } from '../../kernel-api/op.ts';

function setup(def: StrategyDefinition) {
  const k = new ModelKernel(DEFAULT_CONFIG, [def]);
  okValue(k, { op: 'spawn' });
  const fd = okValue(k, { op: 'drv', strategy: def.name, call: 'open', args: { pid: 1 } });
  const a1 = okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: BUFFER_PAGES, prot: 3, shared: true, fd });
  const a2 = okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: BUFFER_PAGES, prot: 3, shared: true, fd });
  const drv = (call: string, args: Record<string, number>) => k.step({ op: 'drv', strategy: def.name, call, args: { pid: 1, fd, ...args } });
  return { k, fd, a1, a2, drv };
}

for (const def of [kbufFault, kbufRemap]) {
  describe(`${def.name} (seed 002)`, () => {
    it('two mappings of one buffer share its pages; open copied "asdf" into the first', () => {
      const { k, a1, a2 } = setup(def);
      expect(k.step({ op: 'read', pid: 1, addr: a1 })).toEqual({ kind: 'ok', value: ASDF });
      expect(k.step({ op: 'read', pid: 1, addr: a2 })).toEqual({ kind: 'ok', value: ASDF });
      for (let i = 0; i < BUFFER_PAGES; i++) {
        k.step({ op: 'read', pid: 1, addr: a1 + i });
        k.step({ op: 'read', pid: 1, addr: a2 + i });
        expect(presentPfn(k, 1, a1 + i)).toBe(presentPfn(k, 1, a2 + i));
      }
      expect(new Set([0, 1, 2, 3].map((i) => presentPfn(k, 1, a1 + i))).size).toBe(BUFFER_PAGES);
    });

    it('a store through one mapping is seen by the other and by read on the fd, and a write on the fd by both', () => {
      const { k, a1, a2, drv } = setup(def);
      okValue(k, { op: 'write', pid: 1, addr: a1 + 2, value: 7 });
      expect(k.step({ op: 'read', pid: 1, addr: a2 + 2 })).toEqual({ kind: 'ok', value: 7 });
      expect(drv('read', { index: 2 })).toEqual({ kind: 'ok', value: 7 });
      expect(drv('write', { index: 3, value: 9 })).toEqual({ kind: 'ok', value: 0 });
      expect(k.step({ op: 'read', pid: 1, addr: a1 + 3 })).toEqual({ kind: 'ok', value: 9 });
      expect(k.step({ op: 'read', pid: 1, addr: a2 + 3 })).toEqual({ kind: 'ok', value: 9 });
      expect(drv('read', { index: BUFFER_PAGES })).toEqual({ kind: 'ok', value: 0 });
      expect(drv('write', { index: BUFFER_PAGES, value: 1 })).toEqual({ kind: 'errno', errno: 'ENOSPC' });
    });

    it('refuses a mapping that reaches past the buffer', () => {
      const { k, fd } = setup(def);
      expect(k.step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: true, fd, pgoff: BUFFER_PAGES - 1 }))
        .toEqual({ kind: 'errno', errno: 'EINVAL' });
    });

    it('release frees the buffer only after the fd and every mapping are gone', () => {
      const { k, fd, a1, a2 } = setup(def);
      k.step({ op: 'read', pid: 1, addr: a1 });
      okValue(k, { op: 'close', pid: 1, fd });
      expect(liveFrames(k)).toHaveLength(BUFFER_PAGES);
      expect([...k.inspect.driverHolds()]).toHaveLength(BUFFER_PAGES);
      okValue(k, { op: 'munmap', pid: 1, addr: a1, lengthPages: BUFFER_PAGES });
      okValue(k, { op: 'munmap', pid: 1, addr: a2, lengthPages: BUFFER_PAGES });
      expect(liveFrames(k)).toEqual([]);
      expect([...k.inspect.driverHolds()]).toEqual([]);
      expect(k.state.slab.size).toBe(0);
    });

    it('KNOWN FLAW (seed: "info = kmalloc(...)" unchecked): a failed allocation in open is a NULL dereference', () => {
      const k = new ModelKernel(DEFAULT_CONFIG, [def]);
      okValue(k, { op: 'spawn' });
      okValue(k, { op: 'fail_nth', nth: 2 }); // 1: the struct file, 2: kmalloc(mmap_info)
      expect(() => k.step({ op: 'drv', strategy: def.name, call: 'open', args: { pid: 1 } })).toThrow(/NULL/);
    });
  });
}

describe('kbuf-fault specifics', () => {
  it('hands out refcounted pages: normal PTEs, mapcount per mapping, one reference each', () => {
    const { k, a1, a2 } = setup(kbufFault);
    k.step({ op: 'read', pid: 1, addr: a1 });
    k.step({ op: 'read', pid: 1, addr: a2 });
    const pfn = presentPfn(k, 1, a1);
    expect(pteAt(k, 1, a1)).toMatchObject({ special: false });
    expect(k.inspect.frame(pfn)).toMatchObject({ kind: 'driver', mapcount: 2, refcount: 3 });
    expect(pteAt(k, 1, a1 + 1)).toBeUndefined(); // not faulted yet
  });
});

describe('kbuf-remap specifics', () => {
  it('maps reserved pages with special PTEs at mmap time, holding no reference', () => {
    const { k, a1 } = setup(kbufRemap);
    expect(pteAt(k, 1, a1 + 3)).toMatchObject({ kind: 'present', special: true });
    expect(k.inspect.frame(presentPfn(k, 1, a1))).toMatchObject({ reserved: true, mapcount: 0, refcount: 1 });
  });

  it('a private mapping of more than one page fails: remap_pfn_range takes a COW mapping only whole', () => {
    const { k, fd } = setup(kbufRemap);
    expect(k.step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false, fd })).toEqual({ kind: 'errno', errno: 'EINVAL' });
    const p = okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: false, fd });
    okValue(k, { op: 'write', pid: 1, addr: p, value: 5 }); // copy-on-write: the buffer keeps "asdf"
    expect(k.step({ op: 'drv', strategy: 'kbuf-remap', call: 'read', args: { pid: 1, fd, index: 0 } })).toEqual({ kind: 'ok', value: ASDF });
  });
});

/** The example takes no lock (issue 15): its copy_to_user / copy_from_user may sleep, holding nothing. */
for (const def of [kbufFault, kbufRemap]) {
  describe(`${def.name} (seed 002): locking`, () => {
    for (const kernel of KERNELS) {
      it(`on the ${kernel}: read's copy_to_user is a scheduling point with no lock held: a thread's write through the fd runs there, and at its copy_from_user another thread's mmap of the fd`, () => {
        const s = session(kernel, [def]);
        stepOk(s, { op: 'spawn' });
        expect(stepOk(s, { op: 'clone', pid: 1 })).toBe(2);
        expect(stepOk(s, { op: 'clone', pid: 1 })).toBe(3);
        const fd = stepOk(s, { op: 'drv', strategy: def.name, call: 'open', args: { pid: 1 } });
        const read: Op = { op: 'drv', strategy: def.name, call: 'read', args: { pid: 1, fd, index: 0 } };
        const write: Op = { op: 'drv', strategy: def.name, call: 'write', tid: 2, args: { pid: 1, fd, index: 0, value: 5 } };
        const mmap: Op = { op: 'mmap', pid: 1, tid: 3, addr: 0, lengthPages: BUFFER_PAGES, prot: 3, shared: true, fd };
        // The write starts at the read's copy_to_user; the mmap at the write's copy_from_user.
        const policy = new AtPoint((ctx) => (ctx.task === 1 && ctx.where === 'copy_to_user') || (ctx.task === 2 && ctx.where === 'copy_from_user'), 2);
        const r = stepNested(s, read, [write, mmap], policy);
        expect(r.infeasible).toBeNull();
        expect(r.violation).toBeNull();
        expect(r.started).toEqual([read, write, mmap]);
        expect(outcomeOf(r, read)).toEqual({ kind: 'ok', value: ASDF }); // copied before the point
        expect(outcomeOf(r, mmap)).toMatchObject({ kind: 'ok' });
        expect(stepOk(s, { op: 'read', pid: 1, addr: (outcomeOf(r, mmap) as { value: number }).value })).toBe(5);
      });
    }
  });
}
