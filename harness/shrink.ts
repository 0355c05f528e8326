/**
 * Shrinking a failing trace of concrete operations to a 1-minimal one: removing any
 * single operation, or any process with all it did, makes the failure go away (or turn
 * into a different one). Placement is pinned first (each mmap MAP_FIXED where it landed),
 * so a removal does not move later mappings. Delta debugging removes chunks first — halves, quarters, …
 * single operations — then whole processes, then pairs of operations on a short trace;
 * then a simplification pass makes what is left plainer — fewer pages, smaller values,
 * fds and file indexes, plain prot and flags, no hint, a forked child played by a spawned
 * process or by its parent, an mprotect or truncate folded into the mmap or creat it
 * modifies — and the removal passes run again, until nothing changes. The failure must
 * stay the same bug: the same invariant and, given `cause`, the same cause (its signature,
 * harness/repro.ts); a trace that now breaks another invariant, or the same one another
 * way, does not count as still failing — a shorter trace of another flaw is not a repro
 * of this one (syzkaller's repro checks the crash title while it reduces, for this reason).
 */
import type { Op } from '../kernel-api/op.ts';
import type { InvariantId } from '../kernel-api/strategy.ts';
import { replayOps, type TraceResult } from '../properties/trace.ts';
import type { SessionOptions } from '../properties/session.ts';
import { causeOf } from '../properties/invariants/index.ts';

export type ShrinkStats = { replays: number };
/** How a candidate is replayed: in this thread (replayOps), or with a step time limit on a worker (harness/limited-replayer.ts). */
export type Replay = (opts: SessionOptions, ops: readonly Op[]) => TraceResult;

export type ShrinkOptions = {
  replaysMax?: number; onReplay?: () => void;
  /** Every replay of the shrink, candidates and the runs that read outcomes alike (default: replayOps). */
  replay?: Replay;
  /**
   * Make what is left plainer (fewer pages, smaller values …) besides removing operations
   * (default true). Off for a `hang`: its predicate is a time limit, and halving a length
   * that a step's time grows with walks the trace to the edge of the limit, where it hangs
   * on one replay and not the next.
   */
  simplify?: boolean;
  /** The cause the failure must keep (properties/invariants causeOf); any cause of the invariant when absent. */
  cause?: string;
};

/**
 * The options' replay travels with the session options (spread copies it), so that every
 * helper below replays as the caller asked without another parameter each.
 */
const REPLAY = Symbol('replay');
type WithReplay = SessionOptions & { [REPLAY]?: Replay };
const replayShrunk: Replay = (opts, ops) => ((opts as WithReplay)[REPLAY] ?? replayOps)(opts, ops);

/** Rounds of removal + simplification at most (each round must change something to go on). */
const ROUNDS_MAX = 8;

/**
 * The shortest prefix that still fails, then alternately ddmin over operations, removal of
 * whole processes and simplification, until none changes anything. `replaysMax` bounds the work.
 */
export function shrinkOps(given: SessionOptions, ops: readonly Op[], invariant: InvariantId, options: ShrinkOptions = {}): { ops: Op[]; stats: ShrinkStats } {
  const opts: WithReplay = options.replay === undefined ? given : { ...given, [REPLAY]: options.replay };
  const replaysMax = options.replaysMax ?? 20_000;
  const stats: ShrinkStats = { replays: 0 };
  const fails = (candidate: readonly Op[]): number => {
    stats.replays += 1;
    options.onReplay?.();
    const r = replayShrunk(opts, candidate);
    if (r.failure?.invariant !== invariant) return -1;
    return options.cause === undefined || causeOf(r.failure, candidate[r.failure.step]) === options.cause ? r.failure.step : -1;
  };
  const first = fails(ops);
  if (first < 0) return { ops: [...ops], stats };
  let current = ops.slice(0, first + 1);
  // Placement pinned first, so that removing an mmap does not move every later one.
  const pinned = pinPlacements(opts, current);
  if (pinned !== null) {
    const step = fails(pinned);
    if (step >= 0) current = pinned.slice(0, step + 1);
  }
  const removeAll = () => {
    for (;;) {
      const before = current.length;
      current = ddmin(current, fails, stats, replaysMax);
      current = removeProcesses(opts, current, fails, stats, replaysMax);
      if (current.length === before || stats.replays >= replaysMax) break;
    }
  };
  let settled = false;
  for (let round = 0; round < ROUNDS_MAX && stats.replays < replaysMax && !settled; round++) {
    removeAll();
    const fewer = removePairs(current, fails, stats, replaysMax);
    if (fewer.length < current.length) {
      current = fewer;
      continue;
    }
    current = simplifySchedule(current, fails, stats, replaysMax);
    const simpler = options.simplify === false ? current : simplify(opts, current, fails, stats, replaysMax);
    settled = JSON.stringify(simpler) === JSON.stringify(current);
    current = simpler;
  }
  // Out of rounds right after a simplification: removal once more, so the result is 1-minimal.
  if (!settled) removeAll();
  return { ops: current, stats };
}

/**
 * Each mmap that let the kernel choose its address (get_unmapped_area, top-down) rewritten
 * as MAP_FIXED at the address it got; null when there is none. Without this, removing one
 * mapping moves every later one, so the addresses later operations name miss and almost
 * no removal keeps the failure. The simplification pass takes the pins out again where the
 * failure does not need them.
 */
function pinPlacements(opts: SessionOptions, ops: Op[]): Op[] | null {
  const outcomes = replayShrunk({ ...opts, only: new Set() }, ops).outcomes;
  let changed = false;
  const pinned = ops.map((op, i) => {
    const o = outcomes[i];
    if (op.op !== 'mmap' || op.fixed === true || op.noreplace === true || o?.kind !== 'ok') return op;
    changed = true;
    return { ...op, addr: o.value, fixed: true };
  });
  return changed ? pinned : null;
}

/**
 * Fewer switches and fewer tasks: each recorded switch dropped, and each operation a
 * thread issues moved to its process's main thread, where the failure stays.
 */
function simplifySchedule(ops: Op[], fails: (c: readonly Op[]) => number, stats: ShrinkStats, replaysMax: number): Op[] {
  let current = ops;
  for (let i = current.length - 1; i >= 0 && stats.replays < replaysMax; i--) {
    const op = current[i]!;
    for (let k = (op.switches?.length ?? 0) - 1; k >= 0 && stats.replays < replaysMax; k--) {
      const sw = current[i]!.switches!;
      const edited: Op = { ...current[i]!, switches: sw.filter((_, j) => j !== k) };
      if (edited.switches!.length === 0) delete edited.switches;
      const candidate = current.map((o, j) => (j === i ? edited : o));
      const step = fails(candidate);
      if (step >= 0) current = candidate.slice(0, step + 1);
      if (i >= current.length) break;
    }
    if (i >= current.length || current[i]!.tid === undefined || stats.replays >= replaysMax) continue;
    const { tid: _tid, ...main } = current[i]!;
    const candidate = current.map((o, j) => (j === i ? (main as Op) : o));
    const step = fails(candidate);
    if (step >= 0) current = candidate.slice(0, step + 1);
  }
  return current;
}

/** Delta debugging: drop chunks of operations, halving the chunk size down to one. */
function ddmin(ops: Op[], fails: (c: readonly Op[]) => number, stats: ShrinkStats, replaysMax: number): Op[] {
  let current = ops;
  for (let chunk = Math.max(1, current.length >> 1); ; ) {
    let removed = false;
    for (let start = current.length - chunk; start >= 0 && stats.replays < replaysMax; start -= chunk) {
      const candidate = [...current.slice(0, start), ...current.slice(start + chunk)];
      if (candidate.length === 0) continue;
      const step = fails(candidate);
      if (step >= 0) {
        current = candidate.slice(0, step + 1);
        removed = true;
        start = Math.min(start, current.length);
      }
    }
    if (stats.replays >= replaysMax) break;
    if (chunk === 1 && !removed) break;
    if (!removed) chunk = Math.max(1, chunk >> 1);
  }
  return current;
}

/** Fields of an operation that name a process. */
const PID_FIELDS = ['pid', 'target', 'tid'] as const;

/**
 * Remove one process with everything it did: the spawn or fork that made it, every
 * operation that names it, its descendants likewise; later pids are renumbered down so
 * the rest of the trace still names the same processes.
 */
function removeProcesses(opts: SessionOptions, ops: Op[], fails: (c: readonly Op[]) => number, stats: ShrinkStats, replaysMax: number): Op[] {
  let current = ops;
  for (let pid = maxPid(opts, current); pid >= 1 && stats.replays < replaysMax; pid--) {
    const candidate = withoutProcess(opts, current, pid);
    if (candidate === null || candidate.length === 0) continue;
    const step = fails(candidate);
    if (step >= 0) current = candidate.slice(0, step + 1);
  }
  return current;
}

/** Pids each creating operation returned, by operation index. */
function createdPids(opts: SessionOptions, ops: readonly Op[]): Map<number, number> {
  const r = replayShrunk({ ...opts, only: new Set() }, ops);
  const created = new Map<number, number>();
  r.ops.forEach((op, i) => {
    const o = r.outcomes[i];
    if ((op.op === 'spawn' || op.op === 'fork' || op.op === 'clone') && o.kind === 'ok') created.set(i, o.value);
  });
  return created;
}

function maxPid(opts: SessionOptions, ops: readonly Op[]): number {
  return Math.max(0, ...createdPids(opts, ops).values());
}

function namesPid(op: Op, pid: number): boolean {
  for (const f of PID_FIELDS) if ((op as Record<string, unknown>)[f] === pid) return true;
  if (op.op === 'drv') return PID_FIELDS.some((f) => op.args[f] === pid);
  return op.switches?.some((sw) => sw.to === pid) === true;
}

function renumber(op: Op, gone: number): Op {
  return mapPids(op, (p) => (p > gone ? p - 1 : p));
}

/** The operation with every pid it names passed through `f`. */
function mapPids(op: Op, f: (pid: number) => number): Op {
  const shift = (v: unknown) => (typeof v === 'number' ? f(v) : v);
  const copy: Record<string, unknown> = { ...op };
  for (const k of PID_FIELDS) if (k in copy) copy[k] = shift(copy[k]);
  if (op.op === 'drv') {
    const args: Record<string, unknown> = { ...op.args };
    for (const k of PID_FIELDS) if (k in args) args[k] = shift(args[k]);
    copy.args = args;
  }
  if (op.switches !== undefined) copy.switches = op.switches.map((sw) => ({ at: sw.at, to: f(sw.to) }));
  return copy as Op;
}

/** The pid the fork at index `i` created, or null when it failed. */
function childOf(opts: SessionOptions, ops: readonly Op[], i: number): number | null {
  return createdPids(opts, ops.slice(0, i + 1)).get(i) ?? null;
}

function withoutProcess(opts: SessionOptions, ops: readonly Op[], pid: number): Op[] | null {
  const created = createdPids(opts, ops);
  const doomed = new Set([pid]);
  let creator = -1;
  for (const [i, p] of created) if (p === pid) creator = i;
  if (creator < 0) return null;
  const drop = new Set<number>([creator]);
  ops.forEach((op, i) => {
    if (op.op === 'fork' && doomed.has(op.pid) && created.has(i)) {
      doomed.add(created.get(i)!);
      drop.add(i);
    }
    if ([...doomed].some((d) => namesPid(op, d))) drop.add(i);
  });
  // Renumber from the highest doomed pid down, so each shift sees the pids it expects.
  let out = ops.filter((_, i) => !drop.has(i));
  for (const d of [...doomed].sort((a, b) => b - a)) out = out.map((op) => renumber(op, d));
  return out;
}

/** Traces this short get every pair of operations tried for removal (a quadratic number of replays). */
const PAIRS_LENGTH_MAX = 24;

/**
 * Two operations that only go together — an mmap and the mprotect of it, a fork and the
 * child's exit — survive ddmin's single removals; on a short trace every pair is tried.
 */
function removePairs(ops: Op[], fails: (c: readonly Op[]) => number, stats: ShrinkStats, replaysMax: number): Op[] {
  if (ops.length > PAIRS_LENGTH_MAX) return ops;
  for (let j = ops.length - 1; j > 0; j--) {
    for (let i = j - 1; i >= 0 && stats.replays < replaysMax; i--) {
      const candidate = ops.filter((_, k) => k !== i && k !== j);
      const step = fails(candidate);
      if (step >= 0) return candidate.slice(0, step + 1);
    }
  }
  return ops;
}

/** Numeric fields that count something, with the least value each may take. */
const SIZE_FIELDS: ReadonlyArray<[string, number]> = [
  ['lengthPages', 1], ['oldPages', 1], ['newPages', 1], ['sizePages', 0], ['count', 1], ['nth', 1],
  ['value', 0], ['index', 0], ['pgoff', 0], ['fd', 0],
];
/** prot toward the plainest: read-write, then read-only. */
const PLAIN_PROTS = [3, 1];
/** Flags dropped (their absence is the plain case). */
const OPTIONAL_FLAGS = ['fixed', 'noreplace', 'maymove', 'mode', 'uid', 'newAddr'];

/**
 * One sweep over the operations, last to first: every simplification that keeps the
 * failure is kept. Sizes and values go down by bisection toward their least value.
 */
function simplify(opts: SessionOptions, ops: Op[], fails: (c: readonly Op[]) => number, stats: ShrinkStats, replaysMax: number): Op[] {
  let current = ops;
  const attempt = (i: number, op: Op): boolean => {
    if (stats.replays >= replaysMax || i >= current.length) return false;
    const candidate = [...current.slice(0, i), op, ...current.slice(i + 1)];
    const step = fails(candidate);
    if (step < 0) return false;
    current = candidate.slice(0, step + 1);
    return true;
  };
  current = foldSetUps(opts, current, fails, stats, replaysMax);
  for (let i = current.length - 1; i >= 0; i--) {
    for (const flag of OPTIONAL_FLAGS) {
      if (i < current.length && flag in current[i]) {
        const copy: Record<string, unknown> = { ...current[i] };
        delete copy[flag];
        attempt(i, copy as Op);
      }
    }
    const op = () => current[i] as Record<string, unknown> | undefined;
    // A child that inherits nothing it needs is a spawned process; its parent may then go.
    if (op()?.op === 'fork') attempt(i, { op: 'spawn' });
    // Or the child's part is played by the parent itself.
    if (op()?.op === 'fork') {
      const child = childOf(opts, current, i);
      if (child !== null) {
        const candidate = current.filter((_, k) => k !== i).map((o) => mapPids(o, (p) => (p === child ? (current[i] as { pid: number }).pid : p > child ? p - 1 : p)));
        const step = fails(candidate);
        if (step >= 0) current = candidate.slice(0, step + 1);
      }
    }
    if (op()?.op === 'mmap' && op()!.shared === true) attempt(i, { ...op(), shared: false } as Op);
    if (op()?.op === 'mmap' && op()!.fixed !== true && op()!.noreplace !== true && op()!.addr !== 0) attempt(i, { ...op(), addr: 0 } as Op);
    if (typeof op()?.prot === 'number') {
      for (const prot of PLAIN_PROTS) if (op() !== undefined && (op()!.prot as number) > prot && attempt(i, { ...op(), prot } as Op)) break;
    }
    for (const [field, least] of SIZE_FIELDS) {
      const v = op()?.[field];
      if (typeof v !== 'number' || v <= least) continue;
      // Bisection for the least value that still fails: hi fails, lo − 1 is known to pass or is below the floor.
      let lo = least;
      let hi = v;
      while (lo < hi && stats.replays < replaysMax && i < current.length) {
        const mid = lo + Math.floor((hi - lo) / 2);
        if (attempt(i, { ...op(), [field]: mid } as Op)) hi = mid;
        else lo = mid + 1;
      }
    }
  }
  return current;
}

/**
 * Set-up operations folded into the one they modify: an mprotect of exactly what an mmap
 * returned becomes that mmap's prot; a truncate of a file just created becomes its size.
 */
function foldSetUps(opts: SessionOptions, ops: Op[], fails: (c: readonly Op[]) => number, stats: ShrinkStats, replaysMax: number): Op[] {
  let current = ops;
  for (let j = current.length - 1; j > 0 && stats.replays < replaysMax; j--) {
    if (j >= current.length) continue;
    const outcomes = replayShrunk({ ...opts, only: new Set() }, current).outcomes;
    const later = current[j];
    let i = -1;
    let folded: Op | null = null;
    if (later.op === 'mprotect') {
      i = current.findIndex((op, k) => k < j && op.op === 'mmap' && op.pid === later.pid && op.lengthPages === later.lengthPages &&
        outcomes[k]?.kind === 'ok' && (outcomes[k] as { value: number }).value === later.addr);
      if (i >= 0) folded = { ...(current[i] as Extract<Op, { op: 'mmap' }>), prot: later.prot };
    } else if (later.op === 'truncate' && later.sizePages > 0) {
      i = current.findIndex((op, k) => k < j && op.op === 'creat' && outcomes[k]?.kind === 'ok' && (outcomes[k] as { value: number }).value === later.file);
      if (i >= 0) folded = { op: 'creat', sizePages: later.sizePages };
    }
    if (folded === null || i < 0) continue;
    const candidate = current.map((op, k) => (k === i ? folded! : op)).filter((_, k) => k !== j);
    const step = fails(candidate);
    if (step >= 0) current = candidate.slice(0, step + 1);
  }
  return current;
}
