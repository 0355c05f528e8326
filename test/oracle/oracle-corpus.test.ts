/**
 * A clean `mapfuzz oracle` run (nothing undocumented) adds no file to a corpus that already
 * shows each documented simplification it meets: the shipped corpus/kernel/ stays as it is.
 * A simplification the corpus has no repro of yet is written, once.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../cli/helpers.ts';
import { oracle } from './helpers.ts';

const SHIPPED = join(import.meta.dirname, '..', '..', 'corpus', 'kernel');
const files = (dir: string) => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
const ORACLE = ['oracle', '--runs', '80', '--seed', '1'];

describe.skipIf(!oracle().ok)('mapfuzz oracle and the corpus', () => {
  it('a clean run over a copy of the shipped corpus/kernel/ adds and changes no file', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'mapfuzz-oracle-')), 'kernel');
    cpSync(SHIPPED, dir, { recursive: true });
    const before = files(dir);
    const r = await run([...ORACLE, '--corpus', dir, '--json', join(dir, '..', 'r.json')]);
    expect(r.code).toBe(0);
    const report = JSON.parse(readFileSync(join(dir, '..', 'r.json'), 'utf8'));
    expect(report.diverge).toBe(0);
    // It met documented simplifications (else this proves nothing), each already shown by a shipped repro.
    expect(report.documented).toBeGreaterThan(0);
    expect(report.divergences.length).toBeGreaterThan(0);
    for (const d of report.divergences) {
      expect(d.recordedBefore).toBe(true);
      expect(Object.keys(before)).toContain(d.repro.slice(dir.length + 1));
    }
    expect(r.out).toContain('(recorded before, nothing written)');
    expect(files(dir)).toEqual(before);
  });

  it('into an empty corpus it writes each documented simplification it meets once; run again, nothing more', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'mapfuzz-oracle-')), 'kernel');
    const first = await run([...ORACLE, '--corpus', dir]);
    expect(first.code).toBe(0);
    const written = files(dir);
    expect(Object.keys(written).length).toBeGreaterThan(0);
    for (const text of Object.values(written)) expect(JSON.parse(text).title).toMatch(/^documented \(/);
    const again = await run([...ORACLE, '--corpus', dir]);
    expect(again.code).toBe(0);
    expect(files(dir)).toEqual(written);
  });
});
