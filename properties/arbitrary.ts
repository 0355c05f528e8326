/**
 * The fast-check arbitrary of a generated trace: swarm factors (one per operation kind,
 * 0 switching a kind off), a hot or cold address pool, whether the run starts with its
 * strategy's prelude, and the steps' choices. Lengths use size 'max' so traces really are
 * hundreds of steps long, not fast-check's default ten.
 *
 * fast-check draws one integer per step, and a splitmix32 stream expands it into the
 * step's CHOICES_PER_STEP choices: drawing the 24 choices one by one through fast-check
 * cost more than stepping the kernel. The integer 0 expands to all zeros, the plainest
 * operation, so fast-check still shrinks a step toward the plainest one (and removes
 * steps); the domain shrinker (harness/shrink.ts) simplifies the operations themselves.
 */
import fc from 'fast-check';
import type { GeneratedTrace } from './trace.ts';
import { CHOICES_PER_STEP } from './gen.ts';

export type TraceShape = { kindsCount: number; stepsMin: number; stepsMax: number };

export function traceArbitrary(shape: TraceShape): fc.Arbitrary<GeneratedTrace> {
  const step = fc.nat({ max: 0x7fffffff }).map(stepChoices);
  return fc.record({
    steps: fc.array(step, { minLength: shape.stepsMin, maxLength: shape.stepsMax, size: 'max' }),
    swarm: fc.record({
      factors: fc.array(fc.nat({ max: 4 }), { minLength: shape.kindsCount, maxLength: shape.kindsCount }),
      hot: fc.boolean(),
      prelude: fc.boolean(),
      // Half of the runs are sequential; a quarter interleave by random switches, a quarter by PCT.
      concurrency: fc.nat({ max: 3 }).map((n) => (n < 2 ? 0 : n === 2 ? 1 : 2) as 0 | 1 | 2),
    }),
  });
}

/** The choices of a step drawn as `seed`: splitmix32 outputs, 31 bits each; seed 0 gives zeros. */
export function stepChoices(seed: number): number[] {
  const out = new Array<number>(CHOICES_PER_STEP).fill(0);
  if (seed === 0) return out;
  let s = seed | 0;
  for (let i = 0; i < CHOICES_PER_STEP; i++) {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    out[i] = (z ^ (z >>> 16)) >>> 1;
  }
  return out;
}

