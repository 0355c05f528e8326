/**
 * MADV_FREE on the running kernel: the model and Linux agree step by step (outcomes, maps,
 * contents, pagemap), and the kernel's answers are pinned: a lazily freed clean page is
 * discarded by MADV_PAGEOUT (it reads 0 after, without swap), one stored to since is kept,
 * one a fork shares is left alone (folio_maybe_mapped_shared) (a swapped-out page: swap.test.ts); file, shared and locked mappings are EINVAL, a hole ENOMEM after the rest.
 */
import { describe, expect, it } from 'vitest';
import { agreeOutcomes as agree, oracle } from './helpers.ts';

const RW = 3;
const A = 1000;


describe.skipIf(!oracle().ok)('oracle: MADV_FREE agrees with Linux', () => {
  it('discarded while clean, kept once stored to or shared, refused outside private anonymous memory', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: false, noreplace: true },
      { op: 'write', pid: 1, addr: A, value: 1 },
      { op: 'write', pid: 1, addr: A + 1, value: 2 },
      { op: 'write', pid: 1, addr: A + 2, value: 3 },
      { op: 'madvise', pid: 1, addr: A, lengthPages: 4, advice: 'FREE' },
      { op: 'read', pid: 1, addr: A },
      { op: 'write', pid: 1, addr: A + 1, value: 9 },
      { op: 'madvise', pid: 1, addr: A, lengthPages: 4, advice: 'PAGEOUT' },
      { op: 'read', pid: 1, addr: A },
      { op: 'read', pid: 1, addr: A + 1 },
      { op: 'read', pid: 1, addr: A + 2 },
      // A page a fork shares is not lazily freed.
      { op: 'write', pid: 1, addr: A + 3, value: 5 },
      { op: 'fork', pid: 1 },
      { op: 'madvise', pid: 1, addr: A + 3, lengthPages: 1, advice: 'FREE' },
      { op: 'madvise', pid: 1, addr: A + 3, lengthPages: 1, advice: 'PAGEOUT' },
      { op: 'read', pid: 1, addr: A + 3 },
      // Refused: shared anonymous, file, locked; a hole after the rest.
      { op: 'mmap', pid: 1, addr: A + 10, lengthPages: 1, prot: RW, shared: true, noreplace: true },
      { op: 'madvise', pid: 1, addr: A + 10, lengthPages: 1, advice: 'FREE' },
      { op: 'creat', sizePages: 1 },
      { op: 'mmap', pid: 1, addr: A + 12, lengthPages: 1, prot: RW, shared: false, file: 1, noreplace: true },
      { op: 'madvise', pid: 1, addr: A + 12, lengthPages: 1, advice: 'FREE' },
      { op: 'mlock', pid: 1, addr: A + 2, lengthPages: 1 },
      { op: 'madvise', pid: 1, addr: A + 2, lengthPages: 1, advice: 'FREE' },
      { op: 'madvise', pid: 1, addr: A + 3, lengthPages: 3, advice: 'FREE' },
    ]);
    expect(out[5]).toBe('= 0');
    expect(out[6]).toBe('= 1'); // still there until reclaim
    expect(out.slice(9, 12)).toEqual(['= 0', '= 9', '= 0']);
    expect(out[16]).toBe('= 5');
    expect(out[18]).toBe('-EINVAL');
    expect(out[21]).toBe('-EINVAL');
    expect(out[23]).toBe('-EINVAL');
    expect(out[24]).toBe('-ENOMEM');
  });

});
