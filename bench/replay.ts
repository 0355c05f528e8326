/**
 * Replay cost against trace length (issue 19): a repro of the shape that made `replay`
 * super-linear — a process forks a child, the child writes its COW-shared page and exits,
 * repeated, each child left a zombie — generated at 1k, 10k and 100k operations, written
 * as repro files and replayed as `mapfuzz replay FILE` replays them (cli/main.ts in this
 * process, output dropped; `kernel: diff`, its invariant `differential` judged after every
 * step). Reported: the time of each and the ratios 10k ÷ 1k and 100k ÷ 10k, measured in
 * this one run (linear cost gives 10× each); and `mapfuzz show` of the 100k repro in a
 * child process, its lines counted and dropped: time, exit status and peak RSS (VmHWM).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Op } from '../kernel-api/op.ts';
import { PROT_READ, PROT_WRITE } from '../kernel-api/op.ts';
import { FUZZ_CONFIG } from '../harness/config.ts';
import { REPRO_FORMAT, writeReproFile, type Repro } from '../harness/repro.ts';
import { main } from '../cli/main.ts';

/** Pages the parent maps (at a fixed address) and its children write in turn. */
const PAGES = 4;
const ADDR = 1 << 20;
export const REPLAY_LENGTHS = [1_000, 10_000, 100_000] as const;

/** `opsCount` operations: spawn, mmap and a write by P1, then (fork P1, write by the child, exit of the child) repeated. */
export function forkExitOps(opsCount: number): Op[] {
  const ops: Op[] = [
    { op: 'spawn' },
    { op: 'mmap', pid: 1, addr: ADDR, lengthPages: PAGES, prot: PROT_READ | PROT_WRITE, shared: false, fixed: true },
    { op: 'write', pid: 1, addr: ADDR, value: 1 },
  ];
  for (let child = 2; ops.length < opsCount; child++) {
    ops.push({ op: 'fork', pid: 1 });
    ops.push({ op: 'write', pid: child, addr: ADDR + (child % PAGES), value: child });
    ops.push({ op: 'exit', pid: child });
  }
  return ops.slice(0, opsCount);
}

export function forkExitRepro(opsCount: number): Repro {
  return {
    format: REPRO_FORMAT, title: `bench: fork, write, exit of a child, ${opsCount} operations`, kernel: 'diff', strategy: 'core',
    invariant: 'differential', expect: 'passes', seed: 0, message: '', config: { ...FUZZ_CONFIG }, ops: forkExitOps(opsCount),
  };
}

export type ReplayRow = { ops: number; ms: number; exit: number };
export type ShowRun = { ops: number; ms: number; exit: number; lines: number; peakMiB: number; baselineMiB: number };
export type ReplayBench = { rows: ReplayRow[]; ratio10kTo1k: number; ratio100kTo10k: number; show: ShowRun };

const silent = { log: () => {}, err: () => {} };

/** `mapfuzz replay FILE` in this process: its wall time and exit status. */
async function timedReplay(file: string): Promise<{ ms: number; exit: number }> {
  const t0 = performance.now();
  const exit = await main(['replay', file], silent);
  return { ms: performance.now() - t0, exit };
}

function peakRssKiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m === null ? process.resourceUsage().maxRSS : Number(m[1]);
}

/** Child mode: `mapfuzz show FILE`, every line counted and dropped; prints time, status, lines and peak RSS. */
export async function showChild(file: string): Promise<void> {
  const baselineKiB = peakRssKiB();
  let lines = 0;
  const t0 = performance.now();
  const exit = await main(['show', file], { log: () => { lines += 1; }, err: () => {} });
  const ms = performance.now() - t0;
  console.log(JSON.stringify({ ms, exit, lines, peakKiB: peakRssKiB(), baselineKiB }));
}

export async function replayBench(): Promise<ReplayBench> {
  const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-bench-replay-'));
  try {
    const files = REPLAY_LENGTHS.map((n) => {
      const file = join(dir, `fork-exit-${n}.json`);
      writeReproFile(file, forkExitRepro(n));
      return file;
    });
    // Warm-up: the kernels, the session and the CLI compiled before anything is timed.
    await timedReplay(files[0]);
    await timedReplay(files[0]);
    const rows: ReplayRow[] = [];
    for (const [i, file] of files.entries()) rows.push({ ops: REPLAY_LENGTHS[i], ...(await timedReplay(file)) });
    const last = files.at(-1)!;
    const r = spawnSync(process.execPath, [...process.execArgv, import.meta.filename, '--show-child', last], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (r.status !== 0) throw new Error(`show child failed: ${r.stderr}`);
    const c = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { ms: number; exit: number; lines: number; peakKiB: number; baselineKiB: number };
    return {
      rows, ratio10kTo1k: rows[1].ms / rows[0].ms, ratio100kTo10k: rows[2].ms / rows[1].ms,
      show: { ops: REPLAY_LENGTHS.at(-1)!, ms: c.ms, exit: c.exit, lines: c.lines, peakMiB: c.peakKiB / 1024, baselineMiB: c.baselineKiB / 1024 },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatReplayBench(b: ReplayBench): string {
  const lines = ['replay of a fork/write/exit repro (diff kernel)   ops        ms  exit'];
  for (const r of b.rows) lines.push(`  ${' '.repeat(46)}${String(r.ops).padStart(6)} ${r.ms.toFixed(0).padStart(9)}  ${r.exit}`);
  lines.push(`  ratios: 10k / 1k ${b.ratio10kTo1k.toFixed(2)}x, 100k / 10k ${b.ratio100kTo10k.toFixed(2)}x (linear: 10x)`);
  lines.push(`  show of the ${b.show.ops}-op repro: ${(b.show.ms / 1000).toFixed(1)} s, exit ${b.show.exit}, ${b.show.lines} lines, ` +
    `peak RSS ${b.show.peakMiB.toFixed(0)} MiB (at start-up ${b.show.baselineMiB.toFixed(0)} MiB)`);
  return lines.join('\n');
}

if (/bench[/\\]replay\.ts$/.test(process.argv[1] ?? '')) {
  const childAt = process.argv.indexOf('--show-child');
  if (childAt !== -1) await showChild(process.argv[childAt + 1]);
  else console.log(formatReplayBench(await replayBench()));
}
