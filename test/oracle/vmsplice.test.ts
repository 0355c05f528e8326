/**
 * vmsplice and pipe reads on the running kernel: the model and Linux agree step by step
 * (outcomes, maps, contents, pagemap bits), and the kernel's answers are pinned. The pipe
 * holds a FOLL_GET reference to the *page*: a store through the PTE that still maps it shows
 * in the pipe; after fork, COW reuse is decided by the refcount, so neither side's store
 * reaches the page the pipe holds, and a child that vmspliced the shared page and unmapped
 * it does not see the parent's later store (the CVE-2020-29374 shape). Errors: an unmapped
 * page EFAULT, a pipe not held EBADF, a full pipe EAGAIN, an empty one EAGAIN.
 */
import { describe, expect, it } from 'vitest';
import { agreeOutcomes, oracle } from './helpers.ts';

const RW = 3;
const A = 1000;

describe.skipIf(!oracle().ok)('oracle: vmsplice agrees with Linux', () => {
  it('a store through the same PTE shows in the pipe; after fork neither side reaches the pipe page (CVE-2020-29374 shape)', () => {
    const out = agreeOutcomes([
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: false, noreplace: true },
      { op: 'write', pid: 1, addr: A, value: 7 },
      { op: 'vmsplice', pid: 1, addr: A, lengthPages: 1 },
      { op: 'write', pid: 1, addr: A, value: 8 },
      { op: 'pipe_read', pid: 1, pipe: 1, pages: 1 },
      { op: 'vmsplice', pid: 1, addr: A, lengthPages: 1 },
      { op: 'fork', pid: 1 },
      { op: 'write', pid: 1, addr: A, value: 9 },
      { op: 'write', pid: 2, addr: A, value: 10 },
      { op: 'pipe_read', pid: 2, pipe: 2, pages: 1 },
      { op: 'read', pid: 1, addr: A },
      { op: 'read', pid: 2, addr: A },
      // The child takes the page it shares with its parent, then unmaps it: the parent's
      // store must COW (the pipe's reference counts), or the child would read it.
      { op: 'write', pid: 1, addr: A + 1, value: 5 },
      { op: 'fork', pid: 1 },
      { op: 'vmsplice', pid: 3, addr: A + 1, lengthPages: 1 },
      { op: 'munmap', pid: 3, addr: A + 1, lengthPages: 1 },
      { op: 'write', pid: 1, addr: A + 1, value: 6 },
      { op: 'pipe_read', pid: 3, pipe: 3, pages: 1 },
      { op: 'read', pid: 1, addr: A + 1 },
      { op: 'exit', pid: 3 },
      { op: 'exit', pid: 2 },
    ]);
    expect(out[3]).toBe('= 1 [1]');
    expect(out[5]).toBe('= 1 [8]');
    expect(out[6]).toBe('= 1 [2]');
    expect(out[10]).toBe('= 1 [8]');
    expect(out[11]).toBe('= 9');
    expect(out[12]).toBe('= 10');
    expect(out[15]).toBe('= 1 [3]');
    expect(out[18]).toBe('= 1 [5]');
    expect(out[19]).toBe('= 6');
  });

  it('fork leaves a VM_DONTCOPY page to the parent: its store after fork still reaches the pipe', () => {
    const out = agreeOutcomes([
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 2, prot: RW, shared: false, noreplace: true },
      { op: 'write', pid: 1, addr: A, value: 1 },
      { op: 'write', pid: 1, addr: A + 1, value: 2 },
      { op: 'madvise', pid: 1, addr: A, lengthPages: 1, advice: 'DONTFORK' },
      { op: 'vmsplice', pid: 1, addr: A, lengthPages: 2 },
      { op: 'fork', pid: 1 },
      { op: 'write', pid: 1, addr: A, value: 3 },
      { op: 'write', pid: 1, addr: A + 1, value: 4 },
      { op: 'pipe_read', pid: 2, pipe: 1, pages: 2 },
    ]);
    expect(out[5]).toBe('= 2 [1]');
    expect(out[9]).toBe('= 2 [3, 2]');
  });

  it('pipe room, holes, permissions, the zero page, a file page, and errors', () => {
    const out = agreeOutcomes([
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 20, prot: RW, shared: false, noreplace: true },
      { op: 'vmsplice', pid: 1, addr: A + 30, lengthPages: 1 },
      { op: 'pipe_read', pid: 1, pipe: 9, pages: 1 },
      { op: 'vmsplice', pid: 1, pipe: 9, addr: A, lengthPages: 1 },
      // 17 pages into a new pipe: 16 go in; the 17th is faulted in and put back.
      { op: 'write', pid: 1, addr: A + 3, value: 33 },
      { op: 'vmsplice', pid: 1, addr: A, lengthPages: 17 },
      { op: 'vmsplice', pid: 1, pipe: 1, addr: A, lengthPages: 1 },
      { op: 'pipe_read', pid: 1, pipe: 1, pages: 0 },
      { op: 'pipe_read', pid: 1, pipe: 1, pages: 4 },
      { op: 'vmsplice', pid: 1, pipe: 1, addr: A + 18, lengthPages: 4 },
      { op: 'pipe_read', pid: 1, pipe: 1, pages: 20 },
      { op: 'pipe_read', pid: 1, pipe: 1, pages: 1 },
      // Another process does not hold the pipe.
      { op: 'spawn' },
      { op: 'pipe_read', pid: 2, pipe: 1, pages: 1 },
      // Write-only: a present page is taken by gup_fast, a missing one fails check_vma_flags.
      { op: 'mmap', pid: 1, addr: A + 40, lengthPages: 2, prot: 2, shared: false, noreplace: true },
      { op: 'write', pid: 1, addr: A + 40, value: 4 },
      { op: 'vmsplice', pid: 1, addr: A + 40, lengthPages: 2 },
      { op: 'vmsplice', pid: 1, addr: A + 41, lengthPages: 1 },
      { op: 'mprotect', pid: 1, addr: A + 40, lengthPages: 1, prot: 0 },
      { op: 'vmsplice', pid: 1, addr: A + 40, lengthPages: 1 },
      { op: 'pipe_read', pid: 1, pipe: 2, pages: 2 },
      // A shared file page: a pwrite after the vmsplice shows in the pipe.
      { op: 'creat', sizePages: 2 },
      { op: 'mmap', pid: 1, addr: A + 50, lengthPages: 2, prot: RW, shared: true, file: 1, noreplace: true },
      { op: 'vmsplice', pid: 1, addr: A + 50, lengthPages: 1 },
      { op: 'pwrite', file: 1, index: 0, value: 77 },
      { op: 'pipe_read', pid: 1, pipe: 3, pages: 1 },
      { op: 'vmsplice', pid: 1, pipe: 3, addr: A + 51, lengthPages: 1 },
      { op: 'exit', pid: 1 },
    ]);
    expect(out[2]).toBe('-EFAULT');
    expect(out[3]).toBe('-EBADF');
    expect(out[4]).toBe('-EBADF');
    expect(out[6]).toBe('= 16 [1]');
    expect(out[7]).toBe('-EAGAIN');
    expect(out[8]).toBe('= 0');
    expect(out[9]).toBe('= 4 [0, 0, 0, 33]');
    // Room for 4: pages 18, 19 go in, 20 is a hole: 2.
    expect(out[10]).toBe('= 2');
    expect(out[11]).toBe(`= 14 [${Array(14).fill(0).join(', ')}]`);
    expect(out[12]).toBe('-EAGAIN');
    expect(out[14]).toBe('-EBADF');
    expect(out[17]).toBe('= 1 [2]');
    expect(out[18]).toBe('-EFAULT');
    expect(out[20]).toBe('-EFAULT');
    expect(out[21]).toBe('= 1 [4]');
    expect(out[24]).toBe('= 1 [3]');
    expect(out[26]).toBe('= 1 [77]');
    expect(out[27]).toBe('= 1');
  });
});
