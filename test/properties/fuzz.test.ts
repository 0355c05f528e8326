/**
 * The fuzz property: random traces of the core operations — several processes, hundreds
 * of steps, arguments biased to VMA edges, shared pages and memory under reclaim — keep
 * every invariant after every step. A failure prints the seed, the shrunk trace as JSON
 * and the invariant that broke. Set MAPFUZZ_SEED to explore other seeds.
 */
import { describe, it } from 'vitest';
import fc from 'fast-check';
import { traceArbitrary } from '../../properties/arbitrary.ts';
import { opKinds } from '../../properties/gen.ts';
import { runGenerated } from '../../properties/trace.ts';
import type { KernelChoice } from '../../properties/kernels.ts';
import { FUZZ_CONFIG, STEPS_MAX } from '../../harness/config.ts';
import { shrinkOps } from '../../harness/shrink.ts';

const SEED = Number(process.env.MAPFUZZ_SEED ?? 20261123);

function property(kernel: KernelChoice, numRuns: number): void {
  const opts = { kernel, config: FUZZ_CONFIG, strategies: [] };
  const arb = traceArbitrary({ kindsCount: opKinds([]).length, stepsMin: 100, stepsMax: STEPS_MAX });
  // fast-check's own shrinking of the choices is skipped: the domain shrinker does better on the concrete trace.
  const result = fc.check(fc.property(arb, (t) => runGenerated(opts, t).failure === null), { seed: SEED, numRuns, endOnFailure: true });
  if (!result.failed) return;
  const failed = runGenerated(opts, result.counterexample![0]);
  const invariant = failed.failure!.invariant;
  const shrunk = shrinkOps({ ...opts, only: new Set([invariant]) }, failed.ops, invariant).ops;
  throw new Error(`invariant ${invariant} broke (seed ${SEED}, kernel ${kernel}): ${failed.failure!.message}\n` +
    `shrunk trace (${shrunk.length} of ${failed.ops.length} steps):\n${JSON.stringify(shrunk)}`);
}

describe('random traces of the core operations keep every invariant', () => {
  it('on the model', () => property('model', 120));
  it('on the implementation', () => property('impl', 120));
  it('with model and implementation compared after every step', () => property('diff', 60));
});
