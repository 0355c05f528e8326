/**
 * vmsplice inside the emulation, on both kernels and the differential: the pipe's FOLL_GET
 * reference keeps the page through reclaim (try_to_unmap leaves a swap entry, the extra
 * reference keeps the folio in the swap cache), so a pipe read returns its value; and when
 * the last holder exits after the process's own swap entry went, the pipe's put_page leaves
 * a swap-cache page nothing names, which is dropped (no-leak holds, no slot is left). Ghost
 * memory judges the pipe read without a false alarm where stores reach the page: before a
 * fork, and after it in a VM_DONTCOPY range (fork leaves the parent's page exclusive).
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { Session } from '../../properties/session.ts';

const A = 2 ** 35 - 1;

function session(kernel: 'model' | 'impl' | 'diff'): Session {
  return new Session({ kernel, config: DEFAULT_CONFIG, strategies: [] });
}

function run(s: Session, ops: Op[]) {
  return ops.map((op) => {
    const r = s.step(op);
    expect(r.violation, JSON.stringify(op)).toBeNull();
    return r.outcome;
  });
}

describe('vmsplice inside the emulation', () => {
  for (const kernel of ['model', 'impl', 'diff'] as const) {
    it(`the pipe keeps its page through reclaim; exit frees it from the swap cache (${kernel})`, () => {
      const s = session(kernel);
      const out = run(s, [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: false },
        { op: 'write', pid: 1, addr: A, value: 7 },
        { op: 'vmsplice', pid: 1, addr: A, lengthPages: 1 },
        { op: 'vmsplice', pid: 1, addr: A, lengthPages: 1 },
        { op: 'reclaim', pid: 1, addr: A },
      ]);
      expect(out[3]).toEqual({ kind: 'ok', value: 1, values: [1] });
      const k = s.primary.inspect;
      const pfn = [...k.pipes()][0]!.pfns[0]!;
      // Unmapped into the swap cache, kept there by the pipe's reference.
      expect(new Map(k.ptes(1)).get(A)?.kind).toBe('swap');
      expect([...k.swapSlots()].map((x) => x.cachePfn)).toEqual([pfn]);
      expect(k.frame(pfn)?.refcount).toBe(3); // swap cache + two pipe buffers
      expect(run(s, [{ op: 'pipe_read', pid: 1, pipe: 1, pages: 1 }, { op: 'exit', pid: 1 }])[0]).toEqual({ kind: 'ok', value: 1, values: [7] });
      expect([...k.pipes()]).toEqual([]);
      expect([...k.swapSlots()]).toEqual([]);
      expect([...k.frames()].map((f) => f.kind)).toEqual(['zero']);
    });

    it(`ghost memory follows the page: a store before fork and one fork leaves alone show, one after fork does not (${kernel})`, () => {
      const s = session(kernel);
      const out = run(s, [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false },
        { op: 'write', pid: 1, addr: A - 1, value: 1 },
        { op: 'write', pid: 1, addr: A, value: 2 },
        { op: 'madvise', pid: 1, addr: A - 1, lengthPages: 1, advice: 'DONTFORK' },
        { op: 'vmsplice', pid: 1, addr: A - 1, lengthPages: 2 },
        { op: 'write', pid: 1, addr: A, value: 5 },
        { op: 'fork', pid: 1 },
        { op: 'write', pid: 1, addr: A - 1, value: 3 },
        { op: 'write', pid: 1, addr: A, value: 4 },
        { op: 'write', pid: 2, addr: A, value: 6 },
        { op: 'pipe_read', pid: 2, pipe: 1, pages: 2 },
      ]);
      expect(out[11]).toEqual({ kind: 'ok', value: 2, values: [3, 5] });
    });
  }
});
