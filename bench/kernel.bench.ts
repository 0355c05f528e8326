/**
 * Benchmark of the optimised kernel against the model: ops/s for page faults, COW breaks,
 * munmap of a middle range, mprotect splits, fork and reclaim of one page, on address
 * spaces of about 1k, 64k and 1M mapped pages, and the impl's peak RSS with 1M pages
 * mapped (measured in a child process running only the impl). A plain script:
 *
 *   npx tsx bench/kernel.bench.ts [--quick]
 *
 * The model is sampled with few iterations where it is slow; every ratio is from one run.
 */
import { spawnSync } from 'node:child_process';
import v8 from 'node:v8';
import vm from 'node:vm';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kernel } from '../kernel-api/kernel.ts';
import type { Op } from '../kernel-api/op.ts';
import { DEFAULT_CONFIG } from '../kernel-api/config.ts';
import { ModelKernel } from '../model/kernel.ts';
import { ImplKernel } from '../impl/kernel.ts';

const BASE = 2 ** 30;

// A full collection before each timed loop, so a pause owed to earlier garbage (the
// model's heaps are large) does not land inside a short measurement.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;
const quick = process.argv.includes('--quick');

function must(k: Kernel, op: Op): number {
  const o = k.step(op);
  if (o.kind !== 'ok') throw new Error(`${JSON.stringify(op)} gave ${JSON.stringify(o)}`);
  return o.value;
}

/** P1 with `pages` private anonymous pages written (all resident), at BASE. */
function populate(k: Kernel, pages: number): void {
  must(k, { op: 'spawn' });
  must(k, { op: 'mmap', pid: 1, addr: BASE, lengthPages: pages, prot: 3, shared: false, fixed: true });
  for (let i = 0; i < pages; i++) must(k, { op: 'write', pid: 1, addr: BASE + i, value: i + 1 });
}

type Measure = { opsPerSec: number; iterations: number };

/** Run `op(i)` for i in [0, iterations) with `before(i)` untimed; ops/s over the timed part. */
function measure(iterations: number, op: (i: number) => void, before?: (i: number) => void): Measure {
  collectGarbage();
  let ns = 0n;
  for (let i = 0; i < iterations; i++) {
    before?.(i);
    const t0 = process.hrtime.bigint();
    op(i);
    ns += process.hrtime.bigint() - t0;
  }
  return { opsPerSec: iterations / (Number(ns) / 1e9), iterations };
}

type Suite = Record<string, Measure>;

/** The op mix on a populated kernel of `pages` pages; `scale` (0..1] cuts iterations for slow kernels. */
function runSuite(k: Kernel, pages: number, scale: number): Suite {
  const n = (x: number) => Math.max(1, Math.floor(x * scale));
  const suite: Suite = {};
  const extra = BASE + pages + 4096;
  // Fault: write-fault fresh pages of a second mapping (the big one is in place).
  must(k, { op: 'mmap', pid: 1, addr: extra, lengthPages: 4096, prot: 3, shared: false, fixed: true });
  suite['fault'] = measure(n(4096), (i) => { must(k, { op: 'write', pid: 1, addr: extra + i, value: 7 }); });
  must(k, { op: 'munmap', pid: 1, addr: extra, lengthPages: 4096 });
  // munmap of a 16-page middle range, a different one each time.
  // 48 ranges of 4 pages every 8 pages: the same work at every size. At 1k pages the
  // regions are packed: mprotect [8, 392), munmap [400, 784), COW [800, 928), reclaim the last 64.
  const stride = 8;
  const len = 4;
  const small = pages < 4096;
  const mid = small ? BASE + 400 : BASE + Math.floor(pages / 2);
  suite['munmap-middle'] = measure(n(48), (i) => { must(k, { op: 'munmap', pid: 1, addr: mid + i * stride, lengthPages: len }); });
  // mprotect of a range inside the mapping (first quarter): a split into three VMAs.
  suite['mprotect-split'] = measure(n(48), (i) => { must(k, { op: 'mprotect', pid: 1, addr: BASE + 8 + i * stride, lengthPages: len, prot: 1 }); });
  // reclaim of one resident page by address (to swap).
  suite['reclaim-one'] = measure(n(64), (i) => { must(k, { op: 'reclaim', pid: 1, addr: BASE + pages - 1 - i }); });
  // fork of the whole address space (the child exits untimed).
  suite['fork'] = measure(n(8), () => { must(k, { op: 'fork', pid: 1 }); }, (i) => { if (i > 0) must(k, { op: 'exit', pid: 1 + i }); });
  // COW break: the last child writes pages it shares with P1.
  const child = 1 + n(8);
  const cowPages = Math.min(2048, pages / 8);
  const cowBase = small ? BASE + 800 : BASE + Math.floor(pages * 3 / 4) - cowPages;
  suite['cow-break'] = measure(n(cowPages), (i) => { must(k, { op: 'write', pid: child, addr: cowBase + i, value: 9 }); });
  return suite;
}

type Row = { op: string; pages: number; impl: number; model: number; modelIterations: number };

function bench(pages: number, modelScale: number): Row[] {
  const impl = new ImplKernel(DEFAULT_CONFIG);
  populate(impl, pages);
  const implSuite = runSuite(impl, pages, 1);
  const model = new ModelKernel(DEFAULT_CONFIG);
  populate(model, pages);
  const modelSuite = runSuite(model, pages, modelScale);
  return Object.keys(implSuite).map((op) => ({
    op, pages, impl: implSuite[op].opsPerSec, model: modelSuite[op].opsPerSec, modelIterations: modelSuite[op].iterations,
  }));
}

/** Child mode: only the impl, `pages` pages populated; prints its RSS, sampled while populating. */
function rssChild(pages: number): void {
  global.gc?.();
  const rssKb = () => Math.round(process.memoryUsage().rss / 1024);
  const baselineKb = rssKb();
  let peakKb = baselineKb;
  const impl = new ImplKernel(DEFAULT_CONFIG);
  must(impl, { op: 'spawn' });
  must(impl, { op: 'mmap', pid: 1, addr: BASE, lengthPages: pages, prot: 3, shared: false, fixed: true });
  for (let i = 0; i < pages; i++) {
    must(impl, { op: 'write', pid: 1, addr: BASE + i, value: i + 1 });
    if ((i & 0x3fff) === 0) peakKb = Math.max(peakKb, rssKb());
  }
  peakKb = Math.max(peakKb, rssKb());
  console.log(JSON.stringify({ baselineKb, populatedKb: peakKb, rssNowKb: rssKb() }));
}

/** Peak RSS of a child running the impl alone, bundled to plain JS so no TS loader is resident. */
async function measureRss(pages: number): Promise<{ baselineKb: number; populatedKb: number; rssNowKb: number; runner: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-bench-'));
  try {
    let args = [...process.execArgv, import.meta.filename];
    let runner = 'tsx';
    try {
      const esbuild = await import('esbuild');
      const out = join(dir, 'bench.mjs');
      esbuild.buildSync({ entryPoints: [import.meta.filename], bundle: true, platform: 'node', format: 'esm', outfile: out, external: ['esbuild'], logLevel: 'silent' });
      args = [out];
      runner = 'node (esbuild bundle)';
    } catch {
      // Fall back to the TS loader; its own footprint is then in the baseline.
    }
    const r = spawnSync(process.execPath, [...args, '--rss-child', String(pages)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`RSS child failed: ${r.stderr}`);
    return { ...JSON.parse(r.stdout.trim().split('\n').at(-1)!), runner };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toPrecision(3));

async function main(): Promise<void> {
  const childAt = process.argv.indexOf('--rss-child');
  if (childAt !== -1) {
    rssChild(Number(process.argv[childAt + 1]));
    return;
  }
  const sizes: Array<[number, number]> = quick ? [[1024, 1], [65536, 0.25]] : [[1024, 1], [65536, 0.25], [1_000_000, 0.02]];
  // Warm-up: both kernels' code paths get compiled (past the JIT's tiers) before anything is timed.
  for (let i = 0; i < 3; i++) bench(4096, 1);
  for (let i = 0; i < 8; i++) {
    const impl = new ImplKernel(DEFAULT_CONFIG);
    populate(impl, 32768);
    runSuite(impl, 32768, 1);
  }
  const rows: Row[] = [];
  for (const [pages, modelScale] of sizes) {
    const t0 = Date.now();
    rows.push(...bench(pages, modelScale));
    console.error(`  ${pages} pages benchmarked in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  console.log('op              pages      impl ops/s    model ops/s  (model iters)   impl/model');
  for (const r of rows) {
    console.log(`${r.op.padEnd(15)} ${String(r.pages).padStart(8)} ${fmt(r.impl).padStart(14)} ${fmt(r.model).padStart(14)} ${String(r.modelIterations).padStart(10)} ${(fmt(r.impl / r.model) + 'x').padStart(14)}`);
  }
  const geo = (pages: number) => {
    const rs = rows.filter((r) => r.pages === pages);
    return Math.exp(rs.reduce((a, r) => a + Math.log(r.impl / r.model), 0) / rs.length);
  };
  for (const [pages] of sizes) console.log(`geometric mean impl/model at ${pages} pages: ${fmt(geo(pages))}x`);
  const largest = sizes.at(-1)![0];
  console.log('impl per-op cost at the largest size relative to 1k pages (1.0 = flat):');
  for (const r of rows.filter((x) => x.pages === largest)) {
    const small = rows.find((x) => x.pages === 1024 && x.op === r.op)!;
    console.log(`  ${r.op.padEnd(15)} ${fmt(small.impl / r.impl)}x`);
  }
  const rss = await measureRss(quick ? 65536 : 1_000_000);
  const mib = (kb: number) => (kb / 1024).toFixed(1);
  console.log(`impl peak RSS (sampled) with ${quick ? 65536 : 1_000_000} pages mapped (${rss.runner}): ${mib(rss.populatedKb)} MiB ` +
    `(process baseline ${mib(rss.baselineKb)} MiB, so the kernel's own ${mib(rss.populatedKb - rss.baselineKb)} MiB)`);
}

await main();
