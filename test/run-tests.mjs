#!/usr/bin/env node
// The test command: typecheck, then vitest over test/, then one plain closing line
// `tests: N passed, N failed` that CI reads. Exit status is vitest's (or tsc's).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = (name) => join(import.meta.dirname, '..', 'node_modules', '.bin', name);

const tsc = spawnSync(bin('tsc'), ['--noEmit', '-p', '.'], { stdio: 'inherit' });
if (tsc.status !== 0) {
  console.log('typecheck failed');
  console.log('tests: 0 passed, 1 failed');
  process.exit(1);
}

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
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(run.status ?? 1);
