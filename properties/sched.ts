/**
 * The nested scheduler: runs a top-level operation and, at its scheduling points
 * (kernel-api/sched.ts), starts other tasks' operations nested, to completion.
 *
 * A trace is a list of operations in the order they start. The first runs at top level;
 * at each of its scheduling points a decision may start the next operation of the trace
 * (when its task is not already in the kernel), which runs to completion — itself
 * preemptible the same way — before the preempted task resumes. The decisions are data in
 * the trace (`Op.switches`: at the op's k-th point, task `to` starts), so a repro replays
 * the same interleaving byte for byte. Generation decides with a policy — random switches,
 * or PCT (Burckhardt et al., ASPLOS 2010: random task priorities and d−1 priority change
 * points; a bug of depth d is found with probability at least 1/(n·k^(d−1))) — and records
 * what it decided. PCT's rule decides at preemption points; when a nested operation
 * completes, the task it preempted resumes (the stack order of nesting).
 *
 * What this cannot emulate, it says: a nested operation that must wait for a lock a
 * preempted task holds (`WouldBlock`). At its first lock it has changed nothing, so it is
 * not started there (the attempt stays in the trace, so a replay repeats it); later the
 * schedule is `InfeasibleSchedule` and the run is abandoned, not judged.
 */
import type { Kernel } from '../kernel-api/kernel.ts';
import type { Op } from '../kernel-api/op.ts';
import { callerPid, taskOf } from '../kernel-api/op.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import { LockViolation } from '../kernel-api/locks.ts';
import { WouldBlock, type SchedHooks, type Tid } from '../kernel-api/sched.ts';
import type { StrategyDefinition } from '../kernel-api/strategy.ts';
import type { ProcessView, VmaView } from '../kernel-api/state.ts';

export type Completed = {
  readonly op: Op; readonly outcome: Outcome;
  /**
   * A store's VMA as it completed (a `write` in a concurrent step): a state judged once the
   * step is quiescent may no longer show it (its process exited meanwhile), yet the cause of
   * what the store changed depends on it (file-integrity's store-through-mirror).
   */
  readonly vma?: VmaView;
};

/**
 * An operation that took effect before it completed (SchedHooks.linearized): ghost memory
 * takes its effect before `ran[before]` (or last, if none completed since), the rest of it
 * (a populate's COW copies) at its completion.
 */
export type Linearized = { readonly op: Op; readonly outcome: Outcome; readonly before: number };

/** Where a nested operation started: the task it preempted, at which point, holding what. */
export type Preemption = {
  readonly task: Tid;
  readonly op: Op;
  /** The preempted operation's point index (`Switch.at`) and the point's name. */
  readonly at: number;
  readonly where: string;
  /** The locks the preempted task held there, oldest first (LockTable.heldNames). */
  readonly held: readonly string[];
};

/** Where the operations that may start nested come from: the rest of the trace, or a generated segment. */
export interface PendingOps {
  peek(): Op | undefined;
  take(): Op;
}

/** What a policy sees at a scheduling point. */
export type PointContext = {
  /** The running operation and its task. */
  readonly op: Op;
  readonly task: Tid;
  /** The point's index within the running operation, and within the whole top-level step. */
  readonly point: number;
  readonly global: number;
  readonly where: string;
  /** The operations that could start now (their tasks are not in the kernel), in trace order. */
  readonly candidates: readonly Op[];
};

/** Decides at scheduling points: the candidate to start, or null to let the running task go on. */
export interface SchedPolicy {
  decide(ctx: PointContext): Op | null;
}

/** A schedule the nested scheduler cannot emulate: the run is abandoned. */
export class InfeasibleSchedule extends Error {
  override readonly name = 'InfeasibleSchedule' as const;
}

/** `points` counts on from `base`, the points the operation passed in earlier attempts that were not started. */
type Frame = { readonly op: Op; readonly task: Tid; readonly base: number; points: number; nestedStarted: boolean };

/**
 * The points each operation passed in attempts that were not started (it waited at its
 * entry lock and was un-taken), for one replay of a trace: a later attempt numbers its
 * points on from there, so that a recorded switch names one point of one attempt (at
 * attempt 1 the policy may let the point go, at attempt 2 start something there).
 */
export type UntakenPoints = Map<Op, number>;

/**
 * Run `top` on `kernel`, starting operations of `pending` nested where the recorded
 * switches (policy null) or the policy say. Returns the operations in the order they
 * completed; `started` receives them in the order they started (the trace order).
 * Errors of the kernel (assertions, lock violations) propagate; `ran` then holds what
 * completed before.
 */
export class NestedScheduler implements SchedHooks {
  readonly ran: Completed[] = [];
  readonly started: Op[] = [];
  /** For each operation started nested, where (stories tell it). */
  readonly preemptions = new Map<Op, Preemption>();
  /**
   * The process table (pids, credentials, parents, states) at each instant an operation of
   * the step completed: [0] as the step began, [j + 1] right after `ran[j]`. What an
   * operation's permission check saw lies among those of its interval (properties/session.ts).
   */
  readonly processTables: ProcessView[][] = [];
  /** The operations that took effect before they completed, in the order they did. */
  readonly early: Linearized[] = [];
  private readonly stack: Frame[] = [];
  private global = 0;

  constructor(
    private readonly kernel: Kernel, private readonly pending: PendingOps, private readonly policy: SchedPolicy | null,
    private readonly strategies: readonly StrategyDefinition[] = [],
    private readonly untaken: UntakenPoints = new Map(),
  ) {}

  run(top: Op): void {
    const k = this.kernel;
    const saved = k.locks.hooks;
    k.locks.hooks = this;
    try {
      this.processTables.push(processTable(k));
      this.runOne(top, false);
    } finally {
      k.locks.hooks = saved;
    }
  }

  preempt(where: string): void {
    const top = this.stack[this.stack.length - 1];
    if (top === undefined) return;
    const at = top.points++;
    const global = this.global++;
    const next = this.pending.peek();
    if (next === undefined) return;
    let start: Op | null = null;
    if (this.policy === null) {
      const to = taskOf(next);
      if (top.op.switches?.some((s) => s.at === at && s.to === to) === true && !this.busy(to)) start = next;
      if (start !== null && this.tearsDownInside(start)) throw new InfeasibleSchedule(`${start.op} of P${callerPid(start)} cannot start while another of its threads is in the kernel (the emulated exit tears the process down at once)`);
    } else {
      const candidates = this.busy(taskOf(next)) || this.tearsDownInside(next) ? [] : [next];
      if (candidates.length === 0) return;
      start = this.policy.decide({ op: top.op, task: top.task, point: at, global, where, candidates });
      if (start !== null) (top.op.switches ??= []).push({ at, to: taskOf(start) });
    }
    if (start === null) return;
    this.pending.take();
    this.preemptions.set(start, { task: top.task, op: top.op, at, where, held: this.kernel.locks.heldNames(top.task) });
    // Only an operation that ran changed anything: one not started after all (it waited at
    // its entry lock) leaves the preempted one as it was, un-takeable still.
    if (this.runOne(start, true)) top.nestedStarted = true;
  }

  linearized(outcome: Outcome): void {
    const top = this.stack[this.stack.length - 1];
    if (top !== undefined) this.early.push({ op: top.op, outcome, before: this.ran.length });
  }

  private busy(task: Tid): boolean {
    return this.stack.some((f) => f.task === task);
  }

  /**
   * An exit_group or OOM kill of a process one of whose threads is in the kernel (on the
   * stack). Linux tears such a process down only when that thread returns (the last
   * mmput runs exit_mmap, the last put of the file table closes it); the emulated exit does
   * it at once, so this interleaving is not explored (README: simplifications).
   */
  private tearsDownInside(op: Op): boolean {
    if (op.op !== 'exit' && op.op !== 'oom') return false;
    return this.stack.some((f) => callerPid(f.op) === op.pid);
  }

  /** Run `op` as a frame; false when it was not started after all (it waited at its entry lock, having changed nothing). */
  private runOne(op: Op, nested: boolean): boolean {
    const base = this.untaken.get(op) ?? 0;
    const frame: Frame = { op, task: taskOf(op), base, points: base, nestedStarted: false };
    this.stack.push(frame);
    this.started.push(op);
    try {
      const outcome = this.kernel.step(op);
      const vma = op.op === 'write' ? vmaAt(this.kernel, op.pid, op.addr) : undefined;
      this.ran.push(vma === undefined ? { op, outcome } : { op, outcome, vma });
      this.processTables.push(processTable(this.kernel));
      return true;
    } catch (e) {
      if (!(e instanceof WouldBlock) || e.tid !== frame.task) throw e;
      if (!nested) {
        throw new LockViolation(`${e.message}, which is not running: it would sleep forever`, 'deadlock');
      }
      // An operation whose first scheduling point is its entry lock (CONCURRENCY-SPEC.md)
      // changed nothing when it waits there. Others may have changed state before their
      // first point (close drops the fd before ->release; a driver call allocates): never
      // un-taken.
      if (this.waitsFirst(op) && frame.points - frame.base <= 1 && !frame.nestedStarted && !this.kernel.locks.holdsAny(frame.task)) {
        // It waited at its first lock, having changed nothing: it is not started here.
        this.untaken.set(op, frame.points);
        this.started.pop();
        this.preemptions.delete(op);
        this.unTake(op);
        return false;
      }
      throw new InfeasibleSchedule(`the nested schedule cannot go on: ${e.message}`);
    } finally {
      this.stack.pop();
    }
  }

  /** An operation that changes nothing before its first scheduling point: a core one that takes its entry lock there, or a driver call that says so. */
  private waitsFirst(op: Op): boolean {
    if (op.op !== 'drv') return ENTRY_LOCKED.has(op.op);
    return this.strategies.find((s) => s.name === op.strategy)?.calls.find((c) => c.name === op.call)?.waitsFirst === true;
  }

  private unTake(op: Op): void {
    (this.pending as PendingOps & { unTake?(op: Op): void }).unTake?.(op);
  }
}


function processTable(k: Kernel): ProcessView[] {
  return [...k.inspect.processes()].map((p) => ({ ...p, rss: { ...p.rss } }));
}

/** Operations that take their entry lock before they change anything. */
const ENTRY_LOCKED: ReadonlySet<string> = new Set([
  'mmap', 'munmap', 'mprotect', 'mremap', 'madvise', 'fork', 'exit', 'oom', 'read', 'write',
  'proc_mem_read', 'proc_mem_write', 'process_vm_readv', 'process_vm_writev', 'pagemap_read',
  'pagemap_scan', 'map_files_readdir', 'clear_refs', 'uffd_register_wp', 'mincore', 'mlock', 'munlock', 'mlockall', 'munlockall', 'msync',
  'vmsplice', 'pipe_read',
]);

/** The rest of a trace (a replay): operations from `from` on, taken in order. */
export class TraceCursor implements PendingOps {
  constructor(private readonly ops: readonly Op[], public at: number) {}
  peek(): Op | undefined {
    return this.ops[this.at];
  }
  take(): Op {
    return this.ops[this.at++]!;
  }
  unTake(): void {
    this.at -= 1;
  }
}

/** A generated segment's other operations, in order. */
export class SegmentQueue implements PendingOps {
  constructor(readonly ops: Op[]) {}
  peek(): Op | undefined {
    return this.ops[0];
  }
  take(): Op {
    return this.ops.shift()!;
  }
  unTake(op: Op): void {
    this.ops.unshift(op);
  }
}

export const NO_PENDING: PendingOps = { peek: () => undefined, take: () => { throw new Error('no pending operation'); } };

/** A deterministic stream of integers for a policy, from one seed (splitmix32). */
export class PolicyRandom {
  private s: number;
  constructor(seed: number) {
    this.s = seed | 0;
  }
  int(max: number): number {
    this.s = (this.s + 0x9e3779b9) | 0;
    let z = this.s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return ((z ^ (z >>> 16)) >>> 0) % max;
  }
}

/** Random switches: at each point, the next operation starts with probability 1 / `oneIn`. */
export class RandomSwitches implements SchedPolicy {
  constructor(private readonly rng: PolicyRandom, private readonly oneIn = 3) {}
  decide(ctx: PointContext): Op | null {
    return this.rng.int(this.oneIn) === 0 ? ctx.candidates[0] ?? null : null;
  }
}

/**
 * PCT over a segment's tasks: distinct random priorities (all above d), and d−1 change
 * points among the first `pointsMax` scheduling points, where the running task's priority
 * drops below every initial one. A candidate whose task has a higher priority than the
 * running task preempts it.
 */
export class Pct implements SchedPolicy {
  private readonly priority = new Map<Tid, number>();
  private readonly changeAt: number[];

  constructor(rng: PolicyRandom, tasks: readonly Tid[], depth: number, pointsMax = 16) {
    const order = [...new Set(tasks)];
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    order.forEach((t, i) => this.priority.set(t, depth + order.length - i));
    this.changeAt = Array.from({ length: Math.max(0, depth - 1) }, () => rng.int(pointsMax));
  }

  decide(ctx: PointContext): Op | null {
    const i = this.changeAt.indexOf(ctx.global);
    if (i !== -1) this.priority.set(ctx.task, i + 1);
    const mine = this.priority.get(ctx.task) ?? 0;
    const c = ctx.candidates[0];
    if (c === undefined) return null;
    return (this.priority.get(taskOf(c)) ?? 0) > mine ? c : null;
  }
}

/** The VMA of `pid` holding `addr`, if any. */
function vmaAt(k: Kernel, pid: number, addr: number): VmaView | undefined {
  if (k.inspect.process(pid) === undefined) return undefined;
  for (const v of k.inspect.vmas(pid)) if (v.start <= addr && addr < v.end) return { ...v };
  return undefined;
}
