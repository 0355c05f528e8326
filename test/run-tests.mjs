#!/usr/bin/env node
// The test command: typecheck, then vitest over test/, then one plain closing line
// `tests: N passed, N failed` that CI reads. Exit status is vitest's (or tsc's).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { enableSwap } from '../kernel-oracle/swap.mjs';

const bin = (name) => join(import.meta.dirname, '..', 'node_modules', '.bin', name);

const tsc = spawnSync(bin('tsc'), ['--noEmit', '-p', '.'], { stdio: 'inherit' });
if (tsc.status !== 0) {
  console.log('typecheck failed');
  console.log('tests: 0 passed, 1 failed');
  process.exit(1);
}

// Swap for the oracle tests, so that MADV_PAGEOUT and swap-in are compared with the kernel:
// the machine's own, or (as root) a swap file turned on for the run and torn down after it.
const swap = enableSwap();
console.log(swap.ok ? `swap for the oracle tests: ${swap.made ?? `the machine's own (${swap.areas.join(', ')})`}` : `no swap for the oracle tests: ${swap.reason}`);

const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-tests-'));
const report = join(dir, 'report.json');
const args = ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)];
const run = spawnSync(bin('vitest'), args, { stdio: 'inherit' });
let passed = 0;
let failed = 0;
try {
  const json = JSON.parse(readFileSync(report, 'utf8'));
  passed = json.numPassedTests;
  failed = json.numFailedTests + (json.numTotalTestSuites > 0 && json.success === false && json.numFailedTests === 0 ? 1 : 0);
} catch {
  failed += 1;
}
rmSync(dir, { recursive: true, force: true });
const left = swap.ok ? swap.teardown() : null;
if (left !== null) console.log(`the swap file could not be turned off: ${left}`);
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(run.status ?? 1);
