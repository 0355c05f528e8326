/**
 * Hand-written traces through the model and the running kernel: each must agree step by
 * step (outcomes, maps, pagemap bits, values), and a few outcomes are pinned as well so a
 * trace that agrees on the wrong thing is noticed.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { formatOutcome } from '../../kernel-api/outcome.ts';
import { checkTrace } from '../../harness/oracle.ts';
import { oracle, oracleBinary } from './helpers.ts';

const RW = 3;
const R = 1;
const A = 1000; // an address (in pages) inside the oracle's region, far from mmap_base

/** Run a trace on both sides; expect full agreement; return the kernel's outcomes as text. */
function agree(ops: Op[]): string[] {
  const v = checkTrace(oracleBinary(), ops);
  if (v.result !== 'agree') {
    throw new Error(`${v.result} at step ${v.step + 1} (${JSON.stringify(ops[v.step])}): ${JSON.stringify(v.differences, null, 1)}`);
  }
  return v.kernel.steps.map((s) => formatOutcome(s.outcome));
}

describe.skipIf(!oracle().ok)('oracle scenarios: model and kernel agree', () => {
  it('fork makes private anonymous pages copy-on-write; exit makes them exclusive again', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: false, noreplace: true },
      { op: 'write', pid: 1, addr: A, value: 7 },
      { op: 'read', pid: 1, addr: A + 1 },
      { op: 'fork', pid: 1 },
      { op: 'read', pid: 2, addr: A },
      { op: 'write', pid: 2, addr: A, value: 9 },
      { op: 'read', pid: 1, addr: A },
      { op: 'write', pid: 1, addr: A + 2, value: 5 },
      { op: 'exit', pid: 2 },
    ]);
    expect(out[5]).toBe('= 7');
    expect(out[7]).toBe('= 7');
  });

  it('partial munmap and mprotect split VMAs; the holes and read-only parts fault', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 8, prot: RW, shared: false, noreplace: true },
      { op: 'write', pid: 1, addr: A + 1, value: 1 },
      { op: 'write', pid: 1, addr: A + 4, value: 4 },
      { op: 'write', pid: 1, addr: A + 6, value: 6 },
      { op: 'munmap', pid: 1, addr: A + 2, lengthPages: 2 },
      { op: 'mprotect', pid: 1, addr: A + 5, lengthPages: 2, prot: R },
      { op: 'write', pid: 1, addr: A + 6, value: 66 },
      { op: 'read', pid: 1, addr: A + 3 },
      { op: 'read', pid: 1, addr: A + 6 },
      { op: 'mprotect', pid: 1, addr: A, lengthPages: 8, prot: RW },
      { op: 'mprotect', pid: 1, addr: A + 4, lengthPages: 4, prot: RW },
      { op: 'munmap', pid: 1, addr: A + 7, lengthPages: 4 },
    ]);
    expect(out.slice(7, 11)).toEqual(['SIGSEGV', 'SIGSEGV', '= 6', '-ENOMEM']);
  });

  it('mremap moves a mapping with its pages when it cannot grow in place', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: false, noreplace: true },
      { op: 'mmap', pid: 1, addr: A + 4, lengthPages: 1, prot: R, shared: false, noreplace: true },
      { op: 'write', pid: 1, addr: A, value: 10 },
      { op: 'write', pid: 1, addr: A + 3, value: 13 },
      { op: 'mremap', pid: 1, addr: A, oldPages: 4, newPages: 8, maymove: true },
      { op: 'mremap', pid: 1, addr: A + 4, oldPages: 1, newPages: 2, maymove: true, fixed: true, newAddr: A + 100 },
      { op: 'read', pid: 1, addr: A },
      { op: 'mremap', pid: 1, addr: A + 100, oldPages: 2, newPages: 1 },
      { op: 'mremap', pid: 1, addr: A + 100, oldPages: 1, newPages: 3 },
    ]);
    expect(out[7]).toBe('SIGSEGV');
  });

  it('MADV_DONTNEED drops private anonymous pages, keeps shared anonymous and file contents', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'creat', sizePages: 4 },
      { op: 'pwrite', file: 1, index: 1, value: 41 },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 2, prot: RW, shared: false, noreplace: true },
      { op: 'mmap', pid: 1, addr: A + 10, lengthPages: 2, prot: RW, shared: true, noreplace: true },
      { op: 'mmap', pid: 1, addr: A + 20, lengthPages: 2, prot: RW, shared: false, noreplace: true, file: 1, pgoff: 0 },
      { op: 'mmap', pid: 1, addr: A + 30, lengthPages: 2, prot: RW, shared: true, noreplace: true, file: 1, pgoff: 2 },
      { op: 'write', pid: 1, addr: A, value: 1 },
      { op: 'write', pid: 1, addr: A + 10, value: 2 },
      { op: 'write', pid: 1, addr: A + 21, value: 3 },
      { op: 'write', pid: 1, addr: A + 30, value: 4 },
      { op: 'madvise', pid: 1, addr: A, lengthPages: 40, advice: 'DONTNEED' },
      { op: 'madvise', pid: 1, addr: A, lengthPages: 2, advice: 'DONTNEED' },
      { op: 'read', pid: 1, addr: A },
      { op: 'read', pid: 1, addr: A + 10 },
      { op: 'madvise', pid: 1, addr: A + 20, lengthPages: 2, advice: 'DONTNEED' },
      { op: 'write', pid: 1, addr: A + 20, value: 30 },
      { op: 'read', pid: 1, addr: A + 21 },
      { op: 'madvise', pid: 1, addr: A + 30, lengthPages: 2, advice: 'DONTNEED' },
      { op: 'read', pid: 1, addr: A + 30 },
      { op: 'pread', file: 1, index: 2 },
    ]);
    expect(out[11]).toBe('-ENOMEM');
    expect(out.slice(13, 15)).toEqual(['= 0', '= 2']);
    expect(out[17]).toBe('= 41');
    expect(out.slice(19)).toEqual(['= 4', '= 4']);
  });

  it('truncating a mapped file makes the pages past the end SIGBUS', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'creat', sizePages: 4 },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: true, noreplace: true, file: 1 },
      { op: 'mmap', pid: 1, addr: A + 10, lengthPages: 4, prot: RW, shared: false, noreplace: true, file: 1 },
      { op: 'write', pid: 1, addr: A + 3, value: 3 },
      { op: 'write', pid: 1, addr: A + 13, value: 33 },
      { op: 'truncate', file: 1, sizePages: 2 },
      { op: 'read', pid: 1, addr: A + 3 },
      { op: 'read', pid: 1, addr: A + 13 },
      { op: 'write', pid: 1, addr: A + 1, value: 1 },
      { op: 'pread', file: 1, index: 1 },
      { op: 'pread', file: 1, index: 3 },
      { op: 'truncate', file: 1, sizePages: 4 },
      { op: 'read', pid: 1, addr: A + 3 },
    ]);
    expect(out.slice(7, 9)).toEqual(['SIGBUS', 'SIGBUS']);
    expect(out.slice(10, 12)).toEqual(['= 1', '= -1']);
    expect(out[13]).toBe('= 0');
  });

  it('/proc/<pid>/mem writes into a read-only private mapping (FOLL_FORCE), breaking COW', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'spawn' },
      { op: 'creat', sizePages: 2 },
      { op: 'pwrite', file: 1, index: 0, value: 100 },
      { op: 'mmap', pid: 2, addr: A, lengthPages: 2, prot: R, shared: false, noreplace: true },
      { op: 'mmap', pid: 2, addr: A + 10, lengthPages: 2, prot: R, shared: false, noreplace: true, file: 1, mode: 'r' },
      { op: 'mmap', pid: 2, addr: A + 20, lengthPages: 1, prot: R, shared: true, noreplace: true, file: 1, mode: 'r' },
      { op: 'read', pid: 2, addr: A + 10 },
      { op: 'proc_mem_write', pid: 1, target: 2, addr: A, value: 7 },
      { op: 'proc_mem_write', pid: 1, target: 2, addr: A + 10, value: 8 },
      { op: 'proc_mem_write', pid: 1, target: 2, addr: A + 20, value: 9 },
      { op: 'read', pid: 2, addr: A },
      { op: 'read', pid: 2, addr: A + 10 },
      { op: 'pread', file: 1, index: 0 },
      { op: 'proc_mem_read', pid: 1, target: 2, addr: A + 5 },
      { op: 'set_dumpable', pid: 2, dumpable: false },
      { op: 'proc_mem_read', pid: 1, target: 2, addr: A },
    ]);
    expect(out.slice(8, 11)).toEqual(['= 0', '= 0', '-EIO']);
    expect(out.slice(11, 15)).toEqual(['= 7', '= 8', '= 100', '-EIO']);
    expect(out[16]).toBe('-EACCES');
  });

  it('process_vm_writev cannot write a read-only or unmapped page (EFAULT, no FOLL_FORCE)', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'spawn' },
      { op: 'mmap', pid: 2, addr: A, lengthPages: 2, prot: R, shared: false, noreplace: true },
      { op: 'mmap', pid: 2, addr: A + 2, lengthPages: 1, prot: RW, shared: false, noreplace: true },
      { op: 'process_vm_writev', pid: 1, target: 2, addr: A, value: 1 },
      { op: 'process_vm_writev', pid: 1, target: 2, addr: A + 5, value: 1 },
      { op: 'process_vm_writev', pid: 1, target: 2, addr: A + 2, value: 12 },
      { op: 'process_vm_readv', pid: 1, target: 2, addr: A + 2 },
      { op: 'process_vm_readv', pid: 1, target: 2, addr: A + 1 },
    ]);
    expect(out.slice(4, 9)).toEqual(['-EFAULT', '-EFAULT', '= 0', '= 12', '= 0']);
  });

  it('MAP_FIXED_NOREPLACE over a mapping is EEXIST; MAP_FIXED replaces it', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: false, noreplace: true },
      { op: 'write', pid: 1, addr: A + 2, value: 2 },
      { op: 'mmap', pid: 1, addr: A + 3, lengthPages: 2, prot: RW, shared: false, noreplace: true },
      { op: 'mmap', pid: 1, addr: A + 2, lengthPages: 1, prot: R, shared: true, fixed: true },
      { op: 'read', pid: 1, addr: A + 2 },
      { op: 'mmap', pid: 1, addr: A + 6, lengthPages: 2, prot: RW, shared: false },
    ]);
    expect(out[3]).toBe('-EEXIST');
    expect(out[5]).toBe('= 0');
  });
});
