/**
 * The kernel operation mix, on an address space of `pages` private anonymous pages all
 * resident (P1 at BASE): fault, COW break, read/write of a present page, munmap of a
 * middle range, mprotect split, fork, reclaim of one page. Each op is built to leave the
 * address space as it found it after its untimed refill, so every round sees the same size.
 */
import type { Kernel } from '../kernel-api/kernel.ts';
import type { Op } from '../kernel-api/op.ts';
import type { Bench } from './measure.ts';

export const BASE = 2 ** 30;
const SCRATCH_PAGES = 4096;
/** Ranges of 4 pages every 8 pages for munmap and mprotect: the same work at every size. */
const RANGE_PAGES = 4;
const RANGE_STRIDE = 8;

export function must(k: Kernel, op: Op): number {
  const o = k.step(op);
  if (o.kind !== 'ok') throw new Error(`${JSON.stringify(op)} gave ${JSON.stringify(o)}`);
  return o.value;
}

/** P1 with `pages` private anonymous pages written (all resident), at BASE. */
export function populate(k: Kernel, pages: number): void {
  must(k, { op: 'spawn' });
  must(k, { op: 'mmap', pid: 1, addr: BASE, lengthPages: pages, prot: 3, shared: false, fixed: true });
  for (let i = 0; i < pages; i++) must(k, { op: 'write', pid: 1, addr: BASE + i, value: i + 1 });
}

export const OPS = ['fault', 'cow-break', 'read-write', 'munmap-middle', 'mprotect-split', 'fork', 'reclaim-one'] as const;
export type OpName = (typeof OPS)[number];

/** A pseudo-random page of [0, pages): a fixed LCG, so both kernels see the same addresses. */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0);
}

export function benchFor(k: Kernel, pages: number, name: OpName): Bench & { done: () => void } {
  switch (name) {
    case 'fault': return faultBench(k, pages);
    case 'cow-break': return cowBench(k, pages);
    case 'read-write': return readWriteBench(k, pages);
    case 'munmap-middle': return rangeBench(k, pages, 'munmap');
    case 'mprotect-split': return rangeBench(k, pages, 'mprotect');
    case 'fork': return forkBench(k);
    case 'reclaim-one': return reclaimBench(k, pages);
  }
}

/** Write faults on fresh pages of a second mapping placed above the big one. */
function faultBench(k: Kernel, pages: number) {
  const at = BASE + pages + 4096;
  let mapped = false;
  let used = 0;
  const unmap = () => {
    if (mapped) must(k, { op: 'munmap', pid: 1, addr: at, lengthPages: SCRATCH_PAGES });
    mapped = false;
  };
  return {
    batchMax: 512,
    run: () => { must(k, { op: 'write', pid: 1, addr: at + used++, value: 7 }); },
    refill: () => {
      if (mapped && used + 512 <= SCRATCH_PAGES) return;
      unmap();
      must(k, { op: 'mmap', pid: 1, addr: at, lengthPages: SCRATCH_PAGES, prot: 3, shared: false, fixed: true });
      mapped = true;
      used = 0;
    },
    done: unmap,
  };
}

/** A forked child writes pages it shares with P1: wp_page_copy each time. */
function cowBench(k: Kernel, pages: number) {
  let child = 0;
  let next = pages;
  const batchMax = Math.min(512, pages);
  return {
    batchMax,
    run: () => { must(k, { op: 'write', pid: child, addr: BASE + next++, value: 9 }); },
    refill: () => {
      if (next + batchMax <= pages) return;
      if (child !== 0) must(k, { op: 'exit', pid: child });
      child = must(k, { op: 'fork', pid: 1 });
      next = 0;
    },
    done: () => { must(k, { op: 'exit', pid: child }); },
  };
}

/** Loads and stores to resident, writable pages at pseudo-random addresses: no fault. */
function readWriteBench(k: Kernel, pages: number) {
  const rand = lcg(12345);
  let n = 0;
  return {
    batchMax: 4096,
    run: () => {
      const addr = BASE + (rand() % pages);
      if ((n++ & 1) === 0) must(k, { op: 'read', pid: 1, addr });
      else must(k, { op: 'write', pid: 1, addr, value: n });
    },
    refill: () => {},
    done: () => {},
  };
}

/** munmap (or mprotect to read-only) of a 4-page middle range: a split into two (three). */
function rangeBench(k: Kernel, pages: number, kind: 'munmap' | 'mprotect') {
  const first = kind === 'munmap' ? Math.floor(pages / 2) : 8;
  const slots = Math.max(1, Math.floor(Math.min(pages / 2 - 16, 4096) / RANGE_STRIDE));
  let touched: number[] = [];
  let slot = 0;
  const restore = () => {
    for (const addr of touched) {
      if (kind === 'mprotect') must(k, { op: 'mprotect', pid: 1, addr, lengthPages: RANGE_PAGES, prot: 3 });
      else {
        must(k, { op: 'mmap', pid: 1, addr, lengthPages: RANGE_PAGES, prot: 3, shared: false, fixed: true });
        for (let i = 0; i < RANGE_PAGES; i++) must(k, { op: 'write', pid: 1, addr: addr + i, value: addr - BASE + i + 1 });
      }
    }
    touched = [];
  };
  return {
    batchMax: Math.min(64, slots),
    run: () => {
      const addr = BASE + first + (slot++ % slots) * RANGE_STRIDE;
      touched.push(addr);
      if (kind === 'munmap') must(k, { op: 'munmap', pid: 1, addr, lengthPages: RANGE_PAGES });
      else must(k, { op: 'mprotect', pid: 1, addr, lengthPages: RANGE_PAGES, prot: 1 });
    },
    refill: restore,
    done: restore,
  };
}

/** fork of the whole address space; the children exit untimed. */
function forkBench(k: Kernel) {
  const children: number[] = [];
  const reap = () => { for (const pid of children.splice(0)) must(k, { op: 'exit', pid }); };
  return {
    batchMax: 4,
    run: () => { children.push(must(k, { op: 'fork', pid: 1 })); },
    refill: reap,
    done: reap,
  };
}

/** Reclaim of one resident page by address (anon to swap); the refill faults it back in. */
function reclaimBench(k: Kernel, pages: number) {
  const rand = lcg(777);
  let out: number[] = [];
  const back = () => {
    for (const addr of out) must(k, { op: 'write', pid: 1, addr, value: addr - BASE + 1 });
    out = [];
  };
  return {
    batchMax: 64,
    run: () => {
      let addr = BASE + (rand() % pages);
      while (out.includes(addr)) addr = BASE + (rand() % pages);
      must(k, { op: 'reclaim', pid: 1, addr });
      out.push(addr);
    },
    refill: back,
    done: back,
  };
}
