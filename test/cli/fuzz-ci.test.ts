/** The fuzz command as CI runs it: workers, shards, merge, JUnit, the step summary, and its errors. */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, tree } from './helpers.ts';

/** A small XML well-formedness check: balanced tags, quoted attributes, escaped text. */
function assertWellFormedXml(xml: string): void {
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  const token = /<(\/?)([A-Za-z_][\w.-]*)((?:\s+[\w.-]+="[^"<&]*(?:&(?:amp|lt|gt|quot|apos);[^"<&]*)*")*)\s*(\/?)>|([^<]+)/gy;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = token.exec(body)) !== null) {
    consumed = token.lastIndex;
    const [, close, name, , selfClose, text] = m;
    if (text !== undefined) {
      expect(text.replace(/&(amp|lt|gt|quot|apos);/g, ''), 'raw & or > in text').not.toMatch(/[&]/);
      continue;
    }
    if (close) expect(stack.pop(), `closing ${name}`).toBe(name);
    else if (!selfClose) stack.push(name);
  }
  expect(consumed, `unparsable XML at ${body.slice(consumed, consumed + 80)}`).toBe(body.length);
  expect(stack).toEqual([]);
}

/** A repro of the shipped corpus. */
const REPRO = join(import.meta.dirname, '..', '..', 'corpus', 'core', 'cow-isolation-dfcf119d.json');
const FUZZ = ['fuzz', '--seed', '7', '--runs', '24', '--kernel', 'model', '--strategy', 'proc-mem-mmap'];
let dir = '';
const summaryBefore = process.env.GITHUB_STEP_SUMMARY;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mapfuzz-ci-'));
});
afterEach(() => {
  if (summaryBefore === undefined) delete process.env.GITHUB_STEP_SUMMARY;
  else process.env.GITHUB_STEP_SUMMARY = summaryBefore;
});

describe('mapfuzz fuzz for CI', () => {
  it('writes byte-identical repro files with 1 or 2 workers; the repros of the shards cover them, merged one per signature', async () => {
    process.env.GITHUB_STEP_SUMMARY = join(dir, 'summary.md');
    writeFileSync(process.env.GITHUB_STEP_SUMMARY, '# earlier step\n');
    const one = await run([...FUZZ, '--workers', '1', '--corpus', join(dir, 'w1'), '--junit', join(dir, 'junit.xml')]);
    expect(one.code).toBe(1);
    expect(one.out).toMatch(/status\s+strategy\s+invariant\s+steps\s+repro/);
    const two = await run([...FUZZ, '--workers', '2', '--corpus', join(dir, 'w2')]);
    expect(two.code).toBe(1);
    const files = tree(join(dir, 'w1'));
    expect(Object.keys(files).length).toBeGreaterThan(1);
    expect(tree(join(dir, 'w2'))).toEqual(files);

    // Each failure of the whole run is found, byte for byte, by the shard that owns its run;
    // the merge keeps one repro per signature (file name), the shortest.
    for (const i of [1, 2]) await run([...FUZZ, '--shard', `${i}/2`, '--corpus', join(dir, `shard${i}`)]);
    const shards = { ...tree(join(dir, 'shard2')), ...tree(join(dir, 'shard1')) };
    const [s1, s2] = [tree(join(dir, 'shard1')), tree(join(dir, 'shard2'))];
    for (const [name, text] of Object.entries(files)) expect(s1[name] === text || s2[name] === text, name).toBe(true);
    const merged = await run(['corpus', 'merge', join(dir, 'merged'), join(dir, 'shard1'), join(dir, 'shard2')]);
    expect(merged.code).toBe(0);
    const out = tree(join(dir, 'merged'));
    expect(Object.keys(out).sort()).toEqual(Object.keys(shards).sort());
    for (const name of Object.keys(files)) expect(JSON.parse(out[name]).ops.length).toBeLessThanOrEqual(JSON.parse(files[name]).ops.length);

    const junit = readFileSync(join(dir, 'junit.xml'), 'utf8');
    assertWellFormedXml(junit);
    expect(junit.match(/<failure /g)?.length).toBe(Object.keys(files).length);
    expect(junit).toMatch(/<testsuite name="mapfuzz.proc-mem-mmap" tests="\d+" failures="\d+"/);
    const summary = readFileSync(process.env.GITHUB_STEP_SUMMARY, 'utf8');
    expect(summary).toMatch(/^# earlier step\n### mapfuzz fuzz: \d+ new failures/);
    expect(summary).toMatch(/\| \*\*new\*\* \| proc-mem-mmap \| `zero-page` \|/);
  });

  it('merges corpora keeping the shortest repro of each signature', async () => {
    const a = join(dir, 'merge-a');
    const b = join(dir, 'merge-b');
    cpSync(join(dir, 'w1'), a, { recursive: true });
    mkdirSync(join(b, 'proc-mem-mmap'), { recursive: true });
    const [name] = readdirSync(join(a, 'proc-mem-mmap')).sort();
    const repro = JSON.parse(readFileSync(join(a, 'proc-mem-mmap', name), 'utf8'));
    // The same failure with a needless step in front: a duplicate, longer.
    writeFileSync(join(b, 'proc-mem-mmap', 'longer.json'), JSON.stringify({ ...repro, ops: [{ op: 'spawn' }, ...repro.ops] }));
    const out = join(dir, 'merge-out');
    const r = await run(['corpus', 'merge', out, b, a]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/1 duplicates dropped/);
    expect(tree(out)).toEqual(tree(a));
  });

  it.each([
    [['fuzz', '--shard', '3/2'], /--shard takes I\/N with 1 <= I <= N/],
    [['fuzz', '--shard', 'x'], /--shard takes I\/N/],
    [['fuzz', '--workers', '0'], /--workers must be a positive integer/],
    [['fuzz', '--step-timeout', '-1'], /--step-timeout must be a positive integer/],
    [['corpus', 'merge', '/tmp'], /corpus merge needs OUT and at least one directory/],
    [['corpus', 'frob'], /corpus takes a subcommand/],
    [['scorecard', '--time', '-5'], /--time must be a positive integer/],
    [['scorecard', '--kernel', 'foo'], /--kernel must be one of/],
    [['scorecard', '--json', '/nonexistent-dir/card.json'], /--json \/nonexistent-dir\/card.json: no such directory/],
    [['fuzz', '--runs', '1', '--json', '/nonexistent-dir/x.json'], /--json \/nonexistent-dir\/x.json: no such directory/],
    [['fuzz', '--runs', '1', '--junit', '/tmp'], /--junit \/tmp is a directory/],
    [['fuzz', '--runs', '1', '--corpus', REPRO], /--corpus .* is not a directory/],
    [['show', REPRO, '--html', '/nonexistent-dir/x.html'], /--html \/nonexistent-dir\/x.html: no such directory/],
    [['show', REPRO, '--c', '/nonexistent-dir/x.c'], /--c \/nonexistent-dir\/x.c: no such directory/],
  ])('rejects %j with one line and exit 2', async (argv, message) => {
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  it('merges the shipped corpus into an empty directory unchanged, byte for byte', async () => {
    const shipped = join(import.meta.dirname, '..', '..', 'corpus');
    const out = join(dir, 'shipped-merged');
    expect((await run(['corpus', 'merge', out, shipped])).code).toBe(0);
    expect(tree(out)).toEqual(tree(shipped));
  });

  it('tells a regressed fix from a new bug of the same shape', async () => {
    const [name] = readdirSync(join(dir, 'w1', 'proc-mem-mmap')).filter((f) => f.startsWith('zero-page-'));
    const found = JSON.parse(readFileSync(join(dir, 'w1', 'proc-mem-mmap', name), 'utf8'));
    const fixedDir = (label: string) => join(dir, `fixed-${label}`, 'proc-mem-mmap');
    // A fixed bug whose repro fails again: reported with that repro, nothing new written.
    mkdirSync(fixedDir('regressed'), { recursive: true });
    writeFileSync(join(fixedDir('regressed'), 'zero-page-fixed.json'), JSON.stringify({ ...found, expect: 'passes' }));
    const regressed = await run([...FUZZ, '--workers', '1', '--corpus', join(dir, 'fixed-regressed')]);
    expect(regressed.code).toBe(1);
    expect(regressed.out).toMatch(/NEW {3}proc-mem-mmap zero-page: .* \(expects to pass: regressed: .*zero-page-fixed\.json\)/);
    // Nothing new of that cause is written (the campaign may meet the invariant's other causes: those are other bugs).
    const ofCause = (d: string) => readdirSync(d).filter((f) => f.startsWith('zero-page-') && JSON.parse(readFileSync(join(d, f), 'utf8')).cause === found.cause);
    expect(ofCause(fixedDir('regressed'))).toEqual(['zero-page-fixed.json']);
    // A fixed bug of the same shape whose repro still passes: the new failure is another bug, written.
    mkdirSync(fixedDir('other'), { recursive: true });
    writeFileSync(join(fixedDir('other'), 'zero-page-fixed.json'), JSON.stringify({ ...found, expect: 'passes', ops: [{ op: 'spawn' }, found.ops.at(-1)] }));
    const other = await run([...FUZZ, '--workers', '1', '--corpus', join(dir, 'fixed-other')]);
    expect(other.code).toBe(1);
    expect(readFileSync(join(fixedDir('other'), name), 'utf8')).toBe(readFileSync(join(dir, 'w1', 'proc-mem-mmap', name), 'utf8'));
  });

  it('says so when a repro no longer behaves as it expects, and exits 1', async () => {
    // The first step of a known flaw's repro alone breaks nothing.
    const flaw = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'corpus', 'proc-mem-mmap', 'zero-page-2adac1a4.json'), 'utf8'));
    const file = join(dir, 'no-longer.json');
    writeFileSync(file, JSON.stringify({ ...flaw, ops: flaw.ops.slice(0, 1) }));
    const story = await run(['show', file]);
    expect(story.code).toBe(1);
    expect(story.out.trim().split('\n').slice(-2)).toEqual([
      'every invariant held', 'this repro no longer reproduces: it expects zero-page to break (mapfuzz replay judges it the same way)',
    ]);
    const page = await run(['show', file, '--html', join(dir, 'no-longer.html')]);
    expect(page.code).toBe(1);
    expect(readFileSync(join(dir, 'no-longer.html'), 'utf8')).toMatch(/<div id="unexpected">this repro no longer reproduces/);
    expect((await run(['show', REPRO])).code).toBe(0);
  });

  it('refuses to merge a malformed repro: one line naming file and field, exit 2, nothing written', async () => {
    const bad = join(dir, 'bad');
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, 'x.json'), JSON.stringify({ format: 'mapfuzz-repro/1', title: 't', kernel: 'model', strategy: 'core', invariant: 'nope' }));
    const out = join(dir, 'bad-out');
    const r = await run(['corpus', 'merge', out, join(dir, 'w1'), bad]);
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/x\.json: invariant: unknown invariant "nope"/);
    expect(existsSync(out)).toBe(false);
    for (const argv of [['show', join(bad, 'x.json')], ['shrink', join(bad, 'x.json')], ['fuzz', '--runs', '1', '--corpus', bad]]) {
      const s = await run(argv);
      expect(s.code).toBe(2);
      expect(s.err.trim().split('\n')).toHaveLength(1);
    }
  });
});
