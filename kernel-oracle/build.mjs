#!/usr/bin/env node
// Builds the kernel oracle (kernel-oracle/oracle.c) with the system `cc` into build/oracle/,
// on demand: only when the binary is missing or older than the source. Reports why when it
// cannot (not Linux, no compiler, compile error) instead of failing silently.
//
//   node kernel-oracle/build.mjs          build if needed; print the binary's path or the reason
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const ORACLE_SOURCE = join(here, 'oracle.c');
export const ORACLE_BINARY = join(here, '..', 'build', 'oracle', 'oracle');

/** Compile a C file with the system cc; { ok: true } or { ok: false, reason }. */
export function compileC(source, binary) {
  if (process.platform !== 'linux') return { ok: false, reason: `not Linux (platform ${process.platform})` };
  const cc = process.env.CC ?? 'cc';
  const probe = spawnSync(cc, ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) return { ok: false, reason: `no C compiler: \`${cc} --version\` failed (${probe.error?.message ?? probe.stderr.trim()})` };
  mkdirSync(dirname(binary), { recursive: true });
  const r = spawnSync(cc, ['-std=c11', '-O1', '-Wall', '-Wextra', '-o', binary, source], { encoding: 'utf8' });
  if (r.status !== 0) return { ok: false, reason: `\`${cc}\` failed to compile ${source}:\n${r.stderr.trim()}` };
  return { ok: true, warnings: r.stderr.trim() };
}

/** Build the oracle if needed. Returns { ok: true, binary } or { ok: false, reason }. */
export function buildOracle({ force = false } = {}) {
  const fresh = existsSync(ORACLE_BINARY) && statSync(ORACLE_BINARY).mtimeMs >= statSync(ORACLE_SOURCE).mtimeMs;
  if (fresh && !force) return { ok: true, binary: ORACLE_BINARY };
  const r = compileC(ORACLE_SOURCE, ORACLE_BINARY);
  return r.ok ? { ok: true, binary: ORACLE_BINARY } : { ok: false, reason: r.reason };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = buildOracle({ force: process.argv.includes('--force') });
  if (r.ok) console.log(r.binary);
  else {
    console.error(`kernel oracle not built: ${r.reason}`);
    process.exit(1);
  }
}
