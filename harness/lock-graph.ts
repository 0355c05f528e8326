/**
 * lockdep's dependency graph across a campaign's traces. lockdep keeps one graph for the
 * whole boot: class A taken under B in one task's path and B under A in another's is a
 * possible deadlock even if no single path takes both orders. A trace's own graph sees
 * only its own paths (kernel-api/locks.ts), so the campaign merges the edges every run
 * recorded and looks for a pair of classes taken in both orders by two runs of one
 * strategy group. Such a pair is reported as `lock-order` with one repro that plays both
 * traces in one kernel — the first, whose processes have all exited by its end, then the
 * second with its pids, tids and file ids moved past the first's — so that the lock table
 * of that one kernel closes the cycle, and the repro replays like any other. Only cycles of
 * two classes (ABBA) are looked for. Deterministic in the set of runs: edges are taken in
 * run order, the first run of each edge is kept.
 */
import type { Op } from '../kernel-api/op.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import { causeOf } from '../properties/invariants/index.ts';
import { replayOps } from '../properties/trace.ts';
import { generatedRun, groupOf, runSeed, sessionBase, strategyName, traceOf, type LockEdge, type RunPlan } from './runner.ts';
import { shrinkOps } from './shrink.ts';
import type { CampaignFailure } from './campaign.ts';

/** The ids a trace allocated (pids and tids share one counter; files another): the largest of each. */
function idsUsed(ops: readonly Op[], outcomes: ReadonlyMap<Op, { kind: string; value?: number }>): { task: number; file: number } {
  let task = 0;
  let file = 0;
  for (const op of ops) {
    const o = outcomes.get(op);
    if (o?.kind !== 'ok' || typeof o.value !== 'number') continue;
    if (op.op === 'spawn' || op.op === 'fork' || op.op === 'clone') task = Math.max(task, o.value);
    if (op.op === 'creat') file = Math.max(file, o.value);
  }
  return { task, file };
}

const TASK_FIELDS = ['pid', 'target', 'tid'] as const;
const FILE_OPS: ReadonlySet<string> = new Set(['pread', 'pwrite', 'truncate', 'mmap']);

/** `op` as it reads after `dt` tasks and `df` files were made before it (task 0, the kernel's own, stays). */
export function shiftIds(op: Op, dt: number, df: number): Op {
  const o = structuredClone(op) as Op & Record<string, unknown>;
  const shift = (rec: Record<string, unknown>, key: string) => {
    const v = rec[key];
    if (typeof v === 'number' && v > 0) rec[key] = v + dt;
  };
  for (const k of TASK_FIELDS) shift(o, k);
  if (o.op === 'drv') for (const k of ['pid', 'target']) shift(o.args, k);
  if (o.switches !== undefined) o.switches = o.switches.map((s) => ({ at: s.at, to: s.to > 0 ? s.to + dt : s.to }));
  if (FILE_OPS.has(o.op) && typeof o.file === 'number') o.file += df;
  return o;
}

/** The class pairs (sorted, NUL-joined) a run's edges take both ways. */
function pairsBothWays(edges: readonly LockEdge[]): string[] {
  const mine = new Set<string>();
  for (const e of edges) mine.add(`${e.from}\u0000${e.to}`);
  const out: string[] = [];
  for (const e of edges) if (e.from <= e.to && mine.has(`${e.to}\u0000${e.from}`)) out.push(`${e.from}\u0000${e.to}`);
  return out;
}

/**
 * What a worker posts of a run's edges: those it has not posted for an earlier run (a
 * worker's runs come in increasing order, so its first run of an edge is its lowest, and the
 * supervisor keeps the lowest over all workers: the graph is the same for any worker count),
 * and the pairs the run takes both ways, which the thinned edges may no longer show. Most
 * runs take only edges already seen, and the structured clone of every edge of every run was
 * a twentieth of a worker's time.
 */
export function thinEdges(edges: readonly LockEdge[], posted: Set<string>): { edges: LockEdge[]; bothWays: string[] } {
  const fresh: LockEdge[] = [];
  for (const e of edges) {
    const key = `${e.from}\u0000${e.to}`;
    if (posted.has(key)) continue;
    posted.add(key);
    fresh.push({ from: e.from, to: e.to, where: e.where });
  }
  return { edges: fresh, bothWays: pairsBothWays(edges) };
}

/** The edges of a campaign's runs: each edge's lowest run, and the class pairs one run takes both ways. */
export class CampaignLockGraph {
  private readonly first = new Map<string, number>();
  private readonly own = new Set<string>();

  /**
   * A run's edges (in any order of runs: the lowest run of an edge is kept). `bothWays`:
   * the class pairs the run takes both ways, when `edges` were thinned (thinEdges) and no
   * longer show them.
   */
  add(run: number, edges: readonly LockEdge[], bothWays?: readonly string[]): void {
    for (const e of edges) {
      const key = `${e.from}\u0000${e.to}`;
      const had = this.first.get(key);
      if (had === undefined || run < had) this.first.set(key, run);
    }
    for (const pair of bothWays ?? pairsBothWays(edges)) this.own.add(pair);
  }

  /**
   * The lock-order failures two runs of one group close between them and neither closes
   * alone, each with its repro shrunk to the same cause; `known` are the signatures
   * (`strategy/invariant/cause`) already found, which are not reported again.
   */
  failures(plan: RunPlan, known: ReadonlySet<string>): CampaignFailure[] {
    const out: CampaignFailure[] = [];
    const done = new Set<string>();
    for (const key of [...this.first.keys()].sort()) {
      const x = this.first.get(key)!;
      const [a, b] = key.split('\u0000') as [string, string];
      const pair = [a, b].sort().join('\u0000');
      if (done.has(pair) || this.own.has(pair)) continue;
      const y = this.first.get(`${b}\u0000${a}`);
      if (y === undefined || y === x || groupOf(plan, x) !== groupOf(plan, y)) continue;
      done.add(pair);
      const failure = combined(plan, Math.min(x, y), Math.max(x, y), known);
      if (failure !== null) out.push(failure);
    }
    return out;
  }
}

/**
 * One trace of both: `a` (run to its end, every process of it exited), then `b` with its
 * pids, tids and file ids moved past those `a` made (`aOutcomes`: what `a`'s ops returned).
 */
export function playBoth(a: readonly Op[], aOutcomes: ReadonlyMap<Op, Outcome>, b: readonly Op[]): Op[] {
  const used = idsUsed(a, aOutcomes as ReadonlyMap<Op, { kind: string; value?: number }>);
  return [...a.map((op) => structuredClone(op)), ...b.map((op) => shiftIds(op, used.task, used.file))];
}

/** The two runs' traces in one kernel, if that closes a lock-order cycle there; shrunk. */
function combined(plan: RunPlan, x: number, y: number, known: ReadonlySet<string>): CampaignFailure | null {
  const base = sessionBase(plan, x);
  const quiet = { ...base, only: new Set<never>() };
  const gx = generatedRun(quiet, traceOf(plan, x), x);
  const gy = generatedRun(quiet, traceOf(plan, y), y);
  if (gx.abandoned || gy.abandoned || gx.raised !== null) return null;
  const ops = playBoth(gx.ops, gx.outcomes, gy.ops);
  const session = { ...base, only: new Set(['lock-order'] as const) };
  const r = replayOps(session, ops);
  if (r.failure?.invariant !== 'lock-order' || !/circular/.test(r.failure.message)) return null;
  const cause = causeOf(r.failure, ops[r.failure.step]);
  const strategy = strategyName(plan, x);
  if (known.has(`${strategy}/lock-order/${cause}`)) return null;
  const shrunk = shrinkOps(session, ops.slice(0, r.failure.step + 1), 'lock-order', { cause });
  const message = replayOps(session, shrunk.ops).failure?.message ?? r.failure.message;
  return {
    invariant: 'lock-order', cause, kernel: plan.kernel, strategy, seed: runSeed(plan.seed, x), run: x, foundAfterMs: 0,
    message: `${message} (the orders of runs ${x} and ${y}, played in one kernel)`, ops: shrunk.ops, originalLength: ops.length,
  };
}
