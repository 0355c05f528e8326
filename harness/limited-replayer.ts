/**
 * Replays with a step time limit, for traces that may hang (shrinking a `hang` repro, or
 * any repro `mapfuzz shrink` is given): one worker thread kept across replays, the caller
 * blocked on a shared heartbeat (Atomics.wait) that the worker beats after every step. A
 * step that runs past the limit ends the replay as a `hang` at that step; the worker is
 * terminated and a fresh one takes over (after the first hang, one is kept booted ahead).
 * Synchronous, so the shrinker (harness/shrink.ts) takes it as its replay function.
 */
import { MessageChannel, receiveMessageOnPort, Worker, workerData, type MessagePort } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import type { Op } from '../kernel-api/op.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import type { InvariantId, StrategyDefinition } from '../kernel-api/strategy.ts';
import type { Failure, TraceResult } from '../properties/trace.ts';
import type { SessionOptions } from '../properties/session.ts';

/** flag[0]: the worker's state; flag[1]: a beat after every step and at the end. */
const BOOTING = 0;
const READY = 1;
const BUSY = 2;
const DONE = 3;
/** A worker that has not booted after this long is an error of the machine, not a hang. */
const BOOT_MS_MAX = 60_000;

/** What a replay runs on: the kernel, the strategy by name (or 'core') and the configuration. */
export type ReplayBase = { kernel: string; strategy: string; config: KernelConfig };

type Boot = { entry: './limited-replayer.ts'; flag: SharedArrayBuffer; port: MessagePort; strategyModules: string[] };
type Job = { kernel: 'model' | 'impl' | 'diff'; strategy: string; config: KernelConfig; ops: Op[]; only?: InvariantId[]; exclude?: InvariantId[]; outcomes: boolean };
type Reply = { outcome: Outcome } | { failure: Failure | null; infeasible?: string };

type Booted = { worker: Worker; flag: Int32Array; port: MessagePort };

export class LimitedReplayer {
  private active: Booted | null = null;
  private spare: Booted | null = null;
  /** Replays that ran past the limit. */
  hangs = 0;

  /**
   * `base`: the kernel, the strategy by name (or 'core') and the configuration every replay
   * uses; `strategyModules` add strategies the registry lacks (test canaries).
   */
  constructor(
    private readonly base: ReplayBase,
    readonly stepTimeoutMs: number,
    private readonly strategyModules: readonly string[] = [],
  ) {}

  /**
   * Replay `ops` with `opts`' invariants on `on` (the constructor's base by default: a
   * replayer serves repros of any kernel and strategy); stops at the first violation or at
   * a step past the limit. Without `outcomes` the result has none (the failure and its step
   * only): a replay that only needs the verdict sends a beat a step, not a message.
   */
  replay(opts: Pick<SessionOptions, 'only' | 'exclude'>, ops: readonly Op[], on: ReplayBase = this.base, outcomes = true): TraceResult {
    const w = this.take();
    const result: TraceResult = { ops: [], outcomes: [], failure: null };
    Atomics.store(w.flag, 0, BUSY);
    const job: Job = {
      kernel: on.kernel === 'oracle' ? 'model' : on.kernel as Job['kernel'], strategy: on.strategy, config: on.config, ops: [...ops], outcomes, only: opts.only === undefined ? undefined : [...opts.only], exclude: opts.exclude === undefined ? undefined : [...opts.exclude] };
    // The beat read before the job is sent: a job done before this thread waits must not look like a step still running.
    let beat = Atomics.load(w.flag, 1);
    const firstBeat = beat;
    w.port.postMessage(job);
    for (;;) {
      const waited = Atomics.wait(w.flag, 1, beat, this.stepTimeoutMs);
      this.drain(w, ops, result);
      if (Atomics.load(w.flag, 0) === DONE) {
        this.drain(w, ops, result);
        Atomics.store(w.flag, 0, READY);
        this.active = w;
        return result;
      }
      const now = Atomics.load(w.flag, 1);
      if (now !== beat) {
        beat = now;
        continue;
      }
      if (waited === 'timed-out') break;
    }
    // The step in flight ran past the limit: the worker is given up.
    this.hangs += 1;
    void w.worker.terminate();
    this.drain(w, ops, result);
    // Each finished step beat once: the step in flight is the next.
    const step = outcomes ? result.outcomes.length : Atomics.load(w.flag, 1) - firstBeat;
    result.ops.push(ops[step]);
    result.failure = { invariant: 'hang', cause: 'step-timeout', message: `step ${step + 1} (${ops[step].op}) ran longer than the step time limit of ${this.stepTimeoutMs} ms`, step };
    return result;
  }

  /** Every worker terminated. */
  close(): void {
    for (const w of [this.active, this.spare]) if (w !== null) void w.worker.terminate();
    this.active = this.spare = null;
  }

  /** The worker for the next replay, booted. */
  private take(): Booted {
    const w = this.active ?? this.spare ?? this.boot();
    if (w === this.spare) this.spare = null;
    this.active = null;
    if (Atomics.load(w.flag, 0) === BOOTING && Atomics.wait(w.flag, 0, BOOTING, BOOT_MS_MAX) === 'timed-out') {
      throw new Error('a replay worker did not start');
    }
    // Once a replay has hung (more may: a shrink of a hang), a spare boots beside each one, to take over at once.
    if (this.hangs > 0) this.spare ??= this.boot();
    return w;
  }

  private boot(): Booted {
    const flag = new Int32Array(new SharedArrayBuffer(8));
    const channel = new MessageChannel();
    const data: Boot = { entry: './limited-replayer.ts', flag: flag.buffer as SharedArrayBuffer, port: channel.port2, strategyModules: [...this.strategyModules] };
    const worker = new Worker(new URL('./worker-boot.mjs', import.meta.url), { workerData: data, transferList: [channel.port2] });
    worker.unref();
    channel.port1.unref();
    return { worker, flag, port: channel.port1 };
  }

  private drain(w: Booted, ops: readonly Op[], result: TraceResult): void {
    for (let m = receiveMessageOnPort(w.port); m !== undefined; m = receiveMessageOnPort(w.port)) {
      const reply = m.message as Reply;
      if ('outcome' in reply) {
        result.ops.push(ops[result.outcomes.length]);
        result.outcomes.push(reply.outcome);
      } else {
        result.failure = reply.failure;
        if (reply.infeasible !== undefined) (result as TraceResult & { infeasible?: string }).infeasible = reply.infeasible;
      }
    }
  }
}

/** The worker's side: each job replayed step by step, an outcome posted and a beat after each. */
async function serve(boot: Boot): Promise<void> {
  const flag = new Int32Array(boot.flag);
  const { Session } = await import('../properties/session.ts');
  const { NO_PENDING, TraceCursor } = await import('../properties/sched.ts');
  const { STRATEGIES } = await import('../strategies/index.ts');
  const known: StrategyDefinition[] = [...STRATEGIES];
  for (const module of boot.strategyModules) {
    const m = (await import(pathToFileURL(module).href)) as { strategies?: StrategyDefinition[] };
    known.push(...(m.strategies ?? []));
  }
  boot.port.on('message', (job: Job) => {
    const strategy = job.strategy === 'core' ? undefined : known.find((s) => s.name === job.strategy);
    const session = new Session({
      kernel: job.kernel, config: job.config, strategies: strategy === undefined ? [] : [strategy],
      only: job.only === undefined ? undefined : new Set(job.only), exclude: job.exclude === undefined ? undefined : new Set(job.exclude),
    });
    let failure: Failure | null = null;
    let infeasible: string | undefined;
    // As properties/trace.ts replayOps: an operation a recorded switch starts runs nested in the one it preempts.
    const cursor = new TraceCursor(job.ops, 0);
    while (cursor.at < job.ops.length) {
      const at = cursor.at;
      const op = cursor.take();
      const top = session.stepTop(op, op.switches === undefined ? NO_PENDING : cursor, null);
      const outcomes = new Map(top.ran.map((c) => [c.op, c.outcome]));
      for (const o of top.started) {
        if (job.outcomes) boot.port.postMessage({ outcome: outcomes.get(o) ?? { kind: 'errno', errno: 'EIO' } } satisfies Reply);
        Atomics.add(flag, 1, 1);
        Atomics.notify(flag, 1);
      }
      if (top.infeasible !== null) {
        infeasible = top.infeasible;
        break;
      }
      if (top.violation !== null) {
        failure = { ...top.violation, step: at + Math.max(0, top.failedAt) };
        break;
      }
    }
    boot.port.postMessage({ failure, ...(infeasible === undefined ? {} : { infeasible }) } satisfies Reply);
    Atomics.store(flag, 0, DONE);
    Atomics.add(flag, 1, 1);
    Atomics.notify(flag, 1);
  });
  Atomics.store(flag, 0, READY);
  Atomics.notify(flag, 0);
}

if ((workerData as Boot | undefined)?.entry === './limited-replayer.ts') await serve(workerData as Boot);
