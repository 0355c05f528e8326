/**
 * mincore (mm/mincore.c, Linux 6.18): present PTEs 1, swap entries 1 only while their page is
 * in the swap cache, holes of file mappings the page cache's answer, anonymous holes 0;
 * ENOMEM at the first unmapped page, EINVAL for an unaligned start.
 */
import { describe, expect, it } from 'vitest';
import { Scenario, okv } from './helpers.ts';

const mincore = (t: Scenario, pid: number, addr: number, lengthPages: number) => t.step({ op: 'mincore', pid, addr, lengthPages });
const vec = (values: number[]) => ({ kind: 'ok', value: values.length, values });

describe('mincore', () => {
  it('anonymous memory: 1 for a written page and the zero page, 0 for an untouched one', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 3);
    t.write(1, a, 1);
    expect(t.read(1, a + 1)).toEqual(okv(0));
    expect(mincore(t, 1, a, 3)).toEqual(vec([1, 1, 0]));
    t.exitAllAndExpectNoLeak();
  });

  it('a swapped-out page is 1 while in the swap cache, 0 once it has left it', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1);
    t.write(1, a, 1);
    t.ok({ op: 'reclaim', pid: 1, addr: a });
    expect(t.pte(1, a)).toMatchObject({ kind: 'swap' });
    const cached = t.slots()[0].cachePfn !== -1;
    expect(mincore(t, 1, a, 1)).toEqual(vec([cached ? 1 : 0]));
    t.exitAllAndExpectNoLeak();
  });

  it('a hole of a file mapping reports the page cache; an unmapped page is ENOMEM, a fractional start EINVAL', () => {
    const t = new Scenario();
    t.spawn();
    const file = t.ok({ op: 'creat', sizePages: 3 });
    t.ok({ op: 'pwrite', file, index: 1, value: 5 });
    const f = t.mapFile(1, file, 3, { shared: false });
    expect(mincore(t, 1, f, 3)).toEqual(vec([0, 1, 0]));
    expect(t.pte(1, f + 1)).toBeUndefined();
    expect(mincore(t, 1, f, 4)).toEqual({ kind: 'errno', errno: 'ENOMEM' });
    expect(mincore(t, 1, f + 0.5, 1)).toEqual({ kind: 'errno', errno: 'EINVAL' });
    expect(mincore(t, 1, f, 0)).toEqual(vec([]));
    t.exitAllAndExpectNoLeak();
  });
});
