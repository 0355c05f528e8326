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
import { unsupportedReason } from '../../harness/oracle.ts';
import { oracle, oracleBinary } from './helpers.ts';

const TRACE: Op[] = [
  { op: 'spawn' },
  { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false },
  { op: 'write', pid: 1, addr: (1 << 19) - 2, value: 42 },
  { op: 'fork', pid: 1 },
  { op: 'read', pid: 2, addr: (1 << 19) - 2 },
  { op: 'mprotect', pid: 2, addr: (1 << 19) - 2, lengthPages: 1, prot: 1 },
  { op: 'write', pid: 2, addr: (1 << 19) - 2, value: 1 },
];

/** The introspection calls, as plain syscalls too. */
const INTROSPECTION: Op[] = [
  { op: 'spawn' },
  { op: 'creat', sizePages: 2 },
  { op: 'mmap', pid: 1, addr: 1000, lengthPages: 2, prot: 3, shared: true, noreplace: true, file: 1 },
  { op: 'write', pid: 1, addr: 1000, value: 5 },
  { op: 'write', pid: 1, addr: 1001, value: 6 },
  { op: 'uffd_register_wp', pid: 1, addr: 1000, lengthPages: 2, async: true },
  {
    op: 'pagemap_scan', pid: 1, target: 1, start: 1000, end: 1002, flags: 1, max_pages: 0,
    category_inverted: 0, category_mask: 2, category_anyof_mask: 0, return_mask: 2, vec_len: 4,
  },
  { op: 'pagemap_read', pid: 1, target: 1, addr: 1000, count: 2 },
  { op: 'clear_refs', pid: 1, target: 1, mode: 4 },
  { op: 'map_files_readdir', pid: 1, target: 1 },
];

/** vmsplice, fork and COW (the CVE-2020-29374 shape): the C reproducer reads the pipe as the oracle does. */
const VMSPLICE: Op[] = [
  { op: 'spawn' },
  { op: 'mmap', pid: 1, addr: 1000, lengthPages: 1, prot: 3, shared: false, noreplace: true },
  { op: 'write', pid: 1, addr: 1000, value: 5 },
  { op: 'fork', pid: 1 },
  { op: 'vmsplice', pid: 2, addr: 1000, lengthPages: 1 },
  { op: 'munmap', pid: 2, addr: 1000, lengthPages: 1 },
  { op: 'write', pid: 1, addr: 1000, value: 6 },
  { op: 'pipe_read', pid: 2, pipe: 1, pages: 1 },
];

/** Compile `ops` as a C reproducer, run it, return its per-step outcomes. */
function runC(ops: Op[]): { kind: string; value?: number; values?: number[]; signal?: string }[] {
  const source = reproToC(ops);
  const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-repro-c-'));
  try {
    writeFileSync(join(dir, 'repro.c'), source);
    const built = compileC(join(dir, 'repro.c'), join(dir, 'repro'));
    expect(built.ok, built.ok ? '' : built.reason).toBe(true);
    const run = spawnSync(join(dir, 'repro'), [], { encoding: 'utf8', timeout: 20_000 });
    expect(run.status, run.stderr).toBe(0);
    const steps = run.stdout.trim().split('\n').slice(1).map((l) => JSON.parse(l) as { outcome: { kind: string; value?: number; values?: number[]; signal?: string } });
    expect(steps).toHaveLength(ops.length);
    return steps.map((s) => s.outcome);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(!oracle().ok)('C reproducers', () => {
  const lacks = oracle().ok ? unsupportedReason(oracleBinary(), INTROSPECTION) : undefined;
  if (lacks !== undefined) console.warn(`[oracle test skipped] C reproducer of the introspection calls: ${lacks}`);
  it.skipIf(lacks !== undefined)('the introspection calls compile to plain syscalls and replay', () => {
    const source = reproToC(INTROSPECTION);
    expect(source).toContain('PAGEMAP_SCAN');
    expect(source).toContain('UFFDIO_REGISTER');
    expect(source).toContain('map_files');
    const out = runC(INTROSPECTION);
    expect(out[6]).toEqual({ kind: 'ok', value: 1, values: [1002, 1000, 1002, 2] });
    expect(out[7]).toEqual({ kind: 'ok', value: 2, values: [256 | 64 | 4 | 2, 256 | 64 | 4 | 2] });
    expect(out[8]).toEqual({ kind: 'ok', value: 0 });
    expect(out[9]).toEqual({ kind: 'ok', value: 1, values: [1000, 1002] });
  });

  it('vmsplice and the pipe read compile to vmsplice(2) and read(2), with the model\'s pipe id', () => {
    const source = reproToC(VMSPLICE);
    expect(source).toContain('vmsplice(new pipe 1, page 1000, 1 pages, SPLICE_F_NONBLOCK)');
    const out = runC(VMSPLICE);
    expect(out[4]).toEqual({ kind: 'ok', value: 1, values: [1] });
    expect(out[7]).toEqual({ kind: 'ok', value: 1, values: [5] });
  });

  it('reproToC gives a standalone program that compiles and replays the trace', () => {
    const source = reproToC(TRACE);
    expect(source).toContain('MAP_FIXED_NOREPLACE'); // the model's placement, made explicit
    const out = runC(TRACE);
    expect(out[4]).toEqual({ kind: 'ok', value: 42 });
    expect(out[6]).toEqual({ kind: 'signal', signal: 'SIGSEGV' });
  });
});
