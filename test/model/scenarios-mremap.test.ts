/**
 * mremap (mm/mremap.c): when the pages after a VMA are taken, MREMAP_MAYMOVE moves it
 * (move_vma → copy_vma + move_page_tables), and MREMAP_FIXED moves it to a given place.
 * PTEs move as they are, swap entries included: values follow, slot counts stay, and the
 * old range is empty.
 */
import { describe, expect, it } from 'vitest';
import { RW, Scenario, okv } from './helpers.ts';

const BASE = 0x3000;

/** P1 with 4 pages at BASE holding 1..4, pages 1 and 2 swapped out, and a blocker at BASE + 4. */
function partlySwapped(): [Scenario, number[]] {
  const t = new Scenario();
  t.spawn();
  expect(t.anon(1, 4, { addr: BASE })).toBe(BASE);
  for (let i = 0; i < 4; i++) t.write(1, BASE + i, i + 1);
  // A different protection, so the blocker does not merge with the VMA.
  expect(t.anon(1, 1, { addr: BASE + 4, prot: 1 })).toBe(BASE + 4);
  t.ok({ op: 'reclaim', pid: 1, addr: BASE + 1 });
  t.ok({ op: 'reclaim', pid: 1, addr: BASE + 2 });
  const slots = [1, 2].map((i) => (t.pte(1, BASE + i) as { slot: number }).slot);
  expect(t.slots().map((s) => s.count)).toEqual([1, 1]);
  return [t, slots];
}

function expectMoved(t: Scenario, from: number, to: number, slots: number[]): void {
  for (let i = 0; i < 4; i++) expect(t.pte(1, from + i)).toBeUndefined();
  expect(t.pte(1, to + 1)).toMatchObject({ kind: 'swap', slot: slots[0], exclusive: true });
  expect(t.pte(1, to + 2)).toMatchObject({ kind: 'swap', slot: slots[1], exclusive: true });
  expect(t.slots().map((s) => [s.slot, s.count])).toEqual([[slots[0], 1], [slots[1], 1]]);
  expect(t.proc(1).rss).toEqual({ anon: 2, file: 0, shmem: 0, swap: 2 });
  for (let i = 0; i < 4; i++) expect(t.read(1, to + i)).toEqual(okv(i + 1));
  expect(t.read(1, from)).toEqual({ kind: 'signal', signal: 'SIGSEGV' });
}

describe('mremap move of a mapping with swapped-out pages', () => {
  it('MREMAP_MAYMOVE grows by moving when the next pages are taken; swap entries move with the PTEs', () => {
    const [t, slots] = partlySwapped();
    expect(t.step({ op: 'mremap', pid: 1, addr: BASE, oldPages: 4, newPages: 8 })).toEqual({ kind: 'errno', errno: 'ENOMEM' });
    const to = t.ok({ op: 'mremap', pid: 1, addr: BASE, oldPages: 4, newPages: 8, maymove: true });
    expect(to).not.toBe(BASE);
    expect(t.vmas(1).map((v) => [v.start, v.end])).toContainEqual([to, to + 8]);
    expectMoved(t, BASE, to, slots);
    // The grown tail is fresh anonymous memory.
    expect(t.read(1, to + 6)).toEqual(okv(0));
    expect(t.write(1, to + 7, 9)).toEqual(okv());
    t.exitAllAndExpectNoLeak();
  });

  it('MREMAP_FIXED moves to the given address, replacing what was there', () => {
    const [t, slots] = partlySwapped();
    const target = BASE + 0x100;
    const victim = t.anon(1, 2, { addr: target + 3 });
    t.write(1, victim, 55);
    const victimPfn = t.pfnAt(1, victim);
    expect(t.step({ op: 'mremap', pid: 1, addr: BASE, oldPages: 4, newPages: 4, maymove: true, fixed: true, newAddr: target }))
      .toEqual(okv(target));
    expect(t.frame(victimPfn)).toBeUndefined();
    expectMoved(t, BASE, target, slots);
    // The part of the replaced mapping beyond the new range survives.
    expect(t.read(1, target + 4)).toEqual(okv(0));
    t.exitAllAndExpectNoLeak();
  });

  it('a moved page swaps back in at its new address, keeping the swap cache for a read', () => {
    const [t, slots] = partlySwapped();
    const to = t.ok({ op: 'mremap', pid: 1, addr: BASE, oldPages: 4, newPages: 4, maymove: true, fixed: true, newAddr: BASE + 0x200 });
    expect(t.read(1, to + 1)).toEqual(okv(2));
    expect(t.frameAt(1, to + 1).swapSlot).toBe(slots[0]);
    expect(t.write(1, to + 2, 30)).toEqual(okv());
    expect(t.frameAt(1, to + 2).swapSlot).toBe(-1);
    t.exitAllAndExpectNoLeak();
  });

  it('moving the parent mapping leaves the child swap entries alone; the slot keeps both users', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1, { addr: BASE });
    t.anon(1, 1, { addr: BASE + 1, prot: 1 });
    t.write(1, a, 8);
    t.ok({ op: 'fork', pid: 1 });
    t.ok({ op: 'reclaim', pid: 1, addr: a });
    const to = t.ok({ op: 'mremap', pid: 1, addr: a, oldPages: 1, newPages: 2, maymove: true });
    expect(t.pte(1, to)).toMatchObject({ kind: 'swap' });
    expect(t.pte(2, a)).toMatchObject({ kind: 'swap' });
    expect(t.slots()).toMatchObject([{ count: 2 }]);
    expect(t.read(1, to)).toEqual(okv(8));
    expect(t.read(2, a)).toEqual(okv(8));
    expect(t.write(2, a, 9)).toEqual(okv());
    expect(t.read(1, to)).toEqual(okv(8));
    expect(t.vmas(1).find((v) => v.start === to)?.prot).toBe(RW);
    t.exitAllAndExpectNoLeak();
  });
});

describe('mremap argument checks', () => {
  it('an old address with no VMA is EFAULT before anything is unmapped, MREMAP_FIXED target included (do_mremap: vma_lookup)', () => {
    const t = new Scenario();
    t.spawn();
    const target = t.anon(1, 2, { addr: BASE + 0x10 });
    t.write(1, target, 3);
    expect(t.step({ op: 'mremap', pid: 1, addr: BASE, oldPages: 2, newPages: 2, maymove: true, fixed: true, newAddr: target }))
      .toEqual({ kind: 'errno', errno: 'EFAULT' });
    expect(t.read(1, target)).toEqual(okv(3));
    // Shrinking and same-size calls look the VMA up first too.
    expect(t.step({ op: 'mremap', pid: 1, addr: BASE, oldPages: 2, newPages: 1 })).toEqual({ kind: 'errno', errno: 'EFAULT' });
    expect(t.step({ op: 'mremap', pid: 1, addr: BASE, oldPages: 2, newPages: 2 })).toEqual({ kind: 'errno', errno: 'EFAULT' });
    t.exitAllAndExpectNoLeak();
  });

  it('growing across the end of the VMA is EFAULT; MREMAP_FIXED without MREMAP_MAYMOVE and new length 0 are EINVAL', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 2, { addr: BASE });
    expect(t.step({ op: 'mremap', pid: 1, addr: a, oldPages: 3, newPages: 4, maymove: true })).toEqual({ kind: 'errno', errno: 'EFAULT' });
    expect(t.step({ op: 'mremap', pid: 1, addr: a, oldPages: 2, newPages: 2, fixed: true, newAddr: BASE + 0x10 }))
      .toEqual({ kind: 'errno', errno: 'EINVAL' });
    expect(t.step({ op: 'mremap', pid: 1, addr: a, oldPages: 2, newPages: 0 })).toEqual({ kind: 'errno', errno: 'EINVAL' });
    // Overlapping old and new ranges are EINVAL (mremap_to: vrm_overlaps).
    expect(t.step({ op: 'mremap', pid: 1, addr: a, oldPages: 2, newPages: 2, maymove: true, fixed: true, newAddr: a + 1 }))
      .toEqual({ kind: 'errno', errno: 'EINVAL' });
    t.exitAllAndExpectNoLeak();
  });

  it('a shrinking MREMAP_FIXED may cross VMA ends and gaps in the part it unmaps (check_prep_vma: MREMAP_SHRINK)', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 4, { addr: BASE });
    t.write(1, a + 1, 11);
    expect(t.anon(1, 2, { addr: a + 6 })).toBe(a + 6);
    // [a + 1, a + 9) spans the end of the first VMA, a gap and the second VMA; only [a + 1, a + 3) moves.
    const to = BASE + 0x100;
    expect(t.step({ op: 'mremap', pid: 1, addr: a + 1, oldPages: 8, newPages: 2, maymove: true, fixed: true, newAddr: to })).toEqual(okv(to));
    expect(t.vmas(1).map((v) => [v.start, v.end])).toEqual([[a, a + 1], [to, to + 2]]);
    expect(t.read(1, to)).toEqual(okv(11));
    // The new length itself must still lie in the VMA.
    expect(t.step({ op: 'mremap', pid: 1, addr: to, oldPages: 8, newPages: 3, maymove: true, fixed: true, newAddr: BASE + 0x200 }))
      .toEqual({ kind: 'errno', errno: 'EFAULT' });
    t.exitAllAndExpectNoLeak();
  });

  it('growing in place extends the VMA when the next pages are free, keeping the pages where they are (vma_merge_extend)', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 2, { addr: BASE });
    t.write(1, a, 1);
    const pfn = t.pfnAt(1, a);
    expect(t.step({ op: 'mremap', pid: 1, addr: a, oldPages: 2, newPages: 5 })).toEqual(okv(a));
    expect(t.vmas(1).map((v) => [v.start, v.end])).toEqual([[a, a + 5]]);
    expect(t.pfnAt(1, a)).toBe(pfn);
    expect(t.read(1, a + 4)).toEqual(okv(0));
    t.exitAllAndExpectNoLeak();
  });
});

describe('MREMAP_DONTUNMAP', () => {
  it('moves the pages and leaves the old range mapped and empty; a swapped page moves its swap entry', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 2);
    t.write(1, a, 7);
    t.write(1, a + 1, 8);
    t.ok({ op: 'reclaim', pid: 1, addr: a + 1 });
    const pfn = t.pfnAt(1, a);
    const to = t.ok({ op: 'mremap', pid: 1, addr: a, oldPages: 2, newPages: 2, maymove: true, dontunmap: true });
    expect(to).not.toBe(a);
    expect(t.vmas(1).map((v) => [v.start, v.end])).toEqual([[a, a + 2], [to, to + 2]].sort((x, y) => x[0] - y[0]));
    expect(t.pfnAt(1, to)).toBe(pfn);
    expect(t.pte(1, to + 1)).toMatchObject({ kind: 'swap' });
    expect(t.pte(1, a)).toBeUndefined();
    expect([t.read(1, a), t.read(1, to), t.read(1, to + 1)]).toEqual([okv(0), okv(7), okv(8)]);
    t.exitAllAndExpectNoLeak();
  });

  it('EINVAL without MREMAP_MAYMOVE or with another length', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 2);
    expect(t.step({ op: 'mremap', pid: 1, addr: a, oldPages: 2, newPages: 2, dontunmap: true })).toEqual({ kind: 'errno', errno: 'EINVAL' });
    expect(t.step({ op: 'mremap', pid: 1, addr: a, oldPages: 2, newPages: 3, maymove: true, dontunmap: true })).toEqual({ kind: 'errno', errno: 'EINVAL' });
    t.exitAllAndExpectNoLeak();
  });
});
