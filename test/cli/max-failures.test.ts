/** fuzz --max-failures N stops a campaign after N new failures; fuzz --run N replays run N of a seed exactly. */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { filesBelow, run } from './helpers.ts';

type JsonFailure = { run: number; invariant: string; cause: string; ops: unknown[]; message: string; file: string; known: boolean; held: boolean };
const CAMPAIGN = ['fuzz', '--seed', '3', '--runs', '400', '--kernel', 'model', '--strategy', 'proc-mem-mmap'];
let dir = '';
let full: { failures: JsonFailure[] };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mapfuzz-max-'));
  const r = await run([...CAMPAIGN, '--workers', '1', '--corpus', join(dir, 'full'), '--json', join(dir, 'full.json')]);
  expect(r.code).toBe(1);
  full = JSON.parse(readFileSync(join(dir, 'full.json'), 'utf8'));
});

describe('fuzz --max-failures N', () => {
  it('the whole campaign finds more than 3 new failures (else the tests below prove nothing)', () => {
    expect(full.failures.filter((f) => !f.known && !f.held).length).toBeGreaterThan(3);
    expect(filesBelow(join(dir, 'full')).length).toBeGreaterThan(3);
  });

  it.each([[1, 1], [3, 1], [2, 2]])('--max-failures %i with %i worker(s) writes exactly that many repros and says why it stopped', async (n, workers) => {
    const corpus = join(dir, `max-${n}-${workers}`);
    const json = join(dir, `max-${n}-${workers}.json`);
    const r = await run([...CAMPAIGN, '--workers', String(workers), '--max-failures', String(n), '--corpus', corpus, '--json', json]);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`stopped after ${n} new failure${n === 1 ? '' : 's'} (--max-failures)`);
    expect(r.out).toMatch(new RegExp(`^${n} new failures?$`, 'm'));
    const written = filesBelow(corpus);
    expect(written).toHaveLength(n);
    const report = JSON.parse(readFileSync(json, 'utf8'));
    expect(report.stopped).toBe(`--max-failures ${n}`);
    expect(report.written.map((f: string) => join(corpus, f)).sort()).toEqual([...written].sort());
    expect(report.runs).toBeLessThan(400);
    expect(report.failures.filter((f: JsonFailure) => !f.known && !f.held)).toHaveLength(n);
    // Each repro it wrote is one the whole campaign writes too (the same signature, so the same file name).
    const fullNames = filesBelow(join(dir, 'full')).map((f) => f.slice(join(dir, 'full').length));
    for (const f of written) expect(fullNames).toContain(f.slice(corpus.length));
  });

  it('a limit the campaign never reaches changes nothing', async () => {
    const corpus = join(dir, 'max-1000');
    const r = await run([...CAMPAIGN, '--workers', '1', '--max-failures', '1000', '--corpus', corpus]);
    expect(r.code).toBe(1);
    expect(r.out).not.toContain('--max-failures');
    expect(filesBelow(corpus).map((f) => readFileSync(f, 'utf8'))).toEqual(filesBelow(join(dir, 'full')).map((f) => readFileSync(f, 'utf8')));
  });
});

describe('fuzz --run N', () => {
  it('gives the same failure as run N of a --runs campaign of the same seed, repro file byte for byte', async () => {
    // Runs past 0, so that --run cannot pass by running the campaign from its start.
    const picked = full.failures.filter((f) => f.run > 0 && !f.known && !f.held).sort((a, b) => b.run - a.run).slice(0, 2);
    expect(picked.length).toBe(2);
    for (const f of picked) {
      const corpus = join(dir, `run-${f.run}`);
      const json = join(dir, `run-${f.run}.json`);
      const r = await run(['fuzz', '--seed', '3', '--run', String(f.run), '--kernel', 'model', '--strategy', 'proc-mem-mmap', '--corpus', corpus, '--json', json]);
      expect(r.code).toBe(1);
      const one = JSON.parse(readFileSync(json, 'utf8'));
      expect(one.runs).toBe(1);
      const same = one.failures.find((g: JsonFailure) => g.invariant === f.invariant && g.cause === f.cause);
      expect(same, `${f.invariant} ${f.cause} of run ${f.run}`).toBeDefined();
      expect(same.run).toBe(f.run);
      expect(same.ops).toEqual(f.ops);
      expect(same.message).toBe(f.message);
      expect(readFileSync(same.file, 'utf8')).toBe(readFileSync(f.file, 'utf8'));
    }
  });
});
