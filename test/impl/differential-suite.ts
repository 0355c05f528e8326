/**
 * The differential property as a vitest suite: `tracesCount` seeded traces of `stepsMax`
 * steps each, model and impl side by side (differential.ts). Shared by the two test files
 * so that vitest runs the halves on two workers.
 */
import { describe, expect, it } from 'vitest';
import { runTrace } from './differential.ts';
import { TRACE_KINDS } from './tracegen.ts';

export function differentialSuite(name: string, seedPrefix: string, tracesCount: number, stepsMax: number): void {
  describe(name, () => {
    it(`model and impl agree on every outcome and observation over ${tracesCount} traces of ${stepsMax} steps`, () => {
      const ops = new Map<string, number>();
      let steps = 0;
      const bothThrew: string[] = [];
      for (let i = 0; i < tracesCount; i++) {
        const r = runTrace(`${seedPrefix}${i}`, stepsMax);
        if (r.divergence !== undefined) expect.fail(r.divergence);
        if (r.bothThrew !== undefined) bothThrew.push(r.bothThrew);
        steps += r.steps;
        for (const [k, n] of r.ops) ops.set(k, (ops.get(k) ?? 0) + n);
      }
      // Every core operation kind was exercised.
      for (const kind of TRACE_KINDS) expect(ops.get(kind) ?? 0, `op kind ${kind}`).toBeGreaterThan(0);
      expect(steps).toBeGreaterThan(tracesCount * stepsMax * 0.9);
      // A kernel assertion both kernels hit is a model bug to report, not an impl divergence.
      expect(bothThrew, bothThrew.join('\n')).toEqual([]);
    });
  });
}
