/**
 * Swap compared with the kernel: MADV_PAGEOUT of anonymous memory swaps it out on both sides
 * (pagemap's PM_SWAP), and reads, fork, COW and MADV_DONTNEED of swapped pages agree. The
 * test command (test/run-tests.mjs) turns a swap file on for the whole run when it is root;
 * run alone, this file turns one on itself. Without swap it is skipped with the reason.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { PM_PRESENT, PM_SWAP } from '../../kernel-api/op.ts';
import { checkTrace, oracleConfig } from '../../harness/oracle.ts';
import { cleanupStale, enableSwap } from '../../kernel-oracle/swap.mjs';
import { oracle, oracleBinary } from './helpers.ts';

const RW = 3;
const A = 1000;
const swap = process.platform === 'linux' ? enableSwap() : { ok: false as const, reason: 'not Linux' };
if (!swap.ok) console.warn(`[swap oracle tests skipped] ${swap.reason}`);
afterAll(() => {
  if (swap.ok) expect(swap.teardown()).toBeNull();
});

/** The trace on both sides, full agreement required; the kernel's pagemap flags of each pagemap_read. */
function agree(ops: Op[]): number[][] {
  const v = checkTrace(oracleBinary(), ops);
  if (v.result !== 'agree') throw new Error(`${v.result} at step ${v.step + 1} (${JSON.stringify(ops[v.step])}): ${JSON.stringify(v.differences)}`);
  return v.kernel.steps.map((s) => (s.outcome.kind === 'ok' && s.outcome.values !== undefined ? [...s.outcome.values] : []));
}

describe.skipIf(!oracle().ok || !swap.ok)('oracle with swap: PAGEOUT and swap-in agree with the kernel', () => {
  it('MADV_FREE drops a swapped-out page at once (free_swap_and_cache): it reads 0', () => {
    const ops: Op[] = [
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 2, prot: RW, shared: false, noreplace: true },
      { op: 'write', pid: 1, addr: A, value: 7 },
      { op: 'write', pid: 1, addr: A + 1, value: 8 },
      { op: 'madvise', pid: 1, addr: A, lengthPages: 2, advice: 'PAGEOUT' },
      { op: 'pagemap_read', pid: 1, target: 1, addr: A, count: 2 },
      { op: 'madvise', pid: 1, addr: A, lengthPages: 1, advice: 'FREE' },
      { op: 'pagemap_read', pid: 1, target: 1, addr: A, count: 2 },
      { op: 'read', pid: 1, addr: A },
      { op: 'read', pid: 1, addr: A + 1 },
    ];
    const out = agree(ops);
    expect(out[5].map((f) => f & (PM_SWAP | PM_PRESENT))).toEqual([PM_SWAP, PM_SWAP]);
    expect(out[7].map((f) => f & (PM_SWAP | PM_PRESENT))).toEqual([0, PM_SWAP]);
    expect(checkTrace(oracleBinary(), ops).kernel.steps.slice(8).map((x) => x.outcome)).toEqual([{ kind: 'ok', value: 0 }, { kind: 'ok', value: 8 }]);
  });

  it('the model gets swap slots when the machine has swap', () => {
    expect(oracleConfig().swapSlotsMax).toBeGreaterThan(0);
  });

  it('PAGEOUT swaps private anonymous pages out; a read swaps one in; fork shares the swapped page; COW and DONTNEED', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: false, noreplace: true },
      { op: 'write', pid: 1, addr: A, value: 7 },
      { op: 'write', pid: 1, addr: A + 1, value: 8 },
      { op: 'madvise', pid: 1, addr: A, lengthPages: 4, advice: 'PAGEOUT' },
      { op: 'pagemap_read', pid: 1, target: 1, addr: A, count: 4 },
      { op: 'read', pid: 1, addr: A + 1 },
      { op: 'pagemap_read', pid: 1, target: 1, addr: A, count: 2 },
      { op: 'fork', pid: 1 },
      { op: 'read', pid: 2, addr: A },
      { op: 'write', pid: 1, addr: A, value: 9 },
      { op: 'read', pid: 2, addr: A },
      { op: 'madvise', pid: 2, addr: A, lengthPages: 4, advice: 'PAGEOUT' },
      { op: 'pagemap_read', pid: 2, target: 2, addr: A, count: 2 },
      { op: 'madvise', pid: 2, addr: A, lengthPages: 4, advice: 'DONTNEED' },
      { op: 'read', pid: 2, addr: A },
      { op: 'read', pid: 1, addr: A },
    ]);
    // The kernel really swapped: both written pages swapped, then the one read back present.
    expect(out[5].slice(0, 2).map((f) => f & (PM_SWAP | PM_PRESENT))).toEqual([PM_SWAP, PM_SWAP]);
    expect(out[7].map((f) => f & (PM_SWAP | PM_PRESENT))).toEqual([PM_SWAP, PM_PRESENT]);
    expect(out[13][0] & PM_SWAP).toBe(PM_SWAP);
  });

  it('a private COW copy of a file page swaps and a fork shares its swap entry; shared anonymous memory goes to shmem swap and comes back', () => {
    const out = agree([
      { op: 'spawn' },
      { op: 'creat', sizePages: 4 },
      { op: 'pwrite', file: 1, index: 1, value: 5 },
      { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: false, noreplace: true, file: 1 },
      { op: 'write', pid: 1, addr: A, value: 7 },
      { op: 'read', pid: 1, addr: A + 1 },
      { op: 'mmap', pid: 1, addr: A + 8, lengthPages: 2, prot: RW, shared: true, noreplace: true },
      { op: 'write', pid: 1, addr: A + 8, value: 3 },
      { op: 'madvise', pid: 1, addr: A, lengthPages: 10, advice: 'PAGEOUT' },
      { op: 'pagemap_read', pid: 1, target: 1, addr: A, count: 10 },
      { op: 'fork', pid: 1 },
      { op: 'madvise', pid: 2, addr: A, lengthPages: 10, advice: 'PAGEOUT' },
      { op: 'read', pid: 1, addr: A },
      { op: 'read', pid: 2, addr: A + 8 },
      { op: 'write', pid: 1, addr: A + 8, value: 4 },
      { op: 'read', pid: 2, addr: A + 8 },
    ]);
    expect(out[9][0] & PM_SWAP).toBe(PM_SWAP);
  });
});

describe('swap files left behind', () => {
  it('cleanupStale removes the file of a process that is gone and keeps a live one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-swap-test-'));
    try {
      const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
      const gone = join(dir, `mapfuzz-swap-${dead.stdout.trim()}`);
      const live = join(dir, `mapfuzz-swap-${process.pid}`);
      writeFileSync(gone, '');
      writeFileSync(live, '');
      expect(cleanupStale(dir)).toEqual([gone]);
      expect(existsSync(gone)).toBe(false);
      expect(existsSync(live)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
