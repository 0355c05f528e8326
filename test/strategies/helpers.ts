/** Shared helpers for the strategy tests: step-and-expect-ok, PTE lookup, live frames. */
import { expect } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import type { PteView } from '../../kernel-api/state.ts';
import type { ModelKernel } from '../../model/kernel.ts';

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
