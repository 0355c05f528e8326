/** Every repro file in corpus/ replays as a regression test: one test per file, judged by what it expects. */
import { describe, expect, it } from 'vitest';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadRepro, replayRepro, reproPath } from '../harness/repro.ts';
import { tellStory } from '../harness/story.ts';

const ROOT = join(import.meta.dirname, '..', 'corpus');

function files(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.json') ? [p] : [];
  });
}

// The oracle's repros replay on the real kernel and are tested in test/oracle.
const REPROS = files(ROOT).filter((f) => !relative(ROOT, f).startsWith('kernel/'));

describe('corpus', () => {
  it('has repro files', () => expect(REPROS.length).toBeGreaterThan(0));
  // A file not named by its signature is one `fuzz` and `corpus merge` would write again under another name.
  it('names every file by its signature', () => {
    const misnamed = REPROS.map((f) => [relative(ROOT, f), relative(ROOT, reproPath(ROOT, loadRepro(f)))]).filter(([a, b]) => a !== b);
    expect(misnamed).toEqual([]);
  });
  for (const file of REPROS) {
    it(relative(ROOT, file), () => {
      const repro = loadRepro(file);
      const verdict = replayRepro(repro);
      expect(verdict.ok, verdict.summary).toBe(true);
      // `show` tells the same ending `replay` judges (one judgement, harness/repro.ts judgeReplay).
      if (repro.invariant !== 'hang') expect(tellStory(repro).asExpected).toBe(verdict.ok);
      // A repro that reproduces records its cause, and breaks with it.
      if (repro.expect === 'reproduces') expect(repro.cause, 'the cause is recorded').toBeDefined();
      // A flaw of a design is the design's, not one kernel's: it replays alike on both.
      if (repro.expect === 'reproduces' && repro.invariant !== 'differential' && repro.invariant !== 'hang') {
        for (const kernel of ['model', 'impl'] as const) {
          const v = replayRepro({ ...repro, kernel });
          expect(v.ok, `${kernel}: ${v.summary}`).toBe(true);
        }
      }
    });
  }
});
