/**
 * What the outcome predictor (properties/predict.ts, invariant `outcome`) costs: checked
 * steps/s of the default `impl` campaign's first `runs` traces with every invariant, and
 * with every one but `outcome` (the predictor then neither predicts nor syncs). The same
 * traces both ways, in alternating rounds of one run, so that the shared machine's load
 * falls on both alike.
 *
 *   npx tsx bench/predict.ts [runs=400] [rounds=6]
 */
import { makePlan, runChain, sessionBase, traceOf } from '../harness/runner.ts';
import type { InvariantId } from '../kernel-api/strategy.ts';
import { CAMPAIGN_CONFIG, pooledRate, STEPS_MAX, type StepsRate } from './campaign.ts';

const plan = makePlan(1, 'impl', CAMPAIGN_CONFIG, [], STEPS_MAX);

function round(exclude: ReadonlySet<InvariantId>, runs: number): StepsRate {
  let steps = 0;
  const t0 = performance.now();
  for (let run = 0; run < runs; run++) steps += runChain({ ...sessionBase(plan, run), exclude }, traceOf(plan, run), run).steps;
  const elapsedMs = performance.now() - t0;
  return { stepsPerSec: steps / (elapsedMs / 1000), steps, runs, elapsedMs, failures: 0 };
}

const runs = Number(process.argv[2] ?? 400);
const rounds = Number(process.argv[3] ?? 6);
const ALL = new Set<InvariantId>();
const NO_OUTCOME = new Set<InvariantId>(['outcome']);
round(ALL, Math.min(runs, 100)); // warm-up, not counted
const withP: StepsRate[] = [];
const without: StepsRate[] = [];
for (let i = 0; i < rounds; i++) {
  for (const exclude of i % 2 === 0 ? [ALL, NO_OUTCOME] : [NO_OUTCOME, ALL]) {
    const r = round(exclude, runs);
    (exclude === ALL ? withP : without).push(r);
    if (process.env.VERBOSE) console.log(exclude === ALL ? "with" : "without", Math.round(r.stepsPerSec));
  }
}
const w = pooledRate(withP);
const wo = pooledRate(without);
// The load of a shared machine swings between rounds: each round's ratio to its neighbour, and their median.
const ratios = withP.map((r, i) => r.stepsPerSec / without[i]!.stepsPerSec).sort((a, b) => a - b);
const median = ratios.length % 2 === 1 ? ratios[(ratios.length - 1) / 2]! : (ratios[ratios.length / 2 - 1]! + ratios[ratios.length / 2]!) / 2;
console.log(`checked steps/s, impl campaign (${runs} traces × ${rounds} rounds each way): with the predictor ${Math.round(w.stepsPerSec)}, ` +
  `without ${Math.round(wo.stepsPerSec)}: pooled ratio ${(w.stepsPerSec / wo.stepsPerSec).toFixed(3)}, median of the rounds' ratios ${median.toFixed(3)} ` +
  `(${ratios[0]!.toFixed(2)}–${ratios[ratios.length - 1]!.toFixed(2)})`);
