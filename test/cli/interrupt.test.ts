/**
 * Nothing found is lost: repros are written as soon as they are shrunk, a SIGINT or SIGTERM
 * stops the campaign with its summary and reports written (exit 130 or 143), the death of
 * the parent (npx's `sh -c`, killed by a SIGTERM to npx) does the same, and a temporary
 * file a `kill -9` leaves is reported by `corpus check`.
 */
import { describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { filesBelow, run } from './helpers.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'mapfuzz.mjs');
/** A campaign that finds a failure within a second or two and would run for a minute. */
const FINDING = ['fuzz', '--seed', '3', '--time', '60', '--kernel', 'model', '--strategy', 'proc-mem-mmap', '--workers', '1'];

type Ended = { code: number | null; signal: NodeJS.Signals | null; out: string; err: string };

function started(cmd: string, args: string[]): { child: ChildProcess; ended: Promise<Ended> } {
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => { out += String(d); });
  child.stderr!.on('data', (d) => { err += String(d); });
  const ended = new Promise<Ended>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, out, err })));
  return { child, ended };
}

/** Wait until the corpus holds a repro file: the campaign has found and written something. */
async function firstRepro(dir: string, timeoutMs = 60_000): Promise<string[]> {
  const t0 = Date.now();
  for (;;) {
    const files = filesBelow(dir).filter((f) => f.endsWith('.json'));
    if (files.length > 0) return files;
    if (Date.now() - t0 > timeoutMs) throw new Error(`no repro written below ${dir} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a campaign stopped by a signal', () => {
  it.each([['SIGINT', 130], ['SIGTERM', 143]] as const)('%s: stops the workers, keeps every repro written, writes the summary and the JSON, exits %i', async (signal, status) => {
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-sig-'));
    const corpus = join(dir, 'corpus');
    const json = join(dir, 'report.json');
    const { child, ended } = started(process.execPath, [BIN, ...FINDING, '--corpus', corpus, '--json', json]);
    const before = await firstRepro(corpus);
    const texts = before.map((f) => readFileSync(f, 'utf8'));
    child.kill(signal);
    const r = await ended;
    expect(r.code).toBe(status);
    expect(r.out).toMatch(new RegExp(`^interrupted by ${signal}: what the finished traces found\n`));
    expect(r.err).not.toMatch(/\n\s+at /);
    // What was written before the signal is still there, byte for byte, and the summary names it.
    for (const [i, f] of before.entries()) {
      expect(readFileSync(f, 'utf8')).toBe(texts[i]);
      expect(r.out).toContain(f);
    }
    const report = JSON.parse(readFileSync(json, 'utf8'));
    expect(report.interrupted).toBe(signal);
    expect(report.failures.length).toBeGreaterThanOrEqual(before.length);
    const check = await run(['corpus', 'check', corpus]);
    expect(check.code).toBe(0);
    expect(check.out).toMatch(/repro files are well formed/);
  });

  it('stops as on SIGTERM when its parent dies (a SIGTERM to npx kills the sh -c that runs mapfuzz)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-orphan-'));
    const corpus = join(dir, 'corpus');
    // `; true` keeps sh from exec'ing node, as npx's sh -c does not.
    const line = [process.execPath, BIN, ...FINDING, '--corpus', corpus].map((a) => `'${a}'`).join(' ');
    const { child, ended } = started('/bin/sh', ['-c', `${line}; true`]);
    await firstRepro(corpus);
    child.kill('SIGTERM');
    await ended;
    // mapfuzz outlives sh: wait for it to notice, write and exit (its stdout is the pipe sh passed on).
    const t0 = Date.now();
    for (;;) {
      const alive = readdirSync('/proc').some((p) => {
        if (!/^\d+$/.test(p)) return false;
        try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(corpus); } catch { return false; }
      });
      if (!alive) break;
      expect(Date.now() - t0, 'mapfuzz still running after its parent died').toBeLessThan(30_000);
      await new Promise((r) => setTimeout(r, 100));
    }
    const check = await run(['corpus', 'check', corpus]);
    expect(check.code).toBe(0);
  });

  it('corpus check reports a temporary file left by a kill -9 during a write, and every other bad file, exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-tmp-'));
    const good = join(ROOT, 'corpus', 'core', 'cow-isolation-dfcf119d.json');
    copyFileSync(good, join(dir, 'cow-isolation-dfcf119d.json'));
    writeFileSync(join(dir, 'zero-page-60cfab39.json.tmp-4242'), '{ "format": "mapfuzz-re');
    writeFileSync(join(dir, 'notes.txt'), 'not a repro');
    writeFileSync(join(dir, 'broken.json'), '{');
    const r = await run(['corpus', 'check', dir]);
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/^mapfuzz: 3 of 4 files are bad \(listed above\)/);
    const listed = r.out.trim().split('\n');
    expect(listed).toHaveLength(3);
    expect(listed[0]).toMatch(/^bad {2}malformed repro .*broken\.json: \(file\): not JSON/);
    expect(listed[1]).toMatch(/^bad {2}.*notes\.txt: not a repro file \(repro files end in \.json\)$/);
    expect(listed[2]).toMatch(/^bad {2}.*zero-page-60cfab39\.json\.tmp-4242: a temporary file left by an interrupted write \(process 4242\)/);
  });
});
