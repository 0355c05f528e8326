/**
 * The C reproducer of a concurrent trace: each emulated thread is a pthread of its
 * process, each concurrent segment's operations are released together, the trace runs in
 * a loop of attempts, and the program says plainly that the real kernel will not follow
 * the recorded interleaving. Compiled with `cc -std=c11 -pthread` and run here; a raced
 * step is asserted to give one of the outcomes its interleavings allow, never a timing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { RACE_ATTEMPTS_DEFAULT, reproToC, threadedSteps } from '../../harness/oracle-c.ts';
import { concurrentReason } from '../../harness/oracle.ts';
import { main } from '../../cli/main.ts';
import { oracle } from './helpers.ts';

/** Two threads of one process: the main thread unmaps while thread 2 reads, nested at munmap's first point. */
const THREADS: Op[] = [
  { op: 'spawn' },
  { op: 'mmap', pid: 1, addr: 1000, lengthPages: 2, prot: 3, shared: false, noreplace: true },
  { op: 'write', pid: 1, addr: 1000, value: 7 },
  { op: 'clone', pid: 1 },
  { op: 'munmap', pid: 1, addr: 1000, lengthPages: 2, switches: [{ at: 0, to: 2 }] },
  { op: 'read', pid: 1, tid: 2, addr: 1000 },
  { op: 'read', pid: 1, tid: 2, addr: 1000 },
];

/** Two processes: P1 unmaps while root's P2 reads the page through /proc/1/mem. */
const PROCESSES: Op[] = [
  { op: 'spawn' },
  { op: 'spawn', uid: 0 },
  { op: 'mmap', pid: 1, addr: 1000, lengthPages: 1, prot: 3, shared: false, noreplace: true },
  { op: 'write', pid: 1, addr: 1000, value: 9 },
  { op: 'munmap', pid: 1, addr: 1000, lengthPages: 1, switches: [{ at: 0, to: 2 }] },
  { op: 'proc_mem_read', pid: 2, target: 1, addr: 1000 },
  { op: 'read', pid: 1, addr: 1000 },
];

type Outcome = { kind: string; value?: number; signal?: string; errno?: string };
type StepLine = { step: number; outcome: Outcome; attempt?: number; race?: number; task?: number };

/** Compile the C reproducer of `ops` with -pthread, run it for `attempts`, return each attempt's steps. */
function runThreaded(ops: Op[], attempts: number): StepLine[][] {
  const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-repro-c-threads-'));
  try {
    writeFileSync(join(dir, 'repro.c'), reproToC(ops));
    const built = spawnSync(process.env.CC ?? 'cc', ['-std=c11', '-pthread', '-O1', '-o', join(dir, 'repro'), join(dir, 'repro.c')], { encoding: 'utf8' });
    expect(built.status, built.stderr).toBe(0);
    const run = spawnSync(join(dir, 'repro'), [String(attempts)], { encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as StepLine & { attempts?: number; oracle?: number });
    const out: StepLine[][] = [];
    for (const line of lines) {
      if (line.attempts !== undefined) out.push([]);
      else if (line.oracle === undefined) out.at(-1)!.push(line);
    }
    expect(out).toHaveLength(attempts);
    for (const steps of out) expect(steps.map((s) => s.step)).toEqual(ops.map((_, i) => i));
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the C reproducer of a concurrent trace', () => {
  it('groups the operations the model ran in one top-level step into one concurrent segment', () => {
    const steps = threadedSteps(THREADS);
    expect(steps.map((s) => s.line)).toEqual([
      'spawn 1000', 'mmap 1 4096000 8192 3 0 2 -1 0 1 0', 'write 1 1000 7', 'clone 1', 'munmap 1 4096000 8192', 'read 1 1000', 'read 1 1000',
    ]);
    expect(steps.map((s) => s.race)).toEqual([0, 0, 0, 0, 1, 1, 0]);
    expect(steps.map((s) => s.tid)).toEqual([0, 0, 0, 0, 0, 2, 2]);
  });

  it('says plainly that the real kernel will not follow the recorded interleaving, and writes threads', () => {
    const source = reproToC(THREADS);
    expect(source).toContain('CONCURRENT REPRO. The real kernel will not follow the recorded interleaving');
    expect(source).toContain('only tries to make the race likely');
    expect(source).toContain('each attempt\n * prints its outcomes');
    expect(source).toContain('Build: cc -std=c11 -pthread -o repro repro.c');
    expect(source).toContain('pthread_create');
    expect(source).toContain(`#define RACE_ATTEMPTS ${RACE_ATTEMPTS_DEFAULT}`);
    expect(source).toMatch(/ 6\. race 1 +P1 T2: \*\(uint32_t \*\)0x2000003e8000 +model: = 7\n/);
    // The replayer is there unchanged, its main renamed; the threaded driver after it.
    expect(source).toContain(readFileSync(join(import.meta.dirname, '../../kernel-oracle/oracle.c'), 'utf8'));
    expect(source).toContain(readFileSync(join(import.meta.dirname, '../../kernel-oracle/threads.c'), 'utf8'));
  });

  it('a sequential trace gives the sequential replayer, without the concurrent header', () => {
    const source = reproToC(THREADS.slice(0, 3));
    expect(source).not.toContain('CONCURRENT');
    expect(source).not.toContain('threaded reproducer');
    expect(source).toContain('#define ORACLE_TRACE 1');
  });

  it('the oracle itself still refuses concurrent traces, with its reason', () => {
    expect(concurrentReason(THREADS)).toBe('concurrent trace (step 4: a thread (clone)): the running kernel will not follow the recorded interleaving');
    expect(concurrentReason(PROCESSES)).toBe('concurrent trace (step 5: a recorded interleaving): the running kernel will not follow the recorded interleaving');
  });

  it('the threaded driver performs every command the replayer performs', () => {
    const cases = (file: string, from: string) => {
      const text = readFileSync(join(import.meta.dirname, '../../kernel-oracle', file), 'utf8');
      return new Set([...text.slice(text.indexOf(from)).matchAll(/case (C_[A-Z_]+):/g)].map((m) => m[1]));
    };
    const replayer = cases('oracle.c', 'static void process_loop');
    const threaded = cases('threads.c', 'static struct reply task_exec');
    // task_loop performs fork and exit itself: they change the task.
    for (const kind of replayer) if (kind !== 'C_FORK' && kind !== 'C_EXIT') expect(threaded, kind).toContain(kind);
  });

  it('show --c writes the threaded program and says the kernel will not follow the interleaving', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-show-c-threads-'));
    try {
      const repro = { format: 'mapfuzz-repro/1', kernel: 'model', strategy: 'core', invariant: 'cow-isolation', ops: THREADS, expect: 'passes', seed: 1, title: 'two threads race munmap and a read' };
      writeFileSync(join(dir, 'r.json'), JSON.stringify(repro));
      let out = '';
      const code = await main(['show', join(dir, 'r.json'), '--c', join(dir, 'r.c')], { log: (s) => { out += `${s}\n`; }, err: (s) => { out += `${s}\n`; } });
      expect(code, out).toBe(0);
      expect(out).toContain('-pthread');
      expect(out).toContain('the real kernel will not follow the recorded interleaving');
      expect(readFileSync(join(dir, 'r.c'), 'utf8')).toBe(reproToC(THREADS));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!oracle().ok)('the threaded C reproducer on the running kernel', () => {
  it('two threads of one process: thread 2 is a pthread, the race is released and each attempt prints every outcome', () => {
    for (const steps of runThreaded(THREADS, 2)) {
      expect(steps[3].outcome).toEqual({ kind: 'ok', value: 2 }); // clone: thread 2
      expect(steps[4]).toMatchObject({ outcome: { kind: 'ok', value: 0 }, race: 1, task: 1 });
      expect(steps[5]).toMatchObject({ race: 1, task: 2 });
      // Before the unmap the read sees 7; after it, the thread faults: either is a valid interleaving.
      expect([JSON.stringify({ kind: 'ok', value: 7 }), JSON.stringify({ kind: 'signal', signal: 'SIGSEGV' })]).toContain(JSON.stringify(steps[5].outcome));
      expect(steps[6].outcome).toEqual({ kind: 'signal', signal: 'SIGSEGV' }); // sequential again, on thread 2
      expect(steps[6].race).toBeUndefined();
    }
  });

  it('two processes: P2 reads P1 through /proc/1/mem while P1 unmaps', () => {
    for (const steps of runThreaded(PROCESSES, 2)) {
      expect(steps[4]).toMatchObject({ outcome: { kind: 'ok', value: 0 }, race: 1, task: 1 });
      expect(steps[5]).toMatchObject({ race: 1, task: 2 });
      expect([JSON.stringify({ kind: 'ok', value: 9 }), JSON.stringify({ kind: 'errno', errno: 'EIO' })]).toContain(JSON.stringify(steps[5].outcome));
      expect(steps[6].outcome).toEqual({ kind: 'signal', signal: 'SIGSEGV' });
    }
  });
});
