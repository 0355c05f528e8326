/**
 * Strategy preludes: each is the design's basic use, run from an empty machine, and leaves
 * a remote view shown; a run whose swarm asks for the prelude starts with exactly its
 * operations, and a run that does not never sees them.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FUZZ_CONFIG } from '../../harness/config.ts';
import { Session } from '../../properties/session.ts';
import { TraceBuilder } from '../../properties/gen.ts';
import { traceArbitrary } from '../../properties/arbitrary.ts';
import { STRATEGIES } from '../../strategies/index.ts';

const withPrelude = STRATEGIES.filter((s) => s.prelude !== undefined);

describe('strategy preludes', () => {
  it('exist for the three remote-view designs', () => {
    expect(withPrelude.map((s) => s.name).sort()).toEqual(['pidfd-mem', 'proc-mem-mmap', 'proc-mem-notify']);
  });

  for (const strategy of withPrelude) {
    it(`${strategy.name}: every operation succeeds on both kernels and a view is shown at the end`, () => {
      // Seed 000's mem_mmap nests the target's mmap_lock in the caller's: its known
      // lock-order flaw (test/strategies/proc-mem-mmap.test.ts), which lockdep warns about and goes on.
      const known = strategy.name === 'proc-mem-mmap' ? new Set(['lock-order'] as const) : undefined;
      const s = new Session({ kernel: 'diff', config: FUZZ_CONFIG, strategies: [strategy], exclude: known });
      for (const op of strategy.prelude!(FUZZ_CONFIG)) {
        const { outcome, violation } = s.step(op);
        expect(violation, JSON.stringify(op)).toBeNull();
        expect(outcome.kind, JSON.stringify(op)).toBe('ok');
      }
      const shown = s.remoteViews().filter((v) => [...s.view.ptes(v.pid)].some(([addr, pte]) => addr === v.addr && pte.kind === 'present'));
      expect(shown.length).toBeGreaterThan(0);
    });

    it(`${strategy.name}: a run starts with the prelude only when its swarm asks for it`, () => {
      const prelude = strategy.prelude!(FUZZ_CONFIG);
      const choices = Array.from({ length: 24 }, (_, i) => 1000 + 7 * i);
      const first = (asked: boolean) => {
        const s = new Session({ kernel: 'impl', config: FUZZ_CONFIG, strategies: [strategy], only: new Set() });
        const b = new TraceBuilder(s.view, FUZZ_CONFIG, [strategy], { factors: [], hot: false, prelude: asked });
        const ops = [];
        for (let i = 0; i < prelude.length; i++) {
          const op = b.next(choices)!;
          ops.push(op);
          b.learn(op, s.step(op).outcome);
        }
        return ops;
      };
      expect(first(true)).toEqual(prelude);
      expect(first(false)).not.toEqual(prelude);
    });
  }

  it('the trace arbitrary asks for the prelude in some runs and not in others', () => {
    const traces = fc.sample(traceArbitrary({ kindsCount: 30, stepsMin: 1, stepsMax: 2 }), { seed: 1, numRuns: 40 });
    const asked = traces.filter((t) => t.swarm.prelude === true).length;
    expect(asked).toBeGreaterThan(5);
    expect(asked).toBeLessThan(35);
  });
});
