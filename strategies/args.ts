/**
 * Small helpers the strategies share: reading a call's JSON arguments, turning a kernel
 * result into an outcome, and the error a driver bug (an oops, a refcount underflow)
 * throws. Written only against kernel-api, like the strategies themselves.
 */
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { DriverArgs, InvariantId } from '../kernel-api/strategy.ts';

/** A whole-number argument, or null when it is missing or not a safe integer. */
export function intArg(args: DriverArgs, key: string): number | null {
  const v = args[key];
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : null;
}

/** A kernel result (a value or an errno name) as an outcome. */
export function outcomeOf(r: number | Errno): Outcome {
  return typeof r === 'string' ? err(r) : ok(r);
}

/**
 * A bug in the driver code itself — what the kernel would report as an oops or a WARN.
 * It carries an invariant id as KernelAssertionError does, so the harness files it there.
 */
export class DriverBug extends Error {
  override name = 'DriverBug' as const;
  constructor(message: string, readonly invariant: InvariantId = 'kernel-assert') {
    super(message);
  }
}

