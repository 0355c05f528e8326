import { describe, expect, it } from 'vitest';
import { ModelKernel } from '../../model/kernel.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { procMemMmap } from '../../strategies/proc-mem-mmap.ts';
import { KERNELS, liveFrames, okValue, presentPfn, pteAt, session, stepOk } from './helpers.ts';
import { Session } from '../../properties/session.ts';
import { SegmentQueue } from '../../properties/sched.ts';
import { FUZZ_CONFIG } from '../../harness/config.ts';
import type { Op } from '../../kernel-api/op.ts';

const S = 'proc-mem-mmap';

/**
 * P1 (uid 1000) has three private anonymous pages, the first and third written; P2 is root.
 * Every mmap below nests P1's mmap_lock in P2's, which lockdep warns about (the locking
 * tests at the end): here, as in Linux after the warning, the kernel goes on.
 */
function setup() {
  const k = new ModelKernel(DEFAULT_CONFIG, [procMemMmap]);
  k.locks.checks = new Set(['sleep-in-atomic', 'lock-leak']);
  okValue(k, { op: 'spawn' });
  const a = okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 3, prot: 3, shared: false });
  okValue(k, { op: 'write', pid: 1, addr: a, value: 11 });
  okValue(k, { op: 'write', pid: 1, addr: a + 2, value: 33 });
  okValue(k, { op: 'spawn', uid: 0 });
  const fd = okValue(k, { op: 'drv', strategy: S, call: 'open', args: { pid: 2, target: 1 } });
  return { k, a, fd };
}

describe('proc-mem-mmap (seed 000)', () => {
  it('maps the target\'s resident pages themselves and the zero page for a non-resident one', () => {
    const { k, a, fd } = setup();
    const b = okValue(k, { op: 'mmap', pid: 2, addr: 0, lengthPages: 3, prot: 1, shared: true, fd, pgoff: a });
    expect(presentPfn(k, 2, b)).toBe(presentPfn(k, 1, a));
    expect(presentPfn(k, 2, b + 1)).toBe(k.inspect.zeroPfn);
    expect(k.step({ op: 'read', pid: 2, addr: b })).toEqual({ kind: 'ok', value: 11 });
    expect(k.step({ op: 'read', pid: 2, addr: b + 2 })).toEqual({ kind: 'ok', value: 33 });
    okValue(k, { op: 'write', pid: 1, addr: a, value: 44 });
    expect(k.step({ op: 'read', pid: 2, addr: b })).toEqual({ kind: 'ok', value: 44 });
  });

  it('holds one reference per pinned page and names it, and drops them when the whole VMA goes', () => {
    const { k, a, fd } = setup();
    const b = okValue(k, { op: 'mmap', pid: 2, addr: 0, lengthPages: 3, prot: 1, shared: true, fd, pgoff: a });
    const pfn = presentPfn(k, 1, a);
    expect(k.inspect.frame(pfn)).toMatchObject({ refcount: 2, mapcount: 1 });
    expect([...k.inspect.driverHolds()].map((h) => h.pfn).sort()).toEqual([pfn, presentPfn(k, 1, a + 2)].sort());
    okValue(k, { op: 'munmap', pid: 2, addr: b, lengthPages: 3 });
    expect(k.inspect.frame(pfn)).toMatchObject({ refcount: 1, mapcount: 1 });
    expect([...k.inspect.driverHolds()]).toEqual([]);
    expect(k.state.slab.size).toBe(0);
  });

  it('refuses open without ptrace attach rights (EACCES) and allows it to an ancestor', () => {
    const k = new ModelKernel(DEFAULT_CONFIG, [procMemMmap]);
    okValue(k, { op: 'spawn' });
    okValue(k, { op: 'spawn' });
    expect(k.step({ op: 'drv', strategy: S, call: 'open', args: { pid: 2, target: 1 } })).toEqual({ kind: 'errno', errno: 'EACCES' });
    const child = okValue(k, { op: 'fork', pid: 1 });
    okValue(k, { op: 'drv', strategy: S, call: 'open', args: { pid: 1, target: child } });
    expect(k.step({ op: 'drv', strategy: S, call: 'open', args: { pid: 1, target: 99 } })).toEqual({ kind: 'errno', errno: 'ESRCH' });
  });

  it('reports one remote view per page, promising the zero page where nothing is resident', () => {
    const { k, a, fd } = setup();
    const b = okValue(k, { op: 'mmap', pid: 2, addr: 0, lengthPages: 3, prot: 1, shared: true, fd, pgoff: a });
    const views = [...k.strategy(S)!.remoteViews()];
    expect(views).toEqual([0, 1, 2].map((i) => ({ pid: 2, addr: b + i, target: 1, targetAddr: a + i, onMissing: 'zero' })));
  });

  it('KNOWN FLAW (seed: "Avoid cleanup if we are being split"): after munmap of half the VMA and exit of everything, the pinned pages are never released', () => {
    const { k, a, fd } = setup();
    const b = okValue(k, { op: 'mmap', pid: 2, addr: 0, lengthPages: 3, prot: 1, shared: true, fd, pgoff: a });
    const pinned = [presentPfn(k, 1, a), presentPfn(k, 1, a + 2)];
    okValue(k, { op: 'munmap', pid: 2, addr: b, lengthPages: 1 });
    okValue(k, { op: 'close', pid: 2, fd });
    okValue(k, { op: 'exit', pid: 2 });
    okValue(k, { op: 'exit', pid: 1 });
    expect(k.inspect.openFdCount()).toBe(0);
    // Every process and fd is gone, yet both pages are still allocated, held by a list nobody frees.
    expect(liveFrames(k).sort()).toEqual(pinned.sort());
    for (const pfn of pinned) expect(k.inspect.frame(pfn)).toMatchObject({ refcount: 1, mapcount: 0 });
    expect(k.state.slab.size).toBe(3); // vma_info and two page_list_items
  });

  it('KNOWN FLAW (seed: "if (ret) kfree(item);"): a private mapping fails remap_pfn_range page by page, frees the item while it is listed, and close frees it again', () => {
    const { k, a, fd } = setup();
    // A COW mapping may only be remapped whole: each one-page remap_pfn_range gives EINVAL.
    const b = okValue(k, { op: 'mmap', pid: 2, addr: 0, lengthPages: 1, prot: 1, shared: false, fd, pgoff: a });
    expect(pteAt(k, 2, b)).toBeDefined(); // a one-page private VMA is whole: that works
    const c = okValue(k, { op: 'mmap', pid: 2, addr: 0, lengthPages: 2, prot: 1, shared: false, fd, pgoff: a });
    expect(pteAt(k, 2, c)).toBeUndefined();
    expect(() => k.step({ op: 'munmap', pid: 2, addr: c, lengthPages: 2 })).toThrow(/double free/);
  });

  it('KNOWN FLAW (seed: no ->open, vm_private_data copied by fork): a child\'s close releases the parent\'s list, leaving its PTEs on unheld pages, and the parent\'s close frees vma_info again', () => {
    const { k, a, fd } = setup();
    const b = okValue(k, { op: 'mmap', pid: 2, addr: 0, lengthPages: 3, prot: 1, shared: true, fd, pgoff: a });
    const pfn = presentPfn(k, 1, a);
    const child = okValue(k, { op: 'fork', pid: 2 });
    okValue(k, { op: 'exit', pid: child });
    expect(k.inspect.frame(pfn)).toMatchObject({ refcount: 1 }); // the parent's PTE now maps an unheld page
    expect([...k.inspect.driverHolds()]).toEqual([]);
    expect(() => k.step({ op: 'munmap', pid: 2, addr: b, lengthPages: 3 })).toThrow(/double free/);
  });
});

/**
 * mem_mmap's locking (issue 15), as the patch writes it: called with the caller's
 * mmap_lock held for write, it takes the target's with down_read around the GUP loop.
 */
describe('proc-mem-mmap (seed 000): locking', () => {
  for (const kernel of KERNELS) {
    describe(`on the ${kernel}`, () => {
      it('an mmap of /proc/self/mem deadlocks: down_read of the mmap_lock the caller holds for write', () => {
        const s = session(kernel, [procMemMmap]);
        stepOk(s, { op: 'spawn' });
        const a = stepOk(s, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: false });
        stepOk(s, { op: 'write', pid: 1, addr: a, value: 11 });
        const fd = stepOk(s, { op: 'drv', strategy: S, call: 'open', args: { pid: 1, target: 1 } });
        const { violation } = s.step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 1, shared: true, fd, pgoff: a });
        expect(violation).toMatchObject({ invariant: 'deadlock' });
        expect(violation!.message).toMatch(/mmap_lock of P1 \(read\), which it already holds/);
      });

      it('an mmap of another process\'s mem nests mmap_lock in itself with no annotation: lockdep\'s possible recursive locking', () => {
        const s = session(kernel, [procMemMmap]);
        stepOk(s, { op: 'spawn' });
        const a = stepOk(s, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: false });
        stepOk(s, { op: 'write', pid: 1, addr: a, value: 11 });
        stepOk(s, { op: 'spawn', uid: 0 });
        const fd = stepOk(s, { op: 'drv', strategy: S, call: 'open', args: { pid: 2, target: 1 } });
        const { violation } = s.step({ op: 'mmap', pid: 2, addr: 0, lengthPages: 1, prot: 1, shared: true, fd, pgoff: a });
        expect(violation).toMatchObject({ invariant: 'lock-order' });
        expect(violation!.message).toMatch(/takes mmap_lock of P1 \(read\) in mmap_read_lock while holding mmap_lock of P2/);
      });

      it('two processes mapping each other\'s mem at once deadlock: each holds its own mmap_lock for write and waits for the other\'s', () => {
        const s = new Session({ kernel, config: FUZZ_CONFIG, strategies: [procMemMmap], exclude: new Set(['lock-order']) });
        stepOk(s, { op: 'spawn', uid: 0 });
        stepOk(s, { op: 'spawn', uid: 0 });
        const a1 = stepOk(s, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: false });
        const a2 = stepOk(s, { op: 'mmap', pid: 2, addr: 0, lengthPages: 1, prot: 3, shared: false });
        stepOk(s, { op: 'write', pid: 1, addr: a1, value: 1 });
        stepOk(s, { op: 'write', pid: 2, addr: a2, value: 2 });
        const fd1 = stepOk(s, { op: 'drv', strategy: S, call: 'open', args: { pid: 1, target: 2 } });
        const fd2 = stepOk(s, { op: 'drv', strategy: S, call: 'open', args: { pid: 2, target: 1 } });
        const p1: Op = { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 1, shared: true, fd: fd1, pgoff: a2 };
        const p2: Op = { op: 'mmap', pid: 2, addr: 0, lengthPages: 1, prot: 1, shared: true, fd: fd2, pgoff: a1 };
        // P1's mmap is preempted at the down_read of P2's mmap_lock (its second point: the first is its own mmap_write_lock).
        let points = 0;
        let at = -1;
        const top = s.stepTop(p1, new SegmentQueue([p2]), { decide: (ctx) => (ctx.where === 'mmap_read_lock' && (at = ctx.point, points++ === 0) ? ctx.candidates[0] ?? null : null) });
        expect(at).toBeGreaterThan(0);
        expect(top.violation).toMatchObject({ invariant: 'deadlock', cause: 'circular:mmap_lock' });
        expect(top.violation!.message).toMatch(/circular wait: P2 waits in mmap_read_lock for mmap_lock of P1, held by P1; P1 waits in mmap_read_lock for mmap_lock of P2, held by P2/);
      });
    });
  }
});
