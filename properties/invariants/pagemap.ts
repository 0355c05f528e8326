/**
 * pagemap-scan: what PAGEMAP_SCAN and /proc/<pid>/pagemap returned equals a plain
 * page-by-page reading of the same state through the inspection interface, written here
 * apart from both kernels. A scan is judged when it changes nothing (no PM_SCAN_* flags)
 * and its output fits the bounce buffer (vec_len ≤ 512, where no restart splits regions).
 */
import type { PagemapReadOp, PagemapScanOp } from '../../kernel-api/op.ts';
import {
  PAGEMAP_WALK_PAGES, PAGE_IS_FILE, PAGE_IS_PFNZERO, PAGE_IS_PRESENT, PAGE_IS_SOFT_DIRTY, PAGE_IS_SWAPPED,
  PAGE_IS_WPALLOWED, PAGE_IS_WRITTEN, PM_FILE, PM_MMAP_EXCLUSIVE, PM_PRESENT, PM_SOFT_DIRTY, PM_SWAP, PM_UFFD_WP,
} from '../../kernel-api/op.ts';
import type { KernelInspect, ProcessView, PteView, VmaView } from '../../kernel-api/state.ts';
import type { Invariant, Violation } from './types.ts';

type PageState = { addr: number; vma: VmaView | undefined; pte: PteView | undefined; marker: boolean };

/**
 * Every page of [start, end), in order; with `holes` false only those inside a VMA, which is
 * all a scan reports (a scan may span the whole address space; a pagemap read is short).
 */
function pageStates(k: KernelInspect, pid: number, start: number, end: number, holes = true): PageState[] {
  const vmas = [...k.vmas(pid)];
  const ptes = new Map<number, PteView>();
  for (const [addr, pte] of k.ptes(pid)) if (addr >= start && addr < end) ptes.set(addr, pte);
  const markers = new Set([...k.uffdWpMarkers(pid)]);
  const out: PageState[] = [];
  const page = (addr: number, vma: VmaView | undefined) => out.push({ addr, vma, pte: ptes.get(addr), marker: markers.has(addr) });
  if (holes) {
    for (let addr = start; addr < end; addr++) page(addr, vmas.find((v) => v.start <= addr && addr < v.end));
    return out;
  }
  for (const vma of vmas) for (let addr = Math.max(start, vma.start); addr < Math.min(end, vma.end); addr++) page(addr, vma);
  return out;
}

/** The categories of one page of a walked VMA; null outside any walked VMA. */
function categoriesOf(k: KernelInspect, page: PageState, fileOfInterest: boolean, sd: boolean): number | null {
  const { vma, pte } = page;
  if (vma === undefined || vma.pfnmap) return null;
  let c = (vma.uffdWp ? PAGE_IS_WPALLOWED : 0) | (sd && vma.softDirty ? PAGE_IS_SOFT_DIRTY : 0);
  if (pte === undefined) return page.marker ? c | PAGE_IS_SWAPPED : c;
  if (pte.kind === 'swap') return c | PAGE_IS_SWAPPED | (pte.uffdWp ? 0 : PAGE_IS_WRITTEN) | (sd && pte.softDirty ? PAGE_IS_SOFT_DIRTY : 0);
  c |= PAGE_IS_PRESENT | (pte.uffdWp ? 0 : PAGE_IS_WRITTEN) | (sd && pte.softDirty ? PAGE_IS_SOFT_DIRTY : 0);
  if (fileOfInterest && !pte.special && k.frame(pte.pfn)?.kind !== 'anon') c |= PAGE_IS_FILE;
  if (pte.pfn === k.zeroPfn) c |= PAGE_IS_PFNZERO;
  return c;
}

/**
 * The expected [walk_end, regions…] of a scan without flags. `softDirty`: whether the
 * kernel reports soft-dirty bits (KernelConfig.softDirty).
 */
export function expectedScan(k: KernelInspect, op: PagemapScanOp, softDirty = true): number[] {
  const pid = op.target ?? op.pid;
  const start = op.start;
  const end = Math.ceil(op.end);
  const vecLen = op.vecNull ? 0 : op.vec_len;
  if (vecLen === 0) return [end];
  const maxPages = op.max_pages === 0 ? Infinity : op.max_pages;
  const fileOfInterest = ((op.category_mask | op.category_anyof_mask | op.return_mask) & PAGE_IS_FILE) !== 0;
  const regions: number[][] = [];
  let found = 0;
  for (const state of pageStates(k, pid, start, end, false)) {
    const cats = categoriesOf(k, state, fileOfInterest, softDirty);
    if (cats === null) continue;
    const c = cats ^ op.category_inverted;
    if ((c & op.category_mask) !== op.category_mask) continue;
    if (op.category_anyof_mask !== 0 && (c & op.category_anyof_mask) === 0) continue;
    const addr = state.addr;
    if (found === maxPages) return [addr, ...regions.flat()];
    const masked = cats & op.return_mask;
    const last = regions.at(-1);
    if (last !== undefined && last[1] === addr && last[2] === masked) {
      last[1] = addr + 1;
    } else {
      if (regions.length === vecLen) return [addr, ...regions.flat()];
      regions.push([addr, addr + 1, masked]);
    }
    found += 1;
  }
  return [end, ...regions.flat()];
}

/** The expected entries (bits 55..63) and low bits of a pagemap read by `caller`. */
export function expectedPagemap(k: KernelInspect, caller: ProcessView, op: PagemapReadOp, taskSizePages: number, softDirty = true): [number[], number[]] {
  const end = Math.min(op.addr + (op.count ?? 1), taskSizePages);
  const flags: number[] = [];
  const frames: number[] = [];
  const states = pageStates(k, op.target, op.addr, Math.max(op.addr, end));
  for (const { vma, pte, marker } of states) {
    if (vma === undefined) { flags.push(0); frames.push(0); continue; }
    let f = softDirty && vma.softDirty ? PM_SOFT_DIRTY : 0;
    let frame = 0;
    if (pte === undefined) {
      if (marker) f |= PM_SWAP | PM_UFFD_WP;
    } else if (pte.kind === 'swap') {
      f |= PM_SWAP | (softDirty && pte.softDirty ? PM_SOFT_DIRTY : 0) | (pte.uffdWp ? PM_UFFD_WP : 0);
      frame = pte.slot * 32;
    } else {
      f |= PM_PRESENT | (softDirty && pte.softDirty ? PM_SOFT_DIRTY : 0) | (pte.uffdWp ? PM_UFFD_WP : 0);
      frame = pte.pfn;
      const fr = pte.special ? undefined : k.frame(pte.pfn);
      if (fr !== undefined && fr.kind !== 'anon') f |= PM_FILE;
      if (fr !== undefined && fr.mapcount === 1) f |= PM_MMAP_EXCLUSIVE;
    }
    flags.push(f);
    frames.push(caller.uid === 0 ? frame : 0);
  }
  return [flags, frames];
}

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

export const pagemapScan: Invariant = {
  id: 'pagemap-scan',
  holds: 'PAGEMAP_SCAN regions and walk_end, and /proc/<pid>/pagemap entries, equal a page-by-page reading of the state',
  causes: [
    { id: 'scan', title: 'PAGEMAP_SCAN disagrees with the page tables' },
    { id: 'pagemap', title: '/proc/<pid>/pagemap entry disagrees with the page tables' },
  ],
  check({ k, config, op, outcome }): Violation | null {
    if (outcome.kind !== 'ok') return null;
    if (op.op === 'pagemap_scan') {
      if (op.flags !== 0 || (!op.vecNull && op.vec_len > PAGEMAP_WALK_PAGES)) return null;
      const want = expectedScan(k, op, config.softDirty !== false);
      const got = outcome.values ?? [];
      if (same(want, got) && outcome.value === (want.length - 1) / 3) return null;
      return { invariant: 'pagemap-scan', cause: 'scan', pid: op.target ?? op.pid, addr: op.start, message: `PAGEMAP_SCAN of P${op.target ?? op.pid} [${op.start}, ${op.end}) returned ${outcome.value} [${got.join(', ')}], a page-by-page scan gives [${want.join(', ')}]` };
    }
    if (op.op === 'pagemap_read') {
      const caller = [...k.processes()].find((p) => p.pid === op.pid);
      if (caller === undefined) return null;
      const [flags, frames] = expectedPagemap(k, caller, op, config.taskSizePages, config.softDirty !== false);
      if (same(flags, outcome.values ?? []) && same(frames, outcome.frames ?? [])) return null;
      return { invariant: 'pagemap-scan', cause: 'pagemap', pid: op.target, addr: op.addr, message: `pagemap of P${op.target} at ${op.addr} read [${(outcome.values ?? []).join(', ')}] / frames [${(outcome.frames ?? []).join(', ')}], the page tables give [${flags.join(', ')}] / [${frames.join(', ')}]` };
    }
    return null;
  },
};
