/**
 * Replaying a trace that may hang: on a worker thread, with the caller blocked on a shared
 * flag (Atomics.wait) until the replay ends or its time limit passes, so the call stays
 * synchronous and a hung step cannot hang the caller. Used for `hang` repros.
 */
import { Worker, workerData } from 'node:worker_threads';
import type { Op } from '../kernel-api/op.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import type { InvariantId, StrategyDefinition } from '../kernel-api/strategy.ts';
import { pathToFileURL } from 'node:url';

/** Flag values: the worker is starting, is replaying, finished with no failure, finished with one. */
const STARTING = 0;
const REPLAYING = 1;
const PASSED = 2;
const FAILED = 3;
/** A worker that has not started after this long is an error of the machine, not a hang. */
const START_MS_MAX = 60_000;

export type LimitedReplay = { finished: boolean; failure: InvariantId | null };

type Job = {
  entry: string; flag: SharedArrayBuffer; kernel: 'model' | 'impl' | 'diff'; strategy: string; config: KernelConfig; ops: Op[];
  /** Modules whose `strategies` export adds strategies the registry does not have (test canaries). */
  strategyModules: string[];
};

export function replayWithTimeLimit(r: { kernel: string; strategy: string; config: KernelConfig; ops: Op[] }, timeLimitMs: number, strategyModules: string[] = []): LimitedReplay {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const job: Job = {
    entry: './replay-limited.ts', flag: flag.buffer as SharedArrayBuffer, kernel: r.kernel === 'oracle' ? 'model' : r.kernel as Job['kernel'],
    strategy: r.strategy, config: r.config, ops: r.ops, strategyModules,
  };
  const worker = new Worker(new URL('./worker-boot.mjs', import.meta.url), { workerData: job });
  try {
    if (Atomics.wait(flag, 0, STARTING, START_MS_MAX) === 'timed-out') throw new Error('a replay worker did not start');
    Atomics.wait(flag, 0, REPLAYING, timeLimitMs);
    const state = Atomics.load(flag, 0);
    if (state === REPLAYING) return { finished: false, failure: null };
    return { finished: true, failure: state === FAILED ? 'kernel-assert' : null };
  } finally {
    void worker.terminate();
  }
}

/** The worker's side: replay, then say how it ended. */
async function replayInWorker(job: Job): Promise<void> {
  const flag = new Int32Array(job.flag);
  const { replayOps } = await import('../properties/trace.ts');
  const { strategyByName } = await import('../strategies/index.ts');
  let strategy = job.strategy === 'core' ? undefined : strategyByName(job.strategy);
  for (const module of job.strategyModules) {
    const m = (await import(pathToFileURL(module).href)) as { strategies?: StrategyDefinition[] };
    strategy ??= m.strategies?.find((s) => s.name === job.strategy);
  }
  Atomics.store(flag, 0, REPLAYING);
  Atomics.notify(flag, 0);
  const result = replayOps({ kernel: job.kernel, config: job.config, strategies: strategy === undefined ? [] : [strategy] }, job.ops);
  Atomics.store(flag, 0, result.failure === null ? PASSED : FAILED);
  Atomics.notify(flag, 0);
}

if ((workerData as Job | undefined)?.entry === './replay-limited.ts') await replayInWorker(workerData as Job);
