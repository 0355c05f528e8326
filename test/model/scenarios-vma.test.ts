/**
 * Address-space calls on VMAs: partial munmap and mprotect split (__split_vma) and merge
 * back (vma_merge), do_mprotect_pkey stops at the first hole with ENOMEM after applying to
 * what came before, and the argument checks of mmap, munmap and mprotect.
 */
import { describe, expect, it } from 'vitest';
import { PROT_NONE } from '../../kernel-api/op.ts';
import { RO, RW, Scenario, okv } from './helpers.ts';

const BASE = 0x1000;

/** P1 with a 10-page private anonymous VMA at BASE, every page written with 100 + i. */
function tenWrittenPages(): Scenario {
  const t = new Scenario();
  t.spawn();
  expect(t.anon(1, 10, { addr: BASE })).toBe(BASE);
  for (let i = 0; i < 10; i++) expect(t.write(1, BASE + i, 100 + i)).toEqual(okv());
  return t;
}

const ranges = (t: Scenario, pid: number) => t.vmas(pid).map((v) => [v.start, v.end, v.prot]);

describe('mprotect and munmap in the middle of a VMA', () => {
  it('mprotect of the middle splits into three VMAs and write-protects only the middle PTEs (mprotect_fixup)', () => {
    const t = tenWrittenPages();
    const pfns = Array.from({ length: 10 }, (_, i) => t.pfnAt(1, BASE + i));
    expect(t.step({ op: 'mprotect', pid: 1, addr: BASE + 3, lengthPages: 4, prot: RO })).toEqual(okv());
    expect(ranges(t, 1)).toEqual([[BASE, BASE + 3, RW], [BASE + 3, BASE + 7, RO], [BASE + 7, BASE + 10, RW]]);
    for (let i = 0; i < 10; i++) {
      expect(t.pte(1, BASE + i)).toMatchObject({ kind: 'present', pfn: pfns[i], write: i < 3 || i >= 7 });
      expect(t.read(1, BASE + i)).toEqual(okv(100 + i));
    }
    expect(t.write(1, BASE + 4, 1)).toEqual({ kind: 'signal', signal: 'SIGSEGV' });
    expect(t.write(1, BASE + 7, 1)).toEqual(okv());
    t.exitAllAndExpectNoLeak();
  });

  it('restoring the protection merges the three VMAs back into one, and writes reuse the same pages (vma_merge)', () => {
    const t = tenWrittenPages();
    const pfn = t.pfnAt(1, BASE + 4);
    const original = t.vmas(1)[0].id;
    t.ok({ op: 'mprotect', pid: 1, addr: BASE + 3, lengthPages: 4, prot: RO });
    expect(t.vmas(1)).toHaveLength(3);
    // __split_vma(new_below) as vma_modify calls it: the changed range keeps the VMA, the
    // parts outside are new ones.
    const [below, middle] = t.vmas(1).map((v) => v.id);
    expect(middle).toBe(original);
    expect(below).not.toBe(original);
    expect(t.step({ op: 'mprotect', pid: 1, addr: BASE + 3, lengthPages: 4, prot: RW })).toEqual(okv());
    expect(ranges(t, 1)).toEqual([[BASE, BASE + 10, RW]]);
    // vma_merge_existing_range, both sides: prev grows over the middle and next, which go.
    expect(t.vmas(1)[0].id).toBe(below);
    // The page is still exclusive: the write fault reuses it (wp_page_reuse).
    expect(t.write(1, BASE + 4, 5)).toEqual(okv());
    expect(t.pfnAt(1, BASE + 4)).toBe(pfn);
    t.exitAllAndExpectNoLeak();
  });

  it('mprotect to the protection a VMA already has changes nothing and splits nothing (mprotect_fixup: newflags == oldflags)', () => {
    const split = tenWrittenPages();
    split.ok({ op: 'mprotect', pid: 1, addr: BASE + 3, lengthPages: 4, prot: RO });
    split.ok({ op: 'mprotect', pid: 1, addr: BASE + 3, lengthPages: 4, prot: RW });
    const same = tenWrittenPages();
    const id = same.vmas(1)[0].id;
    expect(same.step({ op: 'mprotect', pid: 1, addr: BASE + 3, lengthPages: 4, prot: RW })).toEqual(okv());
    expect(ranges(same, 1)).toEqual([[BASE, BASE + 10, RW]]);
    expect(same.vmas(1)[0].id).toBe(id);
    // No VMA was made: the next one gets the id the first split would have taken.
    const next = (t: Scenario) => { t.anon(1, 1, { addr: BASE + 20 }); return t.vmas(1).find((v) => v.start === BASE + 20)!.id; };
    expect(next(same)).toBe(id + 1);
    expect(next(split)).toBeGreaterThan(id + 1);
    same.exitAllAndExpectNoLeak();
  });

  it('MADV_DONTFORK of a part already VM_DONTCOPY splits nothing (madvise_update_vma: the flags are unchanged)', () => {
    const t = tenWrittenPages();
    t.ok({ op: 'madvise', pid: 1, addr: BASE, lengthPages: 10, advice: 'DONTFORK' });
    const ids = t.vmas(1).map((v) => v.id);
    t.ok({ op: 'madvise', pid: 1, addr: BASE + 3, lengthPages: 4, advice: 'DONTFORK' });
    expect(t.vmas(1).map((v) => v.id)).toEqual(ids);
    t.anon(1, 1, { addr: BASE + 20 });
    expect(t.vmas(1).find((v) => v.start === BASE + 20)!.id).toBe(Math.max(...ids) + 1);
    t.exitAllAndExpectNoLeak();
  });

  it('munmap of the middle leaves two VMAs and frees the pages in the hole (zap_pte_range)', () => {
    const t = tenWrittenPages();
    const hole = [3, 4, 5, 6].map((i) => t.pfnAt(1, BASE + i));
    expect(t.step({ op: 'munmap', pid: 1, addr: BASE + 3, lengthPages: 4 })).toEqual(okv());
    expect(ranges(t, 1)).toEqual([[BASE, BASE + 3, RW], [BASE + 7, BASE + 10, RW]]);
    for (const pfn of hole) expect(t.frame(pfn)).toBeUndefined();
    expect(t.proc(1).rss.anon).toBe(6);
    expect(t.read(1, BASE + 4)).toEqual({ kind: 'signal', signal: 'SIGSEGV' });
    expect(t.read(1, BASE + 7)).toEqual(okv(107));
    // The upper part keeps its pgoff (addr for anonymous memory), so it reads its own pages.
    expect(t.vmas(1)[1].pgoff).toBe(BASE + 7);
    t.exitAllAndExpectNoLeak();
  });

  it('mprotect over a hole applies to the VMA before the hole, then returns ENOMEM (do_mprotect_pkey)', () => {
    const t = tenWrittenPages();
    t.ok({ op: 'munmap', pid: 1, addr: BASE + 4, lengthPages: 2 });
    expect(t.step({ op: 'mprotect', pid: 1, addr: BASE + 2, lengthPages: 6, prot: RO })).toEqual({ kind: 'errno', errno: 'ENOMEM' });
    expect(ranges(t, 1)).toEqual([[BASE, BASE + 2, RW], [BASE + 2, BASE + 4, RO], [BASE + 6, BASE + 10, RW]]);
    expect(t.write(1, BASE + 3, 1)).toEqual({ kind: 'signal', signal: 'SIGSEGV' });
    expect(t.write(1, BASE + 6, 1)).toEqual(okv());
    t.exitAllAndExpectNoLeak();
  });

  it('mprotect starting in a hole changes nothing and returns ENOMEM', () => {
    const t = tenWrittenPages();
    t.ok({ op: 'munmap', pid: 1, addr: BASE, lengthPages: 2 });
    expect(t.step({ op: 'mprotect', pid: 1, addr: BASE, lengthPages: 4, prot: RO })).toEqual({ kind: 'errno', errno: 'ENOMEM' });
    expect(ranges(t, 1)).toEqual([[BASE + 2, BASE + 10, RW]]);
    t.exitAllAndExpectNoLeak();
  });

  it('munmap of length 0 is EINVAL; mprotect of length 0 returns 0 and changes nothing', () => {
    const t = tenWrittenPages();
    expect(t.step({ op: 'munmap', pid: 1, addr: BASE, lengthPages: 0 })).toEqual({ kind: 'errno', errno: 'EINVAL' });
    expect(t.step({ op: 'mprotect', pid: 1, addr: BASE, lengthPages: 0, prot: PROT_NONE })).toEqual(okv());
    expect(ranges(t, 1)).toEqual([[BASE, BASE + 10, RW]]);
    t.exitAllAndExpectNoLeak();
  });

  it('munmap of a range with nothing mapped succeeds', () => {
    const t = new Scenario();
    t.spawn();
    expect(t.step({ op: 'munmap', pid: 1, addr: BASE, lengthPages: 4 })).toEqual(okv());
    t.exitAllAndExpectNoLeak();
  });
});

describe('argument and permission errors', () => {
  it('MAP_FIXED_NOREPLACE over an existing mapping is EEXIST and leaves it alone', () => {
    const t = tenWrittenPages();
    expect(t.step({ op: 'mmap', pid: 1, addr: BASE + 8, lengthPages: 4, prot: RW, shared: false, noreplace: true }))
      .toEqual({ kind: 'errno', errno: 'EEXIST' });
    expect(t.read(1, BASE + 8)).toEqual(okv(108));
    expect(t.step({ op: 'mmap', pid: 1, addr: BASE + 10, lengthPages: 4, prot: RW, shared: false, noreplace: true })).toEqual(okv(BASE + 10));
    t.exitAllAndExpectNoLeak();
  });

  it('MAP_FIXED over an existing mapping replaces it: the old pages are freed', () => {
    const t = tenWrittenPages();
    const old = t.pfnAt(1, BASE + 9);
    expect(t.step({ op: 'mmap', pid: 1, addr: BASE + 8, lengthPages: 4, prot: RW, shared: false, fixed: true })).toEqual(okv(BASE + 8));
    expect(t.frame(old)).toBeUndefined();
    expect(t.read(1, BASE + 9)).toEqual(okv(0));
    t.exitAllAndExpectNoLeak();
  });

  it('MAP_FIXED below vm.mmap_min_addr is EPERM (cap_mmap_addr)', () => {
    const t = new Scenario();
    t.spawn();
    const min = t.k.config.mmapMinAddrPages;
    expect(t.step({ op: 'mmap', pid: 1, addr: min - 1, lengthPages: 1, prot: RW, shared: false, fixed: true }))
      .toEqual({ kind: 'errno', errno: 'EPERM' });
    expect(t.step({ op: 'mmap', pid: 1, addr: min, lengthPages: 1, prot: RW, shared: false, fixed: true })).toEqual(okv(min));
    t.exitAllAndExpectNoLeak();
  });

  it('mmap of length 0 is EINVAL', () => {
    const t = new Scenario();
    t.spawn();
    expect(t.step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 0, prot: RW, shared: false })).toEqual({ kind: 'errno', errno: 'EINVAL' });
    t.exitAllAndExpectNoLeak();
  });

  it('a shared writable mapping of a file opened read-only is EACCES (do_mmap: FMODE_WRITE)', () => {
    const t = new Scenario();
    t.spawn();
    const file = t.ok({ op: 'creat', sizePages: 2 });
    expect(t.step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: RW, shared: true, file, mode: 'r' }))
      .toEqual({ kind: 'errno', errno: 'EACCES' });
    t.exitAllAndExpectNoLeak();
  });

  it('mprotect(PROT_WRITE) of a shared read-only-fd mapping is EACCES: VM_MAYWRITE is clear', () => {
    const t = new Scenario();
    t.spawn();
    const file = t.ok({ op: 'creat', sizePages: 2 });
    const a = t.mapFile(1, file, 2, { prot: RO, shared: true, mode: 'r' });
    expect(t.vmas(1)[0]).toMatchObject({ shared: true, mayWrite: false });
    expect(t.step({ op: 'mprotect', pid: 1, addr: a, lengthPages: 2, prot: RW })).toEqual({ kind: 'errno', errno: 'EACCES' });
    expect(t.vmas(1)[0].prot).toBe(RO);
    expect(t.write(1, a, 1)).toEqual({ kind: 'signal', signal: 'SIGSEGV' });
    t.exitAllAndExpectNoLeak();
  });

  it('a private mapping of a read-only fd may become writable: its writes are private copies', () => {
    const t = new Scenario();
    t.spawn();
    const file = t.ok({ op: 'creat', sizePages: 1 });
    t.ok({ op: 'pwrite', file, index: 0, value: 4 });
    const a = t.mapFile(1, file, 1, { prot: RO, shared: false, mode: 'r' });
    expect(t.step({ op: 'mprotect', pid: 1, addr: a, lengthPages: 1, prot: RW })).toEqual(okv());
    expect(t.write(1, a, 8)).toEqual(okv());
    expect(t.frameAt(1, a).kind).toBe('anon');
    expect(t.step({ op: 'pread', file, index: 0 })).toEqual(okv(4));
    t.exitAllAndExpectNoLeak();
  });

  it('a read outside any VMA is SIGSEGV; a write to a PROT_READ mapping is SIGSEGV', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1, { prot: RO });
    expect(t.read(1, a + 1)).toEqual({ kind: 'signal', signal: 'SIGSEGV' });
    expect(t.read(1, a)).toEqual(okv(0));
    expect(t.write(1, a, 1)).toEqual({ kind: 'signal', signal: 'SIGSEGV' });
    const none = t.anon(1, 1, { prot: PROT_NONE });
    expect(t.read(1, none)).toEqual({ kind: 'signal', signal: 'SIGSEGV' });
    t.exitAllAndExpectNoLeak();
  });
});
