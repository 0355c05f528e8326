/**
 * `show` judges a repro as `replay` does (issue 19): the same machine (a divergence from
 * Linux replays in the oracle's address layout, harness/repro.ts replayConfig) and the same
 * verdict (harness/repro.ts reproVerdict; the emulated repros' story judged by judgeReplay,
 * as test/corpus.test.ts checks in-process for every file). Here through the CLI: every file
 * of corpus/kernel/, and the first of each other corpus directory.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadRepro } from '../../harness/repro.ts';
import { runModel } from '../../harness/oracle.ts';
import { formatOutcome } from '../../kernel-api/outcome.ts';
import { filesBelow, run } from './helpers.ts';

const ROOT = join(import.meta.dirname, '..', '..', 'corpus');
const KERNEL = filesBelow(join(ROOT, 'kernel'));
const OTHERS = readdirSync(ROOT).sort().filter((d) => d !== 'kernel').map((d) => filesBelow(join(ROOT, d))[0]);

/** replay's word for a file (ok, FAIL or skip) and the exit status show must give for it. */
async function replayed(file: string): Promise<{ word: string; showCode: number }> {
  const r = await run(['replay', file]);
  const word = r.out.split('\n')[0].split(' ')[0];
  return { word, showCode: word === 'FAIL' ? 1 : 0 };
}

describe('show and replay agree', () => {
  it.each([...KERNEL, ...OTHERS].map((f) => [relative(ROOT, f), f]))('%s', async (_, file) => {
    const { word, showCode } = await replayed(file);
    expect(['ok', 'FAIL', 'skip']).toContain(word);
    const shown = await run(['show', file]);
    expect(shown.err).toBe('');
    expect(shown.code, shown.out).toBe(showCode);
    if (word === 'skip') expect(shown.out).toMatch(/not judged: the kernel oracle is unavailable here/);
    expect(shown.out).not.toMatch(/no longer reproduces|has regressed/);
  });

  it.each(KERNEL.map((f) => [relative(ROOT, f), f]))('%s: show tells the outcomes the oracle compares with Linux', async (_, file) => {
    const r = loadRepro(file);
    const model = runModel(r.ops);
    const shown = await run(['show', file]);
    const results = shown.out.split('\n').filter((l) => /^ *\d+\. /.test(l));
    expect(results.length).toBe(r.ops.length);
    for (const [i, line] of results.entries()) {
      const o = model.steps[i].outcome;
      const expected = o.kind === 'ok' && (r.ops[i].op === 'mmap' || r.ops[i].op === 'mremap') ? `= 0x${o.value.toString(16)}` : formatOutcome(o);
      expect(line.endsWith(` ${expected}`), `${line} ends with ${expected}`).toBe(true);
    }
  });
});
