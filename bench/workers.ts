/**
 * Throughput of a campaign on worker threads (harness/pool.ts): checked steps per second
 * with 2 workers against 1, the default campaign's core operations on the implementation,
 * each for the same time budget, counted once every worker has started (start-up excluded).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runCampaign } from '../harness/campaign.ts';
import { pooledRate, type StepsRate } from './campaign.ts';
import { runCampaignParallel } from '../harness/pool.ts';
import { FUZZ_CONFIG, STEPS_MAX } from '../harness/config.ts';
import type { KernelChoice } from '../properties/kernels.ts';

/**
 * Added to the time budget for the workers to start and warm up (their first seconds, when
 * V8 compiles the kernel on whatever core is spare), so the steady window is about `timeMs`.
 */
const WARMUP_MS = 5000;
const STARTUP_ALLOWANCE_MS = 3000 + WARMUP_MS;

export type WorkersRate = StepsRate & { workers: number };

export async function workersRate(workers: number, timeMs: number, kernel: KernelChoice = 'impl', seed = 1): Promise<WorkersRate> {
  // The budget counts from the start; the workers' start-up (a second or two) comes on top of the measured window.
  const r = await runCampaignParallel({ seed, timeMs: timeMs + STARTUP_ALLOWANCE_MS, kernel, strategies: [], config: FUZZ_CONFIG, stepsMax: STEPS_MAX, workers, stepTimeoutMs: 60_000, warmupMs: WARMUP_MS });
  return { workers, stepsPerSec: r.steady.steps / (r.steady.ms / 1000), steps: r.steady.steps, runs: r.runs, elapsedMs: r.steady.ms, failures: r.failures.length };
}

/**
 * What the machine allows: the same campaign in one process alone, then in two independent
 * processes at once (no shared heap, no supervisor); their summed rate over the lone one is
 * the most any number of workers can reach here.
 */
async function processesCeiling(timeMs: number): Promise<number> {
  const solo = () => new Promise<number>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--solo', String(timeMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('exit', (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`solo campaign exited ${code}`))));
  });
  const alone = await solo();
  const [a, b] = await Promise.all([solo(), solo()]);
  return (a + b) / alone;
}

export type WorkersBench = { one: WorkersRate; two: WorkersRate; speedup: number; twoProcessesCeiling: number };

/**
 * 1 worker and 2 workers measured in turn, `rounds` times each (a shared machine's load
 * drifts over a minute; alternating spreads the drift over both), their rates summed.
 */
export async function workersBench(timeMs: number, rounds = 2): Promise<WorkersBench> {
  const ones: WorkersRate[] = [];
  const twos: WorkersRate[] = [];
  for (let i = 0; i < rounds; i++) {
    ones.push(await workersRate(1, timeMs));
    twos.push(await workersRate(2, timeMs));
  }
  const one = { ...pooledRate(ones), workers: 1 };
  const two = { ...pooledRate(twos), workers: 2 };
  const twoProcessesCeiling = await processesCeiling(timeMs);
  return { one, two, speedup: two.stepsPerSec / one.stepsPerSec, twoProcessesCeiling };
}

if (process.argv[2] === '--solo') {
  // Warm up as the workers do, then measure.
  runCampaign({ seed: 2, timeMs: WARMUP_MS, kernel: 'impl', strategies: [], config: FUZZ_CONFIG, stepsMax: STEPS_MAX });
  const r = runCampaign({ seed: 1, timeMs: Number(process.argv[3]), kernel: 'impl', strategies: [], config: FUZZ_CONFIG, stepsMax: STEPS_MAX });
  console.log(r.steps / (r.elapsedMs / 1000));
} else if (/bench[/\\]workers\.ts$/.test(process.argv[1] ?? '')) {
  const b = await workersBench(Number(process.argv[2] ?? 8000));
  for (const r of [b.one, b.two]) console.log(`${r.workers} worker(s): ${Math.round(r.stepsPerSec)} checked steps/s (${r.steps} steps, ${r.runs} traces, ${r.elapsedMs} ms)`);
  console.log(`2 workers / 1 worker: ${b.speedup.toFixed(2)}x; two independent processes / one: ${b.twoProcessesCeiling.toFixed(2)}x`);
}
