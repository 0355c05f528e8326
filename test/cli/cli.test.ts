import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './helpers.ts';
import { buildOracle } from '../../kernel-oracle/build.mjs';

describe('mapfuzz command', () => {
  it('prints help and exits 0', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/mapfuzz fuzz/);
  });

  it.each([
    [['fuzz', '--runs', 'x'], /--runs takes an integer/],
    [['fuzz', '--runs', '5', '--time', '5'], /give --time or --runs, not both/],
    [['fuzz', '--kernel', 'linux'], /--kernel must be one of model, impl, diff/],
    [['fuzz', '--kernel', 'bogus+linux'], /--kernel must be one of model, impl, diff/],
    [['fuzz', '--strategy', 'nope'], /unknown strategy "nope"/],
    [['fuzz', '--bogus'], /unknown option --bogus/],
    [['frobnicate'], /unknown command/],
    [['replay'], /replay needs repro files/],
  ])('rejects %j with one line and exit 2', async (argv, message) => {
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  it('rejects a malformed repro file naming the file and the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-cli-'));
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ format: 'mapfuzz-repro/9', ops: [] }));
    const r = await run(['replay', file]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`${file}: format: expected "mapfuzz-repro/1"`));
  });

  // The shipped zero-page repro with a munmap whose address is null slipped in: before ops
  // were checked, `show` crashed formatting it and `shrink` dropped it and rewrote the file.
  it.each([['show'], ['replay'], ['shrink'], ['corpus', 'check']])('%s refuses a repro with a malformed op: one line, exit 2, the file untouched', async (...command) => {
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-cli-'));
    const file = join(dir, 'zero-page.json');
    const repro = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'corpus', 'proc-mem-mmap', 'zero-page-2adac1a4.json'), 'utf8'));
    repro.ops.splice(2, 0, { op: 'munmap', pid: 1, addr: null, lengthPages: 1 });
    const text = `${JSON.stringify(repro, null, 2)}\n`;
    writeFileSync(file, text);
    const r = await run([...command, command[0] === 'corpus' ? dir : file]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`mapfuzz: malformed repro ${file}: ops[2].addr: must be a number of pages, a fraction k/4096 for a byte address or length, found null\n`);
    expect(readFileSync(file, 'utf8')).toBe(text);
  });

  it('gives the same ops and results for the same seed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-cli-'));
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.json');
    const args = ['fuzz', '--seed', '7', '--runs', '40', '--kernel', 'model', '--strategy', 'proc-mem-mmap', '--corpus', join(dir, 'corpus')];
    const first = await run([...args, '--json', a]);
    await run([...args, '--corpus', join(dir, 'corpus2'), '--json', b]);
    const strip = (f: string) => {
      const j = JSON.parse(readFileSync(f, 'utf8'));
      return { seed: j.seed, runs: j.runs, steps: j.steps, failures: j.failures.map((x: { ops: unknown; invariant: string }) => [x.invariant, x.ops]) };
    };
    expect(strip(a)).toEqual(strip(b));
    expect(first.code).toBe(1); // proc-mem-mmap's flaws are new to an empty corpus
    expect(JSON.parse(readFileSync(a, 'utf8')).failures.length).toBeGreaterThan(0);
  });
});

describe('fuzz with the running kernel (--kernel diff+linux, the default where the oracle builds)', () => {
  const built = buildOracle();
  it.skipIf(!built.ok)('sends one trace in 16 of a run budget through Linux, and says so; --kernel diff sends none', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-cli-'));
    const r = await run(['fuzz', '--strategy', 'core', '--runs', '32', '--seed', '3', '--corpus', dir, '--json', join(dir, 'r.json')]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/kernel diff\+linux/);
    // A documented difference is counted by id after the count (`1 differ only as documented (fault-around 1)`).
    expect(r.out).toMatch(/^linux: 2 traces on the running kernel in [\d.]+ s \(swap: .*\): \d+ agree, \d+ differ only as documented( \([a-z-]+ \d+(, [a-z-]+ \d+)*\))?, 0 diverge/m);
    const json = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    expect(json.linux).toMatchObject({ runs: 2, diverge: 0 });
    const plain = await run(['fuzz', '--strategy', 'core', '--runs', '32', '--seed', '3', '--kernel', 'diff', '--corpus', mkdtempSync(join(tmpdir(), 'mapfuzz-cli-'))]);
    expect(plain.code, plain.err).toBe(0);
    expect(plain.out).not.toMatch(/^linux:/m);
  });
});
