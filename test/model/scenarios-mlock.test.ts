/**
 * VM_LOCKED inside the emulation, on both kernels and the differential: reclaim keeps a page
 * a VM_LOCKED VMA maps (folio_check_references / try_to_unmap_one), whoever else maps it; a
 * private writable file mapping is COW-copied as mlock populates it (a write fault), so a later
 * pwrite of the file no longer reaches it; the limit of an unprivileged process; an OOM victim
 * killed while mlock waits does nothing more.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { MLOCK_LIMIT_PAGES } from '../../kernel-api/op.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { Session } from '../../properties/session.ts';

const A = 2 ** 35 - 4;

function run(kernel: 'model' | 'impl' | 'diff', ops: Op[]) {
  const s = new Session({ kernel, config: DEFAULT_CONFIG, strategies: [] });
  return ops.map((op) => {
    const r = s.step(op);
    expect(r.violation, JSON.stringify(op)).toBeNull();
    return r.outcome;
  });
}

describe('mlock inside the emulation', () => {
  for (const kernel of ['model', 'impl', 'diff'] as const) {
    it(`reclaim keeps a page a locked VMA maps, and takes it once unlocked (${kernel})`, () => {
      const out = run(kernel, [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: 0, lengthPages: 4, prot: 3, shared: false },
        { op: 'write', pid: 1, addr: A, value: 7 },
        { op: 'fork', pid: 1 },
        { op: 'mlock', pid: 2, addr: A, lengthPages: 1 }, // the child locks the COW-shared page (a write fault: its own copy)
        { op: 'mlock', pid: 1, addr: A, lengthPages: 1 },
        { op: 'reclaim', pid: 1, addr: A },
        { op: 'reclaim', count: 100 },
        { op: 'read', pid: 1, addr: A },
        { op: 'munlock', pid: 1, addr: A, lengthPages: 4 },
        { op: 'reclaim', pid: 1, addr: A },
      ]);
      expect(out.slice(4, 8)).toEqual([{ kind: 'ok', value: 0 }, { kind: 'ok', value: 0 }, { kind: 'ok', value: 0 }, { kind: 'ok', value: 0 }]);
      expect(out[8]).toEqual({ kind: 'ok', value: 7 });
      expect(out[10]).toEqual({ kind: 'ok', value: 1 });
    });

    it(`mlock COW-copies a private writable file page, so a later pwrite does not reach it (${kernel})`, () => {
      const out = run(kernel, [
        { op: 'spawn' },
        { op: 'creat', sizePages: 2 },
        { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false, file: 1 },
        { op: 'mlock', pid: 1, addr: A + 2, lengthPages: 2 },
        { op: 'pwrite', file: 1, index: 0, value: 9 },
        { op: 'read', pid: 1, addr: A + 2 },
      ]);
      expect(out[5]).toEqual({ kind: 'ok', value: 0 });
    });

    it(`an unprivileged process locks at most RLIMIT_MEMLOCK's default; root any (${kernel})`, () => {
      const big = MLOCK_LIMIT_PAGES + 1;
      const out = run(kernel, [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: 0, lengthPages: big, prot: 1, shared: false },
        { op: 'mlock', pid: 1, addr: A + 4 - big, lengthPages: big },
        { op: 'mlock', pid: 1, addr: A + 4 - big, lengthPages: MLOCK_LIMIT_PAGES },
        { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 1, shared: false, locked: true },
        { op: 'spawn', uid: 0 },
        { op: 'mmap', pid: 2, addr: 0, lengthPages: big, prot: 1, shared: false },
        { op: 'mlock', pid: 2, addr: A + 4 - big, lengthPages: big },
      ]);
      expect(out.slice(2, 5)).toEqual([{ kind: 'errno', errno: 'ENOMEM' }, { kind: 'ok', value: 0 }, { kind: 'errno', errno: 'EAGAIN' }]);
      expect(out[7]).toEqual({ kind: 'ok', value: 0 });
    });
  }
});
