import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Op } from '../../kernel-api/op.ts';
import { shrinkOps } from '../../harness/shrink.ts';
import { FUZZ_CONFIG } from '../../harness/config.ts';
import { loadRepro, replayRepro, writeReproFile, REPRO_FORMAT } from '../../harness/repro.ts';
import { replayOps } from '../../properties/trace.ts';
import { strategyByName } from '../../strategies/index.ts';
import { main } from '../../cli/main.ts';

const procMem = strategyByName('proc-mem-mmap')!;
const session = { kernel: 'model' as const, config: FUZZ_CONFIG, strategies: [procMem], only: new Set(['zero-page' as const]) };
const open = (pid: number, target: number): Op => ({ op: 'drv', strategy: 'proc-mem-mmap', call: 'open', args: { pid, target } });

/**
 * Seed 000's zero-page flaw (a shared writable view of a hole maps the zero page writable),
 * reached the long way: extra processes, a file, an anonymous mapping, a second open, a
 * parent mapping 16 pages rwx of its forked child's mem at a hint with an offset. (A
 * process mapping its own mem deadlocks first: test/strategies/proc-mem-mmap.test.ts.)
 */
const BLOATED: Op[] = [
  { op: 'spawn' }, { op: 'spawn' }, { op: 'creat', sizePages: 8 }, { op: 'truncate', file: 1, sizePages: 3 },
  { op: 'mmap', pid: 1, addr: 0, lengthPages: 8, prot: 3, shared: false }, { op: 'write', pid: 1, addr: 0x7fffffff8, value: 77777 },
  { op: 'fork', pid: 1 }, open(1, 3), open(1, 3),
  { op: 'mmap', pid: 1, addr: 0x100000, lengthPages: 16, prot: 7, shared: true, fd: 4, pgoff: 0x40 },
  { op: 'exit', pid: 3 }, { op: 'exit', pid: 2 }, { op: 'exit', pid: 1 },
];
const MINIMAL: Op[] = [
  { op: 'spawn' }, { op: 'fork', pid: 1 }, open(1, 2), { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, fd: 3, pgoff: 0 },
];

describe('shrinking', () => {
  it('removes processes, merges a forked child into its parent, renumbers fds and simplifies sizes, prot, hints and offsets', () => {
    expect(replayOps(session, BLOATED).failure?.invariant).toBe('zero-page');
    const t0 = performance.now();
    const { ops } = shrinkOps(session, BLOATED, 'zero-page');
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(ops).toEqual(MINIMAL);
  });

  it('keeps the same failure: the result still breaks the invariant it was shrunk for', () => {
    // Judged with every invariant on, the bloated trace may break another first; the shrinker must not drift to it.
    // (Less lock-order, which every mmap of another's mem breaks first in seed 000: a run's chain looks past it.)
    const all = { ...session, only: undefined, exclude: new Set(['lock-order'] as const) };
    const { ops } = shrinkOps(all, BLOATED, 'zero-page');
    expect(replayOps(all, ops).failure?.invariant).toBe('zero-page');
  });

  it('mapfuzz shrink rewrites a repro file in place with the simpler trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-shrink-'));
    const file = join(dir, 'zero-page.json');
    writeReproFile(file, {
      format: REPRO_FORMAT, title: 'zero page mapped writable', kernel: 'model', strategy: 'proc-mem-mmap', invariant: 'zero-page',
      expect: 'reproduces', seed: 1, message: '', config: { ...FUZZ_CONFIG }, ops: BLOATED,
    });
    const lines: string[] = [];
    const code = await main(['shrink', file], { log: (s) => lines.push(s), err: (s) => lines.push(s) });
    expect(code).toBe(0);
    expect(lines.join('\n')).toMatch(/13 → 4 steps/);
    const repro = loadRepro(file);
    expect(repro.ops).toEqual(MINIMAL);
    expect(replayRepro(repro).ok).toBe(true);
    expect(readFileSync(file, 'utf8')).toMatch(/"format": "mapfuzz-repro\/1"/);
  });
});
