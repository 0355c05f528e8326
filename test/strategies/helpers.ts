/** Shared helpers for the strategy tests: step-and-expect-ok, PTE lookup, live frames, nested schedules. */
import { expect } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import type { PteView } from '../../kernel-api/state.ts';
import type { ModelKernel } from '../../model/kernel.ts';
import type { StrategyDefinition } from '../../kernel-api/strategy.ts';
import { FUZZ_CONFIG } from '../../harness/config.ts';
import { Session, type TopResult } from '../../properties/session.ts';
import { SegmentQueue, type PointContext, type SchedPolicy } from '../../properties/sched.ts';

/** Step `op` and return its value, failing the test on an errno or a signal. */
export function okValue(k: ModelKernel, op: Op): number {
  const o: Outcome = k.step(op);
  expect(o, JSON.stringify(op)).toMatchObject({ kind: 'ok' });
  return (o as { value: number }).value;
}

export function pteAt(k: ModelKernel, pid: number, addr: number): PteView | undefined {
  return new Map(k.inspect.ptes(pid)).get(addr);
}

export function presentPfn(k: ModelKernel, pid: number, addr: number): number {
  const pte = pteAt(k, pid, addr);
  expect(pte?.kind, `P${pid} at ${addr}`).toBe('present');
  return (pte as Extract<PteView, { kind: 'present' }>).pfn;
}

/** Live frames other than the zero page. */
export function liveFrames(k: ModelKernel): number[] {
  return [...k.inspect.frames()].filter((f) => f.kind !== 'zero').map((f) => f.pfn);
}

/**
 * A scheduling policy for the locking tests: it starts the pending operation (the first
 * candidate) at the first scheduling point that `when` accepts, and records every point
 * the running operations passed (`where`, by task), so a test can say where it switched.
 */
export class AtPoint implements SchedPolicy {
  readonly seen: Array<{ task: number; where: string }> = [];
  private readonly counts = new Map<string, number>();
  fired = 0;
  constructor(private readonly when: (ctx: PointContext, nth: number) => boolean, private readonly times = 1) {}
  decide(ctx: PointContext): Op | null {
    this.seen.push({ task: ctx.task, where: ctx.where });
    const key = `${ctx.task}:${ctx.where}`;
    const nth = this.counts.get(key) ?? 0;
    this.counts.set(key, nth + 1);
    if (this.fired >= this.times || !this.when(ctx, nth)) return null;
    this.fired += 1;
    return ctx.candidates[0] ?? null;
  }
}

/** The `nth` (from 0) point named `where` that task `task` passes. */
export function atNth(task: number, where: string, nth = 0): (ctx: PointContext, n: number) => boolean {
  return (ctx, n) => ctx.task === task && ctx.where === where && n === nth;
}

/**
 * Run `setup` one step at a time (each must be violation-free), then `top` with `nested`
 * pending, started where `policy` says. Returns the session and the top-level result.
 */
export function runNested(
  kernel: 'model' | 'impl', strategies: readonly StrategyDefinition[], setup: readonly Op[], top: Op, nested: readonly Op[], policy: SchedPolicy,
): { s: Session; r: TopResult } {
  const s = new Session({ kernel, config: FUZZ_CONFIG, strategies });
  for (const op of setup) {
    const { violation } = s.step(op);
    expect(violation, `setup ${JSON.stringify(op)}`).toBeNull();
  }
  const r = s.stepTop(top, new SegmentQueue([...nested]), policy);
  return { s, r };
}

/** The outcome of `op` in a top-level result (it must have completed). */
export function outcomeOf(r: TopResult, op: Op): Outcome {
  const c = r.ran.find((x) => x.op === op);
  expect(c, `${JSON.stringify(op)} completed`).toBeDefined();
  return c!.outcome;
}

/** A session on `kernel` with `strategies`, checking every invariant after every step. */
export function session(kernel: 'model' | 'impl', strategies: readonly StrategyDefinition[]): Session {
  return new Session({ kernel, config: FUZZ_CONFIG, strategies });
}

/** Step `op` in `s`: no violation, an ok outcome; its value. */
export function stepOk(s: Session, op: Op): number {
  const { outcome, violation } = s.step(op);
  expect(violation, JSON.stringify(op)).toBeNull();
  expect(outcome, JSON.stringify(op)).toMatchObject({ kind: 'ok' });
  return (outcome as { value: number }).value;
}

/**
 * Run `top` in `s` with `nested` pending, started where `policy` says. A last pending
 * operation that no AtPoint policy starts (fault injection off, task 0) keeps the scheduler
 * asking the policy at every later point, so `seen` lists them all.
 */
export function stepNested(s: Session, top: Op, nested: readonly Op[], policy: SchedPolicy): TopResult {
  return s.stepTop(top, new SegmentQueue([...nested, SENTINEL]), policy);
}

const SENTINEL: Op = { op: 'fail_nth', nth: 0 };

/** The PTE `pid` has at `addr` in a session's primary kernel. */
export function ptePid(s: Session, pid: number, addr: number): PteView | undefined {
  return new Map(s.primary.inspect.ptes(pid)).get(addr);
}

/** The kernels the locking tests run on (the implementation once it is converted, issue 15). */
export const KERNELS = ['model', 'impl'] as const;
