#!/usr/bin/env node
// A swap file for the kernel oracle, so that MADV_PAGEOUT and swap-in are compared with the
// running kernel (without swap, PAGEOUT leaves anonymous pages where they are, and the model,
// configured as the machine by oracleConfig(), gives itself no swap slots either).
//
// The machine's own swap, if it has any, is used as it is: nothing is turned on or off.
// Otherwise, as root, a swap file is made (fallocate, mkswap) and turned on (swapon); the
// caller turns it off and deletes it again with teardown(). A file left behind by a process
// that died before its teardown is turned off and deleted by the next enableSwap(): its name
// carries the pid that made it, and a detached watcher process turns it off and deletes it as
// soon as that pid is gone (so an interrupted or killed campaign does not leave the machine
// with swap it did not have). Anything that stands in the way (not Linux, not root, no
// mkswap, a filesystem that cannot hold swap) is a reason, never an exception.
//
//   node kernel-oracle/swap.mjs status      say whether the machine has swap
//   node kernel-oracle/swap.mjs cleanup     turn off and delete files left by dead processes
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where swap files are made: a disk filesystem (tmpfs cannot hold swap). */
export const SWAP_DIR = process.env.MAPFUZZ_SWAP_DIR ?? '/var/tmp';
const PREFIX = 'mapfuzz-swap-';
/** Size of the file: room for 65,536 pages, the model's swapSlotsMax on the oracle's machine. */
export const SWAP_MIB = 256;

/** The active swap areas of the machine (the file names in /proc/swaps), or null off Linux. */
export function swapAreas() {
  if (process.platform !== 'linux') return null;
  try {
    return readFileSync('/proc/swaps', 'utf8').trim().split('\n').slice(1).map((line) => line.split(/\s+/)[0]).filter(Boolean);
  } catch {
    return null;
  }
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error !== undefined) return `\`${cmd}\` could not run (${r.error.message})`;
  if (r.status !== 0) return `\`${cmd} ${args.join(' ')}\` failed: ${(r.stderr || r.stdout).trim()}`;
  return null;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** Turn off and delete the swap files of processes that are gone. Returns the files removed. */
export function cleanupStale(dir = SWAP_DIR) {
  let names;
  try {
    names = readdirSync(dir).filter((n) => n.startsWith(PREFIX));
  } catch {
    return [];
  }
  const active = new Set(swapAreas() ?? []);
  const removed = [];
  for (const name of names) {
    const pid = Number(name.slice(PREFIX.length));
    if (!Number.isSafeInteger(pid) || alive(pid)) continue;
    const path = join(dir, name);
    if (active.has(path) && run('swapoff', [path]) !== null) continue; // still in use: leave it
    rmSync(path, { force: true });
    removed.push(path);
  }
  return removed;
}

/**
 * Make sure the machine has swap. Returns
 *   { ok: true, made: null, areas, teardown }  — the machine already had swap; teardown does nothing;
 *   { ok: true, made: PATH, areas, teardown }  — this process turned PATH on; teardown turns it off
 *                                                 and deletes it (also done at process exit);
 *   { ok: false, reason }                       — no swap, and why.
 */
export function enableSwap({ dir = SWAP_DIR, mib = SWAP_MIB } = {}) {
  const areas = swapAreas();
  if (areas === null) return { ok: false, reason: `not Linux (platform ${process.platform}): no /proc/swaps` };
  cleanupStale(dir);
  const now = swapAreas() ?? [];
  if (now.length > 0) return { ok: true, made: null, areas: now, teardown: () => null };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { ok: false, reason: 'the machine has no swap, and only root can turn a swap file on (swapon)' };
  const path = join(dir, `${PREFIX}${process.pid}`);
  const fail = (reason) => {
    rmSync(path, { force: true });
    return { ok: false, reason };
  };
  const made = run('fallocate', ['-l', `${mib}M`, path]) ?? run('chmod', ['600', path]) ?? run('mkswap', [path]);
  if (made !== null) return fail(made);
  const on = run('swapon', [path]);
  if (on !== null) return fail(on);
  let down = false;
  const teardown = () => {
    if (down) return null;
    down = true;
    process.off('exit', teardown);
    const off = run('swapoff', [path]);
    if (off !== null) return off; // left for cleanupStale once this process is gone
    rmSync(path, { force: true });
    return null;
  };
  process.on('exit', teardown);
  // The watcher outlives this process only to clean up after it; it does nothing while it runs.
  spawn(process.execPath, [fileURLToPath(import.meta.url), 'watch', String(process.pid), dir], { detached: true, stdio: 'ignore' }).unref();
  return { ok: true, made: path, areas: swapAreas() ?? [path], teardown };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const cmd = process.argv[2] ?? 'status';
  if (cmd === 'watch') {
    // watch PID DIR: once PID is gone, clean up its swap file (cleanupStale), then end.
    const pid = Number(process.argv[3]);
    const timer = setInterval(() => {
      if (alive(pid)) return;
      clearInterval(timer);
      cleanupStale(process.argv[4]);
    }, 500);
  } else if (cmd === 'cleanup') for (const f of cleanupStale()) console.log(`removed ${f}`);
  else if (cmd === 'status') {
    const areas = swapAreas();
    console.log(areas === null ? 'no /proc/swaps' : areas.length === 0 ? 'no swap' : `swap: ${areas.join(', ')}`);
  } else {
    console.error('usage: node kernel-oracle/swap.mjs [status|cleanup]');
    process.exit(2);
  }
}
