/**
 * Small helpers the strategies share: reading a call's JSON arguments, turning a kernel
 * result into an outcome, the error a driver bug (an oops, a refcount underflow) throws,
 * and the start of the remote-view designs' preludes. Written only against kernel-api,
 * like the strategies themselves.
 */
import type { KernelConfig } from '../kernel-api/config.ts';
import type { Op } from '../kernel-api/op.ts';
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


/**
 * The start of a remote-view prelude: P1 maps two private pages at `page` (fixed, just
 * below mmap_base), writes the first and forks P2, so that P2's page is COW-shared with
 * its parent, which may attach to it (Yama ptrace_scope 1). `view` is a free address
 * below, for the view.
 */
export function forkedPagePrelude(config: Readonly<KernelConfig>): { ops: Op[]; page: number; view: number } {
  const page = config.mmapBasePages - 2;
  return {
    page,
    view: page - 16,
    ops: [
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: page, lengthPages: 2, prot: 3, shared: false, fixed: true },
      { op: 'write', pid: 1, addr: page, value: 7 },
      { op: 'fork', pid: 1 },
    ],
  };
}
