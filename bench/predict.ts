/**
 * What the outcome predictor (properties/predict.ts, invariant `outcome`) costs: checked
 * steps/s of the default `impl` campaign's traces with every invariant, and with every one
 * but `outcome` (the predictor then neither predicts nor syncs), measured in alternating
 * rounds over the same traces in one run so that the machine's load falls on both alike.
 *
 *   npx tsx bench/predict.ts [roundMs=4000] [rounds=6]
 */
import { makePlan, runChain, sessionBase, traceOf } from '../harness/runner.ts';
import type { InvariantId } from '../kernel-api/strategy.ts';
import { CAMPAIGN_CONFIG, pooledRate, STEPS_MAX, type StepsRate } from './campaign.ts';

function round(exclude: ReadonlySet<InvariantId>, timeMs: number, first: number): StepsRate & { next: number } {
  const plan = makePlan(1, 'impl', CAMPAIGN_CONFIG, [], STEPS_MAX);
  let steps = 0;
  let run = first;
  const t0 = performance.now();
  while (performance.now() - t0 < timeMs) {
    steps += runChain({ ...sessionBase(plan, run), exclude }, traceOf(plan, run), run).steps;
    run += 1;
  }
  const elapsedMs = performance.now() - t0;
  return { stepsPerSec: steps / (elapsedMs / 1000), steps, runs: run - first, elapsedMs, failures: 0, next: run };
}

const roundMs = Number(process.argv[2] ?? 4000);
const rounds = Number(process.argv[3] ?? 6);
const withP: StepsRate[] = [];
const without: StepsRate[] = [];
// Each pair runs the same traces (from the same run index) both ways, the order alternating.
let first = 0;
const ALL = new Set<InvariantId>();
const NO_OUTCOME = new Set<InvariantId>(['outcome']);
for (let i = 0; i < rounds; i++) {
  const order = i % 2 === 0 ? [ALL, NO_OUTCOME] : [NO_OUTCOME, ALL];
  let next = first;
  for (const exclude of order) {
    const r = round(exclude, roundMs, first);
    (exclude === ALL ? withP : without).push(r);
    next = Math.max(next, r.next);
  }
  first = next;
}
const w = pooledRate(withP);
const wo = pooledRate(without);
console.log(`checked steps/s, impl campaign: with the predictor ${Math.round(w.stepsPerSec)}, without ${Math.round(wo.stepsPerSec)}: ratio ${(w.stepsPerSec / wo.stepsPerSec).toFixed(3)} (${w.steps} and ${wo.steps} steps)`);
