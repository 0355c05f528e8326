/**
 * Running traces: from random choices (the fuzzer; concrete operations are built step by
 * step against the live state) or from concrete operations (a replay). Every generated
 * trace ends with a teardown — each running process exits — so `no-leak` is judged.
 */
import type { Op } from '../kernel-api/op.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import type { InvariantId } from '../kernel-api/strategy.ts';
import type { Violation } from './invariants/index.ts';
import { Session, type SessionOptions } from './session.ts';
import { TraceBuilder, type Swarm } from './gen.ts';
import { NO_PENDING, TraceCursor } from './sched.ts';

export type Failure = Violation & {
  /** Index in `ops` of the step after which the invariant broke. */
  step: number;
};

export type TraceResult = {
  ops: Op[];
  outcomes: Outcome[];
  failure: Failure | null;
};

export type GeneratedTrace = { swarm: Swarm; steps: readonly (readonly number[])[] };

/** Generate and run a trace; stops at the first violation. */
export function runGenerated(opts: SessionOptions, trace: GeneratedTrace): TraceResult {
  const session = new Session(opts);
  const builder = new TraceBuilder(session.view, opts.config, opts.strategies, trace.swarm, () => session.remoteViews());
  const result: TraceResult = { ops: [], outcomes: [], failure: null };
  const run = (op: Op): boolean => {
    const { outcome, violation } = session.step(op);
    result.ops.push(op);
    result.outcomes.push(outcome);
    if (violation !== null) {
      result.failure = { ...violation, step: result.ops.length - 1 };
      return false;
    }
    builder.learn(op, outcome);
    return true;
  };
  for (const choices of trace.steps) {
    const op = builder.next(choices);
    if (op !== null && !run(op)) return result;
  }
  for (const pid of builder.pids()) {
    if (!run({ op: 'exit', pid })) return result;
  }
  return result;
}

/**
 * Replay concrete operations; stops at the first violation. Operations that a recorded
 * switch starts nested run inside the one before (properties/sched.ts); `outcomes` stays
 * indexed like `ops`. A schedule that cannot be emulated (an edited repro) sets `infeasible`.
 */
export function replayOps(opts: SessionOptions, ops: readonly Op[]): TraceResult & { infeasible?: string } {
  const session = new Session(opts);
  const result: TraceResult & { infeasible?: string } = { ops: [], outcomes: [], failure: null };
  const cursor = new TraceCursor(ops, 0);
  while (cursor.at < ops.length) {
    const at = result.ops.length;
    const op = cursor.take();
    const r = session.stepTop(op, op.switches === undefined ? NO_PENDING : cursor, null);
    result.ops.push(...r.started);
    for (let i = 0; i < r.started.length; i++) result.outcomes.push(EIO);
    for (const c of r.ran) result.outcomes[at + r.started.indexOf(c.op)] = c.outcome;
    if (r.infeasible !== null) {
      result.infeasible = r.infeasible;
      return result;
    }
    if (r.violation !== null) {
      result.failure = { ...r.violation, step: at + Math.max(0, r.failedAt) };
      return result;
    }
  }
  return result;
}

const EIO: Outcome = { kind: 'errno', errno: 'EIO' };

/** Does replaying `ops` break `invariant` (the same failure, not another)? */
export function reproduces(opts: SessionOptions, ops: readonly Op[], invariant: InvariantId): boolean {
  return replayOps(opts, ops).failure?.invariant === invariant;
}
