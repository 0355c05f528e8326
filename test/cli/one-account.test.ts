/** One account of a run: stdout, --json, --junit and the Markdown summary count the same things. */
import { afterEach, describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { progressLine } from '../../cli/main.ts';
import { run } from './helpers.ts';
import { accountOf, formatJunit, formatMarkdown, headline, type CampaignReport, type FailureReport } from '../../harness/report.ts';
import type { CampaignFailure } from '../../harness/campaign.ts';

const count = (text: string, re: RegExp) => text.match(re)?.length ?? 0;
const summaryBefore = process.env.GITHUB_STEP_SUMMARY;
afterEach(() => {
  if (summaryBefore === undefined) delete process.env.GITHUB_STEP_SUMMARY;
  else process.env.GITHUB_STEP_SUMMARY = summaryBefore;
});

describe('one account of a run', () => {
  it('a sharded campaign meeting new failures and a known flaw: stdout, --json, --junit and the summary agree', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-account-'));
    const corpus = join(dir, 'corpus');
    mkdirSync(join(corpus, 'proc-mem-mmap'), { recursive: true });
    // A known flaw the campaign meets.
    cpSync(join(import.meta.dirname, '..', '..', 'corpus', 'proc-mem-mmap', 'zero-page-2adac1a4.json'), join(corpus, 'proc-mem-mmap', 'zero-page-2adac1a4.json'));
    process.env.GITHUB_STEP_SUMMARY = join(dir, 'summary.md');
    const r = await run(['fuzz', '--seed', '3', '--runs', '400', '--kernel', 'model', '--strategy', 'proc-mem-mmap', '--workers', '1', '--shard', '1/2',
      '--corpus', corpus, '--json', join(dir, 'r.json'), '--junit', join(dir, 'r.xml')]);
    expect(r.code).toBe(1);
    const json = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    const junit = readFileSync(join(dir, 'r.xml'), 'utf8');
    const md = readFileSync(join(dir, 'summary.md'), 'utf8');

    // --json: its counts are its failures'.
    const byFlag = {
      fresh: json.failures.filter((f: { known: boolean; held: boolean }) => !f.known && !f.held).length,
      known: json.failures.filter((f: { known: boolean }) => f.known).length,
      held: json.failures.filter((f: { held: boolean }) => f.held).length,
    };
    expect({ fresh: json.new, known: json.known, held: json.held }).toEqual(byFlag);
    expect(json.new).toBeGreaterThan(1);
    expect(json.known).toBe(1);
    // `written`: the repros this campaign newly wrote (what CI uploads), not the corpus it started from.
    const below = readdirSync(corpus, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.json')).map((f) => f.split(sep).join('/')).sort();
    expect(below).toContain('proc-mem-mmap/zero-page-2adac1a4.json');
    expect(json.written).toEqual(below.filter((f) => f !== 'proc-mem-mmap/zero-page-2adac1a4.json'));
    expect(json.written).toHaveLength(json.new);

    // stdout and the summary: the same headline, from those counts.
    const line = headline({ fresh: json.new, known: json.known, held: json.held });
    expect(line).toBe(`${json.new} new failures (1 known flaw met)`);
    expect(r.out.trimEnd().split('\n').at(-1)).toBe(line);
    expect(md.split('\n')[0]).toBe(`### mapfuzz fuzz — shard 1/2: ${line}`);
    expect(count(md, /^\| \*\*new\*\* \|/gm)).toBe(json.new);
    expect(count(md, /^\| known \|/gm)).toBe(json.known);
    expect(count(md, /^\| held \|/gm)).toBe(json.held);

    // --junit: a failure per new failure, held-back ones skipped, known ones passing; every name with its shard.
    expect(junit).toMatch(new RegExp(`<testsuites name="mapfuzz fuzz" tests="\\d+" failures="${json.new}" errors="0" skipped="${json.held}"`));
    expect(count(junit, /<failure /g)).toBe(json.new);
    expect(count(junit, /<skipped /g)).toBe(json.held);
    expect(count(junit, /<system-out>known flaw, recorded in /g)).toBe(json.known);
    const names = [...junit.matchAll(/<testcase [^>]*name="([^"]*)"/g)].map((m) => m[1]);
    expect(names.length).toBeGreaterThan(json.new);
    for (const name of names) expect(name).toMatch(/ \[shard 1\/2\]$/);
    for (const [k, v] of [['new', json.new], ['known', json.known], ['held', json.held]]) expect(junit).toContain(`<property name="${k}" value="${v}"/>`);
  });

  it('a held-back failure is counted apart and is no JUnit failure: skipped, naming what it is held behind', () => {
    const failure = (strategy: string, run: number): CampaignFailure => ({
      strategy, invariant: 'no-leak', message: `leak ${strategy}`, ops: [{ op: 'spawn' }], run, seed: 1, kernel: 'model', foundAfterMs: 5,
    } as unknown as CampaignFailure);
    const failures: FailureReport[] = [
      { failure: failure('core', 0), known: false, file: 'corpus/core/no-leak-1.json' },
      { failure: failure('proc-mem-mmap', 1), known: false, held: true, file: '(held back)', note: 'the core operations break no-leak too, most likely the same bug' },
      { failure: { ...failure('pidfd-mem', 2), invariant: 'slab' } as CampaignFailure, known: true, file: 'corpus/pidfd-mem/slab-1.json' },
    ];
    const report: CampaignReport = {
      seed: 1, kernel: 'model', strategies: ['proc-mem-mmap', 'pidfd-mem'], shard: '2/3', workers: 1, runs: 3, steps: 3, elapsedMs: 10, failures,
    };
    expect(accountOf(failures)).toEqual({ fresh: 1, known: 1, held: 1 });
    expect(headline(accountOf(failures))).toBe('1 new failure (1 more held back, 1 known flaw met)');
    const junit = formatJunit(report);
    expect(junit).toMatch(/<testsuites name="mapfuzz fuzz" tests="\d+" failures="1" errors="0" skipped="1"/);
    expect(count(junit, /<failure /g)).toBe(1);
    // The core's failure has its testsuite though the campaign named only strategies.
    expect(junit).toMatch(/<testsuite name="mapfuzz.core" tests="\d+" failures="1"/);
    expect(junit).toMatch(/<testcase classname="mapfuzz.proc-mem-mmap" name="no-leak \[shard 2\/3\]" time="0.005">\n {6}<skipped message="held back, not written: the core operations break no-leak too, most likely the same bug"\/>/);
    expect(formatMarkdown(report).split('\n')[0]).toBe('### mapfuzz fuzz — shard 2/3: 1 new failure (1 more held back, 1 known flaw met)');
    expect(headline({ fresh: 0, known: 0, held: 0 })).toBe('no invariant broke');
    expect(headline({ fresh: 0, known: 2, held: 0 })).toBe('only known flaws broke (2 known flaws met)');
  });

  it('the progress line counts new failures apart from known ones, its rate from the first step', () => {
    // 3 s since start, 1 s of them stepping: 1000 steps are 1000 steps/s, not 333.
    const line = progressLine('fuzz', { runs: 7, steps: 1000, elapsedMs: 3000, failures: 5, steppingMs: 1000 }, { fresh: 2, known: 3 });
    expect(line).toBe('fuzz 3s  1000 steps/s  7 traces  2 new failures, 3 known');
  });
});
