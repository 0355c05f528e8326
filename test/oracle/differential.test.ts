/**
 * The differential property model ↔ kernel over random traces of the oracle's subset: every
 * trace agrees, or its divergence is a documented simplification (SIMPLIFICATIONS.md), or
 * it is a model bug already on record (KNOWN_MODEL_BUGS, printed; never silently passed).
 * Also replays the repros of corpus/kernel/ as their `expect` says.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkTrace, ORACLE_CAPS, runOracle, unsupportedReason, type OracleRepro } from '../../harness/oracle.ts';
import type { Op } from '../../kernel-api/op.ts';
import { oracle, oracleBinary } from './helpers.ts';

const CORPUS = join(import.meta.dirname, '..', '..', 'corpus', 'kernel');

describe.skipIf(!oracle().ok)('oracle differential', () => {
  it('30 random traces agree, or diverge only as documented or as a known model bug', () => {
    const r = runOracle({ runs: 30, seed: 8, corpusDir: null, recordDocumented: false });
    expect(r.unavailable).toBeUndefined();
    expect(r.runs).toBe(30);
    expect(r.agree + r.documented + r.diverge + r.skipped).toBe(30);
    // A trace using a call this kernel lacks is skipped, and says why; it never counts as agreeing.
    for (const [reason, n] of Object.entries(r.skippedBy)) console.warn(`[oracle] ${n} traces skipped: ${reason}`);
    for (const d of r.divergences) {
      console.warn(`[oracle] known model bug ${d.knownModelBug ?? '?'} reproduced: ${JSON.stringify(d.ops)}`);
      expect(d.knownModelBug, `new divergence at step ${d.step + 1}: ${JSON.stringify(d, null, 1)}`).toBeDefined();
    }
    // The traces exercise the subset broadly, not just spawn and mmap, and the introspection calls.
    expect(Object.keys(r.opsCovered).length).toBeGreaterThanOrEqual(12);
    for (const op of ['pagemap_read', 'clear_refs', 'uffd_register_wp', 'pagemap_scan', 'map_files_readdir'] as const) {
      expect(r.opsCovered[op] ?? 0, `${op} in 30 oracle traces`).toBeGreaterThan(0);
    }
  });

  it('a call the kernel lacks makes the trace skipped with the reason, never agreeing', () => {
    for (const [name, need] of Object.entries(ORACLE_CAPS)) {
      const trace = [{ op: 'spawn' }, name === 'pagemap_scan'
        ? { op: 'pagemap_scan', pid: 1, start: 1000, end: 1001, flags: 0, max_pages: 0, category_inverted: 0, category_mask: 0, category_anyof_mask: 0, return_mask: 0x1ff, vec_len: 1 }
        : { op: 'uffd_register_wp', pid: 1, addr: 1000, lengthPages: 1, async: true }] as Op[];
      const reason = unsupportedReason(oracleBinary(), trace);
      const v = checkTrace(oracleBinary(), trace);
      if (reason === undefined) {
        expect(v.result).not.toBe('skipped');
      } else {
        console.warn(`[oracle] ${name} unavailable here: ${reason}`);
        expect(v.result).toBe('skipped');
        expect(v.skipped).toContain(need!.what);
      }
    }
  });

  const files = existsSync(CORPUS) ? readdirSync(CORPUS).filter((f) => f.endsWith('.json')).sort() : [];
  it.each(files.length === 0 ? ['(none)'] : files)('corpus/kernel/%s replays as it expects', (file) => {
    if (file === '(none)') return;
    const repro = JSON.parse(readFileSync(join(CORPUS, file), 'utf8')) as OracleRepro;
    expect(repro.format).toBe('mapfuzz-repro/1');
    const v = checkTrace(oracleBinary(), repro.ops);
    if (v.result === 'skipped') {
      console.warn(`[oracle] corpus/kernel/${file} skipped: ${v.skipped}`);
      return;
    }
    if (repro.expect === 'passes') expect(v.result).not.toBe('diverge');
    else expect(v.result, `${file} no longer reproduces: set expect to "passes"`).not.toBe('agree');
  });
});
