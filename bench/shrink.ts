/**
 * Shrinking, mapfuzz against fast-check: the same failures of the seed 000 design
 * (`proc-mem-mmap`, on the model), each found by fc.check over the campaign's trace
 * arbitrary (properties/arbitrary.ts) with one invariant judged. fast-check shrinks the
 * counterexample with its default shrinking of the choices; mapfuzz shrinks the concrete
 * operations of the same first counterexample (harness/shrink.ts). Reported per failure and
 * summed: final length in operations, time spent shrinking, and whether the result is
 * 1-minimal (no single operation can go).
 */
import fc from 'fast-check';
import type { Op } from '../kernel-api/op.ts';
import type { InvariantId } from '../kernel-api/strategy.ts';
import { traceArbitrary } from '../properties/arbitrary.ts';
import { opKinds } from '../properties/gen.ts';
import { replayOps, runGenerated } from '../properties/trace.ts';
import type { SessionOptions } from '../properties/session.ts';
import { FUZZ_CONFIG, STEPS_MAX } from '../harness/config.ts';
import { shrinkOps } from '../harness/shrink.ts';
import { strategyByName } from '../strategies/index.ts';

export type ShrinkRow = {
  invariant: InvariantId;
  originalLength: number;
  mapfuzz: { length: number; ms: number; replays: number; oneMinimal: boolean };
  fastCheck: { length: number; ms: number; shrinks: number; oneMinimal: boolean; interrupted: boolean };
};

export type ShrinkBench = {
  rows: ShrinkRow[];
  mapfuzz: { length: number; ms: number };
  fastCheck: { length: number; ms: number };
};

/** The seed 000 flaws the corpus records. */
export const SEED_000_FLAWS: readonly InvariantId[] = ['no-leak', 'slab', 'zero-page', 'remote-coherence', 'no-stale-pte', 'refcount-balance', 'cow-isolation'];

function oneMinimal(opts: SessionOptions, ops: readonly Op[], invariant: InvariantId): boolean {
  for (let i = 0; i < ops.length; i++) {
    if (replayOps(opts, [...ops.slice(0, i), ...ops.slice(i + 1)]).failure?.invariant === invariant) return false;
  }
  return true;
}

export function shrinkRow(invariant: InvariantId, seed: number, fcBudgetMs: number): ShrinkRow | null {
  const strategy = strategyByName('proc-mem-mmap')!;
  const opts: SessionOptions = { kernel: 'model', config: FUZZ_CONFIG, strategies: [strategy], only: new Set([invariant]) };
  const arb = traceArbitrary({ kindsCount: opKinds([strategy]).length, stepsMin: 20, stepsMax: STEPS_MAX });
  let firstFailure: Op[] | null = null;
  let firstAtMs = 0;
  const t0 = performance.now();
  const details = fc.check(fc.property(arb, (trace) => {
    const r = runGenerated(opts, trace);
    const failed = r.failure?.invariant === invariant;
    if (failed && firstFailure === null) {
      firstFailure = r.ops;
      firstAtMs = performance.now();
    }
    return !failed;
  }), { seed, numRuns: 5000, interruptAfterTimeLimit: fcBudgetMs, markInterruptAsFailure: false });
  const fcEndMs = performance.now();
  if (!details.failed || details.counterexample === null || firstFailure === null) return null;
  const original: Op[] = firstFailure;
  const fcOps = runGenerated(opts, details.counterexample[0]).ops;
  const m0 = performance.now();
  const shrunk = shrinkOps(opts, original, invariant);
  const mapfuzzMs = performance.now() - m0;
  void t0;
  return {
    invariant, originalLength: original.length,
    mapfuzz: { length: shrunk.ops.length, ms: Math.round(mapfuzzMs), replays: shrunk.stats.replays, oneMinimal: oneMinimal(opts, shrunk.ops, invariant) },
    fastCheck: {
      length: fcOps.length, ms: Math.round(fcEndMs - firstAtMs), shrinks: details.numShrinks, oneMinimal: oneMinimal(opts, fcOps, invariant),
      interrupted: details.interrupted,
    },
  };
}

export function shrinkBench(fcBudgetMs: number, seed = 1): ShrinkBench {
  const rows = SEED_000_FLAWS.map((inv) => shrinkRow(inv, seed, fcBudgetMs)).filter((r): r is ShrinkRow => r !== null);
  const sum = (f: (r: ShrinkRow) => number) => rows.reduce((a, r) => a + f(r), 0);
  return {
    rows,
    mapfuzz: { length: sum((r) => r.mapfuzz.length), ms: sum((r) => r.mapfuzz.ms) },
    fastCheck: { length: sum((r) => r.fastCheck.length), ms: sum((r) => r.fastCheck.ms) },
  };
}

export function formatShrinkBench(b: ShrinkBench): string {
  const lines = ['shrinking seed-000 failures     original   mapfuzz: ops   ms  1-min   fast-check: ops      ms  1-min'];
  for (const r of b.rows) {
    lines.push(`  ${r.invariant.padEnd(28)} ${String(r.originalLength).padStart(8)} ${String(r.mapfuzz.length).padStart(14)} ${String(r.mapfuzz.ms).padStart(4)}  ${r.mapfuzz.oneMinimal ? 'yes' : 'no '}  ` +
      `${String(r.fastCheck.length).padStart(17)} ${String(r.fastCheck.ms).padStart(7)}  ${r.fastCheck.oneMinimal ? 'yes' : 'no '}${r.fastCheck.interrupted ? ' (time limit)' : ''}`);
  }
  lines.push(`  total${' '.repeat(32)}${String(b.mapfuzz.length).padStart(14)} ${String(b.mapfuzz.ms).padStart(4)}       ${String(b.fastCheck.length).padStart(17)} ${String(b.fastCheck.ms).padStart(7)}`);
  return lines.join('\n');
}

if (/bench[/\\]shrink\.ts$/.test(process.argv[1] ?? '')) {
  console.log(formatShrinkBench(shrinkBench(Number(process.argv[2] ?? 20_000))));
}
