/**
 * Shrinking a failing trace of concrete operations to a 1-minimal one: removing any
 * single operation makes the failure go away (or turn into a different one). Delta
 * debugging removes chunks first — halves, quarters, … single operations — and repeats
 * until nothing more can go. The failure must stay the same invariant; a trace that now
 * breaks another one does not count as still failing.
 */
import type { Op } from '../kernel-api/op.ts';
import type { InvariantId } from '../kernel-api/strategy.ts';
import { replayOps } from '../properties/trace.ts';
import type { SessionOptions } from '../properties/session.ts';

export type ShrinkStats = { replays: number };

/**
 * The shortest prefix that still fails, then alternately ddmin over operations and removal
 * of whole processes, until neither removes anything. `replaysMax` bounds the work.
 */
export function shrinkOps(opts: SessionOptions, ops: readonly Op[], invariant: InvariantId, replaysMax = 20_000): { ops: Op[]; stats: ShrinkStats } {
  const stats: ShrinkStats = { replays: 0 };
  const fails = (candidate: readonly Op[]): number => {
    stats.replays += 1;
    const r = replayOps(opts, candidate);
    return r.failure?.invariant === invariant ? r.failure.step : -1;
  };
  const first = fails(ops);
  if (first < 0) return { ops: [...ops], stats };
  let current = ops.slice(0, first + 1);
  for (;;) {
    const before = current.length;
    current = ddmin(current, fails, stats, replaysMax);
    current = removeProcesses(opts, current, fails, stats, replaysMax);
    if (current.length === before || stats.replays >= replaysMax) break;
  }
  return { ops: current, stats };
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
const PID_FIELDS = ['pid', 'target'] as const;

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
  const r = replayOps({ ...opts, only: new Set() }, ops);
  const created = new Map<number, number>();
  r.ops.forEach((op, i) => {
    const o = r.outcomes[i];
    if ((op.op === 'spawn' || op.op === 'fork') && o.kind === 'ok') created.set(i, o.value);
  });
  return created;
}

function maxPid(opts: SessionOptions, ops: readonly Op[]): number {
  return Math.max(0, ...createdPids(opts, ops).values());
}

function namesPid(op: Op, pid: number): boolean {
  for (const f of PID_FIELDS) if ((op as Record<string, unknown>)[f] === pid) return true;
  if (op.op === 'drv') return PID_FIELDS.some((f) => op.args[f] === pid);
  return false;
}

function renumber(op: Op, gone: number): Op {
  const shift = (v: unknown) => (typeof v === 'number' && v > gone ? v - 1 : v);
  const copy: Record<string, unknown> = { ...op };
  for (const f of PID_FIELDS) if (f in copy) copy[f] = shift(copy[f]);
  if (op.op === 'drv') {
    const args: Record<string, unknown> = { ...op.args };
    for (const f of PID_FIELDS) if (f in args) args[f] = shift(args[f]);
    copy.args = args;
  }
  return copy as Op;
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
