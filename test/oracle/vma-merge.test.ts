/**
 * VMA merges and splits on the running kernel: hand-written traces that must agree with the
 * model step by step, /proc/<pid>/maps compared one line per VMA, with the number of VMAs
 * pinned where a merge is or is not made, so that a trace agreeing on the wrong layout is
 * noticed. Each case is one rule of mm/vma.c in Linux 6.18.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { checkTrace } from '../../harness/oracle.ts';
import { oracle, oracleBinary } from './helpers.ts';

const R = 1;
const RW = 3;
const RWX = 7;
const A = 1000; // an address (in pages) inside the oracle's region, far from mmap_base

/** Run a trace on both sides; expect full agreement; return the kernel's VMAs of `pid` after the last step. */
function lastMaps(ops: Op[], pid = 1): [number, number, string][] {
  const v = checkTrace(oracleBinary(), ops);
  if (v.result !== 'agree') {
    throw new Error(`${v.result} at step ${v.step + 1} (${JSON.stringify(ops[v.step])}): ${JSON.stringify(v.differences, null, 1)}`);
  }
  const last = v.kernel.steps.at(-1)!;
  const p = last.processes.find((x) => x.pid === pid)!;
  return p.maps.map((m) => [m.start, m.end, m.perms]);
}

const map = (pid: number, addr: number, lengthPages: number, prot: number, extra: Partial<Extract<Op, { op: 'mmap' }>> = {}): Op =>
  ({ op: 'mmap', pid, addr, lengthPages, prot, shared: false, fixed: true, ...extra });

describe.skipIf(!oracle().ok)('oracle: VMA merges and splits as Linux 6.18 makes them', () => {
  it('an mmap next to a faulted VMA of a fork child does not merge (vma_is_fork_child); in the parent it does', () => {
    const ops: Op[] = [
      { op: 'spawn' }, map(1, A, 2, RW), { op: 'write', pid: 1, addr: A, value: 1 }, { op: 'fork', pid: 1 },
      map(2, A + 2, 2, RW), map(1, A + 2, 2, RW),
    ];
    expect(lastMaps(ops, 2)).toEqual([[A, A + 2, 'rw-p'], [A + 2, A + 4, 'rw-p']]);
    expect(lastMaps(ops, 1)).toEqual([[A, A + 4, 'rw-p']]);
  });

  it('mprotect keeps VM_ACCOUNT of a faulted writable VMA (no merge with a read-only one), drops it for a never-faulted one', () => {
    const base: Op[] = [{ op: 'spawn' }, map(1, A, 2, R), map(1, A + 2, 2, RW)];
    const down: Op = { op: 'mprotect', pid: 1, addr: A + 2, lengthPages: 2, prot: R };
    expect(lastMaps([...base, { op: 'write', pid: 1, addr: A + 2, value: 1 }, down])).toEqual([[A, A + 2, 'r--p'], [A + 2, A + 4, 'r--p']]);
    expect(lastMaps([...base, down])).toEqual([[A, A + 4, 'r--p']]);
    expect(lastMaps([...base, { op: 'mprotect', pid: 1, addr: A, lengthPages: 2, prot: RW }])).toEqual([[A, A + 4, 'rw-p']]);
  });

  it('an mprotect across three VMAs merges them into one, and one in the middle of a VMA splits it in three', () => {
    expect(lastMaps([
      { op: 'spawn' }, map(1, A, 2, R), map(1, A + 2, 2, RW), map(1, A + 4, 2, R),
      { op: 'mprotect', pid: 1, addr: A, lengthPages: 6, prot: RW },
    ])).toEqual([[A, A + 6, 'rw-p']]);
    expect(lastMaps([
      { op: 'spawn' }, map(1, A, 6, RW), { op: 'write', pid: 1, addr: A + 3, value: 1 },
      { op: 'mprotect', pid: 1, addr: A + 2, lengthPages: 2, prot: R },
    ])).toEqual([[A, A + 2, 'rw-p'], [A + 2, A + 4, 'r--p'], [A + 4, A + 6, 'rw-p']]);
  });

  it('a first fault shares the anon_vma of a compatible neighbour (find_mergeable_anon_vma), so a later mprotect merges', () => {
    expect(lastMaps([
      { op: 'spawn' }, map(1, A, 2, RW), map(1, A + 2, 2, RWX),
      { op: 'write', pid: 1, addr: A, value: 1 }, { op: 'write', pid: 1, addr: A + 2, value: 2 },
      { op: 'mprotect', pid: 1, addr: A + 2, lengthPages: 2, prot: RW },
    ])).toEqual([[A, A + 4, 'rw-p']]);
  });

  it('MAP_FIXED over the middle of a VMA with the same protection merges back into one VMA', () => {
    expect(lastMaps([
      { op: 'spawn' }, map(1, A, 6, RW), { op: 'write', pid: 1, addr: A, value: 1 }, map(1, A + 2, 2, RW),
    ])).toEqual([[A, A + 6, 'rw-p']]);
  });

  it('two mmaps of one file never merge (each opens it: two struct files), nor two shared anonymous ones; a split of one merges back', () => {
    expect(lastMaps([
      { op: 'spawn' }, { op: 'creat', sizePages: 8 },
      map(1, A, 2, R, { file: 1, pgoff: 0 }), map(1, A + 2, 2, R, { file: 1, pgoff: 2 }),
    ]).map(([s, e]) => [s, e])).toEqual([[A, A + 2], [A + 2, A + 4]]);
    expect(lastMaps([
      { op: 'spawn' }, map(1, A, 2, RW, { shared: true }), map(1, A + 2, 2, RW, { shared: true }),
    ]).map(([s, e]) => [s, e])).toEqual([[A, A + 2], [A + 2, A + 4]]);
    const split: Op[] = [
      { op: 'spawn' }, { op: 'creat', sizePages: 8 }, map(1, A, 4, R, { file: 1, pgoff: 0, shared: true }),
      { op: 'mprotect', pid: 1, addr: A + 1, lengthPages: 1, prot: RW },
    ];
    expect(lastMaps(split)).toHaveLength(3);
    expect(lastMaps([...split, { op: 'mprotect', pid: 1, addr: A + 1, lengthPages: 1, prot: R }])).toEqual([[A, A + 4, 'r--s']]);
    // A private one made writable got VM_ACCOUNT (mprotect_fixup) and keeps it: it stays apart.
    expect(lastMaps([
      { op: 'spawn' }, { op: 'creat', sizePages: 8 }, map(1, A, 4, R, { file: 1, pgoff: 0 }),
      { op: 'mprotect', pid: 1, addr: A + 1, lengthPages: 1, prot: RW }, { op: 'mprotect', pid: 1, addr: A + 1, lengthPages: 1, prot: R },
    ])).toHaveLength(3);
  });

  it('madvise DONTFORK splits out its range and DOFORK merges it back (madvise_update_vma)', () => {
    const ops: Op[] = [{ op: 'spawn' }, map(1, A, 6, RW), { op: 'madvise', pid: 1, addr: A + 2, lengthPages: 2, advice: 'DONTFORK' }];
    expect(lastMaps(ops)).toHaveLength(3);
    expect(lastMaps([...ops, { op: 'madvise', pid: 1, addr: A + 2, lengthPages: 2, advice: 'DOFORK' }])).toEqual([[A, A + 6, 'rw-p']]);
  });

  it('mremap: a grow in place merges with the VMA it reaches; a moved faulted VMA keeps its vm_pgoff and does not merge', () => {
    expect(lastMaps([
      { op: 'spawn' }, map(1, A, 2, RW), map(1, A + 4, 2, RW),
      { op: 'mremap', pid: 1, addr: A, oldPages: 2, newPages: 4 },
    ])).toEqual([[A, A + 6, 'rw-p']]);
    const move = (fault: boolean): Op[] => [
      { op: 'spawn' }, map(1, A, 2, RW), map(1, A + 10, 2, RW),
      ...(fault ? [{ op: 'write', pid: 1, addr: A + 10, value: 1 } as Op] : []),
      { op: 'mremap', pid: 1, addr: A + 10, oldPages: 2, newPages: 2, maymove: true, fixed: true, newAddr: A + 2 },
    ];
    expect(lastMaps(move(true))).toEqual([[A, A + 2, 'rw-p'], [A + 2, A + 4, 'rw-p']]);
    expect(lastMaps(move(false))).toEqual([[A, A + 4, 'rw-p']]);
  });

  it('VMAs that faulted with incompatible flags have their own anon_vmas and stay apart once the flags agree', () => {
    const ops = (fault: boolean): Op[] => [
      { op: 'spawn' }, map(1, A, 4, RW), { op: 'madvise', pid: 1, addr: A + 2, lengthPages: 2, advice: 'DONTFORK' },
      ...(fault ? [{ op: 'write', pid: 1, addr: A, value: 1 }, { op: 'write', pid: 1, addr: A + 2, value: 2 }] as Op[] : []),
      { op: 'madvise', pid: 1, addr: A + 2, lengthPages: 2, advice: 'DOFORK' },
    ];
    expect(lastMaps(ops(true))).toEqual([[A, A + 2, 'rw-p'], [A + 2, A + 4, 'rw-p']]);
    expect(lastMaps(ops(false))).toEqual([[A, A + 4, 'rw-p']]);
  });

  it('mremap: moving part of a never-faulted VMA to just past its end merges with it first, then unmaps the old part', () => {
    expect(lastMaps([
      { op: 'spawn' }, map(1, A, 4, RW),
      { op: 'mremap', pid: 1, addr: A + 2, oldPages: 2, newPages: 2, maymove: true, fixed: true, newAddr: A + 4 },
    ])).toEqual([[A, A + 2, 'rw-p'], [A + 4, A + 6, 'rw-p']]);
  });

  it('mremap: a fork child\'s faulted VMA moved back beside an unfaulted one does not merge (copied_from); the parent\'s does', () => {
    // The moved VMA keeps vm_pgoff A, so at A it is contiguous with a VMA mapped at [A - 2, A).
    const ops = (pid: number): Op[] => [
      { op: 'mremap', pid, addr: A, oldPages: 2, newPages: 2, maymove: true, fixed: true, newAddr: A + 10 },
      map(pid, A - 2, 2, RW),
      { op: 'mremap', pid, addr: A + 10, oldPages: 2, newPages: 2, maymove: true, fixed: true, newAddr: A },
    ];
    const start: Op[] = [{ op: 'spawn' }, map(1, A, 2, RW), { op: 'write', pid: 1, addr: A, value: 1 }, { op: 'fork', pid: 1 }];
    expect(lastMaps([...start, ...ops(2)], 2)).toEqual([[A - 2, A, 'rw-p'], [A, A + 2, 'rw-p']]);
    expect(lastMaps([...start, ...ops(1)], 1)).toEqual([[A - 2, A + 2, 'rw-p']]);
  });

  it('an mprotect that meets a hole is ENOMEM and keeps what it changed and split before it', () => {
    expect(lastMaps([
      { op: 'spawn' }, map(1, A, 4, RW), map(1, A + 6, 2, RW),
      { op: 'mprotect', pid: 1, addr: A + 2, lengthPages: 6, prot: R },
    ])).toEqual([[A, A + 2, 'rw-p'], [A + 2, A + 4, 'r--p'], [A + 6, A + 8, 'rw-p']]);
  });

  it('a userfaultfd registration of part of a VMA splits it (vma_modify_flags_uffd)', () => {
    expect(lastMaps([
      { op: 'spawn' }, map(1, A, 6, RW), { op: 'uffd_register_wp', pid: 1, addr: A + 2, lengthPages: 2, async: true },
    ])).toHaveLength(3);
  });
});
