/**
 * Reclaim (shrink_folio_list, try_to_unmap_one) and refault (do_swap_page, filemap_fault):
 * anonymous pages go to swap behind a swap entry in the PTE, clean file pages are dropped,
 * dirty ones written back first; pinned and otherwise referenced pages stay resident.
 */
import { describe, expect, it } from 'vitest';
import { FOLL_WRITE } from '../../kernel-api/driver.ts';
import { Scenario, okv } from './helpers.ts';

/** P1 with one private anonymous page holding `value`, reclaimed to swap. */
function swappedAnonPage(value: number): [Scenario, number] {
  const t = new Scenario();
  t.spawn();
  const a = t.anon(1, 1);
  t.write(1, a, value);
  const pfn = t.pfnAt(1, a);
  expect(t.ok({ op: 'reclaim', pid: 1, addr: a })).toBe(1);
  expect(t.frame(pfn)).toBeUndefined();
  return [t, a];
}

describe('anonymous pages: swap-out and swap-in', () => {
  it('reclaim replaces the PTE by an exclusive swap entry and frees the page (try_to_unmap_one, pageout)', () => {
    const [t, a] = swappedAnonPage(11);
    const pte = t.pte(1, a);
    expect(pte).toMatchObject({ kind: 'swap', exclusive: true });
    const slot = (pte as { slot: number }).slot;
    // __remove_mapping took the page out of the swap cache; the slot keeps the data.
    expect(t.slots()).toEqual([{ slot, count: 1, cachePfn: -1, value: 11 }]);
    expect(t.proc(1).rss).toEqual({ anon: 0, file: 0, shmem: 0, swap: 1 });
    expect([...t.k.inspect.frames()]).toHaveLength(1);
    t.exitAllAndExpectNoLeak();
  });

  it('a read swap-in keeps the page in the swap cache and maps it writable when the entry was exclusive (do_swap_page)', () => {
    const [t, a] = swappedAnonPage(11);
    const slot = (t.pte(1, a) as { slot: number }).slot;
    expect(t.read(1, a)).toEqual(okv(11));
    const f = t.frameAt(1, a);
    // should_try_to_free_swap is false for a read fault: the swap cache keeps its copy.
    expect(f).toMatchObject({ kind: 'anon', swapSlot: slot, refcount: 2, mapcount: 1, anonExclusive: true });
    expect(t.slots()).toEqual([{ slot, count: 0, cachePfn: f.pfn, value: 11 }]);
    expect(t.pte(1, a)).toMatchObject({ kind: 'present', write: true });
    expect(t.proc(1).rss).toEqual({ anon: 1, file: 0, shmem: 0, swap: 0 });
    // A store through the writable PTE needs no fault; the stale slot copy is dropped at unmap.
    expect(t.write(1, a, 12)).toEqual(okv());
    expect(t.pfnAt(1, a)).toBe(f.pfn);
    t.exitAllAndExpectNoLeak();
  });

  it('a write swap-in frees the swap cache and the slot (should_try_to_free_swap, folio_free_swap)', () => {
    const [t, a] = swappedAnonPage(11);
    expect(t.write(1, a, 13)).toEqual(okv());
    expect(t.frameAt(1, a)).toMatchObject({ swapSlot: -1, refcount: 1, mapcount: 1, anonExclusive: true, value: 13 });
    expect(t.pte(1, a)).toMatchObject({ kind: 'present', write: true, dirty: true });
    expect(t.slots()).toEqual([]);
    t.exitAllAndExpectNoLeak();
  });

  it('a page swapped out again after a swap-in writes its new value back to the slot it still owns', () => {
    const [t, a] = swappedAnonPage(11);
    t.read(1, a);
    t.write(1, a, 14);
    expect(t.ok({ op: 'reclaim', pid: 1, addr: a })).toBe(1);
    expect(t.slots()).toMatchObject([{ count: 1, cachePfn: -1, value: 14 }]);
    expect(t.read(1, a)).toEqual(okv(14));
    t.exitAllAndExpectNoLeak();
  });

  it('reclaim of a page shared after fork swaps it out of both; swap-ins share one swap cache page', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1);
    t.write(1, a, 21);
    t.ok({ op: 'fork', pid: 1 });
    expect(t.ok({ op: 'reclaim', pid: 1, addr: a })).toBe(1);
    // The page was not exclusive, so neither swap entry is.
    expect(t.pte(1, a)).toMatchObject({ kind: 'swap', exclusive: false });
    expect(t.pte(2, a)).toMatchObject({ kind: 'swap', exclusive: false });
    expect(t.slots()).toMatchObject([{ count: 2, cachePfn: -1, value: 21 }]);
    expect(t.read(1, a)).toEqual(okv(21));
    expect(t.read(2, a)).toEqual(okv(21));
    const pfn = t.pfnAt(1, a);
    expect(t.pfnAt(2, a)).toBe(pfn);
    expect(t.frame(pfn)).toMatchObject({ mapcount: 2, refcount: 3, anonExclusive: false });
    expect(t.pte(1, a)).toMatchObject({ write: false });
    // do_wp_page drops the unneeded swap cache, but the other mapping still forces a copy.
    expect(t.write(1, a, 22)).toEqual(okv());
    expect(t.pfnAt(1, a)).not.toBe(pfn);
    expect(t.slots()).toEqual([]);
    expect(t.read(2, a)).toEqual(okv(21));
    t.exitAllAndExpectNoLeak();
  });

  it('MADV_PAGEOUT swaps out private pages this process maps alone (madvise_cold_or_pageout_pte_range)', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 2);
    t.write(1, a, 1);
    t.write(1, a + 1, 2);
    expect(t.step({ op: 'madvise', pid: 1, addr: a, lengthPages: 2, advice: 'PAGEOUT' })).toEqual(okv());
    expect(t.pte(1, a)?.kind).toBe('swap');
    expect(t.pte(1, a + 1)?.kind).toBe('swap');
    expect(t.proc(1).rss.swap).toBe(2);
    expect(t.read(1, a + 1)).toEqual(okv(2));
    t.exitAllAndExpectNoLeak();
  });
});

describe('file pages: drop and writeback', () => {
  it('a clean file page is dropped from the page cache and refaults from the file (shrink_folio_list)', () => {
    const t = new Scenario();
    t.spawn();
    const file = t.ok({ op: 'creat', sizePages: 2 });
    t.ok({ op: 'pwrite', file, index: 0, value: 5 });
    // Writeback first, so the page is clean when the mapping faults it in.
    t.ok({ op: 'reclaim', count: 10 });
    expect([...t.k.inspect.backing(file)]).toEqual([[0, 5]]);
    const a = t.mapFile(1, file, 2, { shared: true });
    expect(t.read(1, a)).toEqual(okv(5));
    const pfn = t.pfnAt(1, a);
    expect(t.frame(pfn)).toMatchObject({ kind: 'file', dirty: false, refcount: 2, mapcount: 1 });
    expect(t.ok({ op: 'reclaim', pid: 1, addr: a })).toBe(1);
    expect(t.pte(1, a)).toBeUndefined();
    expect(t.pagecache(file)).toEqual([]);
    expect(t.frame(pfn)).toBeUndefined();
    expect(t.proc(1).rss.file).toBe(0);
    expect(t.read(1, a)).toEqual(okv(5));
    t.exitAllAndExpectNoLeak();
  });

  it('a page dirtied through a shared mapping is written back before it is dropped; the refault reads the written value', () => {
    const t = new Scenario();
    t.spawn();
    const file = t.ok({ op: 'creat', sizePages: 2 });
    const a = t.mapFile(1, file, 2, { shared: true });
    expect(t.write(1, a + 1, 77)).toEqual(okv());
    expect(t.pte(1, a + 1)).toMatchObject({ dirty: true });
    expect([...t.k.inspect.backing(file)]).toEqual([]);
    expect(t.ok({ op: 'reclaim', pid: 1, addr: a + 1 })).toBe(1);
    expect([...t.k.inspect.backing(file)]).toEqual([[1, 77]]);
    expect(t.pagecache(file)).toEqual([]);
    expect(t.read(1, a + 1)).toEqual(okv(77));
    expect(t.frameAt(1, a + 1)).toMatchObject({ dirty: false });
    expect(t.step({ op: 'pread', file, index: 1 })).toEqual(okv(77));
    t.exitAllAndExpectNoLeak();
  });

  it('a file page someone else references is unmapped but stays in the page cache', () => {
    const t = new Scenario();
    t.spawn();
    const file = t.ok({ op: 'creat', sizePages: 1 });
    const a = t.mapFile(1, file, 1, { shared: true });
    t.write(1, a, 3);
    const pfn = t.gup(1, a, 0);
    expect(t.ok({ op: 'reclaim', pid: 1, addr: a })).toBe(0);
    expect(t.pte(1, a)).toBeUndefined();
    expect(t.pagecache(file)).toEqual([[0, pfn]]);
    expect(t.read(1, a)).toEqual(okv(3));
    expect(t.pfnAt(1, a)).toBe(pfn);
    t.put(pfn);
    t.exitAllAndExpectNoLeak();
  });

  it('a shmem page goes to swap and comes back with its value (shmem_writeout, shmem_swapin_folio)', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1, { shared: true });
    t.write(1, a, 31);
    expect(t.ok({ op: 'reclaim', pid: 1, addr: a })).toBe(1);
    expect(t.pte(1, a)).toBeUndefined();
    const shmem = t.vmas(1)[0].file;
    expect([...t.k.inspect.shmemSwap(shmem)]).toHaveLength(1);
    expect(t.slots()).toMatchObject([{ count: 1, value: 31 }]);
    expect(t.read(1, a)).toEqual(okv(31));
    expect(t.slots()).toEqual([]);
    t.exitAllAndExpectNoLeak();
  });
});

describe('reclaim of referenced pages', () => {
  it('an exclusive anonymous page pinned with FOLL_PIN is neither swapped nor unmapped (folio_maybe_dma_pinned)', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1);
    t.write(1, a, 41);
    const pfn = t.pin(1, a, FOLL_WRITE);
    expect(t.ok({ op: 'reclaim', pid: 1, addr: a })).toBe(0);
    expect(t.pte(1, a)).toMatchObject({ kind: 'present', pfn, write: true });
    // shrink_folio_list keeps a maybe-pinned folio before add_to_swap: no slot is taken.
    expect(t.frame(pfn)).toMatchObject({ swapSlot: -1, anonExclusive: true, refcount: 2, pincount: 1 });
    expect(t.slots()).toEqual([]);
    t.unpin(pfn);
    expect(t.ok({ op: 'reclaim', pid: 1, addr: a })).toBe(1);
    expect(t.read(1, a)).toEqual(okv(41));
    t.exitAllAndExpectNoLeak();
  });

  it('a page with an extra FOLL_GET reference is unmapped into the swap cache but stays resident', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1);
    t.write(1, a, 42);
    const pfn = t.gup(1, a, 0);
    expect(t.ok({ op: 'reclaim', pid: 1, addr: a })).toBe(0);
    const pte = t.pte(1, a);
    expect(pte).toMatchObject({ kind: 'swap', exclusive: true });
    const slot = (pte as { slot: number }).slot;
    // __remove_mapping fails on the extra reference: the page stays in the swap cache.
    expect(t.frame(pfn)).toMatchObject({ swapSlot: slot, mapcount: 0, refcount: 2, value: 42 });
    expect(t.slots()).toEqual([{ slot, count: 1, cachePfn: pfn, value: 42 }]);
    t.put(pfn);
    expect(t.frame(pfn)).toMatchObject({ swapSlot: slot, refcount: 1 });
    // The refault finds the page in the swap cache: the same frame comes back.
    expect(t.read(1, a)).toEqual(okv(42));
    expect(t.pfnAt(1, a)).toBe(pfn);
    t.exitAllAndExpectNoLeak();
  });
});
