/**
 * The differential property model ↔ kernel over random traces of the oracle's subset: every
 * trace agrees, or its divergence is a documented simplification (SIMPLIFICATIONS.md), or
 * it is a model bug already on record (KNOWN_MODEL_BUGS, printed; never silently passed).
 * Also replays the repros of corpus/kernel/ as their `expect` says.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkTrace, runOracle, type OracleRepro } from '../../harness/oracle.ts';
import { oracle, oracleBinary } from './helpers.ts';

const CORPUS = join(import.meta.dirname, '..', '..', 'corpus', 'kernel');

describe.skipIf(!oracle().ok)('oracle differential', () => {
  it('30 random traces agree, or diverge only as documented or as a known model bug', () => {
    const r = runOracle({ runs: 30, seed: 8, corpusDir: null, recordDocumented: false });
    expect(r.unavailable).toBeUndefined();
    expect(r.runs).toBe(30);
    expect(r.agree + r.documented + r.diverge).toBe(30);
    for (const d of r.divergences) {
      console.warn(`[oracle] known model bug ${d.knownModelBug ?? '?'} reproduced: ${JSON.stringify(d.ops)}`);
      expect(d.knownModelBug, `new divergence at step ${d.step + 1}: ${JSON.stringify(d, null, 1)}`).toBeDefined();
    }
    // The traces exercise the subset broadly, not just spawn and mmap.
    expect(Object.keys(r.opsCovered).length).toBeGreaterThanOrEqual(12);
  });

  const files = existsSync(CORPUS) ? readdirSync(CORPUS).filter((f) => f.endsWith('.json')).sort() : [];
  it.each(files.length === 0 ? ['(none)'] : files)('corpus/kernel/%s replays as it expects', (file) => {
    if (file === '(none)') return;
    const repro = JSON.parse(readFileSync(join(CORPUS, file), 'utf8')) as OracleRepro;
    expect(repro.format).toBe('mapfuzz-repro/1');
    const v = checkTrace(oracleBinary(), repro.ops);
    if (repro.expect === 'passes') expect(v.result).not.toBe('diverge');
    else expect(v.result, `${file} no longer reproduces: set expect to "passes"`).not.toBe('agree');
  });
});
