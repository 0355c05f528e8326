/**
 * MADV_DONTNEED (madvise_dontneed_single_vma → zap_page_range_single): the PTEs go; what
 * a later access sees depends on what backs the mapping — zero pages for private anonymous
 * memory, the file again for a private file mapping, the object's pages for shared ones.
 */
import { describe, expect, it } from 'vitest';
import { Scenario, okv } from './helpers.ts';

const dontneed = (t: Scenario, pid: number, addr: number, lengthPages: number) =>
  t.step({ op: 'madvise', pid, addr, lengthPages, advice: 'DONTNEED' });

describe('MADV_DONTNEED', () => {
  it('on private anonymous memory frees the pages; reads then see zero (do_anonymous_page)', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 3);
    for (let i = 0; i < 3; i++) t.write(1, a + i, 10 + i);
    const pfns = [0, 1, 2].map((i) => t.pfnAt(1, a + i));
    expect(dontneed(t, 1, a, 3)).toEqual(okv());
    for (const pfn of pfns) expect(t.frame(pfn)).toBeUndefined();
    expect(t.proc(1).rss.anon).toBe(0);
    expect(t.pte(1, a)).toBeUndefined();
    expect(t.read(1, a + 1)).toEqual(okv(0));
    expect(t.pte(1, a + 1)).toMatchObject({ pfn: t.k.inspect.zeroPfn, special: true });
    t.exitAllAndExpectNoLeak();
  });

  it('on a swapped-out private page frees its swap slot (zap_nonpresent_ptes → free_swap_and_cache)', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1);
    t.write(1, a, 5);
    t.ok({ op: 'reclaim', pid: 1, addr: a });
    expect(t.slots()).toHaveLength(1);
    expect(dontneed(t, 1, a, 1)).toEqual(okv());
    expect(t.slots()).toEqual([]);
    expect(t.proc(1).rss.swap).toBe(0);
    expect(t.read(1, a)).toEqual(okv(0));
    t.exitAllAndExpectNoLeak();
  });

  it('on a private file mapping drops the COW copy; the next read sees the file again', () => {
    const t = new Scenario();
    t.spawn();
    const file = t.ok({ op: 'creat', sizePages: 1 });
    t.ok({ op: 'pwrite', file, index: 0, value: 10 });
    const a = t.mapFile(1, file, 1, { shared: false });
    expect(t.read(1, a)).toEqual(okv(10));
    const cachePfn = t.pfnAt(1, a);
    expect(t.frame(cachePfn)).toMatchObject({ kind: 'file', mapcount: 1, refcount: 2 });
    // do_wp_page on a private file page: wp_page_copy to an anonymous page.
    expect(t.write(1, a, 20)).toEqual(okv());
    const copy = t.frameAt(1, a);
    expect(copy).toMatchObject({ kind: 'anon', anonExclusive: true, value: 20 });
    expect(t.frame(cachePfn)).toMatchObject({ mapcount: 0, refcount: 1, value: 10 });
    expect(dontneed(t, 1, a, 1)).toEqual(okv());
    expect(t.frame(copy.pfn)).toBeUndefined();
    expect(t.read(1, a)).toEqual(okv(10));
    expect(t.pfnAt(1, a)).toBe(cachePfn);
    expect(t.step({ op: 'pread', file, index: 0 })).toEqual(okv(10));
    t.exitAllAndExpectNoLeak();
  });

  it('on shared anonymous memory keeps the contents in the shmem object', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1, { shared: true });
    t.write(1, a, 30);
    const pfn = t.pfnAt(1, a);
    expect(dontneed(t, 1, a, 1)).toEqual(okv());
    expect(t.pte(1, a)).toBeUndefined();
    expect(t.frame(pfn)).toMatchObject({ kind: 'shmem', mapcount: 0, refcount: 1 });
    expect(t.proc(1).rss.shmem).toBe(0);
    expect(t.read(1, a)).toEqual(okv(30));
    expect(t.pfnAt(1, a)).toBe(pfn);
    t.exitAllAndExpectNoLeak();
  });

  it('on a shared file mapping keeps the contents in the page cache, dirty', () => {
    const t = new Scenario();
    t.spawn();
    const file = t.ok({ op: 'creat', sizePages: 1 });
    const a = t.mapFile(1, file, 1, { shared: true });
    t.write(1, a, 40);
    const pfn = t.pfnAt(1, a);
    expect(dontneed(t, 1, a, 1)).toEqual(okv());
    expect(t.pte(1, a)).toBeUndefined();
    // zap_present_pte moves the PTE's dirty bit to the folio, so writeback will not miss it.
    expect(t.frame(pfn)).toMatchObject({ kind: 'file', mapcount: 0, refcount: 1, dirty: true, value: 40 });
    expect(t.step({ op: 'pread', file, index: 0 })).toEqual(okv(40));
    expect(t.read(1, a)).toEqual(okv(40));
    t.exitAllAndExpectNoLeak();
    expect([...t.k.inspect.backing(file)]).toEqual([[0, 40]]);
  });

  it('over a hole applies to the mapped parts and returns ENOMEM (madvise_walk_vmas)', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 3, { addr: 0x2000 });
    t.write(1, a, 1);
    t.write(1, a + 2, 3);
    t.ok({ op: 'munmap', pid: 1, addr: a + 1, lengthPages: 1 });
    expect(dontneed(t, 1, a, 3)).toEqual({ kind: 'errno', errno: 'ENOMEM' });
    expect(t.read(1, a)).toEqual(okv(0));
    expect(t.read(1, a + 2)).toEqual(okv(0));
    t.exitAllAndExpectNoLeak();
  });
});
