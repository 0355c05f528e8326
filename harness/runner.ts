/**
 * One run of a campaign: the trace of run index `run` is drawn from its own seed, then run
 * as a *failure chain* — the first invariant it breaks, then (that one excluded) the next,
 * and so on until the trace passes or breaks an invariant that cannot be looked past (a
 * thrown one: slab, kernel-assert, differential, deadlock; and, in `mapfuzz fuzz`, any
 * failure that is not a known flaw of the design under test, except a lockdep warning that
 * changes nothing). A run's chain depends on its seed and the
 * known flaws alone, never on what other runs found, so the failures of a campaign do not
 * depend on how its runs are spread over workers or shards. Like properties/trace.ts
 * runGenerated, with a heartbeat a supervisor watches for hung steps.
 */
import fc from 'fast-check';
import seedrandom from 'seedrandom';
import type { Op } from '../kernel-api/op.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import type { InvariantId, StrategyDefinition } from '../kernel-api/strategy.ts';
import { traceArbitrary } from '../properties/arbitrary.ts';
import { CHOICES_PER_STEP, opKinds, TraceBuilder } from '../properties/gen.ts';
import { causeOf, INVARIANTS } from '../properties/invariants/index.ts';
import { Session, type SessionOptions } from '../properties/session.ts';
import { NO_PENDING, Pct, type Completed, PolicyRandom, RandomSwitches, SegmentQueue, type PendingOps, type SchedPolicy } from '../properties/sched.ts';
import { callerPid, taskOf } from '../kernel-api/op.ts';
import { LOCK_WARNINGS } from '../kernel-api/locks.ts';
import type { GeneratedTrace } from '../properties/trace.ts';
import type { KernelChoice } from '../properties/kernels.ts';

/**
 * Invariants a re-run can look past: the checked ones, and lockdep's warnings (Linux goes
 * on past them, kernel-api/locks.ts); the other raised ones end the chain.
 */
const EXCLUDABLE: ReadonlySet<InvariantId> = new Set([...INVARIANTS.map((i) => i.id), ...LOCK_WARNINGS]);
/**
 * lockdep's warnings that leave the kernel as it would be without them (the lock is taken,
 * the sleep happens): what breaks after one is not its consequence, so a chain always looks
 * past them, new or known. (A leaked lock stays held: what waits for it later is.)
 */
const CHANGES_NOTHING: ReadonlySet<InvariantId> = new Set(['lock-order', 'sleep-in-atomic']);
/** Links a chain has at most: one per invariant a re-run can exclude, and one more. */
const CHAIN_LINKS_MAX = EXCLUDABLE.size + 1;

/**
 * Where a worker is, shared with its supervisor: [beats, run, step, phase]. `beats` grows
 * at every step and every shrink replay; the supervisor calls a step hung when it stands still.
 */
export type Heartbeat = Int32Array;
export const PHASE_IDLE = 0;
export const PHASE_BUILD = 1;
export const PHASE_STEP = 2;
export const PHASE_SHRINK = 3;

export function beat(hb: Heartbeat | undefined, run: number, step: number, phase: number): void {
  if (hb === undefined) return;
  hb[1] = run;
  hb[2] = step;
  hb[3] = phase;
  Atomics.add(hb, 0, 1);
}

/** Everything a run needs besides its index; built once per campaign (or per worker). */
export type RunPlan = {
  seed: number;
  kernel: KernelChoice;
  config: Readonly<KernelConfig>;
  /** One group per strategy (null: the core operations alone); run `r` uses group r mod groups. */
  groups: readonly (StrategyDefinition | null)[];
  arbitraries: readonly fc.Arbitrary<GeneratedTrace>[];
  /**
   * The failures (`strategy/invariant`) a run's chain may look past: a known flaw of a design
   * under test hides nothing behind it. Past any other failure the chain stops, for what
   * breaks next in the same trace is most often its consequence (a leaked reference breaks
   * no-leak at exit), not a failure of its own. Null: look past every checked invariant —
   * the scorecard, which asks everything a design breaks.
   */
  lookPast: ReadonlySet<string> | null;
};

/**
 * The groups a campaign's runs take in turn: the core operations alone when no strategy is
 * given; else each strategy (its calls added to the core operations), and with `withCore`
 * also the core operations alone, first.
 */
export function makePlan(
  seed: number, kernel: KernelChoice, config: Readonly<KernelConfig>, strategies: readonly StrategyDefinition[], stepsMax: number,
  withCore = false, lookPast: readonly string[] | null = null,
): RunPlan {
  const groups: (StrategyDefinition | null)[] = strategies.length === 0 ? [null] : withCore ? [null, ...strategies] : [...strategies];
  const arbitraries = groups.map((s) => traceArbitrary({ kindsCount: opKinds(s === null ? [] : [s]).length, stepsMin: 20, stepsMax }));
  return { seed, kernel, config, groups, arbitraries, lookPast: lookPast === null ? null : new Set(lookPast) };
}

/** The seed of run `run` of a campaign: a seedrandom stream keyed by both. */
export function runSeed(campaignSeed: number, run: number): number {
  return seedrandom(`mapfuzz:${campaignSeed}:${run}`).int32();
}

export function groupOf(plan: RunPlan, run: number): number {
  return run % plan.groups.length;
}

export function strategyName(plan: RunPlan, run: number): string {
  return plan.groups[groupOf(plan, run)]?.name ?? 'core';
}

export function sessionBase(plan: RunPlan, run: number): SessionOptions {
  const s = plan.groups[groupOf(plan, run)];
  return { kernel: plan.kernel, config: plan.config, strategies: s === null ? [] : [s] };
}

export function traceOf(plan: RunPlan, run: number): GeneratedTrace {
  const [trace] = fc.sample(plan.arbitraries[groupOf(plan, run)], { seed: runSeed(plan.seed, run), numRuns: 1 });
  return trace;
}

/** A failure of the chain: its invariant and cause (properties/invariants causeOf), message, step and the trace up to it. */
export type ChainLink = { invariant: InvariantId; cause: string; message: string; step: number; ops: Op[] };
/** A dependency of lockdep's class graph a run recorded: `to` taken while `from` was held. */
export type LockEdge = { readonly from: string; readonly to: string; readonly where: string };
/**
 * `coverage`: the primary kernel's counts (kernel-api/coverage.ts) of the pass that ran
 * furthest, so a trace re-run for the next link of its chain is counted once.
 */
export type ChainResult = { links: ChainLink[]; steps: number; lockEdges: LockEdge[]; coverage: Uint32Array };

/**
 * Run a trace's failure chain (see the header). `steps` counts the distinct steps checked.
 * `lookPast` says which checked invariants the chain goes on past (all when absent); it is
 * given the failure's cause too, so a known flaw is one cause of an invariant, not all of it.
 */
export function runChain(base: SessionOptions, trace: GeneratedTrace, run: number, hb?: Heartbeat, lookPast?: (invariant: InvariantId, cause: string) => boolean): ChainResult {
  const links: ChainLink[] = [];
  const excluded = new Set<InvariantId>();
  let checkFrom = 0;
  let steps = 0;
  const edges = new Map<string, LockEdge>();
  let coverage: Uint32Array | null = null;
  for (let pass = 0; pass < CHAIN_LINKS_MAX; pass++) {
    const r = runPass(base, trace, excluded, checkFrom, run, hb);
    if (coverage === null || r.ops.length > steps) coverage = r.coverage;
    steps = Math.max(steps, r.ops.length);
    for (const e of r.lockEdges) if (!edges.has(`${e.from}\u0000${e.to}`)) edges.set(`${e.from}\u0000${e.to}`, e);
    if (r.failure === null) break;
    const cause = causeOf(r.failure, r.ops.at(-1));
    const { topStep: _top, ...failure } = r.failure;
    links.push({ ...failure, cause, ops: r.ops });
    const inv = r.failure.invariant;
    if (!EXCLUDABLE.has(inv) || (lookPast !== undefined && !lookPast(inv, cause) && !CHANGES_NOTHING.has(inv))) break;
    excluded.add(r.failure.invariant);
    // Every invariant not yet excluded held before this top-level step (all the operations a
    // concurrent step ran are judged together): the next pass checks from its start.
    checkFrom = r.failure.topStep;
  }
  return { links, steps, lockEdges: [...edges.values()], coverage: coverage! };
}

/** The class dependencies the session's primary kernel recorded. */
function edgesOf(session: Session): LockEdge[] {
  return session.primary.locks.dependencies().map((d) => ({ from: d.from, to: d.to, where: d.where }));
}

/**
 * The operations a run's trace performs with nothing checked (as its first pass builds and
 * runs them, raised failures aside), in the order they started, with each one's outcome:
 * what a replay of them must do again.
 */
export function generatedRun(base: SessionOptions, trace: GeneratedTrace, run: number): { ops: Op[]; outcomes: Map<Op, Outcome>; abandoned: boolean; raised: string | null } {
  const outcomes = new Map<Op, Outcome>();
  const r = runPass(base, trace, new Set(), Number.POSITIVE_INFINITY, run, undefined, (c) => outcomes.set(c.op, c.outcome));
  return { ops: r.ops, outcomes, abandoned: r.abandoned === true, raised: r.failure === null ? null : `${r.failure.invariant}: ${r.failure.message}` };
}

/** Where a pass stops short (prefixOps): before stepping the operation of index `at`, which `buildLast` keeps unexecuted. */
type PassStop = { at: number; buildLast: boolean };

type Pass = { ops: Op[]; abandoned?: true; lockEdges: LockEdge[]; coverage: Uint32Array; failure: { invariant: InvariantId; cause?: string; message: string; step: number; topStep: number } | null };

/**
 * One pass: build and step the trace's operations (then the teardown), checking every
 * invariant but the excluded ones from step `checkFrom` on; stops at the first violation.
 */
function runPass(
  base: SessionOptions, trace: GeneratedTrace, excluded: ReadonlySet<InvariantId>, checkFrom: number, run: number, hb?: Heartbeat,
  onRan?: (c: Completed) => void, stop?: PassStop,
): Pass {
  // Nothing is checked before `checkFrom`.
  const session = new Session({ ...base, only: new Set() });
  const builder = new TraceBuilder(session.view, base.config, base.strategies, trace.swarm, () => session.remoteViews());
  const ops: Op[] = [];
  let checking = false;
  const top = (op: Op, pending: PendingOps, policy: SchedPolicy | null): Pass['failure'] | 'abandon' => {
    if (!checking && ops.length >= checkFrom) {
      checking = true;
      session.checkOnly(new Set([...EXCLUDABLE].filter((id) => !excluded.has(id))));
    }
    if (stop !== undefined && ops.length >= stop.at) {
      if (stop.buildLast) ops.push(op);
      return 'abandon';
    }
    beat(hb, run, ops.length, PHASE_STEP);
    const at = ops.length;
    const r = session.stepTop(op, pending, policy);
    for (const o of r.started) ops.push(o);
    if (r.infeasible !== null) return 'abandon';
    if (r.violation !== null) return { ...r.violation, step: at + Math.max(0, r.failedAt), topStep: at };
    for (const c of r.ran) {
      onRan?.(c);
      builder.learn(c.op, c.outcome);
      const o = c.op;
      if (o.op === 'clone') {
        if (c.outcome.kind === 'ok') segments.learnClone(o.pid, c.outcome.value);
      } else if (o.op === 'exit' || o.op === 'oom') {
        segments.forget(o.pid);
      }
    }
    return null;
  };
  const segments: Segments = new Segments(trace, builder, top);
  for (let i = 0; i < trace.steps.length;) {
    if (stop !== undefined && !stop.buildLast && ops.length >= stop.at) return { ops, failure: null, abandoned: true, lockEdges: [], coverage: session.primary.locks.coverage };
    beat(hb, run, ops.length, PHASE_BUILD);
    const r = segments.next(i);
    i = r.nextStep;
    if (r.failure === 'abandon') return { ops, failure: null, abandoned: true, lockEdges: edgesOf(session), coverage: session.primary.locks.coverage };
    if (r.failure !== null) return { ops, failure: r.failure, lockEdges: edgesOf(session), coverage: session.primary.locks.coverage };
  }
  for (const pid of builder.pids()) {
    const failure = top({ op: 'exit', pid }, NO_PENDING, null);
    if (failure === 'abandon') return { ops, failure: null, abandoned: true, lockEdges: edgesOf(session), coverage: session.primary.locks.coverage };
    if (failure !== null) return { ops, failure, lockEdges: edgesOf(session), coverage: session.primary.locks.coverage };
  }
  return { ops, failure: null, lockEdges: edgesOf(session), coverage: session.primary.locks.coverage };
}

/** Operations a concurrent segment may hold: those judged by their effect, not by a reading of the state at one instant. */
const SEGMENT_OPS: ReadonlySet<Op['op']> = new Set([
  'mmap', 'munmap', 'mprotect', 'mremap', 'madvise', 'read', 'write', 'fork', 'exit', 'reclaim', 'oom', 'truncate',
  'proc_mem_read', 'proc_mem_write', 'process_vm_readv', 'process_vm_writev', 'drv', 'close',
]);

type TopStep = (op: Op, pending: PendingOps, policy: SchedPolicy | null) => Pass['failure'] | 'abandon';

/**
 * Turns a trace's steps into top-level steps. In a sequential run every step is one
 * operation. In a concurrent run (swarm.concurrency) a step now and then opens a segment:
 * its operation and the next one or two steps' operations, each on its own task (a second
 * operation of a process runs on another of its threads, cloned first when it has none),
 * interleaved by the run's policy, which records its decisions in the operations.
 */
class Segments {
  /** Threads cloned so far, per pid (the main thread is the pid itself). */
  private readonly threads = new Map<number, number[]>();

  constructor(private readonly trace: GeneratedTrace, private readonly builder: TraceBuilder, private readonly top: TopStep) {}

  next(i: number): { nextStep: number; failure: Pass['failure'] | 'abandon' } {
    const steps = this.trace.steps;
    const choices = steps[i]!;
    const op = this.builder.next(choices);
    i += 1;
    if (op === null) return { nextStep: i, failure: null };
    const mode = this.trace.swarm.concurrency ?? 0;
    const pick = choices[CHOICES_PER_STEP - 1] ?? 0;
    if (mode === 0 || pick % 4 !== 0 || !SEGMENT_OPS.has(op.op)) return { nextStep: i, failure: this.runTop(op) };
    const size = (choices[CHOICES_PER_STEP - 2] ?? 0) % 3 === 0 ? 3 : 2;
    const others: Op[] = [];
    this.builder.beginSegment();
    while (others.length < size - 1 && i < steps.length) {
      const o = this.builder.next(steps[i]!);
      i += 1;
      if (o !== null && SEGMENT_OPS.has(o.op)) others.push(o);
    }
    this.builder.endSegment();
    const segment = [op, ...others];
    const failure = this.assignTasks(segment);
    if (failure !== null) return { nextStep: i, failure };
    const rng = new PolicyRandom(choices[CHOICES_PER_STEP - 3] ?? 0);
    const policy = mode === 1 ? new RandomSwitches(rng) : new Pct(rng, segment.map(taskOf), 1 + rng.int(3));
    const queue = new SegmentQueue(segment.slice(1));
    let f = this.top(op, queue, policy);
    // Operations the policy did not start nested run after, still interleavable with the rest.
    while (f === null && queue.peek() !== undefined) f = this.top(queue.take(), queue, policy);
    return { nextStep: i, failure: f };
  }

  private runTop(op: Op): Pass['failure'] | 'abandon' {
    return this.top(op, NO_PENDING, null);
  }

  /**
   * Give each operation of a segment a task no earlier one has: a second operation of the
   * same process goes to another of its threads (one is cloned first, as a step of its own).
   */
  private assignTasks(segment: Op[]): Pass['failure'] | 'abandon' {
    const used = new Set<number>();
    for (const op of segment) {
      const pid = callerPid(op);
      if (pid === undefined) continue;
      if (!used.has(taskOf(op))) {
        used.add(taskOf(op));
        continue;
      }
      let tid = (this.threads.get(pid) ?? []).find((t) => !used.has(t));
      if (tid === undefined) {
        const f = this.top({ op: 'clone', pid }, NO_PENDING, null);
        if (f !== null) return f;
        const tids = this.threads.get(pid) ?? [];
        tid = tids.find((t) => !used.has(t));
        if (tid === undefined) continue; // the clone failed: the operation waits its turn on its process's task
      }
      used.add(tid);
      op.tid = tid;
      if (op.op === 'drv') op.args = { ...op.args };
    }
    return null;
  }

  /** The threads of a process that exited are gone. */
  forget(pid: number): void {
    this.threads.delete(pid);
  }

  /** A clone's outcome, so later segments can use the thread. */
  learnClone(pid: number, tid: number): void {
    const tids = this.threads.get(pid) ?? [];
    tids.push(tid);
    this.threads.set(pid, tids);
  }
}

/**
 * The operations a trace runs before step `stepIndex`, executed without checks, plus (with
 * `buildLast`) the operation built for that step, not executed: the repro of a step that
 * hung or crashed. Without `buildLast` the step's building is what hung: it is not redone.
 */
export function prefixOps(base: SessionOptions, trace: GeneratedTrace, stepIndex: number, buildLast: boolean): Op[] {
  // The pass the worker ran, with its concurrent segments, cut where the worker's heartbeat
  // stopped (it counts operations as this pass does): a simpler replay of the step choices
  // alone diverges from a concurrent run and could execute the operation that hung.
  return runPass(base, trace, new Set(), Number.POSITIVE_INFINITY, -1, undefined, undefined, { at: stepIndex, buildLast }).ops;
}
