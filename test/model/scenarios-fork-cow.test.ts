/**
 * fork and copy-on-write: copy_present_pte shares private anonymous pages read-only
 * and clears PageAnonExclusive; the first write on either side goes through do_wp_page,
 * which copies (wp_page_copy) while the other side still holds the page and reuses it
 * (wp_can_reuse_anon_folio) once nobody else does. Pins taken with FOLL_PIN make fork
 * copy at once (page_needs_cow_for_dma); a FOLL_GET reference does not.
 */
import { describe, expect, it } from 'vitest';
import { FOLL_WRITE } from '../../kernel-api/driver.ts';
import { Scenario, okv } from './helpers.ts';

/** P1 with one private anonymous page holding `value`; returns [scenario, addr, pfn]. */
function parentWithPage(value: number): [Scenario, number, number] {
  const t = new Scenario();
  t.spawn();
  const a = t.anon(1, 1);
  expect(t.write(1, a, value)).toEqual(okv());
  const f = t.frameAt(1, a);
  // do_anonymous_page: a fresh page, exclusive to this mm, mapped writable.
  expect(f).toMatchObject({ kind: 'anon', refcount: 1, mapcount: 1, anonExclusive: true, value });
  expect(t.pte(1, a)).toMatchObject({ kind: 'present', write: true, dirty: true });
  return [t, a, f.pfn];
}

describe('fork and copy-on-write', () => {
  it('fork shares a private anonymous page write-protected and no longer exclusive (copy_present_pte)', () => {
    const [t, a, pfn] = parentWithPage(42);
    expect(t.ok({ op: 'fork', pid: 1 })).toBe(2);
    expect(t.pte(1, a)).toMatchObject({ kind: 'present', pfn, write: false });
    expect(t.pte(2, a)).toMatchObject({ kind: 'present', pfn, write: false });
    // folio_try_dup_anon_rmap_pte clears PageAnonExclusive; both mms map and hold it.
    expect(t.frame(pfn)).toMatchObject({ refcount: 2, mapcount: 2, anonExclusive: false });
    expect(t.proc(1).rss.anon).toBe(1);
    expect(t.proc(2).rss.anon).toBe(1);
    expect(t.read(2, a)).toEqual(okv(42));
    t.exitAllAndExpectNoLeak();
  });

  it('a parent write after fork copies; the child then reuses the original without a copy (do_wp_page)', () => {
    const [t, a, pfn] = parentWithPage(42);
    t.ok({ op: 'fork', pid: 1 });
    expect(t.write(1, a, 7)).toEqual(okv());
    // wp_page_copy: refcount 2 means someone else holds the page, so the writer copies.
    const copy = t.frameAt(1, a);
    expect(copy.pfn).not.toBe(pfn);
    expect(copy).toMatchObject({ kind: 'anon', refcount: 1, mapcount: 1, anonExclusive: true, value: 7 });
    expect(t.frame(pfn)).toMatchObject({ refcount: 1, mapcount: 1, anonExclusive: false, value: 42 });
    expect(t.read(2, a)).toEqual(okv(42));
    const framesBefore = [...t.k.inspect.frames()].length;
    // wp_can_reuse_anon_folio: the child is now the only holder, so it takes the page over.
    expect(t.write(2, a, 9)).toEqual(okv());
    expect(t.pte(2, a)).toMatchObject({ kind: 'present', pfn, write: true });
    expect(t.frame(pfn)).toMatchObject({ refcount: 1, mapcount: 1, anonExclusive: true, value: 9 });
    expect([...t.k.inspect.frames()].length).toBe(framesBefore);
    expect(t.read(1, a)).toEqual(okv(7));
    t.exitAllAndExpectNoLeak();
  });

  it('a child write after fork copies; the parent then reuses the original without a copy (do_wp_page)', () => {
    const [t, a, pfn] = parentWithPage(42);
    t.ok({ op: 'fork', pid: 1 });
    expect(t.write(2, a, 5)).toEqual(okv());
    const copy = t.frameAt(2, a);
    expect(copy.pfn).not.toBe(pfn);
    expect(copy).toMatchObject({ refcount: 1, mapcount: 1, anonExclusive: true, value: 5 });
    expect(t.read(1, a)).toEqual(okv(42));
    expect(t.write(1, a, 6)).toEqual(okv());
    expect(t.pfnAt(1, a)).toBe(pfn);
    expect(t.frame(pfn)).toMatchObject({ refcount: 1, mapcount: 1, anonExclusive: true, value: 6 });
    expect(t.read(2, a)).toEqual(okv(5));
    t.exitAllAndExpectNoLeak();
  });

  it('once the child has exited, the parent write reuses the shared page in place (wp_can_reuse_anon_folio)', () => {
    const [t, a, pfn] = parentWithPage(42);
    t.ok({ op: 'fork', pid: 1 });
    t.ok({ op: 'exit', pid: 2 });
    expect(t.frame(pfn)).toMatchObject({ refcount: 1, mapcount: 1, anonExclusive: false });
    expect(t.pte(1, a)).toMatchObject({ write: false });
    expect(t.write(1, a, 43)).toEqual(okv());
    expect(t.pte(1, a)).toMatchObject({ kind: 'present', pfn, write: true });
    expect(t.frame(pfn)).toMatchObject({ refcount: 1, anonExclusive: true, value: 43 });
    t.exitAllAndExpectNoLeak();
  });

  it('a VMA that only ever read the zero page has no anon_vma, so fork copies no PTEs (vma_needs_copy)', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1);
    expect(t.read(1, a)).toEqual(okv(0));
    expect(t.pte(1, a)).toMatchObject({ kind: 'present', pfn: t.k.inspect.zeroPfn, special: true, write: false });
    t.ok({ op: 'fork', pid: 1 });
    expect(t.pte(2, a)).toBeUndefined();
    expect(t.read(2, a)).toEqual(okv(0));
    expect(t.write(2, a, 3)).toEqual(okv());
    expect(t.read(1, a)).toEqual(okv(0));
    t.exitAllAndExpectNoLeak();
  });

  it('a MAP_SHARED anonymous page stays shared across fork: writes on either side are seen by the other', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1, { shared: true });
    t.write(1, a, 1);
    t.ok({ op: 'fork', pid: 1 });
    expect(t.write(2, a, 2)).toEqual(okv());
    expect(t.read(1, a)).toEqual(okv(2));
    // shmem: one page cache frame, mapped by both, never copied.
    expect(t.frameAt(1, a)).toMatchObject({ kind: 'shmem', mapcount: 2, refcount: 3 });
    expect(t.pfnAt(2, a)).toBe(t.pfnAt(1, a));
    expect(t.proc(2).rss.shmem).toBe(1);
    t.exitAllAndExpectNoLeak();
  });
});

describe('fork of pinned pages', () => {
  it('an anonymous page pinned with FOLL_PIN is copied for the child at fork (page_needs_cow_for_dma)', () => {
    const [t, a, pfn] = parentWithPage(5);
    expect(t.pin(1, a, FOLL_WRITE)).toBe(pfn);
    expect(t.frame(pfn)).toMatchObject({ pincount: 1, refcount: 2, anonExclusive: true });
    t.ok({ op: 'fork', pid: 1 });
    // copy_present_page: the child gets its own page now; the parent's PTE is untouched.
    expect(t.pte(1, a)).toMatchObject({ kind: 'present', pfn, write: true });
    const child = t.frameAt(2, a);
    expect(child.pfn).not.toBe(pfn);
    expect(child).toMatchObject({ kind: 'anon', refcount: 1, mapcount: 1, anonExclusive: true, value: 5 });
    expect(t.pte(2, a)).toMatchObject({ write: true, dirty: true });
    expect(t.frame(pfn)).toMatchObject({ refcount: 2, mapcount: 1, anonExclusive: true });
    // The DMA target stays the parent's page: its writes need no fault and are not seen by the child.
    expect(t.write(1, a, 6)).toEqual(okv());
    expect(t.pfnAt(1, a)).toBe(pfn);
    expect(t.read(2, a)).toEqual(okv(5));
    t.unpin(pfn);
    expect(t.frame(pfn)).toMatchObject({ pincount: 0, refcount: 1 });
    t.exitAllAndExpectNoLeak();
  });

  it('a read-only FOLL_PIN of a page shared after fork unshares it first, so the pinned page stays the writer page (gup_must_unshare)', () => {
    const [t, a, pfn] = parentWithPage(5);
    t.ok({ op: 'fork', pid: 1 });
    const pinned = t.pin(1, a, 0);
    // FAULT_FLAG_UNSHARE: wp_page_copy gives the parent an exclusive copy, mapped read-only.
    expect(pinned).not.toBe(pfn);
    expect(t.pte(1, a)).toMatchObject({ kind: 'present', pfn: pinned, write: false });
    expect(t.frame(pinned)).toMatchObject({ anonExclusive: true, pincount: 1, refcount: 2, mapcount: 1, value: 5 });
    expect(t.frame(pfn)).toMatchObject({ refcount: 1, mapcount: 1 });
    // The later write reuses the exclusive page: the pin keeps seeing what the parent writes.
    expect(t.write(1, a, 6)).toEqual(okv());
    expect(t.pfnAt(1, a)).toBe(pinned);
    expect(t.read(2, a)).toEqual(okv(5));
    t.unpin(pinned);
    t.exitAllAndExpectNoLeak();
  });

  it('a FOLL_GET reference is not a pin: fork shares the page COW, and a later parent write copies away from it', () => {
    const [t, a, pfn] = parentWithPage(5);
    expect(t.gup(1, a, FOLL_WRITE)).toBe(pfn);
    expect(t.frame(pfn)).toMatchObject({ pincount: 0, refcount: 2 });
    t.ok({ op: 'fork', pid: 1 });
    // folio_maybe_dma_pinned is false for a plain reference, so copy_present_pte shares.
    expect(t.pfnAt(2, a)).toBe(pfn);
    expect(t.frame(pfn)).toMatchObject({ refcount: 3, mapcount: 2, anonExclusive: false });
    // The extra reference keeps wp_can_reuse_anon_folio from reusing: the parent copies.
    expect(t.write(1, a, 6)).toEqual(okv());
    expect(t.pfnAt(1, a)).not.toBe(pfn);
    expect(t.frame(pfn)).toMatchObject({ refcount: 2, mapcount: 1, value: 5 });
    t.put(pfn);
    expect(t.write(2, a, 7)).toEqual(okv());
    expect(t.pfnAt(2, a)).toBe(pfn);
    expect(t.read(1, a)).toEqual(okv(6));
    t.exitAllAndExpectNoLeak();
  });
});
