/**
 * A C reproducer compiles with the system cc and, run, performs the trace on the kernel:
 * it prints one observation line per step with the outcomes the kernel gives.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { reproToC } from '../../harness/oracle-c.ts';
import { compileC } from '../../kernel-oracle/build.mjs';
import { oracle } from './helpers.ts';

const TRACE: Op[] = [
  { op: 'spawn' },
  { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false },
  { op: 'write', pid: 1, addr: (1 << 19) - 2, value: 42 },
  { op: 'fork', pid: 1 },
  { op: 'read', pid: 2, addr: (1 << 19) - 2 },
  { op: 'mprotect', pid: 2, addr: (1 << 19) - 2, lengthPages: 1, prot: 1 },
  { op: 'write', pid: 2, addr: (1 << 19) - 2, value: 1 },
];

describe.skipIf(!oracle().ok)('C reproducers', () => {
  it('reproToC gives a standalone program that compiles and replays the trace', () => {
    const source = reproToC(TRACE);
    expect(source).toContain('MAP_FIXED_NOREPLACE'); // the model's placement, made explicit
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-repro-c-'));
    try {
      writeFileSync(join(dir, 'repro.c'), source);
      const built = compileC(join(dir, 'repro.c'), join(dir, 'repro'));
      expect(built.ok, built.ok ? '' : built.reason).toBe(true);
      const run = spawnSync(join(dir, 'repro'), [], { encoding: 'utf8', timeout: 20_000 });
      expect(run.status, run.stderr).toBe(0);
      const steps = run.stdout.trim().split('\n').slice(1).map((l) => JSON.parse(l) as { outcome: { kind: string; value?: number; signal?: string } });
      expect(steps).toHaveLength(TRACE.length);
      expect(steps[4].outcome).toEqual({ kind: 'ok', value: 42 });
      expect(steps[6].outcome).toEqual({ kind: 'signal', signal: 'SIGSEGV' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
