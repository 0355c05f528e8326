/**
 * truncate under mappings (truncate_pagecache → unmap_mapping_range with even_cows, then
 * truncate_inode_pages): pages past the new end leave every mapping, private COW copies
 * included, and the page cache; a fault past i_size is SIGBUS (filemap_fault); growing
 * the file again exposes zeros.
 */
import { describe, expect, it } from 'vitest';
import { Scenario, okv } from './helpers.ts';

const SIGBUS = { kind: 'signal', signal: 'SIGBUS' } as const;

/** A 4-page file holding 10..13, mapped shared at `s` and private at `p` by P1. */
function mappedFile(): { t: Scenario; file: number; s: number; p: number } {
  const t = new Scenario();
  t.spawn();
  const file = t.ok({ op: 'creat', sizePages: 4 });
  for (let i = 0; i < 4; i++) t.ok({ op: 'pwrite', file, index: i, value: 10 + i });
  const s = t.mapFile(1, file, 4, { shared: true });
  const p = t.mapFile(1, file, 4, { shared: false });
  for (let i = 0; i < 4; i++) expect(t.read(1, s + i)).toEqual(okv(10 + i));
  return { t, file, s, p };
}

describe('truncate under a file mapping', () => {
  it('pages past the new end give SIGBUS through a shared mapping and leave the page cache', () => {
    const { t, file, s } = mappedFile();
    const beyond = t.pfnAt(1, s + 3);
    expect(t.step({ op: 'truncate', file, sizePages: 2 })).toEqual(okv());
    expect(t.pte(1, s + 2)).toBeUndefined();
    expect(t.pte(1, s + 3)).toBeUndefined();
    expect(t.frame(beyond)).toBeUndefined();
    expect(t.pagecache(file).map(([index]) => index)).toEqual([0, 1]);
    expect(t.read(1, s + 2)).toEqual(SIGBUS);
    expect(t.write(1, s + 3, 1)).toEqual(SIGBUS);
    expect(t.read(1, s + 1)).toEqual(okv(11));
    expect(t.step({ op: 'pread', file, index: 2 })).toEqual(okv(-1));
    t.exitAllAndExpectNoLeak();
  });

  it('private COW copies past the new end are dropped too (unmap_mapping_range even_cows); those before it stay', () => {
    const { t, file, p } = mappedFile();
    t.write(1, p + 1, 55);
    t.write(1, p + 3, 99);
    const kept = t.frameAt(1, p + 1);
    const dropped = t.frameAt(1, p + 3);
    expect(dropped).toMatchObject({ kind: 'anon', value: 99 });
    t.ok({ op: 'truncate', file, sizePages: 2 });
    expect(t.frame(dropped.pfn)).toBeUndefined();
    expect(t.pte(1, p + 3)).toBeUndefined();
    expect(t.read(1, p + 3)).toEqual(SIGBUS);
    expect(t.pfnAt(1, p + 1)).toBe(kept.pfn);
    expect(t.read(1, p + 1)).toEqual(okv(55));
    t.exitAllAndExpectNoLeak();
  });

  it('growing the file again reads zeros where the old pages were, through both mappings', () => {
    const { t, file, s, p } = mappedFile();
    t.write(1, s + 3, 77);
    t.write(1, p + 2, 88);
    t.ok({ op: 'reclaim', count: 100 }); // writeback: the old values are on disk too
    t.ok({ op: 'truncate', file, sizePages: 2 });
    expect(t.step({ op: 'truncate', file, sizePages: 4 })).toEqual(okv());
    expect(t.read(1, s + 2)).toEqual(okv(0));
    expect(t.read(1, s + 3)).toEqual(okv(0));
    expect(t.read(1, p + 2)).toEqual(okv(0));
    expect(t.step({ op: 'pread', file, index: 3 })).toEqual(okv(0));
    expect(t.read(1, s)).toEqual(okv(10));
    t.exitAllAndExpectNoLeak();
  });

  it('a mapping with a page offset loses exactly the pages whose file index is past the end', () => {
    const t = new Scenario();
    t.spawn();
    const file = t.ok({ op: 'creat', sizePages: 6 });
    const a = t.mapFile(1, file, 4, { shared: true, pgoff: 2 });
    for (let i = 0; i < 4; i++) t.write(1, a + i, i + 1);
    t.ok({ op: 'truncate', file, sizePages: 4 });
    expect(t.read(1, a + 1)).toEqual(okv(2));
    expect(t.read(1, a + 2)).toEqual(SIGBUS);
    t.exitAllAndExpectNoLeak();
  });
});
