/**
 * What issue 15's locks cost: checked steps/s of sequential runs on this tree against a
 * checkout of the tree before the locks, for the model, impl and diff kernels, and beside
 * them this tree's concurrent runs (the same traces with `swarm.concurrency` 1 and 2 in
 * turn: random switches, PCT).
 *
 *     git worktree add --detach ../base c6fd074 && cp -al node_modules ../base/
 *     npx tsx bench/lockcost.ts --base ../base [--quick] [--kernels model,impl,diff]
 *                               [--strategy NAME] [--pairs N] [--part MS] [--this DIR] [--json FILE]
 *     npx tsx bench/lockcost.ts --ablate [the same options but --base]
 *     (LOCKCOST_V8_FLAGS='--flag …': V8 flags for the workers, for experiments)
 *
 * `--base DIR` compares with another tree (c6fd074 is the last one before the locks; every
 * check and path added since is in the ratio too). `--ablate` compares this tree with
 * itself, its base worker's kernel-api/locks.ts, impl/locks.ts and model/locks.ts replaced
 * (bench/ablate/: a module resolution hook) by ones whose lock table takes, checks and
 * records nothing and whose with-lock helpers just call the function: the locks' own cost,
 * in the same run, on the same traces (a sequential run of the core operations depends on
 * the table only through the lock invariants, which never break on them). `--part MS`: the
 * CPU time of a block (300 ms; 150 with --quick).
 *
 * Each tree runs in a process of its own (its campaign code imported from its folder, so
 * neither tree's JIT state or heap shares anything with the other's; this tree's concurrent
 * runs in a third), all alive throughout and working in turn: `pairs` times the same block
 * of run indexes of one campaign seed on the base and on this tree, base first in every
 * other pair (the load of a shared machine drifts), each pair followed by this tree's
 * concurrent runs of the block. The figure is the median over the pairs of this tree's rate
 * ÷ the base's, rates taken in main-thread CPU time (a loaded machine's wall clock counts
 * the other processes' turns too); pooled CPU and wall ratios are given beside it.
 *
 * Timed: the trace drawn (fc.sample) and its chain run (harness/runner.ts runChain:
 * generation, step, every invariant). Not timed: shrinking a failure (a campaign shrinks a
 * new failure once). The two trees draw the same traces (this tree's arbitrary draws the
 * concurrency mode after everything else; here it is overwritten), so the runs' steps are
 * the same choices; the operations built from them differ only where the kernels' answers do.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { KernelChoice } from '../properties/kernels.ts';
import type { GeneratedTrace } from '../properties/trace.ts';
import { mainThreadCpuMs } from './measure.ts';

type Runner = typeof import('../harness/runner.ts');
type Strategies = typeof import('../strategies/index.ts');
type Config = typeof import('../harness/config.ts');

/** One tree's campaign machinery, imported from its folder. */
type Tree = { runner: Runner; strategies: Strategies; config: Config };

/** What a run's trace is made to be: sequential, or concurrent (`swarm.concurrency` 1 or 2). */
type Mode = 'sequential' | 'concurrent';

/** A block of runs a worker is asked to time. */
type Job = { kernel: KernelChoice; strategy: string | null; seed: number; from: number; runs: number; mode: Mode };

/**
 * Checked steps of some runs, per second of wall time and per second the worker's main
 * thread ran (its CPU time; V8's helper threads, concurrent marking and compiling, are not
 * counted).
 */
export type RunsRate = { stepsPerSec: number; stepsPerCpuSec: number; steps: number; runs: number; elapsedMs: number; cpuMs: number; failures: number };

const KERNELS: readonly KernelChoice[] = ['model', 'impl', 'diff'];


async function loadTree(dir: string): Promise<Tree> {
  const at = (p: string) => pathToFileURL(resolve(dir, p)).href;
  return {
    runner: (await import(at('harness/runner.ts'))) as Runner,
    strategies: (await import(at('strategies/index.ts'))) as Strategies,
    config: (await import(at('harness/config.ts'))) as Config,
  };
}

/** A campaign's plan on one tree: its core operations, or one strategy's group. */
function planOf(t: Tree, job: Job) {
  const s = job.strategy === null ? [] : t.strategies.STRATEGIES.filter((x) => x.name === job.strategy);
  if (job.strategy !== null && s.length === 0) throw new Error(`no strategy ${job.strategy}`);
  return t.runner.makePlan(job.seed, job.kernel, t.config.FUZZ_CONFIG, s, t.config.STEPS_MAX);
}

/** Runs `from` to `from + runs - 1` of the plan, each trace made sequential or concurrent (a base without concurrency ignores the field). */
function runRuns(t: Tree, plan: ReturnType<Runner['makePlan']>, job: Job): RunsRate {
  let steps = 0;
  let failures = 0;
  const cpu0 = mainThreadCpuMs();
  const t0 = performance.now();
  for (let run = job.from; run < job.from + job.runs; run++) {
    const trace = t.runner.traceOf(plan, run) as GeneratedTrace;
    trace.swarm.concurrency = job.mode === 'sequential' ? 0 : run % 2 === 0 ? 1 : 2;
    const r = t.runner.runChain(t.runner.sessionBase(plan, run), trace, run);
    steps += r.steps;
    failures += r.links.length;
  }
  const ms = performance.now() - t0;
  const cpuMs = mainThreadCpuMs() - cpu0;
  return { stepsPerSec: steps / (ms / 1000), stepsPerCpuSec: steps / (cpuMs / 1000), steps, runs: job.runs, elapsedMs: Math.round(ms), cpuMs: Math.round(cpuMs), failures };
}

/** A worker: times the blocks of runs its parent sends, on the tree in `dir`. */
async function worker(dir: string): Promise<void> {
  const tree = await loadTree(dir);
  const plans = new Map<string, ReturnType<Runner['makePlan']>>();
  process.on('message', (job: Job | 'exit') => {
    if (job === 'exit') process.exit(0);
    const key = `${job.kernel}:${job.strategy}:${job.seed}`;
    let plan = plans.get(key);
    if (plan === undefined) plans.set(key, (plan = planOf(tree, job)));
    process.send!(runRuns(tree, plan, job));
  });
  process.send!('ready');
}

/** A worker process on one tree, answering one job at a time. */
class Worker {
  private readonly child: ChildProcess;
  private pending: ((r: RunsRate) => void) | null = null;
  readonly ready: Promise<void>;

  constructor(dir: string, ablated = false) {
    // tsx comes from the tree's own node_modules; the ablated tree's hook is registered after it.
    const ablate = ablated ? ['--import', pathToFileURL(resolve(import.meta.dirname, 'ablate/register.mjs')).href] : [];
    this.child = fork(fileURLToPath(import.meta.url), ['--worker', resolve(dir)], { cwd: resolve(dir), execArgv: ['--import', 'tsx', ...ablate, ...(process.env.LOCKCOST_V8_FLAGS?.split(' ').filter((f) => f !== '') ?? [])] });
    this.ready = new Promise((ok, fail) => {
      this.child.once('error', fail);
      this.child.once('exit', (code) => fail(new Error(`the worker on ${dir} exited (${code})`)));
      this.child.on('message', (m: RunsRate | 'ready') => {
        if (m === 'ready') ok();
        else this.pending?.(m);
      });
    });
  }

  run(job: Job): Promise<RunsRate> {
    return new Promise((ok) => {
      this.pending = ok;
      this.child.send(job);
    });
  }

  stop(): void {
    this.child.removeAllListeners('exit');
    this.child.send('exit');
  }
}

function pooled(rs: readonly RunsRate[]): RunsRate {
  const sum = (f: (r: RunsRate) => number) => rs.reduce((x, r) => x + f(r), 0);
  const steps = sum((r) => r.steps);
  const elapsedMs = sum((r) => r.elapsedMs);
  const cpuMs = sum((r) => r.cpuMs);
  return { stepsPerSec: steps / (elapsedMs / 1000), stepsPerCpuSec: steps / (cpuMs / 1000), steps, runs: sum((r) => r.runs), elapsedMs, cpuMs, failures: sum((r) => r.failures) };
}

/** Per-pair ratios of CPU-time rates (median, quartiles), and the pooled ratios by CPU and by wall time. */
export type Ratios = { median: number; q1: number; q3: number; pooledCpu: number; pooledWall: number };

function ratios(mine: readonly RunsRate[], base: readonly RunsRate[]): Ratios {
  const r = mine.map((m, i) => m.stepsPerCpuSec / base[i]!.stepsPerCpuSec).sort((a, b) => a - b);
  const at = (f: number) => {
    const x = f * (r.length - 1);
    return r[Math.floor(x)]! + (r[Math.ceil(x)]! - r[Math.floor(x)]!) * (x - Math.floor(x));
  };
  const pm = pooled(mine);
  const pb = pooled(base);
  return { median: at(0.5), q1: at(0.25), q3: at(0.75), pooledCpu: pm.stepsPerCpuSec / pb.stepsPerCpuSec, pooledWall: pm.stepsPerSec / pb.stepsPerSec };
}

export type KernelCost = {
  kernel: KernelChoice; runsPerPart: number; base: RunsRate; sequential: RunsRate; concurrent: RunsRate;
  /** This tree's sequential runs ÷ the base's, and its concurrent runs ÷ its sequential ones. */
  sequentialRatio: Ratios; concurrentRatio: Ratios;
};

/**
 * One kernel: after the same warm-up on every worker (`warmMs` of CPU time), `pairs` blocks
 * of runs (as many as the base ran in `partMs` of CPU time at the end of its warm-up), each on the base and on this tree in turn
 * (base first in every other pair), then concurrent on this tree. Three workers, so that
 * each block follows another process's: a block right after its own process's previous one
 * would find its caches warm, and read faster.
 */
async function kernelCost(base: Worker, mine: Worker, mineConcurrent: Worker, kernel: KernelChoice, seed: number, strategy: string | null, partMs: number, pairs: number, warmMs: number): Promise<KernelCost> {
  const job = (from: number, runs: number, mode: Mode): Job => ({ kernel, strategy, seed, from, runs, mode });
  // The same warm-up on each worker (V8 compiles through its tiers for a second or more;
  // a worker warmed less reads slower in the first pairs), run indexes none of the pairs use.
  const warmUp = async (w: Worker, mode: Mode): Promise<RunsRate> => {
    const blocks: RunsRate[] = [];
    for (let n = 1, spent = 0; spent < warmMs; n = Math.min(2 * n, 64)) {
      blocks.push(await w.run(job(1_000_000 + blocks.length * 64, n, mode)));
      spent += blocks.at(-1)!.cpuMs;
    }
    return pooled(blocks.slice(-3));
  };
  const warm = await warmUp(base, 'sequential');
  await warmUp(mine, 'sequential');
  await warmUp(mineConcurrent, 'concurrent');
  const runsPerPart = Math.max(1, Math.round((warm.runs * partMs) / Math.max(1, warm.cpuMs)));
  const bs: RunsRate[] = [];
  const ms: RunsRate[] = [];
  const cs: RunsRate[] = [];
  for (let p = 0; p < pairs; p++) {
    const from = p * runsPerPart;
    if (p % 2 === 0) bs.push(await base.run(job(from, runsPerPart, 'sequential')));
    ms.push(await mine.run(job(from, runsPerPart, 'sequential')));
    if (p % 2 === 1) bs.push(await base.run(job(from, runsPerPart, 'sequential')));
    cs.push(await mineConcurrent.run(job(from, runsPerPart, 'concurrent')));
  }
  return {
    kernel, runsPerPart, base: pooled(bs), sequential: pooled(ms), concurrent: pooled(cs),
    sequentialRatio: ratios(ms, bs), concurrentRatio: ratios(cs, ms),
  };
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toPrecision(3));

function row(name: string, r: RunsRate): string {
  return `  ${name.padEnd(18)} ${fmt(r.stepsPerCpuSec).padStart(7)} checked steps per CPU s, ${fmt(r.stepsPerSec).padStart(7)} per s (${r.steps} steps, ${r.runs} runs, ${r.cpuMs} ms CPU, ${r.failures} failures)`;
}

const pct = (x: number) => `${x >= 1 ? '+' : ''}${((x - 1) * 100).toFixed(1)} %`;
const ratioText = (r: Ratios) => `${r.median.toFixed(3)} (${pct(r.median)}; quartiles ${r.q1.toFixed(3)}–${r.q3.toFixed(3)}; pooled ${r.pooledCpu.toFixed(3)} by CPU, ${r.pooledWall.toFixed(3)} by wall time)`;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i === -1 ? undefined : argv[i + 1];
  };
  const workerDir = flag('--worker');
  if (workerDir !== undefined) return worker(workerDir);
  const thisDir = flag('--this') ?? resolve(import.meta.dirname, '..');
  const ablate = argv.includes('--ablate');
  const baseDir = ablate ? thisDir : flag('--base');
  if (baseDir === undefined || (ablate && flag('--base') !== undefined)) {
    console.error('bench/lockcost.ts needs --base DIR (a checkout of the tree before the locks: git worktree add --detach DIR c6fd074; cp -al node_modules DIR/) or --ablate (this tree against itself with bench/ablate/locks.ts, a lock table that takes and checks nothing), not both');
    process.exit(2);
  }
  const quick = argv.includes('--quick');
  const strategy = flag('--strategy') ?? null;
  const jsonFile = flag('--json');
  const kernels = (flag('--kernels')?.split(',') ?? KERNELS) as KernelChoice[];
  const partMs = Number(flag('--part') ?? (quick ? 150 : 300));
  const pairs = Number(flag('--pairs') ?? (quick ? 8 : 20));
  const seed = Number(flag('--seed') ?? 1);
  const base = new Worker(baseDir, ablate);
  const mine = new Worker(thisDir);
  const mineConcurrent = new Worker(thisDir);
  await Promise.all([base.ready, mine.ready, mineConcurrent.ready]);
  const out: KernelCost[] = [];
  try {
    for (const kernel of kernels) {
      const c = await kernelCost(base, mine, mineConcurrent, kernel, seed, strategy, partMs, pairs, quick ? 1500 : 3000);
      out.push(c);
      console.log(`${kernel} (${strategy ?? 'core'}, seed ${seed}, ${pairs} pairs of ${c.runsPerPart} runs): median of the pairs' ratios`);
      console.log(`  sequential, this ÷ base:        ${ratioText(c.sequentialRatio)}`);
      console.log(`  this, concurrent ÷ sequential:  ${ratioText(c.concurrentRatio)}`);
      console.log(row('base, sequential', c.base));
      console.log(row('this, sequential', c.sequential));
      console.log(row('this, concurrent', c.concurrent));
    }
  } finally {
    base.stop();
    mine.stop();
    mineConcurrent.stop();
  }
  if (jsonFile !== undefined) {
    writeFileSync(jsonFile, JSON.stringify({ seed, strategy: strategy ?? 'core', partMs, pairs, base: ablate ? 'this tree, its lock table ablated (bench/ablate/locks.ts)' : resolve(baseDir), this: resolve(thisDir), kernels: out }, null, 2) + '\n');
    console.log(`wrote ${jsonFile}`);
  }
}

await main();
