/**
 * The edges of user space, on the model and on the kernel: addresses at and past TASK_SIZE,
 * below mmap_min_addr, negative ones (the top of the address space), and ranges running
 * past TASK_SIZE. The oracle puts the model's edges on the kernel's (real_at in oracle.c),
 * so each must agree, outcome and layout, as an ordinary address does.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { formatOutcome } from '../../kernel-api/outcome.ts';
import { checkTrace, oracleConfig } from '../../harness/oracle.ts';
import { oracle, oracleBinary } from './helpers.ts';

const T = oracleConfig().taskSizePages;
const RW = 3;

const CASES: Op[] = [
  { op: 'munmap', pid: 1, addr: T, lengthPages: 1 },
  { op: 'munmap', pid: 1, addr: T - 1, lengthPages: 2 },
  { op: 'munmap', pid: 1, addr: T + 3, lengthPages: 2 },
  { op: 'munmap', pid: 1, addr: -1, lengthPages: 1 },
  { op: 'munmap', pid: 1, addr: 0, lengthPages: 1 },
  { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false, fixed: true },
  { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false, noreplace: true },
  { op: 'mmap', pid: 1, addr: T, lengthPages: 1, prot: RW, shared: false, fixed: true },
  { op: 'mmap', pid: 1, addr: T - 1, lengthPages: 2, prot: RW, shared: false, fixed: true },
  { op: 'mmap', pid: 1, addr: T - 1, lengthPages: 1, prot: RW, shared: false, fixed: true },
  { op: 'mmap', pid: 1, addr: -1, lengthPages: 1, prot: RW, shared: false, fixed: true },
  { op: 'mprotect', pid: 1, addr: T, lengthPages: 1, prot: 1 },
  { op: 'mprotect', pid: 1, addr: -1, lengthPages: 1, prot: 1 },
  { op: 'mprotect', pid: 1, addr: 0, lengthPages: 1, prot: 1 },
  { op: 'madvise', pid: 1, addr: T, lengthPages: 1, advice: 'DONTNEED' },
  { op: 'madvise', pid: 1, addr: -1, lengthPages: 1, advice: 'DONTNEED' },
  { op: 'madvise', pid: 1, addr: 0, lengthPages: 1, advice: 'DONTNEED' },
  { op: 'mremap', pid: 1, addr: T, oldPages: 1, newPages: 1 },
  { op: 'read', pid: 1, addr: T },
  { op: 'read', pid: 1, addr: -1 },
  { op: 'write', pid: 1, addr: 0, value: 1 },
  { op: 'pagemap_read', pid: 1, target: 1, addr: T, count: 2 },
  { op: 'pagemap_read', pid: 1, target: 1, addr: T - 1, count: 2 },
  { op: 'uffd_register_wp', pid: 1, addr: T, lengthPages: 1, async: true },
  { op: 'proc_mem_read', pid: 1, target: 1, addr: T },
  { op: 'process_vm_readv', pid: 1, target: 1, addr: -1 },
];

describe.skipIf(!oracle().ok)('oracle: the edges of user space agree with the kernel', () => {
  for (const op of CASES) {
    it(JSON.stringify(op), () => {
      const v = checkTrace(oracleBinary(), [{ op: 'spawn' }, op]);
      expect(v.result, `model ${formatOutcome(v.model.steps[1]?.outcome ?? { kind: 'ok', value: 0 })}: ${JSON.stringify(v.differences)}`).toBe('agree');
    });
  }

  it('pins the kernel errno of the edges, so that agreeing on the wrong thing is noticed', () => {
    const out = (op: Op) => formatOutcome(checkTrace(oracleBinary(), [{ op: 'spawn' }, op]).kernel.steps[1].outcome);
    expect(out({ op: 'munmap', pid: 1, addr: T, lengthPages: 1 })).toBe('-EINVAL');
    expect(out({ op: 'mmap', pid: 1, addr: T - 1, lengthPages: 2, prot: RW, shared: false, fixed: true })).toBe('-ENOMEM');
    expect(out({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false, fixed: true })).toBe('-EPERM');
  });
});
