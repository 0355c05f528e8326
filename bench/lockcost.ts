/**
 * What issue 15's locks cost (`npx tsx bench/lockcost.ts --base DIR [--quick] [--strategy NAME] [--json FILE]`):
 * checked steps/s of sequential runs on this tree against a checkout of the tree before
 * the locks (DIR: `git worktree add --detach DIR main`, then give it a node_modules), for
 * the model, impl and diff kernels; and beside them checked steps/s of this tree's
 * concurrent runs (the same traces with `swarm.concurrency` 1 and 2 in turn: random
 * switches, PCT).
 *
 * Both trees run in this one process, imported from their own folders, on the same run
 * indexes of the same campaign seed, in rounds taken in turn (ABBA: on a shared machine the
 * load drifts, and whichever runs second reads faster). A round is the base tree's runs from
 * the next index until `roundMs` is spent, then this tree's same runs. Timed per run: the
 * trace drawn (fc.sample) and its chain run (harness/runner.ts runChain: generation, step,
 * every invariant); shrinking a failure is not (a campaign shrinks each new failure once).
 * The traces of the two trees are not identical: this tree's generator has the clone
 * operation and draws the concurrency mode, so the same run index is a similar run, not
 * the same one; the ratio is of steps per second, each tree on its own traces.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { KernelChoice } from '../properties/kernels.ts';
import type { GeneratedTrace } from '../properties/trace.ts';

type Runner = typeof import('../harness/runner.ts');
type Strategies = typeof import('../strategies/index.ts');
type Config = typeof import('../harness/config.ts');

/** One tree's campaign machinery, imported from its folder. */
type Tree = { label: string; runner: Runner; strategies: Strategies; config: Config };

/** What a run's trace is made to be: as this tree's generator drew it, sequential, or concurrent. */
type Mode = 'sequential' | 'concurrent';

export type RunsRate = { stepsPerSec: number; steps: number; runs: number; elapsedMs: number; failures: number };

const KERNELS: readonly KernelChoice[] = ['model', 'impl', 'diff'];

async function loadTree(label: string, dir: string): Promise<Tree> {
  const at = (p: string) => pathToFileURL(resolve(dir, p)).href;
  return {
    label,
    runner: (await import(at('harness/runner.ts'))) as Runner,
    strategies: (await import(at('strategies/index.ts'))) as Strategies,
    config: (await import(at('harness/config.ts'))) as Config,
  };
}

/** A campaign's plan on one tree: its core operations, or one strategy's group. */
function planOf(t: Tree, kernel: KernelChoice, seed: number, strategy: string | null) {
  const s = strategy === null ? [] : t.strategies.STRATEGIES.filter((x) => x.name === strategy);
  if (strategy !== null && s.length === 0) throw new Error(`${t.label} has no strategy ${strategy}`);
  return t.runner.makePlan(seed, kernel, t.config.FUZZ_CONFIG, s, t.config.STEPS_MAX);
}

/**
 * Runs `from`, `from + 1`, … of a plan until `runs` are done (when given) or `timeMs` is
 * spent; `mode` null leaves the trace as drawn (the base tree has no concurrency).
 */
function runRuns(t: Tree, plan: ReturnType<Runner['makePlan']>, from: number, mode: Mode | null, limit: { runs?: number; timeMs?: number }): RunsRate {
  let steps = 0;
  let runs = 0;
  let failures = 0;
  let ms = 0;
  while ((limit.runs === undefined || runs < limit.runs) && (limit.timeMs === undefined || ms < limit.timeMs)) {
    const run = from + runs;
    const t0 = performance.now();
    const trace = t.runner.traceOf(plan, run) as GeneratedTrace;
    if (mode === 'sequential') trace.swarm.concurrency = 0;
    if (mode === 'concurrent') trace.swarm.concurrency = run % 2 === 0 ? 1 : 2;
    const r = t.runner.runChain(t.runner.sessionBase(plan, run), trace, run);
    ms += performance.now() - t0;
    steps += r.steps;
    failures += r.links.length;
    runs += 1;
  }
  return { stepsPerSec: steps / (ms / 1000), steps, runs, elapsedMs: Math.round(ms), failures };
}

function pooled(rs: readonly RunsRate[]): RunsRate {
  const sum = (f: (r: RunsRate) => number) => rs.reduce((x, r) => x + f(r), 0);
  const steps = sum((r) => r.steps);
  const elapsedMs = sum((r) => r.elapsedMs);
  return { stepsPerSec: steps / (elapsedMs / 1000), steps, runs: sum((r) => r.runs), elapsedMs, failures: sum((r) => r.failures) };
}

export type KernelCost = { kernel: KernelChoice; base: RunsRate; sequential: RunsRate; concurrent: RunsRate; ratio: number };

/**
 * One kernel: `rounds` rounds of base and this tree's sequential runs, in ABBA order, then
 * this tree's concurrent runs on the same run indexes for the same total time.
 */
function kernelCost(base: Tree, mine: Tree, kernel: KernelChoice, seed: number, strategy: string | null, roundMs: number, rounds: number): KernelCost {
  const basePlan = planOf(base, kernel, seed, strategy);
  const myPlan = planOf(mine, kernel, seed, strategy);
  // Warm-up: both trees' paths compiled before anything counts.
  runRuns(base, basePlan, 1_000_000, null, { timeMs: roundMs });
  runRuns(mine, myPlan, 1_000_000, 'sequential', { timeMs: roundMs });
  runRuns(mine, myPlan, 1_000_000, 'concurrent', { timeMs: roundMs });
  const bs: RunsRate[] = [];
  const ms: RunsRate[] = [];
  let from = 0;
  for (let r = 0; r < rounds; r++) {
    if (r % 4 === 0 || r % 4 === 3) {
      const b = runRuns(base, basePlan, from, null, { timeMs: roundMs });
      bs.push(b);
      ms.push(runRuns(mine, myPlan, from, 'sequential', { runs: b.runs }));
      from += b.runs;
    } else {
      const m = runRuns(mine, myPlan, from, 'sequential', { timeMs: roundMs });
      ms.push(m);
      bs.push(runRuns(base, basePlan, from, null, { runs: m.runs }));
      from += m.runs;
    }
  }
  const concurrent = runRuns(mine, myPlan, 0, 'concurrent', { runs: from });
  const b = pooled(bs);
  const m = pooled(ms);
  return { kernel, base: b, sequential: m, concurrent, ratio: m.stepsPerSec / b.stepsPerSec };
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toPrecision(3));

function row(name: string, r: RunsRate): string {
  return `  ${name.padEnd(22)} ${fmt(r.stepsPerSec).padStart(8)} checked steps/s (${r.steps} steps, ${r.runs} runs, ${r.elapsedMs} ms, ${r.failures} failures)`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i === -1 ? undefined : argv[i + 1];
  };
  const baseDir = flag('--base');
  if (baseDir === undefined) {
    throw new Error('bench/lockcost.ts needs --base DIR: a checkout of the tree before the locks (git worktree add --detach DIR main; cp -al node_modules DIR/)');
  }
  const quick = argv.includes('--quick');
  const strategy = flag('--strategy') ?? null;
  const jsonFile = flag('--json');
  const kernels = (flag('--kernels')?.split(',') ?? KERNELS) as KernelChoice[];
  const roundMs = quick ? 500 : 1500;
  const rounds = quick ? 4 : 8;
  const seed = Number(flag('--seed') ?? 1);
  const base = await loadTree('base', baseDir);
  const mine = await loadTree('this', resolve(import.meta.dirname, '..'));
  const out: KernelCost[] = [];
  for (const kernel of kernels) {
    const c = kernelCost(base, mine, kernel, seed, strategy, roundMs, rounds);
    out.push(c);
    console.log(`${kernel} (${strategy ?? 'core'}, seed ${seed}): sequential this ÷ base ${c.ratio.toFixed(3)} (${((c.ratio - 1) * 100).toFixed(1)} %)`);
    console.log(row('base, sequential', c.base));
    console.log(row('this, sequential', c.sequential));
    console.log(row('this, concurrent', c.concurrent));
  }
  if (jsonFile !== undefined) {
    writeFileSync(jsonFile, JSON.stringify({ seed, strategy: strategy ?? 'core', roundMs, rounds, kernels: out }, null, 2) + '\n');
    console.log(`wrote ${jsonFile}`);
  }
}

await main();
