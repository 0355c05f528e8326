/**
 * The scorecard: every strategy fuzzed under its own campaign, judged invariant by
 * invariant — holds, or broken with the length of its shortest repro and the time it took
 * to find — and beneath the table every distinct flaw found (one per signature: strategy,
 * invariant, cause), each with its shrunk repro and when it was found. A flaw is
 * `expected` only when the corpus records its signature as a repro that must keep
 * reproducing; a broken invariant is expected when each of its flaws is.
 */
import type { InvariantId, StrategyDefinition } from '../kernel-api/strategy.ts';
import type { Op } from '../kernel-api/op.ts';
import { INVARIANTS } from '../properties/invariants/index.ts';
import type { KernelChoice } from '../properties/kernels.ts';
import { runCampaignParallel } from './pool.ts';
import { FUZZ_CONFIG, STEPS_MAX } from './config.ts';
import { failureSignature, type Repro } from './repro.ts';
import { campaignCause } from './campaign.ts';
import { causeTitle } from '../properties/invariants/index.ts';
import { formatOp } from './story.ts';
import { addCoverage, coverageJson, emptyCoverage } from '../kernel-api/coverage.ts';

export type Verdict =
  | { status: 'holds' }
  | { status: 'broken'; reproLength: number; foundAfterMs: number; repro: Op[]; expected: boolean; promised: boolean; message: string };

/** One distinct flaw: a signature, its shortest repro, and when it was found. */
export type Flaw = {
  strategy: string; invariant: InvariantId; cause: string; title: string; message: string;
  reproLength: number; repro: Op[]; foundAfterMs: number; run: number; expected: boolean; promised: boolean;
};

export type Scorecard = {
  timeMs: number;
  kernel: KernelChoice;
  strategies: Record<string, Record<string, Verdict>>;
  runs: Record<string, number>;
  /** Every distinct flaw, strategy by strategy, in signature order. */
  flaws: Flaw[];
  /** Each coverage point's count over every strategy's campaign, zeros included (kernel-api/coverage.ts). */
  coverage: Record<string, number>;
};

/** Invariants a scorecard reports on: every checked one, plus assertion-borne ones. */
export const SCORED: readonly InvariantId[] = [...INVARIANTS.map((i) => i.id), 'slab', 'kernel-assert', 'hang', 'deadlock', 'lock-order', 'sleep-in-atomic', 'lock-leak'];

/** Share of the time budget each strategy gets: the seed 000 design has many flaws to find. */
function shares(strategies: readonly StrategyDefinition[]): number[] {
  const weights = strategies.map((s) => (s.name === 'proc-mem-mmap' ? 5 : 1));
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / total);
}

export type ScorecardOptions = {
  strategies: readonly StrategyDefinition[];
  /** The wall-clock budget, shared out by weight (the seed 000 design gets half). */
  timeMs: number;
  /** Instead of time: this many traces per strategy (deterministic; for tests). */
  runsPerStrategy?: number;
  seed: number;
  kernel: KernelChoice;
  corpus: readonly Repro[];
  /** Worker threads each strategy's campaign runs on (harness/pool.ts). */
  workers: number;
  /** A step that runs longer is a `hang` failure. */
  stepTimeoutMs: number;
  onStrategy?: (name: string, runs: number, broken: number) => void;
};

/**
 * Each strategy in turn, for its share of the budget, on `workers` worker threads: a
 * scorecard on two cores searches each design about twice as long as one would, and a hung
 * step is reported as a `hang` of that design instead of stopping the card.
 */
export async function runScorecard(opts: ScorecardOptions): Promise<Scorecard> {
  const card: Scorecard = { timeMs: opts.timeMs, kernel: opts.kernel, strategies: {}, runs: {}, flaws: [], coverage: {} };
  const coverage = emptyCoverage();
  const expectedSignatures = new Set(opts.corpus.filter((r) => r.expect === 'reproduces').map((r) => failureSignature(r)));
  const share = shares(opts.strategies);
  for (const [i, s] of opts.strategies.entries()) {
    const result = await runCampaignParallel({
      seed: opts.seed, kernel: opts.kernel, strategies: [s], config: FUZZ_CONFIG, stepsMax: STEPS_MAX,
      workers: opts.workers, stepTimeoutMs: opts.stepTimeoutMs,
      ...(opts.runsPerStrategy !== undefined ? { runs: opts.runsPerStrategy } : { timeMs: opts.timeMs * share[i] }),
    });
    addCoverage(coverage, result.coverage);
    const row: Record<string, Verdict> = {};
    for (const id of SCORED) row[id] = { status: 'holds' };
    for (const f of result.failures) {
      const cause = campaignCause(f);
      const expected = expectedSignatures.has(failureSignature(f));
      const promised = s.promises.includes(f.invariant);
      card.flaws.push({
        strategy: s.name, invariant: f.invariant, cause, title: causeTitle(f.invariant, cause), message: f.message,
        reproLength: f.ops.length, repro: f.ops, foundAfterMs: f.foundAfterMs, run: f.run, expected, promised,
      });
      // The cell: the invariant's shortest repro (then the first found); expected when every cause of it is.
      const prev = row[f.invariant];
      const shorter = prev.status !== 'broken' || f.ops.length < prev.reproLength || (f.ops.length === prev.reproLength && f.foundAfterMs < prev.foundAfterMs);
      const allExpected = expected && (prev.status !== 'broken' || prev.expected);
      row[f.invariant] = shorter
        ? { status: 'broken', reproLength: f.ops.length, foundAfterMs: f.foundAfterMs, repro: f.ops, expected: allExpected, promised, message: f.message }
        : { ...(prev as Extract<Verdict, { status: 'broken' }>), expected: allExpected };
    }
    card.strategies[s.name] = row;
    card.runs[s.name] = result.runs;
    opts.onStrategy?.(s.name, result.runs, result.failures.length);
  }
  card.coverage = coverageJson(coverage);
  return card;
}

/** The table: one row per strategy, one column per invariant. */
export function formatScorecard(card: Scorecard): string {
  const names = Object.keys(card.strategies);
  const cols = SCORED;
  const cell = (v: Verdict) => v.status === 'holds' ? 'holds' : `✗${v.reproLength} ${(v.foundAfterMs / 1000).toFixed(1)}s${v.expected ? ' exp' : ''}${v.promised ? '' : ' np'}`;
  const width = Math.max(...names.map((n) => n.length), 'strategy'.length);
  const colWidth = cols.map((c) => Math.max(c.length, ...names.map((n) => cell(card.strategies[n][c]).length)));
  const lines = [
    ['strategy'.padEnd(width), ...cols.map((c, i) => c.padEnd(colWidth[i]))].join(' │ '),
    ['─'.repeat(width), ...colWidth.map((w) => '─'.repeat(w))].join('─┼─'),
  ];
  for (const n of names) lines.push([n.padEnd(width), ...cols.map((c, i) => cell(card.strategies[n][c]).padEnd(colWidth[i]))].join(' │ '));
  lines.push('', '✗N T: broken, shortest repro N steps, found after T; exp: recorded in corpus/ as an expected flaw of the design; np: not among the invariants the design promises.');
  lines.push('', `${card.flaws.length} distinct flaw${card.flaws.length === 1 ? '' : 's'} (strategy, invariant, cause):`);
  for (const f of card.flaws) {
    lines.push(`  ${f.strategy} ${f.invariant} ${f.cause}${f.expected ? ' (expected)' : ' (new)'} — ${f.title || f.invariant}; ${f.reproLength} steps, found after ${(f.foundAfterMs / 1000).toFixed(1)} s`);
    lines.push(`      ${f.message}`);
    f.repro.forEach((op, i) => lines.push(`      ${String(i + 1).padStart(2)}. ${formatOp(op)}`));
  }
  return lines.join('\n');
}
