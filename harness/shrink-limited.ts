/**
 * Shrinking under the step time limit: every replay of harness/shrink.ts on a worker
 * thread (harness/limited-replayer.ts), so that a trace that hangs can be shrunk — a
 * `hang` keeps the candidates that still hang, any other failure drops a candidate that
 * hangs — and no candidate can hang the caller. Used by `mapfuzz shrink`, and by `fuzz` for
 * the hangs its workers were abandoned on (each a prefix of the run up to the hung step).
 */
import type { Op } from '../kernel-api/op.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import type { InvariantId } from '../kernel-api/strategy.ts';
import type { Failure } from '../properties/trace.ts';
import { LimitedReplayer } from './limited-replayer.ts';
import { shrinkOps, type ShrinkStats } from './shrink.ts';

/** Replays a shrink makes at most: a candidate that hangs costs the time limit. */
export const LIMITED_REPLAYS_MAX = 2000;

export type LimitedShrink = {
  ops: Op[];
  stats: ShrinkStats;
  /** Replays that ran past the limit. */
  hangs: number;
  /** The limit a candidate ran under, in ms: twice the step time limit for a `hang`. */
  limitMs: number;
  /** How the original and the shrunk trace ended (null: nothing broke). */
  before: Failure | null;
  after: Failure | null;
};

/**
 * Shrink `ops`, which break `invariant` (with `cause`, when given) on `base`'s kernel and
 * strategy. A `hang` candidate must run past twice the step time limit — a trace kept at the
 * edge of the limit would hang on one replay and not the next — and is not simplified
 * (halving a length a step's time grows with walks it to that edge): removals only.
 */
export function shrinkLimited(
  base: { kernel: string; strategy: string; config: KernelConfig }, ops: readonly Op[], invariant: InvariantId, cause: string | undefined,
  stepTimeoutMs: number, strategyModules: readonly string[] = [],
): LimitedShrink {
  const limitMs = invariant === 'hang' ? 2 * stepTimeoutMs : stepTimeoutMs;
  const replayer = new LimitedReplayer(base, limitMs, strategyModules);
  try {
    const only = { only: new Set<InvariantId>([invariant]) };
    const before = replayer.replay(only, ops).failure;
    if (before?.invariant !== invariant) return { ops: [...ops], stats: { replays: 1 }, hangs: replayer.hangs, limitMs, before, after: before };
    // Every replay is the replayer's, on base's kernel and strategy: of the session options the shrinker reads only the invariants.
    const shrunk = shrinkOps({ kernel: 'model', config: base.config, strategies: [], ...only }, ops, invariant, {
      cause, replaysMax: LIMITED_REPLAYS_MAX, simplify: invariant !== 'hang', replay: (o, c) => replayer.replay(o, c),
    });
    const after = replayer.replay(only, shrunk.ops).failure;
    return { ...shrunk, hangs: replayer.hangs, limitMs, before, after };
  } finally {
    replayer.close();
  }
}
