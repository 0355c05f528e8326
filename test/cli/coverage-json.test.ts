/**
 * `fuzz --json` reports coverage (kernel-api/coverage.ts): every point by id, zeros
 * included, as integers summed over the campaign's runs; the same counts with one worker or
 * two (each run counted once, whichever worker ran it); and stdout's one-line summary
 * agrees with the object.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './helpers.ts';
import { COVERAGE_POINTS } from '../../kernel-api/coverage.ts';

describe('fuzz --json coverage', () => {
  it('lists every point with its count, the same for 1 and 2 workers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-cov-'));
    const counts: Record<string, number>[] = [];
    for (const workers of ['1', '2']) {
      const json = join(dir, `w${workers}.json`);
      const r = await run(['fuzz', '--seed', '5', '--runs', '24', '--kernel', 'diff', '--workers', workers, '--corpus', join(dir, `c${workers}`), '--json', json]);
      expect(r.code, r.err).toBe(1); // proc-mem-mmap's flaws are new to an empty corpus
      const report = JSON.parse(readFileSync(json, 'utf8')) as { runs: number; coverage: Record<string, number> };
      expect(report.runs).toBe(24);
      expect(Object.keys(report.coverage)).toEqual(COVERAGE_POINTS.map((p) => p.id));
      for (const [id, n] of Object.entries(report.coverage)) {
        expect(Number.isInteger(n), id).toBe(true);
        expect(n, id).toBeGreaterThanOrEqual(0);
      }
      const reached = Object.values(report.coverage).filter((n) => n > 0).length;
      expect(r.out).toContain(`coverage: ${reached} of ${COVERAGE_POINTS.length} points reached (--json lists them)`);
      // The core operations fault and the strategies call into the driver API.
      expect(report.coverage['fault:handle_mm_fault']).toBeGreaterThan(0);
      expect(report.coverage['fault:do_anonymous_page']).toBeGreaterThan(0);
      expect(report.coverage['driver:get_task_mm']).toBeGreaterThan(0);
      counts.push(report.coverage);
    }
    expect(counts[1]).toEqual(counts[0]);
  });
});
