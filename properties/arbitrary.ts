/**
 * The fast-check arbitrary of a generated trace: swarm factors (one per operation kind,
 * 0 switching a kind off), a hot or cold address pool, and the steps' choices. Lengths
 * use size 'max' so traces really are hundreds of steps long, not fast-check's default ten.
 */
import fc from 'fast-check';
import type { GeneratedTrace } from './trace.ts';
import { CHOICES_PER_STEP } from './gen.ts';

export type TraceShape = { kindsCount: number; stepsMin: number; stepsMax: number };

export function traceArbitrary(shape: TraceShape): fc.Arbitrary<GeneratedTrace> {
  const step = fc.array(fc.nat({ max: 0x7fffffff }), { minLength: CHOICES_PER_STEP, maxLength: CHOICES_PER_STEP });
  return fc.record({
    steps: fc.array(step, { minLength: shape.stepsMin, maxLength: shape.stepsMax, size: 'max' }),
    swarm: fc.record({
      factors: fc.array(fc.nat({ max: 4 }), { minLength: shape.kindsCount, maxLength: shape.kindsCount }),
      hot: fc.boolean(),
    }),
  });
}
