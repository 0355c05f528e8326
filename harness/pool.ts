/**
 * A campaign on worker threads. The supervisor hands run indexes out in increasing order to
 * whichever worker is idle and keeps, per (strategy, invariant), the failure of the lowest
 * run index; since a run's result depends on its index alone (harness/runner.ts), the
 * failures and repro files of a run budget do not depend on the number of workers or on
 * timing. A step that hangs past the step time limit, or a worker that crashes, becomes a
 * failure of that run (`hang`, or `kernel-assert` naming the crash) with the operations up
 * to that step as its repro; the worker is replaced and the campaign goes on.
 */
import { Worker } from 'node:worker_threads';
import type { Op } from '../kernel-api/op.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import type { InvariantId } from '../kernel-api/strategy.ts';
import type { KernelChoice } from '../properties/kernels.ts';
import {
  attributeCore, campaignSignature, mergeFailure, shardRuns, signaturesOf, sortedFailures, type CampaignFailure, type CampaignOptions, type CampaignProgress, type CampaignResult, type RunReport,
} from './campaign.ts';
import { CampaignLockGraph } from './lock-graph.ts';
import { makePlan, prefixOps, runSeed, sessionBase, strategyName, traceOf, PHASE_BUILD, PHASE_SHRINK, type RunPlan } from './runner.ts';
import { addCoverage, COVERAGE_POINTS_COUNT, emptyCoverage } from '../kernel-api/coverage.ts';

/** What an abandoned run (a hang, a crash) counted: nothing; its worker is gone. */
const NO_COVERAGE = new Uint32Array(COVERAGE_POINTS_COUNT);

export type WorkerInit = {
  seed: number; kernel: KernelChoice; config: KernelConfig; strategies: string[]; withCore: boolean; stepsMax: number;
  lookPast: readonly string[] | null;
  /** Modules whose `strategies` export adds strategies the registry does not have (test canaries). */
  strategyModules: string[];
  heartbeat: SharedArrayBuffer;
};
export type ToWorker = { type: 'run'; runs: number[] };
export type FromWorker = { type: 'ready' } | { type: 'done'; reports: RunReport[] } | { type: 'shrinking'; run: number; ops: Op[] };

/** Progress of a parallel campaign: also the time since the first worker was ready to step (start-up excluded). */
export type ParallelProgress = CampaignProgress & { steppingMs: number };

export type ParallelOptions = Omit<CampaignOptions, 'onProgress'> & {
  onProgress?: (p: ParallelProgress) => void;
  /**
   * Called as soon as a run's failure is shrunk and becomes the one kept for its signature
   * (a first one, or one of a lower run index than the one kept before). The
   * campaign's final failures (the result's, attributed to the core where they are the
   * core's) are decided at the end; this is for writing what was found as it is found.
   */
  onFailure?: (f: CampaignFailure) => void;
  /**
   * Aborting it stops the campaign at once: the runs in flight are dropped, the workers
   * terminated, and the result (`interrupted`) holds what the finished runs found.
   */
  signal?: AbortSignal;
  workers: number;
  /** A step (or a shrink replay) that runs longer than this is a hang. */
  stepTimeoutMs: number;
  strategyModules?: string[];
  /**
   * The throughput window (`steady`) opens this long after every worker has started, so
   * that it measures the steady state, not the JIT compiling the kernel on a spare core.
   */
  warmupMs?: number;
};

export type ParallelResult = CampaignResult & {
  workers: number; hangs: number; crashes: number;
  /** Stopped through `signal` before its budget was spent. */
  interrupted: boolean;
  /** Steps checked and time taken once every worker had started and warmed up (start-up excluded): the throughput. */
  steady: { steps: number; ms: number };
};

/**
 * Batches handed to a worker ahead: it starts the next as soon as it posts a report, instead
 * of idling for the supervisor's answer (a round trip cost a worker about a tenth of its time).
 */
const QUEUE_BATCHES = 2;
/**
 * A batch is about this much work (a message each way per run kept the supervisor's thread
 * busy a tenth of the time, taken from the workers on a 2-core machine), and at most
 * BATCH_MAX runs; one run when runs are long or the time budget is nearly spent.
 */
const BATCH_MS = 25;
const BATCH_MAX = 8;

/** Replacements of crashed or hung workers at most, so a worker that cannot start does not loop. */
const RESPAWNS_MAX = 64;

type Slot = {
  worker: Worker; heartbeat: Int32Array; ready: boolean; gone: boolean;
  /** Runs handed to the worker and not yet reported, in the order it runs them. */
  queue: number[]; batches: number; beats: number; lastBeatMs: number;
  /** What the worker last said it is shrinking, and for which run. */
  shrinking: { run: number; ops: Op[] } | null; error: string;
};

export function runCampaignParallel(opts: ParallelOptions): Promise<ParallelResult> {
  if (!(opts.workers >= 1)) throw new Error(`workers must be at least 1, not ${opts.workers}`);
  return new Promise((resolve, reject) => new Supervisor(opts, resolve, reject).start());
}

class Supervisor {
  private readonly plan: RunPlan;
  private readonly locks = new CampaignLockGraph();
  private readonly runs: Generator<number>;
  /** Runs a lost worker had queued but not started: handed out again first, lowest first. */
  private readonly returned: number[] = [];
  private readonly failures = new Map<string, CampaignFailure>();
  private readonly slots = new Set<Slot>();
  private readonly result: ParallelResult;
  private readonly t0 = performance.now();
  private exhausted = false;
  private respawns = 0;
  private lastProgressMs = 0;
  /** When the first worker was ready: the progress line's rate is measured from there. */
  private firstReadyMs: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private settled = false;
  private allReady: { steps: number; ms: number } | undefined;
  /** Where the throughput window opened: `warmupMs` after allReady. */
  private warm: { steps: number; ms: number } | undefined;

  constructor(private readonly opts: ParallelOptions, private readonly resolve: (r: ParallelResult) => void, private readonly reject: (e: Error) => void) {
    this.plan = makePlan(opts.seed, opts.kernel, opts.config, opts.strategies, opts.stepsMax, opts.withCore, opts.lookPast ?? null);
    this.runs = shardRuns(opts.runs, opts.shard);
    this.result = { seed: opts.seed, runs: 0, steps: 0, elapsedMs: 0, failures: [], coverage: emptyCoverage(), workers: opts.workers, hangs: 0, crashes: 0, interrupted: false, steady: { steps: 0, ms: 0 } };
  }

  start(): void {
    if (this.opts.signal?.aborted === true) {
      this.settle(true);
      return;
    }
    this.opts.signal?.addEventListener('abort', () => this.settle(true), { once: true });
    for (let i = 0; i < this.opts.workers; i++) this.spawn();
    const pollMs = Math.max(10, Math.min(250, this.opts.stepTimeoutMs / 4));
    this.timer = setInterval(() => this.poll(), pollMs);
  }

  private elapsedMs(): number {
    return performance.now() - this.t0;
  }

  private spawn(): void {
    const heartbeat = new Int32Array(new SharedArrayBuffer(16));
    const init: WorkerInit = {
      seed: this.opts.seed, kernel: this.opts.kernel, config: { ...this.opts.config }, strategies: this.opts.strategies.map((s) => s.name), withCore: this.opts.withCore ?? false,
      stepsMax: this.opts.stepsMax, lookPast: this.opts.lookPast ?? null, strategyModules: this.opts.strategyModules ?? [], heartbeat: heartbeat.buffer as SharedArrayBuffer,
    };
    const worker = new Worker(new URL('./worker-boot.mjs', import.meta.url), { workerData: init });
    const slot: Slot = { worker, heartbeat, ready: false, gone: false, queue: [], batches: 0, beats: 0, lastBeatMs: 0, shrinking: null, error: '' };
    this.slots.add(slot);
    worker.on('message', (m: FromWorker) => this.onMessage(slot, m));
    worker.on('error', (e) => { slot.error = e.message; });
    worker.on('exit', (code) => this.onExit(slot, code));
  }

  private nextRun(): number | undefined {
    if (this.returned.length > 0) return this.returned.shift();
    if (this.exhausted) return undefined;
    if (this.opts.timeMs !== undefined && this.elapsedMs() >= this.opts.timeMs) this.exhausted = true;
    const n = this.exhausted ? undefined : this.runs.next();
    if (n === undefined || n.done === true) {
      this.exhausted = true;
      return undefined;
    }
    return n.value;
  }

  /** Keep QUEUE_BATCHES batches on the worker; finish once nothing is left anywhere. */
  private dispatch(slot: Slot): void {
    while (slot.batches < QUEUE_BATCHES) {
      const runs: number[] = [];
      for (let size = this.batchSize(); runs.length < size;) {
        const run = this.nextRun();
        if (run === undefined) break;
        runs.push(run);
      }
      if (runs.length === 0) break;
      if (slot.queue.length === 0) {
        // An idle worker starts now, and so does its hang clock.
        slot.beats = Atomics.load(slot.heartbeat, 0);
        slot.lastBeatMs = this.elapsedMs();
      }
      slot.queue.push(...runs);
      slot.batches += 1;
      slot.worker.postMessage({ type: 'run', runs } satisfies ToWorker);
    }
    if (slot.queue.length === 0) this.finishIfDone();
  }

  /** Runs in the next batch: about BATCH_MS of work at the rate so far (start-up counted, so early batches are small). */
  private batchSize(): number {
    if (this.result.runs === 0) return 1;
    const runMs = (this.elapsedMs() * this.opts.workers) / this.result.runs;
    const leftMs = this.opts.timeMs === undefined ? Infinity : (this.opts.timeMs - this.elapsedMs()) / 4;
    return Math.max(1, Math.min(BATCH_MAX, Math.floor(Math.min(BATCH_MS, leftMs) / runMs)));
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    if (slot.gone) return; // a report that crossed the worker's termination: its runs were settled
    if (m.type === 'ready') {
      slot.ready = true;
      this.firstReadyMs ??= this.elapsedMs();
      if (this.allReady === undefined && [...this.slots].every((x) => x.ready)) this.allReady = { steps: this.result.steps, ms: this.elapsedMs() };
      this.dispatch(slot);
    } else if (m.type === 'shrinking') {
      slot.shrinking = { run: m.run, ops: m.ops };
    } else {
      for (const report of m.reports) {
        slot.queue.splice(slot.queue.indexOf(report.run), 1);
        this.record(report);
      }
      slot.batches -= 1;
      slot.shrinking = null;
      // The worker went straight on to its next batch: the hang clock starts there.
      slot.beats = Atomics.load(slot.heartbeat, 0);
      slot.lastBeatMs = this.elapsedMs();
      this.dispatch(slot);
    }
  }

  private record(report: RunReport): void {
    this.locks.add(report.run, report.lockEdges, report.lockBothWays);
    this.result.runs += 1;
    this.result.steps += report.steps;
    addCoverage(this.result.coverage, report.coverage);
    if (this.warm === undefined && this.allReady !== undefined && this.elapsedMs() - this.allReady.ms >= (this.opts.warmupMs ?? 0)) {
      this.warm = { steps: this.result.steps, ms: this.elapsedMs() };
    }
    for (const f of report.failures) {
      const kept = { ...f, foundAfterMs: Math.round(this.elapsedMs()) };
      mergeFailure(this.failures, kept);
      if (this.failures.get(campaignSignature(kept)) === kept) this.opts.onFailure?.(kept);
    }
    if (this.opts.onProgress !== undefined && this.elapsedMs() - this.lastProgressMs >= 1000) {
      this.lastProgressMs = this.elapsedMs();
      this.opts.onProgress({
        runs: this.result.runs, steps: this.result.steps, elapsedMs: Math.round(this.elapsedMs()), failures: this.failures.size,
        steppingMs: Math.round(this.elapsedMs() - (this.firstReadyMs ?? 0)),
      });
    }
  }

  private poll(): void {
    for (const slot of this.slots) {
      if (slot.gone || slot.queue.length === 0) continue;
      const beats = Atomics.load(slot.heartbeat, 0);
      if (beats !== slot.beats) {
        slot.beats = beats;
        slot.lastBeatMs = this.elapsedMs();
      } else if (this.elapsedMs() - slot.lastBeatMs >= this.opts.stepTimeoutMs) {
        this.result.hangs += 1;
        this.abandon(slot, 'hang', `a step ran longer than the step time limit of ${this.opts.stepTimeoutMs} ms`);
        void slot.worker.terminate();
      }
    }
  }

  private onExit(slot: Slot, code: number): void {
    if (slot.gone) return;
    if (!slot.ready) {
      this.fail(new Error(`a campaign worker could not start (exit ${code}): ${slot.error || 'no error reported'}`));
      return;
    }
    if (slot.queue.length > 0) {
      this.result.crashes += 1;
      this.abandon(slot, 'kernel-assert', `the worker crashed (exit ${code}): ${slot.error || 'no error reported'}`);
    } else {
      slot.gone = true;
      this.slots.delete(slot);
      this.finishIfDone();
    }
  }

  /**
   * The run in flight on `slot` ends as a failure; the other runs it was given and has not
   * reported (queued behind it, or done earlier in its batch) go back to be handed out
   * again, and the slot is replaced while work remains.
   */
  private abandon(slot: Slot, invariant: InvariantId, message: string): void {
    slot.gone = true;
    this.slots.delete(slot);
    // The worker beats from the start of each run: the heartbeat names the run in flight.
    const run = slot.queue.includes(slot.heartbeat[1]) ? slot.heartbeat[1] : slot.queue[0];
    const step = slot.heartbeat[2];
    const phase = slot.heartbeat[3];
    this.returned.push(...slot.queue.filter((r) => r !== run));
    this.returned.sort((a, b) => a - b);
    slot.queue = [];
    slot.batches = 0;
    const shrinking = slot.shrinking?.run === run ? slot.shrinking.ops : null;
    this.record({ run, steps: step, failures: [this.abortedFailure(run, invariant, message, step, phase, shrinking)], lockEdges: [], coverage: NO_COVERAGE });
    if ((!this.exhausted || this.returned.length > 0) && this.respawns < RESPAWNS_MAX) {
      this.respawns += 1;
      this.spawn();
    } else {
      this.finishIfDone();
    }
  }

  private abortedFailure(run: number, invariant: InvariantId, message: string, step: number, phase: number, shrinking: Op[] | null): CampaignFailure {
    let ops: Op[] = [];
    let where = `at step ${step + 1}`;
    if (phase === PHASE_SHRINK && shrinking !== null) {
      ops = shrinking;
      where = 'while shrinking a failure';
    } else {
      try {
        ops = prefixOps(sessionBase(this.plan, run), traceOf(this.plan, run), step, phase !== PHASE_BUILD);
      } catch {
        ops = [];
      }
      if (phase === PHASE_BUILD) where = `building step ${step + 1}`;
    }
    return {
      invariant, kernel: this.opts.kernel, strategy: strategyName(this.plan, run), message: `${message} (run ${run}, ${where})`,
      seed: runSeed(this.opts.seed, run), run, foundAfterMs: 0, ops, originalLength: ops.length,
    };
  }

  private finishIfDone(): void {
    if (this.settled || !this.exhausted) return;
    if (this.returned.length > 0 && this.slots.size > 0) return;
    for (const slot of this.slots) if (slot.queue.length > 0 || !slot.ready) return;
    this.settle(false);
  }

  /** The end: every worker terminated, the failures kept so far attributed and sorted. Interrupted: the runs in flight are dropped. */
  private settle(interrupted: boolean): void {
    if (this.settled) return;
    this.settled = true;
    this.exhausted = true;
    this.result.interrupted = interrupted;
    clearInterval(this.timer);
    for (const slot of this.slots) {
      slot.gone = true;
      void slot.worker.terminate();
    }
    this.result.elapsedMs = Math.round(this.elapsedMs());
    const from = this.warm ?? this.allReady ?? { steps: 0, ms: 0 };
    this.result.steady = { steps: this.result.steps - from.steps, ms: Math.round(this.elapsedMs() - from.ms) };
    // lockdep's graph across the runs (harness/lock-graph.ts): a cycle two runs close between them.
    if (!interrupted) {
      for (const f of this.locks.failures(this.plan, signaturesOf(this.failures.values()))) {
        const kept = { ...f, foundAfterMs: Math.round(this.elapsedMs()) };
        mergeFailure(this.failures, kept);
        if (this.failures.get(campaignSignature(kept)) === kept) this.opts.onFailure?.(kept);
      }
    }
    this.result.failures = sortedFailures(attributeCore(this.failures.values(), this.opts.config));
    this.resolve(this.result);
  }

  private fail(e: Error): void {
    if (this.settled) return;
    this.settled = true;
    clearInterval(this.timer);
    for (const slot of this.slots) {
      slot.gone = true;
      void slot.worker.terminate();
    }
    this.reject(e);
  }
}
