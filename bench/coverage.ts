/**
 * Coverage (kernel-api/coverage.ts) of a default campaign, and what counting it costs.
 *
 *     npx tsx bench/coverage.ts [--runs N] [--seed S] [--pairs P] [--block B] [--aa] [--json FILE]
 *     (--runs 0: the cost alone; --pairs 0: the reach alone)
 *
 * Reach: the campaign `mapfuzz fuzz` runs by default — kernel diff, the core operations and
 * every strategy in turn, FUZZ_CONFIG and STEPS_MAX, the corpus's known flaws looked past,
 * two workers — for a fixed seed and run count (default 2000 runs, seed 1; 0: skip it);
 * printed: every point it never reached, in list order.
 *
 * Cost: checked steps per second of the same block of runs (generation, step, every
 * invariant: harness/runner.ts runChain, shrinking not timed) with counting and with
 * LockTable.cover replaced by an empty function, in turn, `pairs` times in this one process,
 * the "off" block first in every other pair, after two warm-up blocks of each; rates in
 * main-thread CPU time. The figure is the
 * median over the pairs of on ÷ off (1.00: counting costs nothing measurable).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COVERAGE_POINTS, coverageJson, unreachedPoints } from '../kernel-api/coverage.ts';
import { LockTable } from '../kernel-api/locks.ts';
import { FUZZ_CONFIG, STEPS_MAX } from '../harness/config.ts';
import { jsonFilesBelow } from '../harness/merge.ts';
import { runCampaignParallel } from '../harness/pool.ts';
import { failureSignature, loadRepro } from '../harness/repro.ts';
import { makePlan, runChain, sessionBase, traceOf } from '../harness/runner.ts';
import { STRATEGIES } from '../strategies/index.ts';
import { mainThreadCpuMs } from './measure.ts';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => {
  const at = args.indexOf(`--${name}`);
  return at === -1 ? dflt : Number(args[at + 1]);
};
const jsonAt = args.indexOf('--json');
const jsonFile = jsonAt === -1 ? undefined : args[jsonAt + 1];
const runs = flag('runs', 2000);
const seed = flag('seed', 1);
const pairs = flag('pairs', 7);
const block = flag('block', 150);


/** The signatures of the corpus's known flaws (as `mapfuzz fuzz` looks past them: expected repros of a design, not the core's). */
function knownFlaws(): string[] {
  const dir = join(import.meta.dirname, '..', 'corpus');
  return jsonFilesBelow([dir]).map((f) => loadRepro(f))
    .filter((r) => r.expect === 'reproduces' && r.kernel !== 'oracle' && r.strategy !== 'core')
    .map((r) => failureSignature(r));
}

async function reach(): Promise<{ counts: number[]; runs: number; steps: number; elapsedMs: number }> {
  const r = await runCampaignParallel({
    seed, runs, kernel: 'diff', strategies: [...STRATEGIES], withCore: true, config: FUZZ_CONFIG, stepsMax: STEPS_MAX,
    workers: 2, stepTimeoutMs: 10_000, lookPast: knownFlaws(),
  });
  return { counts: r.coverage, runs: r.runs, steps: r.steps, elapsedMs: r.elapsedMs };
}

const counting = LockTable.prototype.cover;
/** --aa: both blocks count (an A/A run: the noise of the ratio on this machine). */
const notCounting = args.includes('--aa') ? counting : function cover(this: LockTable, _point: number): void {};

/** Steps per main-thread CPU second of runs [from, from + block) of the default mix, counting or not. */
function blockRate(on: boolean, from: number): { stepsPerCpuSec: number; steps: number; cpuMs: number } {
  LockTable.prototype.cover = on ? counting : notCounting;
  const plan = makePlan(seed, 'diff', FUZZ_CONFIG, STRATEGIES, STEPS_MAX, true, null);
  let steps = 0;
  const t0 = mainThreadCpuMs();
  for (let run = from; run < from + block; run++) steps += runChain(sessionBase(plan, run), traceOf(plan, run), run).steps;
  const cpuMs = mainThreadCpuMs() - t0;
  LockTable.prototype.cover = counting;
  return { stepsPerCpuSec: steps / (cpuMs / 1000), steps, cpuMs: Math.round(cpuMs) };
}

function cost(): { ratioMedian: number; ratios: number[]; onStepsPerCpuSec: number; offStepsPerCpuSec: number } {
  // Warm-up, not counted: both variants compiled (a switch deoptimises the call sites once).
  for (const on of [true, false, true, false]) blockRate(on, 0);
  const ratios: number[] = [];
  let on = { steps: 0, cpuMs: 0 };
  let off = { steps: 0, cpuMs: 0 };
  for (let p = 0; p < pairs; p++) {
    const from = block * (p + 1);
    const first = p % 2 === 0;
    const a = blockRate(first, from);
    const b = blockRate(!first, from);
    const [rOn, rOff] = first ? [a, b] : [b, a];
    ratios.push(rOn.stepsPerCpuSec / rOff.stepsPerCpuSec);
    on = { steps: on.steps + rOn.steps, cpuMs: on.cpuMs + rOn.cpuMs };
    off = { steps: off.steps + rOff.steps, cpuMs: off.cpuMs + rOff.cpuMs };
    process.stderr.write(`pair ${p + 1}: counting ${Math.round(rOn.stepsPerCpuSec)} steps/s, not ${Math.round(rOff.stepsPerCpuSec)} steps/s\n`);
  }
  const sorted = [...ratios].sort((x, y) => x - y);
  return {
    ratioMedian: sorted[Math.floor(sorted.length / 2)], ratios,
    onStepsPerCpuSec: Math.round(on.steps / (on.cpuMs / 1000)), offStepsPerCpuSec: Math.round(off.steps / (off.cpuMs / 1000)),
  };
}

// --runs 0: the cost alone.
const r = runs === 0 ? null : await reach();
const never = r === null ? [] : unreachedPoints(r.counts);
if (r !== null) {
  console.log(`default campaign, seed ${seed}: ${r.runs} runs, ${r.steps} checked steps in ${(r.elapsedMs / 1000).toFixed(1)} s (2 workers)`);
  console.log(`reached ${COVERAGE_POINTS.length - never.length} of ${COVERAGE_POINTS.length} points; never reached:`);
  for (const p of never) console.log(`  ${p.id.padEnd(44)} ${p.description}`);
}
// --pairs 0: the reach alone.
const c = pairs === 0 ? null : cost();
if (c !== null) {
  console.log(`cost: checked steps/s counting ÷ not counting, median of ${pairs} pairs of ${block} runs: ${c.ratioMedian.toFixed(3)} ` +
    `(${c.ratios.map((x) => x.toFixed(3)).join(', ')}; pooled ${c.onStepsPerCpuSec} vs ${c.offStepsPerCpuSec} steps per CPU second)`);
}
if (jsonFile !== undefined) {
  const campaign = r === null ? {} : { runs: r.runs, steps: r.steps, elapsedMs: r.elapsedMs, never: never.map((p) => p.id), coverage: coverageJson(r.counts) };
  writeFileSync(jsonFile, `${JSON.stringify({ seed, ...campaign, ...(c === null ? {} : { cost: c }) }, null, 2)}\n`);
}
