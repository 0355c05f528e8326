/**
 * Peak memory with 1 million mapped pages: a child process runs only the implementation
 * (bundled to plain JS with esbuild when available, so no TS loader is resident), maps and
 * writes the pages, and reports its peak RSS (VmHWM) and its RSS peak before populating.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CONFIG } from '../kernel-api/config.ts';
import { ImplKernel } from '../impl/kernel.ts';
import { populate } from './kernelops.ts';

export type RssResult = { pages: number; peakMiB: number; baselineMiB: number; runner: string };

/**
 * The process's RSS high-water mark in KiB: VmHWM, which starts afresh at exec (getrusage's
 * ru_maxrss does not: it carries the forking parent's peak into the child).
 */
function peakRssKiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m === null ? process.resourceUsage().maxRSS : Number(m[1]);
}

/** Child mode: populate and print the peak. */
export function rssChild(pages: number): void {
  const baselineKiB = peakRssKiB();
  const impl = new ImplKernel(DEFAULT_CONFIG);
  populate(impl, pages);
  const peakKiB = peakRssKiB();
  if (impl.inspect.frame(0) === undefined) throw new Error('the zero page is gone');
  console.log(JSON.stringify({ baselineKiB, peakKiB }));
}

export async function measureRss(pages: number): Promise<RssResult> {
  const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-bench-'));
  const entry = join(import.meta.dirname, 'run.ts');
  try {
    let args = [...process.execArgv, entry];
    let runner = 'node with the tsx loader';
    try {
      const esbuild = await import('esbuild');
      const out = join(dir, 'bench.mjs');
      esbuild.buildSync({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', outfile: out, external: ['esbuild'], logLevel: 'silent' });
      args = [out];
      runner = 'node, esbuild bundle';
    } catch {
      // Fall back to the TS loader; its own footprint is then in the figure.
    }
    const r = spawnSync(process.execPath, [...args, '--rss-child', String(pages)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`RSS child failed: ${r.stderr}`);
    const { baselineKiB, peakKiB } = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { baselineKiB: number; peakKiB: number };
    return { pages, peakMiB: peakKiB / 1024, baselineMiB: baselineKiB / 1024, runner };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
