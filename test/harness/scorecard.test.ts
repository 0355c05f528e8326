import { describe, expect, it } from 'vitest';
import { formatScorecard, runScorecard, SCORED } from '../../harness/scorecard.ts';
import { loadRepro } from '../../harness/repro.ts';
import { COVERAGE_POINTS } from '../../kernel-api/coverage.ts';
import { STRATEGIES } from '../../strategies/index.ts';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const corpusDir = join(import.meta.dirname, '..', '..', 'corpus');
const corpus = readdirSync(corpusDir, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.json')).map((f) => loadRepro(join(corpusDir, f)));
const pick = (...names: string[]) => STRATEGIES.filter((s) => names.includes(s.name));

describe('scorecard', () => {
  it('marks a flaw of the design as written broken and expected, and a sound design as holding', async () => {
    const card = await runScorecard({
      strategies: pick('proc-mem-mmap', 'map-files'), timeMs: 0, runsPerStrategy: 12, seed: 1, kernel: 'model', corpus,
      workers: 2, stepTimeoutMs: 20_000,
    });
    expect(Object.keys(card.strategies)).toEqual(['proc-mem-mmap', 'map-files']);
    expect(card.runs).toEqual({ 'proc-mem-mmap': 12, 'map-files': 12 });
    const pmm = card.strategies['proc-mem-mmap'];
    expect(Object.keys(pmm).sort()).toEqual([...SCORED].sort());
    const zero = pmm['zero-page'];
    expect(zero.status).toBe('broken');
    if (zero.status !== 'broken') return;
    // The writable zero page takes spawn, a second process to map (its own mem deadlocks), open and mmap: nothing shorter breaks it.
    expect(zero.reproLength).toBe(4);
    expect(zero.expected).toBe(true);
    expect(zero.promised).toBe(false);
    expect(zero.repro.at(-1)).toMatchObject({ op: 'mmap', fd: expect.any(Number) });
    for (const v of Object.values(card.strategies['map-files'])) expect(v.status).toBe('holds');
    // Coverage over both campaigns: every point, zeros included; proc-mem-mmap's open of /proc/<pid>/mem reaches access_remote_vm.
    expect(Object.keys(card.coverage)).toEqual(COVERAGE_POINTS.map((p) => p.id));
    expect(card.coverage['gup:access_remote_vm']).toBeGreaterThan(0);
    expect(Object.values(card.coverage).every((n) => Number.isInteger(n) && n >= 0)).toBe(true);
    const table = formatScorecard(card);
    expect(table).toMatch(/^proc-mem-mmap .*✗4 [\d.]+s exp np/m);
    expect(table).toMatch(/^map-files +│ holds/m);
  });
});
