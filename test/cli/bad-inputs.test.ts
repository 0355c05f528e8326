/**
 * Every command on every bad input: one line on stderr, exit 2, no stack trace, nothing
 * changed — outputs are checked before any work. A write that fails later (a full disk) is
 * one line too, and keeps what was already written.
 */
import { describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, tree } from './helpers.ts';

/** Every file and directory below `dir`: what a bad input must leave as it was. */
const treeOf = (dir: string) => tree(dir, true);

const SHIPPED = join(import.meta.dirname, '..', '..', 'corpus', 'core', 'cow-isolation-dfcf119d.json');
/** A sandbox: a good repro, an empty directory, a non-JSON file, a file that is not JSON, a leftover temporary file. */
const box = mkdtempSync(join(tmpdir(), 'mapfuzz-bad-'));
const GOOD = join(box, 'good', 'cow-isolation-dfcf119d.json');
mkdirSync(join(box, 'good'));
copyFileSync(SHIPPED, GOOD);
mkdirSync(join(box, 'empty'));
mkdirSync(join(box, 'text'));
writeFileSync(join(box, 'text', 'notes.txt'), 'hello');
writeFileSync(join(box, 'garbage.json'), '{"format": ');
mkdirSync(join(box, 'tmp'));
writeFileSync(join(box, 'tmp', 'x.json.tmp-77'), '{');
const MISSING = join(box, 'missing.json');
/** Where nothing can be written, even by root: /proc takes no new files. */
const UNWRITABLE = '/proc/mapfuzz-cannot-write';
const FUZZ = ['fuzz', '--runs', '2', '--kernel', 'model', '--corpus', join(box, 'corpus')];

const CASES: [string, string[], RegExp][] = [
  ['fuzz: corpus cannot be written', ['fuzz', '--runs', '2', '--corpus', UNWRITABLE], /--corpus \/proc\/mapfuzz-cannot-write: cannot write in \/proc/],
  ['fuzz: corpus is a file', ['fuzz', '--runs', '2', '--corpus', GOOD], /--corpus .* is not a directory/],
  ['fuzz: --json cannot be written', [...FUZZ, '--json', `${UNWRITABLE}.json`], /--json \/proc\/mapfuzz-cannot-write\.json: cannot write/],
  ['fuzz: --junit cannot be written', [...FUZZ, '--junit', `${UNWRITABLE}.xml`], /--junit .*: cannot write/],
  ['fuzz: --junit in a missing directory', [...FUZZ, '--junit', join(box, 'no', 'j.xml')], /--junit .*: no such directory/],
  ['fuzz: --max-failures 0', [...FUZZ, '--max-failures', '0'], /--max-failures must be a positive integer/],
  ['scorecard: --json cannot be written', ['scorecard', '--time', '1', '--json', `${UNWRITABLE}.json`], /--json .*: cannot write/],
  ['oracle: --json cannot be written', ['oracle', '--runs', '1', '--json', `${UNWRITABLE}.json`], /--json .*: cannot write/],
  ['oracle: --corpus cannot be written', ['oracle', '--runs', '1', '--corpus', UNWRITABLE], /--corpus .*: cannot write in \/proc/],
  ['show: --html cannot be written', ['show', GOOD, '--html', `${UNWRITABLE}.html`], /--html .*: cannot write/],
  ['show: --c cannot be written', ['show', GOOD, '--c', `${UNWRITABLE}.c`], /--c .*: cannot write/],
  ['corpus merge: OUT cannot be written', ['corpus', 'merge', UNWRITABLE, join(box, 'good')], /OUT \/proc\/mapfuzz-cannot-write: cannot write in \/proc/],
  ...(['replay', 'shrink', 'show'] as const).flatMap((cmd): [string, string[], RegExp][] => [
    [`${cmd}: a missing file`, [cmd, MISSING], /missing\.json/],
    [`${cmd}: not JSON`, [cmd, join(box, 'garbage.json')], /garbage\.json: \(file\): not JSON/],
    [`${cmd}: a directory`, [cmd, join(box, 'empty')], /empty/],
  ]),
  ...([['replay'], ['corpus', 'check']] as const).flatMap((cmd): [string, string[], RegExp][] => [
    [`${cmd.join(' ')}: an empty directory`, [...cmd, join(box, 'empty')], /no repro files below .*empty/],
    [`${cmd.join(' ')}: a non-JSON file`, [...cmd, join(box, 'text', 'notes.txt')], /notes\.txt: not a repro file/],
    [`${cmd.join(' ')}: a directory with a non-JSON file`, [...cmd, join(box, 'text')], /notes\.txt: not a repro file/],
    [`${cmd.join(' ')}: a leftover temporary file`, [...cmd, join(box, 'tmp')], /x\.json\.tmp-77: a temporary file left by an interrupted write/],
    [`${cmd.join(' ')}: a missing path`, [...cmd, MISSING], /no such file or directory/],
  ]),
];

describe('every command on every bad input', () => {
  it.each(CASES)('%s: one line, exit 2, nothing changed', async (_, argv, message) => {
    const before = treeOf(box);
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^mapfuzz: /);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).not.toMatch(/\n\s+at /);
    expect(treeOf(box)).toEqual(before);
    expect(existsSync(UNWRITABLE)).toBe(false);
  });

  it('a write that fails after the work (a full disk) is one line, exit 2, and the repros and other reports are kept', async () => {
    const corpus = join(box, 'full-corpus');
    const junit = join(box, 'full-junit.xml');
    const r = await run(['fuzz', '--seed', '7', '--runs', '24', '--kernel', 'model', '--strategy', 'proc-mem-mmap', '--workers', '1', '--corpus', corpus, '--json', '/dev/full', '--junit', junit]);
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n').at(-1)).toBe('mapfuzz: cannot write --json /dev/full: ENOSPC');
    expect(r.err).not.toMatch(/\n\s+at /);
    expect(readdirSync(join(corpus, 'proc-mem-mmap')).length).toBeGreaterThan(0);
    expect(readFileSync(junit, 'utf8')).toMatch(/<failure /);
    const page = await run(['show', GOOD, '--html', '/dev/full']);
    expect(page.code).toBe(2);
    expect(page.err).toBe('mapfuzz: cannot write --html /dev/full: ENOSPC\n');
  });
});
