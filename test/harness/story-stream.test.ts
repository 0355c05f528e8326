/**
 * `show` streams its story: each step's lines go out as soon as the step has run, nothing is
 * held, and what is streamed is exactly the story told whole (issue 19: a long repro's
 * story ran out of memory when every step's machine was kept).
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadRepro } from '../../harness/repro.ts';
import { tellStory, walkStory } from '../../harness/story.ts';

const CORPUS = join(import.meta.dirname, '..', '..', 'corpus');
const files = (dir: string): string[] => readdirSync(dir).sort().flatMap((n) => {
  const p = join(dir, n);
  return statSync(p).isDirectory() ? files(p) : n.endsWith('.json') ? [p] : [];
});

describe('a streamed story', () => {
  const some = files(CORPUS).filter((f) => !f.includes(`${join('corpus', 'kernel')}`)).slice(0, 12);

  it.each(some.map((f) => [f.slice(CORPUS.length + 1), f]))('%s: streamed lines are the story told whole, and the verdict is the same', (_, file) => {
    const r = loadRepro(file);
    const whole = tellStory(r);
    const lines: string[] = [];
    const streamed = tellStory(r, (line) => lines.push(line));
    expect(streamed.text).toBe('');
    expect(lines.join('\n')).toBe(whole.text);
    expect(streamed.asExpected).toBe(whole.asExpected);
  });

  it('hands over every step once, in order', () => {
    const r = loadRepro(some.find((f) => loadRepro(f).ops.length >= 4)!);
    const seen: number[] = [];
    walkStory(r, (step) => {
      expect(step.index).toBe(seen.length + 1);
      seen.push(step.index);
    });
    expect(seen.length).toBeGreaterThanOrEqual(4);
  });
});
