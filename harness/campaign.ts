/**
 * A fuzzing campaign: runs until a budget of traces or of time is spent, run `r` drawing
 * its trace from its own seed derived from the campaign seed and `r`, each failure shrunk
 * to a 1-minimal trace of the same cause and kept once per signature (strategy, invariant
 * and cause: harness/repro.ts failureSignature) — the one of the lowest run index. Two
 * causes of one invariant are two flaws, each with its repro. Each run is judged by its failure chain (harness/runner.ts), which depends on its
 * seed alone, so with a run budget the campaign is deterministic whatever the number of
 * workers or shards: the same seed gives the same traces, results and failures.
 *
 * Shards split run indexes: shard I of N runs the indexes r with r mod N = I − 1, so N
 * shards together run exactly the indexes one campaign runs, and find what it finds.
 */
import type { Op } from '../kernel-api/op.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import type { InvariantId, StrategyDefinition } from '../kernel-api/strategy.ts';
import type { KernelChoice } from '../properties/kernels.ts';
import { replayOps } from '../properties/trace.ts';
import { shrinkOps } from './shrink.ts';
import { failureSignature } from './repro.ts';
import { causeOf } from '../properties/invariants/index.ts';
import { CampaignLockGraph } from './lock-graph.ts';
import { makePlan, runChain, runSeed, sessionBase, strategyName, traceOf, beat, PHASE_SHRINK, type Heartbeat, type LockEdge, type RunPlan } from './runner.ts';
import { addCoverage, emptyCoverage } from '../kernel-api/coverage.ts';

export { runSeed } from './runner.ts';

export type Shard = { index: number; count: number };

export type CampaignOptions = {
  seed: number;
  /** Stop after run index `runs` − 1 … */
  runs?: number;
  /** … or after this much time (whichever comes first). */
  timeMs?: number;
  kernel: KernelChoice;
  /** Strategies to fuzz; each trace loads one of them (round robin), or none when empty. */
  strategies: readonly StrategyDefinition[];
  /** With strategies: also runs with the core operations alone (one group more in the turn). */
  withCore?: boolean;
  config: Readonly<KernelConfig>;
  stepsMax: number;
  /** Run only this shard's indexes (1-based index). */
  shard?: Shard;
  /**
   * Known flaws a run looks past to what breaks next, by signature (`strategy/invariant/cause`,
   * harness/repro.ts failureSignature) or every cause of an invariant (`strategy/invariant`);
   * it stops at any other failure. Absent: it looks past every checked invariant (harness/runner.ts).
   */
  lookPast?: readonly string[];
  /** Called every so often with progress. */
  onProgress?: (p: CampaignProgress) => void;
  /** A clock for the time budget and progress (injected so tests stay deterministic). */
  now?: () => number;
};

export type CampaignProgress = { runs: number; steps: number; elapsedMs: number; failures: number };

export type CampaignFailure = {
  invariant: InvariantId;
  /** How it broke (properties/invariants causeOf); derived from the message when absent (a hang or a crash). */
  cause?: string;
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

/** `coverage`: each coverage point's count (kernel-api/coverage.ts), summed over the runs. */
export type CampaignResult = { seed: number; runs: number; steps: number; elapsedMs: number; failures: CampaignFailure[]; coverage: number[] };

/** The run indexes of a shard, in order, up to `runs` (unbounded without). */
export function* shardRuns(runs: number | undefined, shard: Shard = { index: 1, count: 1 }): Generator<number> {
  if (!(shard.count >= 1 && shard.index >= 1 && shard.index <= shard.count)) throw new Error(`bad shard ${shard.index}/${shard.count}`);
  for (let r = shard.index - 1; runs === undefined || r < runs; r += shard.count) yield r;
}

/** `strategy/invariant`: every cause of an invariant of a strategy (a signature names one cause). */
export function failureKey(f: Pick<CampaignFailure, 'strategy' | 'invariant'>): string {
  return `${f.strategy}/${f.invariant}`;
}

/** A campaign failure's signature: strategy, invariant, cause (harness/repro.ts failureSignature). */
export function campaignSignature(f: Pick<CampaignFailure, 'strategy' | 'invariant' | 'ops' | 'message' | 'cause'>): string {
  return failureSignature(f);
}

/** Whether `known` (signatures, or `strategy/invariant` keys naming every cause) lists the failure. */
export function isListed(known: ReadonlySet<string>, f: Pick<CampaignFailure, 'strategy' | 'invariant' | 'ops' | 'message' | 'cause'>): boolean {
  return known.has(failureKey(f)) || known.has(campaignSignature(f));
}

/** Keep, per signature, the failure of the lowest run index. */
export function mergeFailure(into: Map<string, CampaignFailure>, f: CampaignFailure): void {
  const key = campaignSignature(f);
  const previous = into.get(key);
  if (previous === undefined || f.run < previous.run) into.set(key, f);
}

/**
 * A failure found while a strategy was loaded whose shrunk trace calls none of it, and that
 * fails the same way with no strategy loaded, is a failure of the core operations: it is
 * reported once as `core` (the lowest run that found it), not once per strategy whose runs
 * met it. `config` is the campaign's kernel configuration.
 */
export function attributeCore(failures: Iterable<CampaignFailure>, config: Readonly<KernelConfig>): CampaignFailure[] {
  const out = new Map<string, CampaignFailure>();
  for (const f of failures) {
    let g = f;
    if (f.strategy !== 'core' && f.invariant !== 'hang' && !f.ops.some((op) => op.op === 'drv')) {
      const r = replayOps({ kernel: f.kernel, config, strategies: [], only: new Set([f.invariant]) }, f.ops);
      if (r.failure?.invariant === f.invariant && causeOf(r.failure, f.ops[r.failure.step]) === campaignCause(f)) g = { ...f, strategy: 'core' };
    }
    mergeFailure(out, g);
  }
  return [...out.values()];
}

/**
 * The failures to hold back (report, not write), so that one bug gives one repro; fuzzing
 * again once it is fixed writes whatever remains. A bug of the core kernel shows in the
 * strategies' runs too, by longer routes: while the core operations alone break an
 * invariant, a strategy's failure of that invariant is most likely the same bug. And a
 * `differential` failure is a kernel's bug whichever strategy ran (a design runs the same
 * driver code on both kernels): of those, one is written — the core's, else the shortest.
 * A known flaw of a strategy (`knownFlaws`: signatures, or `strategy/invariant` for every
 * cause) is never held back.
 */
export function heldBack(failures: readonly CampaignFailure[], knownFlaws: ReadonlySet<string>): Set<CampaignFailure> {
  const fresh = failures.filter((f) => !isListed(knownFlaws, f));
  const coreBroken = new Set(fresh.filter((f) => f.strategy === 'core').map((f) => f.invariant));
  const held = new Set(fresh.filter((f) => f.strategy !== 'core' && coreBroken.has(f.invariant)));
  const divergences = fresh.filter((f) => f.invariant === 'differential' && !held.has(f));
  const first = [...divergences].sort((a, b) => a.ops.length - b.ops.length || a.run - b.run)[0];
  for (const f of divergences) if (f !== first) held.add(f);
  return held;
}

/** The signatures (`strategy/invariant/cause`) of failures already kept. */
export function signaturesOf(failures: Iterable<CampaignFailure>): Set<string> {
  return new Set([...failures].map((f) => `${f.strategy}/${f.invariant}/${campaignCause(f)}`));
}

export function sortedFailures(failures: Iterable<CampaignFailure>): CampaignFailure[] {
  const key = (f: CampaignFailure) => `${f.strategy}\u0000${f.invariant}\u0000${campaignCause(f)}`;
  return [...failures].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

export type RunReport = {
  run: number; steps: number; failures: CampaignFailure[]; lockEdges: LockEdge[]; coverage: Uint32Array;
  /** Set when a worker thinned `lockEdges` (lock-graph.ts thinEdges): the class pairs the run takes both ways. */
  lockBothWays?: string[];
};

/** A campaign failure's cause, derived from its message where none was named. */
export function campaignCause(f: Pick<CampaignFailure, 'invariant' | 'cause' | 'message' | 'ops'>): string {
  return causeOf(f, f.ops.at(-1));
}

/**
 * Run index `run`: its failure chain, and each link whose signature is not in `seen`
 * shrunk to the same cause (then added to `seen`). Runs given in increasing order, the
 * first occurrence of each signature is shrunk.
 */
export function runOne(plan: RunPlan, run: number, seen: Set<string>, hb?: Heartbeat, onShrink?: (ops: Op[]) => void): RunReport {
  const base = sessionBase(plan, run);
  const strategy = strategyName(plan, run);
  const lookPast = plan.lookPast === null ? undefined
    : (invariant: InvariantId, cause: string) => plan.lookPast!.has(failureKey({ strategy, invariant })) || plan.lookPast!.has(`${strategy}/${invariant}/${cause}`);
  const chain = runChain(base, traceOf(plan, run), run, hb, lookPast);
  const failures: CampaignFailure[] = [];
  for (const link of chain.links) {
    const key = `${strategy}/${link.invariant}/${link.cause}`;
    if (seen.has(key)) continue;
    seen.add(key);
    onShrink?.(link.ops);
    // The repro is judged by its own invariant alone, so another flaw on the way does not
    // hide it, and must keep its cause, so the shrinker does not drift to another flaw.
    const session = { ...base, only: new Set([link.invariant]) };
    const shrunk = shrinkOps(session, link.ops, link.invariant, { cause: link.cause, onReplay: () => beat(hb, run, 0, PHASE_SHRINK) });
    const message = shrunk.ops.length === link.ops.length ? link.message : replayOps(session, shrunk.ops).failure?.message ?? link.message;
    failures.push({
      invariant: link.invariant, cause: link.cause, kernel: plan.kernel, strategy, message, seed: runSeed(plan.seed, run), run, foundAfterMs: 0,
      ops: shrunk.ops, originalLength: link.ops.length,
    });
  }
  return { run, steps: chain.steps, failures, lockEdges: chain.lockEdges, coverage: chain.coverage };
}

/** The campaign in this thread (harness/pool.ts runs it on worker threads). */
export function runCampaign(opts: CampaignOptions): CampaignResult {
  const now = opts.now ?? (() => performance.now());
  const t0 = now();
  const plan = makePlan(opts.seed, opts.kernel, opts.config, opts.strategies, opts.stepsMax, opts.withCore, opts.lookPast ?? null);
  const failures = new Map<string, CampaignFailure>();
  const seen = new Set<string>();
  const locks = new CampaignLockGraph();
  const result: CampaignResult = { seed: opts.seed, runs: 0, steps: 0, elapsedMs: 0, failures: [], coverage: emptyCoverage() };
  let lastProgress = t0;
  for (const run of shardRuns(opts.runs, opts.shard)) {
    if (opts.timeMs !== undefined && now() - t0 >= opts.timeMs) break;
    const report = runOne(plan, run, seen);
    result.runs += 1;
    result.steps += report.steps;
    addCoverage(result.coverage, report.coverage);
    locks.add(run, report.lockEdges);
    for (const f of report.failures) mergeFailure(failures, { ...f, foundAfterMs: Math.round(now() - t0) });
    if (opts.onProgress !== undefined && now() - lastProgress >= 1000) {
      lastProgress = now();
      opts.onProgress({ runs: result.runs, steps: result.steps, elapsedMs: Math.round(now() - t0), failures: failures.size });
    }
  }
  for (const f of locks.failures(plan, signaturesOf(failures.values()))) mergeFailure(failures, { ...f, foundAfterMs: Math.round(now() - t0) });
  result.elapsedMs = Math.round(now() - t0);
  result.failures = sortedFailures(attributeCore(failures.values(), opts.config));
  return result;
}
