/**
 * A fuzzing campaign: runs until a budget of traces or of time is spent, each trace drawn
 * from its own seed derived from the campaign seed, each failure shrunk to a 1-minimal
 * trace and kept once per (invariant, strategy). With a run budget the campaign is
 * deterministic: the same seed gives the same traces, results and failures.
 */
import fc from 'fast-check';
import seedrandom from 'seedrandom';
import type { Op } from '../kernel-api/op.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import type { InvariantId, StrategyDefinition } from '../kernel-api/strategy.ts';
import { traceArbitrary } from '../properties/arbitrary.ts';
import { opKinds } from '../properties/gen.ts';
import { replayOps, runGenerated } from '../properties/trace.ts';
import type { SessionOptions } from '../properties/session.ts';
import type { KernelChoice } from '../properties/kernels.ts';
import { shrinkOps } from './shrink.ts';

export type CampaignOptions = {
  seed: number;
  /** Stop after this many traces … */
  runs?: number;
  /** … or after this much time (whichever comes first). */
  timeMs?: number;
  kernel: KernelChoice;
  /** Strategies to fuzz; each trace loads one of them (round robin), or none when empty. */
  strategies: readonly StrategyDefinition[];
  config: Readonly<KernelConfig>;
  stepsMax: number;
  /** Called every so often with progress. */
  onProgress?: (p: CampaignProgress) => void;
  /** A clock for the time budget and progress (injected so tests stay deterministic). */
  now?: () => number;
};

export type CampaignProgress = { runs: number; steps: number; elapsedMs: number; failures: number };

export type CampaignFailure = {
  invariant: InvariantId;
  kernel: KernelChoice;
  strategy: string;
  message: string;
  /** The seed of the trace that failed (derived from the campaign seed and the run index). */
  seed: number;
  run: number;
  foundAfterMs: number;
  /** The shrunk, 1-minimal trace. */
  ops: Op[];
  originalLength: number;
};

export type CampaignResult = { seed: number; runs: number; steps: number; elapsedMs: number; failures: CampaignFailure[] };

/** The seed of run `run` of a campaign: a seedrandom stream keyed by both. */
export function runSeed(campaignSeed: number, run: number): number {
  return seedrandom(`mapfuzz:${campaignSeed}:${run}`).int32();
}

export function runCampaign(opts: CampaignOptions): CampaignResult {
  const now = opts.now ?? (() => performance.now());
  const t0 = now();
  const groups: (StrategyDefinition | null)[] = opts.strategies.length === 0 ? [null] : [...opts.strategies];
  const arbs = groups.map((s) => traceArbitrary({ kindsCount: opKinds(s === null ? [] : [s]).length, stepsMin: 20, stepsMax: opts.stepsMax }));
  const failures = new Map<string, CampaignFailure>();
  const found = groups.map(() => new Set<InvariantId>());
  const result: CampaignResult = { seed: opts.seed, runs: 0, steps: 0, elapsedMs: 0, failures: [] };
  let lastProgress = t0;
  for (let run = 0; opts.runs === undefined || run < opts.runs; run++) {
    if (opts.timeMs !== undefined && now() - t0 >= opts.timeMs) break;
    const group = run % groups.length;
    const strategy = groups[group];
    const seed = runSeed(opts.seed, run);
    const [trace] = fc.sample(arbs[group], { seed, numRuns: 1 });
    const base = { kernel: opts.kernel, config: opts.config, strategies: strategy === null ? [] : [strategy] };
    const r = runGenerated({ ...base, exclude: found[group] }, trace);
    result.runs += 1;
    result.steps += r.ops.length;
    if (r.failure !== null && !found[group].has(r.failure.invariant)) {
      found[group].add(r.failure.invariant);
      const key = `${r.failure.invariant}/${strategy?.name ?? 'core'}`;
      const previous = failures.get(key);
      // The repro is judged by its own invariant alone, so another flaw on the way does not hide it.
      const session = { ...base, only: new Set([r.failure.invariant]) };
      const shrunk = shrinkOps(session, r.ops, r.failure.invariant);
      if (previous === undefined || shrunk.ops.length < previous.ops.length) {
        const replayed = shrunk.ops.length === r.ops.length ? r.failure.message : messageOf(session, shrunk.ops) ?? r.failure.message;
        failures.set(key, {
          invariant: r.failure.invariant, kernel: opts.kernel, strategy: strategy?.name ?? 'core', message: replayed, seed, run,
          foundAfterMs: previous?.foundAfterMs ?? Math.round(now() - t0), ops: shrunk.ops, originalLength: r.ops.length,
        });
      }
    }
    if (opts.onProgress !== undefined && now() - lastProgress >= 1000) {
      lastProgress = now();
      opts.onProgress({ runs: result.runs, steps: result.steps, elapsedMs: Math.round(now() - t0), failures: failures.size });
    }
  }
  result.elapsedMs = Math.round(now() - t0);
  result.failures = [...failures.values()].sort((a, b) => (a.strategy + a.invariant).localeCompare(b.strategy + b.invariant));
  return result;
}


function messageOf(opts: SessionOptions, ops: readonly Op[]): string | undefined {
  return replayOps(opts, ops).failure?.message;
}
