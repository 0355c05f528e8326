/**
 * Ghost memory on calls that fail half-way: what the kernel did before the failure is
 * done, and the ghost must follow it or cow-isolation reports a false positive.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { FUZZ_CONFIG } from '../../harness/config.ts';
import { Session } from '../../properties/session.ts';

const BASE = FUZZ_CONFIG.mmapBasePages;

describe('ghost memory', () => {
  for (const kernel of ['model', 'impl', 'diff'] as const) {
    it(`follows a DOFORK that fails to split its last VMA (EAGAIN) after setting the ones before it (${kernel})`, () => {
      // Found by a 150 s campaign (seed 12): the ghost took the EAGAIN as nothing done, so
      // the child's copy of [BASE-65, BASE-64) read as unmapped. (DONTFORK covers the VMA
      // the DOFORK splits last: a VMA already as asked is not split, madvise_update_vma.)
      const s = new Session({ kernel, config: FUZZ_CONFIG, strategies: [] });
      const ops: Op[] = [
        { op: 'spawn' },
        { op: 'fail_nth', nth: 6 },
        { op: 'mmap', pid: 1, addr: 0, lengthPages: 64, prot: 0, shared: false }, // [BASE-64, BASE)
        { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false }, // [BASE-66, BASE-64)
        { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 1, shared: false }, // [BASE-67, BASE-66)
        { op: 'madvise', pid: 1, addr: BASE - 67, lengthPages: 6, advice: 'DONTFORK' },
        { op: 'madvise', pid: 1, addr: BASE - 65, lengthPages: 3, advice: 'DOFORK' }, // the split at BASE-62 fails
        { op: 'fork', pid: 1 },
        { op: 'read', pid: 2, addr: BASE - 65 },
      ];
      const outcomes = ops.map((op) => {
        const { outcome, violation } = s.step(op);
        expect(violation, JSON.stringify(op)).toBeNull();
        return outcome;
      });
      expect(outcomes[6]).toEqual({ kind: 'errno', errno: 'EAGAIN' });
      expect(outcomes[8]).toEqual({ kind: 'ok', value: 0 }); // the child got [BASE-65, BASE-64)
      expect(s.ghost.expect(2, BASE - 66)).toEqual({ kind: 'unmapped' }); // still DONTFORK: not copied
    });
  }
});
