/**
 * Shared set-up of the oracle tests: build the oracle once, and say why when it cannot be
 * (not Linux, no cc, compile error) so that a skipped test never looks like a pass.
 */
import { buildOracle } from '../../kernel-oracle/build.mjs';

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
