/**
 * Runs the model and the optimised kernel side by side on one generated trace, comparing
 * the scheduling points each step passes (by name, in order), the Outcome of every step,
 * the coverage points each has counted (kernel-api/coverage.ts) and observe() after it. A
 * divergence is reported with the seed, the step and the trace prefix as JSON lines, which
 * replay it.
 */
import seedrandom from 'seedrandom';
import type { Kernel } from '../../kernel-api/kernel.ts';
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import { ModelKernel } from '../../model/kernel.ts';
import { ImplKernel } from '../../impl/kernel.ts';
import { observe } from '../../properties/observe.ts';
import { TraceGen, traceConfig, type TraceKind } from './tracegen.ts';
import { COVERAGE_POINTS } from '../../kernel-api/coverage.ts';

export type TraceResult = {
  steps: number;
  divergence?: string;
  /** A KernelAssertionError both kernels threw (a bug they agree on), ending the trace. */
  bothThrew?: string;
  ops: Map<string, number>;
};

type StepResult = { outcome?: Outcome; error?: string; points: string[] };

/**
 * One step, with the scheduling points it passed (their `where`, in order): a recorded
 * schedule names points by their index in the op, so both kernels must pass the same ones.
 */
function stepOf(k: Kernel, op: Op): StepResult {
  const points: string[] = [];
  k.locks.hooks = { preempt: (where) => void points.push(where) };
  try {
    return { outcome: k.step(op), points };
  } catch (e) {
    return { error: e instanceof Error ? `${e.name}: ${e.message}` : String(e), points };
  } finally {
    k.locks.hooks = null;
  }
}

function describeDivergence(seed: string, trace: Op[], what: string, model: unknown, impl: unknown): string {
  return [
    `differential divergence, seed=${seed}, step ${trace.length}: ${what}`,
    `  model: ${JSON.stringify(model)}`,
    `  impl:  ${JSON.stringify(impl)}`,
    'trace:',
    ...trace.map((op, i) => `  ${i + 1}. ${JSON.stringify(op)}`),
  ].join('\n');
}

/** Structural equality of two JSON-shaped values (observations), stopping at the first difference. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  let na = 0;
  for (const key in a) {
    const va = (a as Record<string, unknown>)[key];
    if (va === undefined) continue;
    na += 1;
    if (!jsonEqual(va, (b as Record<string, unknown>)[key])) return false;
  }
  let nb = 0;
  for (const key in b) if ((b as Record<string, unknown>)[key] !== undefined) nb += 1;
  if (na !== nb) return false;
  return true;
}

/** First differing path of two JSON values, for a readable report. */
function firstDifference(a: unknown, b: unknown, path = ''): string {
  if (JSON.stringify(a) === JSON.stringify(b)) return '';
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return `${path}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    const d = firstDifference((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], `${path}.${key}`);
    if (d !== '') return d;
  }
  return path;
}

/** The first coverage point (kernel-api/coverage.ts) the two kernels counted differently, or null: both count the same paths. */
function firstCoverageDifference(model: Kernel, impl: Kernel): { id: string; model: number; impl: number } | null {
  const [m, k] = [model.locks.coverage, impl.locks.coverage];
  for (let i = 0; i < m.length; i++) if (m[i] !== k[i]) return { id: COVERAGE_POINTS[i].id, model: m[i], impl: k[i] };
  return null;
}

export function runTrace(seed: string, stepsMax: number): TraceResult {
  const config = traceConfig(seedrandom(`${seed}/config`));
  const model = new ModelKernel(config);
  const impl = new ImplKernel(config);
  const gen = new TraceGen(seed, config);
  const trace: Op[] = [];
  const ops = new Map<string, number>();
  for (let i = 0; i < stepsMax; i++) {
    const op = gen.next(model.inspect);
    trace.push(op);
    const kind = op.op === 'reclaim' ? ('count' in op ? 'reclaim_count' : 'reclaim_addr') : op.op;
    ops.set(kind, (ops.get(kind) ?? 0) + 1);
    const m = stepOf(model, op);
    const k = stepOf(impl, op);
    if (m.error !== undefined || k.error !== undefined) {
      if (m.error !== undefined && k.error !== undefined) return { steps: i + 1, bothThrew: `${m.error} (seed=${seed}, step ${i + 1})`, ops };
      return { steps: i + 1, divergence: describeDivergence(seed, trace, 'one kernel threw', m, k), ops };
    }
    if (!jsonEqual(m.points, k.points)) {
      return { steps: i + 1, divergence: describeDivergence(seed, trace, 'scheduling points differ', m.points, k.points), ops };
    }
    if (!jsonEqual(m.outcome, k.outcome)) {
      return { steps: i + 1, divergence: describeDivergence(seed, trace, 'outcomes differ', m.outcome, k.outcome), ops };
    }
    const d = firstCoverageDifference(model, impl);
    if (d !== null) return { steps: i + 1, divergence: describeDivergence(seed, trace, `coverage counts differ at ${d.id}`, d.model, d.impl), ops };
    gen.learn(op, m.outcome!);
    const om = observe(model.inspect);
    const ok = observe(impl.inspect);
    if (!jsonEqual(om, ok)) {
      return { steps: i + 1, divergence: describeDivergence(seed, trace, `observations differ at ${firstDifference(om, ok)}`, '', ''), ops };
    }
  }
  return { steps: stepsMax, ops };
}

export type { TraceKind };
