/**
 * Replays with a step time limit, for traces that may hang (shrinking a `hang` repro, or
 * any repro `mapfuzz shrink` is given): one worker thread kept across replays, the caller
 * blocked on a shared heartbeat (Atomics.wait) that the worker beats after every step. A
 * step that runs past the limit ends the replay as a `hang` at that step; the worker is
 * terminated and a fresh one (booted beforehand, while the last one replayed) takes over.
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

type Boot = {
  entry: './limited-replayer.ts'; flag: SharedArrayBuffer; port: MessagePort;
  kernel: 'model' | 'impl' | 'diff'; strategy: string; config: KernelConfig; strategyModules: string[];
};
type Job = { ops: Op[]; only?: InvariantId[]; exclude?: InvariantId[] };
type Reply = { outcome: Outcome } | { failure: Failure | null };

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
    private readonly base: { kernel: string; strategy: string; config: KernelConfig },
    readonly stepTimeoutMs: number,
    private readonly strategyModules: readonly string[] = [],
  ) {}

  /** Replay `ops` with `opts`' invariants (its kernel and strategies are `base`'s); stops at the first violation or at a step past the limit. */
  replay(opts: Pick<SessionOptions, 'only' | 'exclude'>, ops: readonly Op[]): TraceResult {
    const w = this.take();
    const result: TraceResult = { ops: [], outcomes: [], failure: null };
    Atomics.store(w.flag, 0, BUSY);
    const job: Job = { ops: [...ops], only: opts.only === undefined ? undefined : [...opts.only], exclude: opts.exclude === undefined ? undefined : [...opts.exclude] };
    w.port.postMessage(job);
    let beat = Atomics.load(w.flag, 1);
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
    const step = result.outcomes.length;
    result.ops.push(ops[step]);
    result.failure = { invariant: 'hang', cause: 'step-timeout', message: `step ${step + 1} (${ops[step].op}) ran longer than the step time limit of ${this.stepTimeoutMs} ms`, step };
    return result;
  }

  /** Every worker terminated. */
  close(): void {
    for (const w of [this.active, this.spare]) if (w !== null) void w.worker.terminate();
    this.active = this.spare = null;
  }

  /** The worker for the next replay, booted; a spare starts booting beside it. */
  private take(): Booted {
    const w = this.active ?? this.spare ?? this.boot();
    if (w === this.spare) this.spare = null;
    this.active = null;
    if (Atomics.load(w.flag, 0) === BOOTING && Atomics.wait(w.flag, 0, BOOTING, BOOT_MS_MAX) === 'timed-out') {
      throw new Error('a replay worker did not start');
    }
    this.spare ??= this.boot();
    return w;
  }

  private boot(): Booted {
    const flag = new Int32Array(new SharedArrayBuffer(8));
    const channel = new MessageChannel();
    const data: Boot = {
      entry: './limited-replayer.ts', flag: flag.buffer as SharedArrayBuffer, port: channel.port2,
      kernel: this.base.kernel === 'oracle' ? 'model' : this.base.kernel as Boot['kernel'],
      strategy: this.base.strategy, config: this.base.config, strategyModules: [...this.strategyModules],
    };
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
      }
    }
  }
}

/** The worker's side: each job replayed step by step, an outcome posted and a beat after each. */
async function serve(boot: Boot): Promise<void> {
  const flag = new Int32Array(boot.flag);
  const { Session } = await import('../properties/session.ts');
  const { strategyByName } = await import('../strategies/index.ts');
  let strategy = boot.strategy === 'core' ? undefined : strategyByName(boot.strategy);
  for (const module of boot.strategyModules) {
    const m = (await import(pathToFileURL(module).href)) as { strategies?: StrategyDefinition[] };
    strategy ??= m.strategies?.find((s) => s.name === boot.strategy);
  }
  const strategies = strategy === undefined ? [] : [strategy];
  boot.port.on('message', (job: Job) => {
    const session = new Session({
      kernel: boot.kernel, config: boot.config, strategies,
      only: job.only === undefined ? undefined : new Set(job.only), exclude: job.exclude === undefined ? undefined : new Set(job.exclude),
    });
    let failure: Failure | null = null;
    for (const [i, op] of job.ops.entries()) {
      const { outcome, violation } = session.step(op);
      boot.port.postMessage({ outcome } satisfies Reply);
      Atomics.add(flag, 1, 1);
      Atomics.notify(flag, 1);
      if (violation !== null) {
        failure = { ...violation, step: i };
        break;
      }
    }
    boot.port.postMessage({ failure } satisfies Reply);
    Atomics.store(flag, 0, DONE);
    Atomics.add(flag, 1, 1);
    Atomics.notify(flag, 1);
  });
  Atomics.store(flag, 0, READY);
  Atomics.notify(flag, 0);
}

if ((workerData as Boot | undefined)?.entry === './limited-replayer.ts') await serve(workerData as Boot);
