/**
 * Shared set-up of the oracle tests: build the oracle once, and say why when it cannot be
 * (not Linux, no cc, compile error) so that a skipped test never looks like a pass.
 */
import { buildOracle } from '../../kernel-oracle/build.mjs';
import type { Op } from '../../kernel-api/op.ts';
import { formatOutcome } from '../../kernel-api/outcome.ts';
import { checkTrace } from '../../harness/oracle.ts';

export type OracleAvailability = { ok: true; binary: string } | { ok: false; reason: string };

let cached: OracleAvailability | undefined;

export function oracle(): OracleAvailability {
  if (cached === undefined) {
    cached = buildOracle();
    if (!cached.ok) console.warn(`[oracle tests skipped] ${cached.reason}`);
  }
  return cached;
}

export function oracleBinary(): string {
  const o = oracle();
  if (!o.ok) throw new Error(`oracle unavailable: ${o.reason}`);
  return o.binary;
}

/** `ops` on the model and on Linux, full agreement required: the kernel's outcome of each step, as `formatOutcome` prints it. */
export function agreeOutcomes(ops: Op[]): string[] {
  const v = checkTrace(oracleBinary(), ops);
  if (v.result !== 'agree') throw new Error(`${v.result} at step ${v.step + 1} (${JSON.stringify(ops[v.step])}): ${JSON.stringify(v.differences, null, 1)}`);
  return v.kernel.steps.map((s) => formatOutcome(s.outcome));
}
