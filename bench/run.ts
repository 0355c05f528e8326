/**
 * `npm run bench [-- --json FILE] [-- --quick]`: every benchmark of issue 5, each figure
 * measured in this one run, side by side —
 *  - ops/s of the implementation and the model on the same operation mix (bench/kernelops.ts)
 *    over about 1k, 64k and 1M mapped pages; the model sampled with a smaller budget;
 *  - how the implementation's cost per operation grows from 1k to 1M pages;
 *  - checked steps/s of a default campaign for `impl` and `diff`, and of the fc.commands
 *    + fc.modelRun baseline (bench/campaign.ts);
 *  - checked steps/s on 2 worker threads against 1 (bench/workers.ts);
 *  - shrinking of the seed 000 flaws, mapfuzz against fast-check (bench/shrink.ts);
 *  - peak RSS with 1M pages mapped (bench/rss.ts);
 *  - replay time of 1k, 10k and 100k-op fork/exit repros, and show of the 100k one (bench/replay.ts).
 */
import { writeFileSync } from 'node:fs';
import type { Kernel } from '../kernel-api/kernel.ts';
import { DEFAULT_CONFIG } from '../kernel-api/config.ts';
import { ModelKernel } from '../model/kernel.ts';
import { ImplKernel } from '../impl/kernel.ts';
import { OPS, benchFor, populate, type OpName } from './kernelops.ts';
import { measure, type Budget } from './measure.ts';
import { campaignRate, fcCommandsRate, pooledRate, uncheckedRate, type StepsRate } from './campaign.ts';
import { measureRss, rssChild } from './rss.ts';
import { formatShrinkBench, shrinkBench } from './shrink.ts';
import { workersBench } from './workers.ts';
import { formatReplayBench, replayBench } from './replay.ts';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const jsonAt = argv.indexOf('--json');
const jsonFile = jsonAt === -1 ? undefined : argv[jsonAt + 1];

const SIZES: Array<{ label: '1k' | '64k' | '1m'; pages: number }> = [
  { label: '1k', pages: 1024 }, { label: '64k', pages: 65536 }, { label: '1m', pages: 1_000_000 },
];
const IMPL_BUDGET: Budget = quick ? { roundMs: 60, rounds: 3 } : { roundMs: 200, rounds: 5 };
/** The model is sampled: shorter rounds (a slow op still runs at least once a round). */
const MODEL_BUDGET: Budget = quick ? { roundMs: 30, rounds: 1 } : { roundMs: 100, rounds: 3 };
const CAMPAIGN_MS = quick ? 2000 : 8000;
/** Each worker-threads campaign: long enough that start-up noise stays out of the figure. */
const WORKERS_MS = quick ? 4000 : 8000;
/** fast-check's shrinking of one failure is cut off after this long. */
const FC_SHRINK_MS = quick ? 5000 : 30_000;

type Row = { op: OpName; size: string; pages: number; impl: number; model: number; modelOps: number };

function suite(k: Kernel, pages: number, budget: Budget): Map<OpName, { opsPerSec: number; ops: number }> {
  const out = new Map<OpName, { opsPerSec: number; ops: number }>();
  for (const op of OPS) {
    const b = benchFor(k, pages, op);
    out.set(op, measure(b, budget));
    b.done();
  }
  return out;
}

function kernelRows(label: string, pages: number): Row[] {
  const impl = new ImplKernel(DEFAULT_CONFIG);
  populate(impl, pages);
  const implSuite = suite(impl, pages, IMPL_BUDGET);
  const model = new ModelKernel(DEFAULT_CONFIG);
  populate(model, pages);
  const modelSuite = suite(model, pages, MODEL_BUDGET);
  return OPS.map((op) => ({
    op, size: label, pages, impl: implSuite.get(op)!.opsPerSec, model: modelSuite.get(op)!.opsPerSec, modelOps: modelSuite.get(op)!.ops,
  }));
}

/** Rates `a` and `b` measured in turn, `rounds` times each (seeds 1, 2, …), each pooled: steps and time summed. */
function alternated(a: (seed: number) => StepsRate, b: (seed: number) => StepsRate, rounds: number): [StepsRate, StepsRate] {
  const as: StepsRate[] = [];
  const bs: StepsRate[] = [];
  for (let i = 1; i <= rounds; i++) {
    as.push(a(i));
    bs.push(b(i));
  }
  return [pooledRate(as), pooledRate(bs)];
}

const geomean = (xs: number[]) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toPrecision(3));

function warmUp(): void {
  // Both kernels' paths compiled past the JIT's tiers before anything is timed.
  for (let i = 0; i < 3; i++) {
    for (const make of [() => new ImplKernel(DEFAULT_CONFIG), () => new ModelKernel(DEFAULT_CONFIG)]) {
      const k = make();
      populate(k, 8192);
      suite(k, 8192, { roundMs: 20, rounds: 1 });
    }
  }
}

async function main(): Promise<void> {
  const childAt = argv.indexOf('--rss-child');
  if (childAt !== -1) return rssChild(Number(argv[childAt + 1]));
  // Worker threads first, while this process is still small: later the 1M-page kernels
  // leave this isolate a large heap whose collection competes with the workers for cores.
  const workers = await workersBench(WORKERS_MS, quick ? 1 : 2);
  warmUp();
  const rows: Row[] = [];
  for (const { label, pages } of SIZES) {
    const t0 = Date.now();
    rows.push(...kernelRows(label, pages));
    console.error(`  ${label} pages benchmarked in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  console.log('op              size     impl ops/s   model ops/s  (model ops)   impl/model');
  for (const r of rows) {
    console.log(`${r.op.padEnd(15)} ${r.size.padStart(4)} ${fmt(r.impl).padStart(14)} ${fmt(r.model).padStart(13)} ${String(r.modelOps).padStart(12)} ${(fmt(r.impl / r.model) + 'x').padStart(12)}`);
  }
  const speedup: Record<string, number> = {};
  const mixTimeRatio: Record<string, number> = {};
  for (const { label } of SIZES) {
    const rs = rows.filter((r) => r.size === label);
    speedup[label] = geomean(rs.map((r) => r.impl / r.model));
    // One of each op: total model time over total impl time.
    mixTimeRatio[label] = rs.reduce((a, r) => a + 1 / r.model, 0) / rs.reduce((a, r) => a + 1 / r.impl, 0);
  }
  const costAt = (label: string, op: OpName) => 1 / rows.find((r) => r.size === label && r.op === op)!.impl;
  const perOpGrowth: Record<string, number> = {};
  for (const op of OPS) perOpGrowth[op] = costAt('1m', op) / costAt('1k', op);
  // fork copies the whole address space: its cost is judged per mapped page, not per op.
  const growth1kTo1m = geomean(OPS.filter((op) => op !== 'fork').map((op) => perOpGrowth[op]));
  const forkPerPageGrowth = (costAt('1m', 'fork') / 1_000_000) / (costAt('1k', 'fork') / 1024);
  for (const { label } of SIZES) {
    console.log(`speedup at ${label.padEnd(3)} pages: geometric mean ${fmt(speedup[label])}x, one-of-each mix by time ${fmt(mixTimeRatio[label])}x`);
  }
  console.log(`impl cost per op, 1m pages / 1k pages: ${OPS.map((op) => `${op} ${fmt(perOpGrowth[op])}x`).join(', ')}`);
  console.log(`growth 1k -> 1m (geometric mean, fork excluded): ${fmt(growth1kTo1m)}x; fork per mapped page: ${fmt(forkPerPageGrowth)}x`);

  // Warm-up: V8 compiles the kernels, the checks and fast-check in the first seconds.
  campaignRate('impl', 3000, 99);
  campaignRate('diff', 3000, 99);
  fcCommandsRate('impl', 3000, 99);
  // The campaign and its baseline in turn, two halves each: on a shared machine the load
  // drifts within a minute, and whichever ran second read faster.
  const [implRate, fcRate] = alternated(
    (seed) => campaignRate('impl', CAMPAIGN_MS / 2, seed), (seed) => fcCommandsRate('impl', CAMPAIGN_MS / 2, seed), 2);
  const rates: Record<string, StepsRate> = {
    impl: implRate,
    diff: campaignRate('diff', CAMPAIGN_MS),
    fcCommandsBaseline: fcRate,
    implDefaultMix: campaignRate('impl', CAMPAIGN_MS, 1, true),
    diffDefaultMix: campaignRate('diff', CAMPAIGN_MS, 1, true),
  };
  const unchecked = uncheckedRate('impl', CAMPAIGN_MS);
  for (const [name, r] of Object.entries(rates)) {
    console.log(`checked steps/s, ${name.padEnd(18)} ${fmt(r.stepsPerSec).padStart(8)} (${r.steps} steps, ${r.runs} traces, ${r.elapsedMs} ms, ${r.failures} failures)`);
  }
  console.log(`steps/s of the impl campaign's traces with nothing checked (generation, step, ghost memory): ${fmt(unchecked.stepsPerSec)}; ` +
    `the checks take ${(100 * (1 - rates.impl.stepsPerSec / unchecked.stepsPerSec)).toFixed(0)}% of a checked step`);
  console.log(`checked steps/s on worker threads: 1 worker ${fmt(workers.one.stepsPerSec)}, 2 workers ${fmt(workers.two.stepsPerSec)} ` +
    `(${fmt(workers.speedup)}x; two independent processes reach ${fmt(workers.twoProcessesCeiling)}x on this machine)`);
  const shrink = shrinkBench(FC_SHRINK_MS);
  console.log(formatShrinkBench(shrink));
  const rss = await measureRss(1_000_000);
  console.log(`peak RSS with 1m pages mapped (${rss.runner}): ${rss.peakMiB.toFixed(1)} MiB (at start-up ${rss.baselineMiB.toFixed(1)} MiB)`);
  const replay = await replayBench();
  console.log(formatReplayBench(replay));

  if (jsonFile !== undefined) {
    const json = {
      speedup, growth1kTo1m,
      checkedStepsPerSec: { impl: rates.impl.stepsPerSec, diff: rates.diff.stepsPerSec, fcCommandsBaseline: rates.fcCommandsBaseline.stepsPerSec },
      peakRssMiB1m: rss.peakMiB,
      workers: { one: workers.one.stepsPerSec, two: workers.two.stepsPerSec, speedup: workers.speedup, twoProcessesCeiling: workers.twoProcessesCeiling },
      shrink: { mapfuzz: shrink.mapfuzz, fastCheck: shrink.fastCheck },
      replay: { ratio10kTo1k: replay.ratio10kTo1k, ratio100kTo10k: replay.ratio100kTo10k, rows: replay.rows, show: replay.show },
      detail: {
        quick, mixTimeRatio, perOpGrowth1kTo1m: perOpGrowth, forkPerPageGrowth1kTo1m: forkPerPageGrowth, rssStartupMiB: rss.baselineMiB, rssRunner: rss.runner,
        ops: rows, campaigns: rates, implUnchecked: unchecked, budgets: { impl: IMPL_BUDGET, model: MODEL_BUDGET, campaignMs: CAMPAIGN_MS, workersMs: WORKERS_MS, fcShrinkMs: FC_SHRINK_MS },
        workers, shrink: shrink.rows,
      },
    };
    writeFileSync(jsonFile, JSON.stringify(json, null, 2) + '\n');
    console.log(`wrote ${jsonFile}`);
  }
}

await main();
