/**
 * The advices issue 17 adds (mm/madvise.c, Linux 6.18): MADV_WIPEONFORK / KEEPONFORK
 * (VM_WIPEONFORK, dup_mmap's clean slate), MADV_POPULATE_READ / WRITE (madvise_populate →
 * faultin_page_range) and MADV_WILLNEED (readahead, not emulated: it changes nothing).
 */
import { describe, expect, it } from 'vitest';
import type { Advice } from '../../kernel-api/op.ts';
import { PROT_WRITE } from '../../kernel-api/op.ts';
import { RO, RW, Scenario, okv } from './helpers.ts';

const madv = (t: Scenario, pid: number, addr: number, lengthPages: number, advice: Advice) =>
  t.step({ op: 'madvise', pid, addr, lengthPages, advice });
const errno = (e: string) => ({ kind: 'errno', errno: e });

describe('MADV_WIPEONFORK and MADV_KEEPONFORK', () => {
  it('the child of a fork reads zeroes in a WIPEONFORK range, the parent keeps its data, the rest is copied', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 4);
    for (let i = 0; i < 4; i++) t.write(1, a + i, 10 + i);
    expect(madv(t, 1, a + 1, 2, 'WIPEONFORK')).toEqual(okv());
    // vma_modify_flags split the VMA in three; only the middle has VM_WIPEONFORK.
    expect(t.vmas(1).map((v) => [v.start - a, v.end - a, v.wipeonfork])).toEqual([[0, 1, false], [1, 3, true], [3, 4, false]]);
    const child = t.ok({ op: 'fork', pid: 1 });
    expect(t.vmas(child).map((v) => v.wipeonfork)).toEqual([false, true, false]);
    expect([0, 1, 2, 3].map((i) => t.read(child, a + i))).toEqual([okv(10), okv(0), okv(0), okv(13)]);
    expect([0, 1, 2, 3].map((i) => t.read(1, a + i))).toEqual([okv(10), okv(11), okv(12), okv(13)]);
    // The child's wiped pages are its own: a write there does not reach the parent.
    t.write(child, a + 1, 99);
    expect(t.read(1, a + 1)).toEqual(okv(11));
    t.exitAllAndExpectNoLeak();
  });

  it('a swapped-out page of a WIPEONFORK range is not duplicated into the child (no swap_duplicate)', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1);
    t.write(1, a, 7);
    t.ok({ op: 'reclaim', pid: 1, addr: a });
    expect(madv(t, 1, a, 1, 'WIPEONFORK')).toEqual(okv());
    const child = t.ok({ op: 'fork', pid: 1 });
    expect(t.slots().map((sl) => sl.count)).toEqual([1]);
    expect(t.read(child, a)).toEqual(okv(0));
    expect(t.read(1, a)).toEqual(okv(7));
    t.exitAllAndExpectNoLeak();
  });

  it('KEEPONFORK clears it again and the VMAs merge back; WIPEONFORK on a file or shared mapping is EINVAL', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 3);
    expect(madv(t, 1, a + 1, 1, 'WIPEONFORK')).toEqual(okv());
    expect(t.vmas(1)).toHaveLength(3);
    expect(madv(t, 1, a + 1, 1, 'KEEPONFORK')).toEqual(okv());
    expect(t.vmas(1)).toHaveLength(1);
    const shm = t.anon(1, 1, { shared: true });
    expect(madv(t, 1, shm, 1, 'WIPEONFORK')).toEqual(errno('EINVAL'));
    const file = t.ok({ op: 'creat', sizePages: 1 });
    const f = t.mapFile(1, file, 1, { shared: false });
    expect(madv(t, 1, f, 1, 'WIPEONFORK')).toEqual(errno('EINVAL'));
    expect(madv(t, 1, f, 1, 'KEEPONFORK')).toEqual(okv());
    t.exitAllAndExpectNoLeak();
  });
});

describe('MADV_POPULATE_READ and MADV_POPULATE_WRITE', () => {
  it('READ maps the zero page in private anonymous memory, WRITE a private page of its own', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 2);
    expect(madv(t, 1, a, 2, 'POPULATE_READ')).toEqual(okv());
    expect(t.pte(1, a)).toMatchObject({ pfn: t.k.inspect.zeroPfn, special: true });
    expect(madv(t, 1, a, 2, 'POPULATE_WRITE')).toEqual(okv());
    expect(t.frameAt(1, a + 1)).toMatchObject({ kind: 'anon', value: 0 });
    expect(t.pte(1, a + 1)).toMatchObject({ write: true });
    expect(t.proc(1).rss.anon).toBe(2);
    t.exitAllAndExpectNoLeak();
  });

  it('WRITE breaks COW after fork: the parent gets its own copy with the same contents', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1);
    t.write(1, a, 5);
    const child = t.ok({ op: 'fork', pid: 1 });
    const shared = t.pfnAt(1, a);
    expect(t.pfnAt(child, a)).toBe(shared);
    expect(madv(t, 1, a, 1, 'POPULATE_WRITE')).toEqual(okv());
    expect(t.pfnAt(1, a)).not.toBe(shared);
    expect(t.frameAt(1, a)).toMatchObject({ value: 5, anonExclusive: true });
    expect(t.read(child, a)).toEqual(okv(5));
    t.exitAllAndExpectNoLeak();
  });

  it('READ of a private file mapping maps the page-cache page; past EOF the fault is SIGBUS: EFAULT', () => {
    const t = new Scenario();
    t.spawn();
    const file = t.ok({ op: 'creat', sizePages: 1 });
    t.ok({ op: 'pwrite', file, index: 0, value: 3 });
    const f = t.mapFile(1, file, 2, { shared: false });
    expect(madv(t, 1, f, 2, 'POPULATE_READ')).toEqual(errno('EFAULT'));
    // The page before the SIGBUS stays populated.
    expect(t.frameAt(1, f)).toMatchObject({ kind: 'file', value: 3 });
    expect(t.pte(1, f + 1)).toBeUndefined();
    t.exitAllAndExpectNoLeak();
  });

  it('a hole gives ENOMEM after the pages before it, missing VM_WRITE or VM_READ EINVAL', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 3);
    t.ok({ op: 'munmap', pid: 1, addr: a + 1, lengthPages: 1 });
    expect(madv(t, 1, a, 3, 'POPULATE_WRITE')).toEqual(errno('ENOMEM'));
    expect(t.pte(1, a)).toMatchObject({ write: true });
    expect(t.pte(1, a + 2)).toBeUndefined();
    const ro = t.anon(1, 1, { prot: RO });
    expect(madv(t, 1, ro, 1, 'POPULATE_WRITE')).toEqual(errno('EINVAL'));
    expect(madv(t, 1, ro, 1, 'POPULATE_READ')).toEqual(okv());
    const wo = t.anon(1, 1, { prot: PROT_WRITE });
    expect(madv(t, 1, wo, 1, 'POPULATE_READ')).toEqual(errno('EINVAL'));
    expect(t.pte(1, wo)).toBeUndefined();
    t.exitAllAndExpectNoLeak();
  });

  it('WRITE swaps a swapped-out page back in', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1, { prot: RW });
    t.write(1, a, 8);
    t.ok({ op: 'reclaim', pid: 1, addr: a });
    expect(t.pte(1, a)).toMatchObject({ kind: 'swap' });
    expect(madv(t, 1, a, 1, 'POPULATE_WRITE')).toEqual(okv());
    expect(t.frameAt(1, a)).toMatchObject({ value: 8 });
    t.exitAllAndExpectNoLeak();
  });
});

describe('MADV_WILLNEED', () => {
  it('maps nothing and returns 0 on any VMA; a hole is ENOMEM', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 2);
    expect(madv(t, 1, a, 2, 'WILLNEED')).toEqual(okv());
    expect(t.pte(1, a)).toBeUndefined();
    expect(madv(t, 1, a, 3, 'WILLNEED')).toEqual(errno('ENOMEM'));
    t.exitAllAndExpectNoLeak();
  });
});

describe('MADV_REMOVE', () => {
  it('punches a hole in a shared file mapping: every mapping reads zero, a private COW copy keeps its value', () => {
    const t = new Scenario();
    t.spawn();
    const file = t.ok({ op: 'creat', sizePages: 2 });
    t.ok({ op: 'pwrite', file, index: 0, value: 10 });
    t.ok({ op: 'pwrite', file, index: 1, value: 11 });
    const sh = t.mapFile(1, file, 2, { shared: true });
    const pr = t.mapFile(1, file, 2, { shared: false });
    expect(t.read(1, sh)).toEqual(okv(10));
    expect(t.read(1, pr)).toEqual(okv(10));
    t.write(1, pr + 1, 99); // a COW copy of index 1
    expect(madv(t, 1, sh, 2, 'REMOVE')).toEqual(okv());
    expect(t.pte(1, sh)).toBeUndefined();
    expect(t.pte(1, pr)).toBeUndefined(); // the private mapping's page-cache PTE went too
    expect(t.frameAt(1, pr + 1)).toMatchObject({ kind: 'anon', value: 99 });
    expect([t.read(1, sh), t.read(1, sh + 1), t.read(1, pr), t.read(1, pr + 1)]).toEqual([okv(0), okv(0), okv(0), okv(99)]);
    expect(t.step({ op: 'pread', file, index: 1 })).toEqual(okv(0));
    t.exitAllAndExpectNoLeak();
  });

  it('on shared anonymous memory (shmem) zeroes the range in the fork child too', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 2, { shared: true });
    t.write(1, a, 4);
    t.write(1, a + 1, 5);
    const child = t.ok({ op: 'fork', pid: 1 });
    expect(madv(t, 1, a + 1, 1, 'REMOVE')).toEqual(okv());
    expect([t.read(child, a), t.read(child, a + 1)]).toEqual([okv(4), okv(0)]);
    t.exitAllAndExpectNoLeak();
  });

  it('EINVAL on private anonymous memory, EACCES on a private or read-only-opened file mapping', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1);
    expect(madv(t, 1, a, 1, 'REMOVE')).toEqual(errno('EINVAL'));
    const file = t.ok({ op: 'creat', sizePages: 1 });
    t.ok({ op: 'pwrite', file, index: 0, value: 1 });
    const pr = t.mapFile(1, file, 1, { shared: false });
    expect(madv(t, 1, pr, 1, 'REMOVE')).toEqual(errno('EACCES'));
    const ro = t.mapFile(1, file, 1, { shared: true, prot: RO, mode: 'r' });
    expect(madv(t, 1, ro, 1, 'REMOVE')).toEqual(errno('EACCES'));
    expect(t.step({ op: 'pread', file, index: 0 })).toEqual(okv(1));
    t.exitAllAndExpectNoLeak();
  });
});
