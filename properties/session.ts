/**
 * A session runs one trace: it steps the kernel (or the model and the implementation side
 * by side), keeps ghost memory, and checks every invariant after every step. A kernel
 * assertion becomes a violation of the invariant it names; a differential mismatch of
 * outcome or observation becomes `differential`.
 */
import type { Op } from '../kernel-api/op.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import { formatOutcome, outcomeEquals } from '../kernel-api/outcome.ts';
import type { Kernel } from '../kernel-api/kernel.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import type { RemoteView } from '../kernel-api/driver.ts';
import type { ProcessView, PteView, VmaView } from '../kernel-api/state.ts';
import type { InvariantId, StrategyDefinition } from '../kernel-api/strategy.ts';
import { LOCK_WARNINGS } from '../kernel-api/locks.ts';
import { Ghost } from './ghost.ts';
import { Predictor } from './predict.ts';
import { causeOf, checkAll, selectInvariants, takeCensus, type CheckContext, type Invariant, type Violation } from './invariants/index.ts';
import type { Census } from './invariants/census.ts';
import { InspectSnapshot } from './invariants/snapshot.ts';
import { liveObservationsEqual, observationsEqual, observeLive } from './observe.ts';
import { createKernel, type KernelChoice } from './kernels.ts';
import { InfeasibleSchedule, NestedScheduler, NO_PENDING, TraceCursor, type UntakenPoints, type Completed, type PendingOps, type Preemption, type SchedPolicy } from './sched.ts';

/** What a top-level step did: every operation it ran, how far it got, what broke. */
export type TopResult = {
  /** In the order they completed. */
  readonly ran: readonly Completed[];
  /** In the order they started: the trace order. */
  readonly started: readonly Op[];
  readonly violation: Violation | null;
  /** Index in `started` of the operation the violation is charged to, else -1. */
  readonly failedAt: number;
  /** Set when the schedule cannot be emulated (properties/sched.ts): nothing was judged. */
  readonly infeasible: string | null;
  /** Where each operation started nested began (absent: it ran at top level). */
  readonly preemptions: ReadonlyMap<Op, Preemption>;
};

export type SessionOptions = {
  kernel: KernelChoice;
  config: Readonly<KernelConfig>;
  strategies: readonly StrategyDefinition[];
  /** Check only these invariants (all when absent). */
  only?: ReadonlySet<InvariantId>;
  /**
   * Do not check these: a campaign masks the invariants it has already seen break, so that
   * later traces look past a known flaw to the next one.
   */
  exclude?: ReadonlySet<InvariantId>;
};

/** The preemptions of a step that ran alone: none. */
const NO_PREEMPTIONS: ReadonlyMap<Op, Preemption> = new Map();

export class Session {
  /** The kernel that generation, ghost memory and the invariants look at. */
  readonly primary: Kernel;
  /** The implementation compared against the model, in diff mode. */
  readonly shadow: Kernel | null;
  readonly ghost = new Ghost();
  /** The outcome predictor (properties/predict.ts): kept only while `outcome` is checked. */
  readonly predictor: Predictor;
  /**
   * The primary kernel as it stands between steps, for the checks of a step and for
   * generating the next operation: each answer is fetched once and dropped when it moves.
   */
  readonly view: InspectSnapshot;
  /** The invariants checked after each step. */
  private invariants: readonly Invariant[] = [];
  /** Whether `outcome` is among them: the predictor predicts and follows the steps only then. */
  private predicting = false;
  /** The strategies' remote views while the kernel stands (remoteViews()); dropped with `view`. */
  private keptRemoteViews: readonly RemoteView[] | null = null;
  /** The points of attempts not started, per operation, in each kernel (properties/sched.ts UntakenPoints). */
  private readonly untaken: UntakenPoints = new Map();
  /** `untaken` as the step now being judged began: the implementation replays it from there. */
  private untakenBefore: UntakenPoints = new Map();
  /** Steps taken so far: the index of the next one. */
  private steps = 0;
  /** The pids running after the last step compared (both kernels agreed on them): observeLive's `runningBefore`. */
  private comparedRunning: number[] = [];

  constructor(readonly opts: SessionOptions) {
    this.primary = createKernel(opts.kernel === 'impl' ? 'impl' : 'model', opts.config, opts.strategies);
    this.shadow = opts.kernel === 'diff' ? createKernel('impl', opts.config, opts.strategies) : null;
    this.view = new InspectSnapshot(this.primary.inspect);
    this.predictor = new Predictor(opts.config);
    this.select(opts.only);
  }

  /** From the next step on, check only these invariants (less the excluded ones). */
  checkOnly(only: ReadonlySet<InvariantId>): void {
    this.select(only);
  }

  /** The invariants checked between steps, and the lockdep warnings both lock tables raise. */
  private select(only: ReadonlySet<InvariantId> | undefined): void {
    this.invariants = selectInvariants(only, this.opts.exclude);
    this.predicting = this.invariants.some((i) => i.id === 'outcome');
    const warnings = new Set(LOCK_WARNINGS.filter((id) => (only === undefined || only.has(id)) && this.opts.exclude?.has(id) !== true));
    this.primary.locks.checks = warnings;
    if (this.shadow !== null) this.shadow.locks.checks = warnings;
  }

  /** The remote views of every loaded strategy, as the kernel stands (kept until it moves). */
  remoteViews(): readonly RemoteView[] {
    if (this.keptRemoteViews !== null) return this.keptRemoteViews;
    const views: RemoteView[] = [];
    for (const s of this.opts.strategies) {
      const instance = this.primary.strategy(s.name);
      if (instance !== undefined) views.push(...instance.remoteViews());
    }
    return (this.keptRemoteViews = views);
  }

  /** Run one step; its outcome and the first violation (null when every invariant holds). */
  step(op: Op): { outcome: Outcome; violation: Violation | null } {
    const r = this.stepTop(op, NO_PENDING, null);
    const mine = r.ran.find((c) => c.op === op);
    return { outcome: mine?.outcome ?? { kind: 'errno', errno: 'EIO' }, violation: r.violation };
  }

  /**
   * Run `op` at top level, with the operations of `pending` that the recorded switches
   * (policy null) or `policy` start nested at its scheduling points (properties/sched.ts).
   * The invariants are checked once the kernel is quiescent again, for each operation in
   * the order it completed (its linearisation: every operation here takes effect at or
   * after its last scheduling point); in diff mode the implementation runs the same
   * operations with the switches the model recorded.
   */
  stepTop(op: Op, pending: PendingOps, policy: SchedPolicy | null): TopResult {
    const base = this.steps;
    // Nothing pending: the operation runs alone, as the scheduler would run it (no point
    // could start anything), without one.
    const sched = pending.peek() === undefined ? null : new NestedScheduler(this.primary, pending, policy, this.opts.strategies, this.untaken);
    if (sched !== null && this.shadow !== null) this.untakenBefore = new Map(this.untaken);
    const started: Op[] = sched === null ? [op] : sched.started;
    const ran: Completed[] = sched === null ? [] : sched.ran;
    const preemptions = sched === null ? NO_PREEMPTIONS : sched.preemptions;
    try {
      if (sched === null) ran.push({ op, outcome: this.primary.step(op) });
      else sched.run(op);
      this.primary.debugVm?.();
    } catch (e) {
      if (e instanceof InfeasibleSchedule) {
        this.predictor.missed(started);
        this.steps = base + started.length;
        return { ran, started, violation: null, failedAt: -1, infeasible: e.message, preemptions };
      }
      const failing = started.length - 1;
      return this.topResult(base, started, ran, preemptions, asViolation(e, this.primary.kind, started[failing] ?? op), failing);
    } finally {
      this.view.invalidate();
      this.keptRemoteViews = null;
    }
    if (this.shadow !== null) {
      const v = this.compareTop(started, ran);
      if (v !== null) return this.topResult(base, started, ran, preemptions, { ...v.violation, cause: causeOf(v.violation, v.op) }, started.length - 1);
    }
    const views = this.remoteViews();
    const k = this.view;
    const predicting = this.predicting;
    if (sched !== null && started.length > 1) {
      const violation = this.judgeConcurrent(sched, views, (o) => base + started.indexOf(o));
      // No prediction is made for a concurrent step; the predictor takes the state it left.
      this.predictor.missed(started);
      if (predicting) this.predictor.sync(k);
      // Charged to the last operation started: a repro cut after it keeps the whole interleaving.
      return this.topResult(base, started, ran, preemptions, violation, violation === null ? -1 : started.length - 1);
    }
    for (const c of ran) {
      this.ghost.apply(c.op, c.outcome, k, views);
      if (this.invariants.length === 0) {
        this.predictor.missed([c.op]);
        continue;
      }
      const predictor = predicting ? this.predictor : undefined;
      const violation = checkAll(new StepContext(k, this.opts.config, this.ghost, c.op, c.outcome, views, base + started.indexOf(c.op), this.opts.strategies, undefined, predictor), this.invariants);
      if (violation !== null) return this.topResult(base, started, ran, preemptions, violation, started.length - 1);
      if (predicting) this.predictor.sync(k, c.op, c.outcome);
      else this.predictor.missed([c.op]);
    }
    return this.topResult(base, started, ran, preemptions, null, -1);
  }

  /** stepTop's answer once the step is judged; the session's step count moves past what started. */
  private topResult(
    base: number, started: readonly Op[], ran: readonly Completed[], preemptions: ReadonlyMap<Op, Preemption>, violation: Violation | null, failedAt: number,
  ): TopResult {
    this.steps = base + started.length;
    return { ran, started, violation, failedAt, infeasible: null, preemptions };
  }

  /**
   * The checks of a step in which operations ran nested. Ghost memory takes each operation
   * in the order it completed. An invariant of the state is judged once, when the step is
   * quiescent (the state in between is no instant user space can see). An invariant of an
   * operation's outcome is judged at every instant the operation could have taken effect —
   * with the ghost and the process table as they stood as it began, after each operation
   * that completed inside it, after its own, and with the operations it ran nested inside
   * taken first (their effect may precede it) — and breaks only if it breaks at each:
   * a read that raced a write may return either value, a permission checked before an OOM
   * kill reparented the target was right when it was checked (linearizability, Herlihy
   * and Wing 1990).
   */
  private judgeConcurrent(sched: NestedScheduler, views: readonly RemoteView[], indexOf: (o: Op) => number): Violation | null {
    const k = this.view;
    const byOutcome = this.invariants.filter((i) => i.judges === 'outcome');
    const byState = this.invariants.filter((i) => i.judges !== 'outcome');
    const startedAt = new Map(sched.started.map((o, i) => [o, i]));
    // ghosts[m]: ghost memory after ran[0 .. m-1]; processTables[m]: the process table then.
    const ghosts: Ghost[] = byOutcome.length > 0 ? [this.ghost.clone()] : [];
    // An operation that took effect before it completed (an mmap whose populate a fork ran
    // nested in: the child has the mapping) is taken then, and the rest of it at completion.
    const early = new Map(sched.early.map((e) => [e.op, e]));
    let next = 0;
    for (const [j, c] of sched.ran.entries()) {
      for (; next < sched.early.length && sched.early[next]!.before <= j; next++) {
        const e = sched.early[next]!;
        this.ghost.apply(e.op, e.outcome, k, views, 'effect');
      }
      this.ghost.apply(c.op, c.outcome, k, views, early.has(c.op) ? 'rest' : 'whole');
      if (byOutcome.length > 0) ghosts.push(this.ghost.clone());
    }
    this.storesAfterZap(sched, startedAt, views);
    for (const [i, c] of sched.ran.entries()) {
      if (byOutcome.length === 0) break;
      // The operations that completed inside this one's interval: started after it, done before it.
      let first = i;
      for (let j = 0; j < i; j++) if (startedAt.get(sched.ran[j]!.op)! > startedAt.get(c.op)!) { first = j; break; }
      let broken: Violation | null = null;
      for (let m = first; m <= i + 1; m++) {
        const at = withProcessTable(k, sched.processTables[m] ?? [...k.processes()]);
        broken = checkAll(new StepContext(at, this.opts.config, ghosts[m]!, c.op, c.outcome, views, indexOf(c.op), this.opts.strategies), byOutcome);
        if (broken === null) break;
      }
      // The operations it ran nested inside (started before it, done after it) may have taken
      // effect before it, too: a read inside a MADV_DONTNEED's notifier callback sees the zap
      // if the zap came first. Each, innermost first, on top of the state after this one.
      if (broken !== null) {
        let g: Ghost | null = null;
        for (let j = i + 1; j < sched.ran.length && broken !== null; j++) {
          const outer = sched.ran[j]!;
          if (startedAt.get(outer.op)! > startedAt.get(c.op)!) continue;
          g ??= ghosts[i + 1]!.clone();
          const took = early.get(outer.op);
          g.apply(outer.op, outer.outcome, k, views, took !== undefined && took.before <= i ? 'rest' : 'whole');
          const at = withProcessTable(k, sched.processTables[j + 1] ?? [...k.processes()]);
          broken = checkAll(new StepContext(at, this.opts.config, g, c.op, c.outcome, views, indexOf(c.op), this.opts.strategies), byOutcome);
        }
      }
      if (broken !== null) return broken;
    }
    if (byState.length === 0 || sched.ran.length === 0) return null;
    // Whether the state is broken does not depend on the operation a check is given, but the
    // cause it names does ("which side changed", "a store through a mirror"): each operation
    // of the step is asked in turn, and the first that explains it (a cause not marked
    // `unexplained`) is kept.
    // Those that succeeded first (one that failed most likely changed nothing: a PAGEOUT of
    // an unmapped range), each group the last completed first.
    const ctx = (c: Completed) => new StepContext(k, this.opts.config, this.ghost, c.op, c.outcome, views, indexOf(c.op), this.opts.strategies, c.vma);
    const order = [...sched.ran].reverse();
    const asked = [...order.filter((c) => c.outcome.kind === 'ok'), ...order.filter((c) => c.outcome.kind !== 'ok')];
    const first = checkAll(ctx(asked[0]!), byState);
    if (first === null) return null;
    const broken = byState.find((i) => i.id === first.invariant)!;
    const unexplained = (v: Violation) => broken.causes.find((c) => c.id === v.cause)?.unexplained === true;
    if (!unexplained(first)) return first;
    for (const c of asked.slice(1)) {
      const v = broken.check(ctx(c));
      if (v !== null && !unexplained(v)) return v;
    }
    return first;
  }

  /**
   * MADV_DONTNEED zaps its range VMA by VMA under the mmap_lock for read, so a store another
   * task completed inside it (a thread's write, a process_vm_writev or /proc/<pid>/mem write
   * into the range) may have come after the zap of its page: ghost memory, which takes them
   * in the order they completed, put it before. Where the kernel now maps the stored value
   * there, the page was faulted in again after the zap, by that store, and it is taken again
   * (a kernel whose zap missed that page is not told apart from this order here; a
   * sequential run still judges it).
   */
  private storesAfterZap(sched: NestedScheduler, startedAt: ReadonlyMap<Op, number>, views: readonly RemoteView[]): void {
    const k = this.view;
    for (const [i, c] of sched.ran.entries()) {
      const z = c.op;
      if (z.op !== 'madvise' || z.advice !== 'DONTNEED') continue;
      const lo = Math.floor(z.addr);
      const hi = Math.ceil(z.addr + z.lengthPages);
      for (let j = 0; j < i; j++) {
        const inner = sched.ran[j]!;
        if (startedAt.get(inner.op)! < startedAt.get(z)! || inner.outcome.kind !== 'ok') continue;
        const o = inner.op;
        const store = o.op === 'write' ? { pid: o.pid, addr: o.addr, value: o.value }
          : o.op === 'process_vm_writev' || o.op === 'proc_mem_write' ? { pid: o.target, addr: o.addr, value: o.value } : null;
        if (store === null || store.pid !== z.pid || store.addr < lo || store.addr >= hi) continue;
        let pte: PteView | undefined;
        for (const [a, p] of k.ptes(store.pid)) if (a === store.addr) pte = p;
        const now = pte?.kind === 'present' ? k.frame(pte.pfn)?.value : undefined;
        if (now !== undefined && (now === store.value || now === store.value >>> 0)) this.ghost.apply(o, inner.outcome, k, views);
      }
    }
  }

  /** The implementation runs what the model ran, with the switches the model recorded. */
  private compareTop(started: readonly Op[], ran: readonly Completed[]): { violation: Violation; op: Op } | null {
    if (started.length === 1) {
      const v = this.compare(started[0]!, ran[0]!.outcome);
      return v === null ? null : { violation: v, op: started[0]! };
    }
    const shadow = new NestedScheduler(this.shadow!, new TraceCursor(started, 1), null, this.opts.strategies, this.untakenBefore);
    try {
      shadow.run(started[0]!);
      this.shadow!.debugVm?.();
    } catch (e) {
      const v = asViolation(e, 'impl', started[0]!);
      return { violation: { invariant: 'differential', message: `impl threw where the model did not: ${v.message}` }, op: shadow.started[shadow.started.length - 1] ?? started[0]! };
    }
    for (let i = 0; i < ran.length; i++) {
      const a = ran[i]!;
      const b = shadow.ran[i];
      if (b === undefined || b.op !== a.op) {
        return { violation: { invariant: 'differential', message: `${a.op.op}: the implementation completed the operations of a concurrent step in another order` }, op: a.op };
      }
      if (!outcomeEquals(a.outcome, b.outcome)) {
        return { violation: { invariant: 'differential', message: `${a.op.op}: model ${formatOutcome(a.outcome)}, impl ${formatOutcome(b.outcome)}` }, op: a.op };
      }
    }
    const same = liveObservationsEqual(this.view, this.shadow!.inspect, this.comparedRunning);
    if (same !== null) {
      this.comparedRunning = same;
      return null;
    }
    const x = observeLive(this.view, this.comparedRunning);
    const y = observeLive(this.shadow!.inspect, this.comparedRunning);
    if (observationsEqual(x, y)) throw new Error('liveObservationsEqual told equal observations apart');
    const last = ran[ran.length - 1]!.op;
    return { violation: { invariant: 'differential', message: `after ${last.op} the observations differ: ${firstDifference(JSON.stringify(x), JSON.stringify(y))}` }, op: last };
  }

  private compare(op: Op, outcome: Outcome): Violation | null {
    let shadowOutcome: Outcome;
    try {
      shadowOutcome = this.shadow!.step(op);
      this.shadow!.debugVm?.();
    } catch (e) {
      const v = asViolation(e, 'impl', op);
      return { invariant: 'differential', message: `impl threw where the model returned ${formatOutcome(outcome)}: ${v.message}` };
    }
    if (!outcomeEquals(outcome, shadowOutcome)) {
      return { invariant: 'differential', message: `${op.op}: model ${formatOutcome(outcome)}, impl ${formatOutcome(shadowOutcome)}` };
    }
    // Each process in full while it runs and in the step it exits; never again after (observeLive).
    const same = liveObservationsEqual(this.view, this.shadow!.inspect, this.comparedRunning);
    if (same !== null) {
      this.comparedRunning = same;
      return null;
    }
    const a = observeLive(this.view, this.comparedRunning);
    const b = observeLive(this.shadow!.inspect, this.comparedRunning);
    if (observationsEqual(a, b)) throw new Error('liveObservationsEqual told equal observations apart');
    return { invariant: 'differential', message: `after ${op.op} the observations differ: ${firstDifference(JSON.stringify(a), JSON.stringify(b))}` };
  }
}

/** The kernel as it stands, but for its process table: the one recorded at an earlier instant of the step. */
function withProcessTable(k: InspectSnapshot, table: readonly ProcessView[]): InspectSnapshot {
  return new Proxy(k, {
    get(target, prop) {
      if (prop === 'processes') return () => table;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** What the checks of one step read; the census is taken on first use (some checks need none). */
class StepContext implements CheckContext {
  private taken: Census | null = null;
  constructor(
    readonly k: InspectSnapshot, readonly config: Readonly<KernelConfig>, readonly ghost: Ghost,
    readonly op: Op, readonly outcome: Outcome, readonly remoteViews: readonly RemoteView[], readonly step: number,
    readonly strategies: readonly StrategyDefinition[], readonly opVma?: VmaView, readonly predictor?: Predictor,
  ) {}
  get census(): Census {
    return (this.taken ??= takeCensus(this.k));
  }
}

function asViolation(e: unknown, kernel: string, op: Op): Violation {
  const error = e instanceof Error ? e : new Error(String(e));
  const invariant = (error as { invariant?: InvariantId }).invariant ?? 'kernel-assert';
  const v = { invariant, message: `${kernel}: ${error.message}` };
  return { ...v, cause: causeOf(v, op) };
}

/** A window around the first differing character of two JSON texts. */
function firstDifference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  const from = Math.max(0, i - 60);
  return `model …${a.slice(from, i + 40)}… impl …${b.slice(from, i + 40)}…`;
}
