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

/** Replay concrete operations; stops at the first violation. */
export function replayOps(opts: SessionOptions, ops: readonly Op[]): TraceResult {
  const session = new Session(opts);
  const result: TraceResult = { ops: [], outcomes: [], failure: null };
  for (const op of ops) {
    const { outcome, violation } = session.step(op);
    result.ops.push(op);
    result.outcomes.push(outcome);
    if (violation !== null) {
      result.failure = { ...violation, step: result.ops.length - 1 };
      return result;
    }
  }
  return result;
}

/** Does replaying `ops` break `invariant` (the same failure, not another)? */
export function reproduces(opts: SessionOptions, ops: readonly Op[], invariant: InvariantId): boolean {
  return replayOps(opts, ops).failure?.invariant === invariant;
}
