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
import type { InvariantId, StrategyDefinition } from '../kernel-api/strategy.ts';
import { Ghost } from './ghost.ts';
import { causeOf, checkAll, selectInvariants, takeCensus, type CheckContext, type Invariant, type Violation } from './invariants/index.ts';
import type { Census } from './invariants/census.ts';
import { InspectSnapshot } from './invariants/snapshot.ts';
import { observationsEqual, observeLive, runningPids } from './observe.ts';
import { createKernel, type KernelChoice } from './kernels.ts';

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

export class Session {
  /** The kernel that generation, ghost memory and the invariants look at. */
  readonly primary: Kernel;
  /** The implementation compared against the model, in diff mode. */
  readonly shadow: Kernel | null;
  readonly ghost = new Ghost();
  /**
   * The primary kernel as it stands between steps, for the checks of a step and for
   * generating the next operation: each answer is fetched once and dropped when it moves.
   */
  readonly view: InspectSnapshot;
  /** The invariants checked after each step. */
  private invariants: readonly Invariant[];
  /** The strategies' remote views while the kernel stands (remoteViews()); dropped with `view`. */
  private keptRemoteViews: readonly RemoteView[] | null = null;
  /** Steps taken so far: the index of the next one. */
  private steps = 0;
  /** The pids running after the last step compared (both kernels agreed on them): observeLive's `runningBefore`. */
  private comparedRunning: number[] = [];

  constructor(readonly opts: SessionOptions) {
    this.primary = createKernel(opts.kernel === 'impl' ? 'impl' : 'model', opts.config, opts.strategies);
    this.shadow = opts.kernel === 'diff' ? createKernel('impl', opts.config, opts.strategies) : null;
    this.view = new InspectSnapshot(this.primary.inspect);
    this.invariants = selectInvariants(opts.only, opts.exclude);
  }

  /** From the next step on, check only these invariants (less the excluded ones). */
  checkOnly(only: ReadonlySet<InvariantId>): void {
    this.invariants = selectInvariants(only, this.opts.exclude);
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
    const index = this.steps++;
    let outcome: Outcome;
    try {
      outcome = this.primary.step(op);
      this.primary.debugVm?.();
    } catch (e) {
      return { outcome: { kind: 'errno', errno: 'EIO' }, violation: asViolation(e, this.primary.kind, op) };
    } finally {
      this.view.invalidate();
      this.keptRemoteViews = null;
    }
    if (this.shadow !== null) {
      const v = this.compare(op, outcome);
      if (v !== null) return { outcome, violation: { ...v, cause: causeOf(v, op) } };
    }
    const views = this.remoteViews();
    const k = this.view;
    this.ghost.apply(op, outcome, k, views);
    if (this.invariants.length === 0) return { outcome, violation: null };
    const violation = checkAll(new StepContext(k, this.opts.config, this.ghost, op, outcome, views, index), this.invariants);
    return { outcome, violation };
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
    const a = observeLive(this.view, this.comparedRunning);
    const b = observeLive(this.shadow!.inspect, this.comparedRunning);
    if (observationsEqual(a, b)) {
      this.comparedRunning = runningPids(a);
      return null;
    }
    return { invariant: 'differential', message: `after ${op.op} the observations differ: ${firstDifference(JSON.stringify(a), JSON.stringify(b))}` };
  }
}

/** What the checks of one step read; the census is taken on first use (some checks need none). */
class StepContext implements CheckContext {
  private taken: Census | null = null;
  constructor(
    readonly k: InspectSnapshot, readonly config: Readonly<KernelConfig>, readonly ghost: Ghost,
    readonly op: Op, readonly outcome: Outcome, readonly remoteViews: readonly RemoteView[], readonly step: number,
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
