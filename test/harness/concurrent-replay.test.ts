/**
 * A generated concurrent run and its replay take the same path: the operations start in
 * the same order (the recorded switches say where each nested one began) and each returns
 * the same outcome, on the model and on the implementation. This is what makes a
 * concurrent repro replay to its verdict, byte for byte.
 */
import { describe, expect, it } from 'vitest';
import { generatedRun, makePlan, sessionBase, traceOf } from '../../harness/runner.ts';
import { replayOps } from '../../properties/trace.ts';
import { FUZZ_CONFIG, STEPS_MAX } from '../../harness/config.ts';
import { STRATEGIES } from '../../strategies/index.ts';
import { formatOutcome } from '../../kernel-api/outcome.ts';

const RUNS = 250;

describe('concurrent runs replay as generated', () => {
  for (const kernel of ['model', 'impl', 'diff'] as const) {
    it(`on the ${kernel}: every concurrent run of every strategy, its ops in start order and each outcome`, () => {
      const plan = makePlan(7, kernel, FUZZ_CONFIG, STRATEGIES, STEPS_MAX, true);
      let concurrent = 0;
      let nested = 0;
      let abandoned = 0;
      for (let run = 0; concurrent < RUNS && run < RUNS * 4; run++) {
        const trace = traceOf(plan, run);
        if ((trace.swarm.concurrency ?? 0) === 0) continue;
        concurrent += 1;
        const base = { ...sessionBase(plan, run), only: new Set<never>() };
        const g = generatedRun(base, trace, run);
        nested += g.ops.filter((op) => op.switches !== undefined).length;
        const r = replayOps(base, g.ops);
        // In diff mode the implementation takes the model's interleaving: no divergence (the
        // design's own raised flaws aside, which both kernels raise alike).
        if (kernel === 'diff') expect(g.raised ?? '', `run ${run}`).not.toMatch(/^differential/);
        expect(r.failure === null ? null : `${r.failure.invariant}: ${r.failure.message}`, `run ${run}`).toBe(g.raised);
        const where = `run ${run}`;
        // A run abandoned for an infeasible schedule (never judged) replays to the same point.
        if (g.abandoned) abandoned += 1;
        expect(r.infeasible !== undefined, where).toBe(g.abandoned);
        expect(r.ops.length, where).toBe(g.ops.length);
        r.ops.forEach((op, i) => {
          expect(op, `${where} op ${i}`).toBe(g.ops[i]);
          const want = g.outcomes.get(op);
          if (want !== undefined) expect(formatOutcome(r.outcomes[i]!), `${where} op ${i} ${op.op}`).toBe(formatOutcome(want));
        });
      }
      expect(concurrent).toBe(RUNS);
      // Else nothing here was interleaved and the test proves nothing.
      expect(nested).toBeGreaterThan(10);
      expect(abandoned).toBeLessThan(concurrent / 2);
    }, 120_000);
  }
});

describe('a concurrent repro replays alike in this thread and on the time-limited worker', () => {
  it('every corpus repro with recorded switches: the same failure at the same step, the same outcomes', async () => {
    const { readdirSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { loadRepro, sessionFor } = await import('../../harness/repro.ts');
    const { LimitedReplayer } = await import('../../harness/limited-replayer.ts');
    const dir = join(import.meta.dirname, '..', '..', 'corpus');
    const repros = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.json'))
      .map((f) => loadRepro(join(dir, f))).filter((r) => r.kernel !== 'oracle' && r.ops.some((op) => op.switches !== undefined));
    expect(repros.length).toBeGreaterThan(0);
    const limited = new LimitedReplayer({ kernel: 'model', strategy: 'core', config: FUZZ_CONFIG }, 20_000);
    try {
      for (const r of repros) {
        const here = replayOps(sessionFor(r, r.invariant), r.ops);
        const there = limited.replay(sessionFor(r, r.invariant), r.ops, r);
        expect(there.failure === null ? null : [there.failure.invariant, there.failure.step], r.title).toEqual(here.failure === null ? null : [here.failure.invariant, here.failure.step]);
        expect(there.outcomes.map(formatOutcome), r.title).toEqual(here.outcomes.slice(0, there.outcomes.length).map(formatOutcome));
      }
    } finally {
      limited.close();
    }
  }, 60_000);
});
