/**
 * Reclaim (mm/vmscan.c shrink_folio_list, mm/rmap.c try_to_unmap): unmap a frame from
 * every PTE found through its rmap chain, then anonymous pages go to swap, clean file
 * pages are dropped, dirty ones written back first, shmem goes to swap. A frame someone
 * else still references stays in the swap cache or page cache, unmapped.
 */
import type { ImplProcess, ImplState } from './types.ts';
import { frameOf, putPage, rssCounterOf } from './frames.ts';
import { F_ANON_EXCLUSIVE, F_DIRTY, F_KIND, F_RESERVED, KIND_ANON, KIND_FILE, KIND_SHMEM } from './framepool.ts';
import { PTE_DIRTY, PTE_EXCLUSIVE, PTE_PRESENT, PTE_SOFT_DIRTY, PTE_SPECIAL, PTE_SWAP, PTE_UFFD_WP } from './pagetable.ts';
import { addToSwapCache, allocSwapSlot, assertSlot } from './swap.ts';
import { deleteFromPageCache, fileOf, writeback } from './pagecache.ts';
import { invalidateRange } from './notifier.ts';
import { fail } from './assert.ts';

/** shrink_folio_list for one frame. Returns true when the frame left memory. */
export function shrinkFrame(s: ImplState, pfn: number): boolean {
  const kind = s.pool.flags[pfn] & F_KIND;
  if (kind === KIND_ANON) return shrinkAnon(s, pfn);
  if (kind === KIND_FILE) return shrinkFile(s, pfn);
  if (kind === KIND_SHMEM) return shrinkShmem(s, pfn);
  return false;
}

/** The PTE at (proc, addr) still maps `pfn` with a normal present entry. */
function stillMaps(proc: ImplProcess, addr: number, pfn: number): number {
  const flags = proc.mm.pt.flags(addr);
  if ((flags & PTE_PRESENT) === 0 || (flags & PTE_SPECIAL) !== 0 || proc.mm.pt.idx(addr) !== pfn) return 0;
  return flags;
}

function shrinkAnon(s: ImplState, pfn: number): boolean {
  const pool = s.pool;
  if (pool.swapSlot(pfn) === -1) {
    if (pool.pins(pfn) > 0) return false;
    const slot = allocSwapSlot(s, pool.value[pfn]);
    if (slot === -1) return false;
    addToSwapCache(s, pfn, slot);
  }
  for (const [pid, addr] of s.rmap.walk(pfn)) {
    if ((pool.flags[pfn] & F_ANON_EXCLUSIVE) !== 0 && pool.pins(pfn) > 0) return false;
    invalidateRange(s, pid, addr, addr + 1, 'clear');
    const proc = s.processes.get(pid)!;
    const flags = stillMaps(proc, addr, pfn);
    if (flags === 0) continue;
    const slot = pool.swapSlot(pfn);
    const exclusive = (pool.flags[pfn] & F_ANON_EXCLUSIVE) !== 0;
    proc.mm.pt.set(addr, slot, PTE_SWAP | (exclusive ? PTE_EXCLUSIVE : 0) | (flags & (PTE_SOFT_DIRTY | PTE_UFFD_WP)));
    s.swap.count[assertSlot(s, slot)] += 1;
    if ((flags & PTE_DIRTY) !== 0) pool.flags[pfn] |= F_DIRTY;
    pool.flags[pfn] &= ~F_ANON_EXCLUSIVE;
    unmapOne(s, proc, addr, pfn);
    proc.mm.rss.swap += 1;
  }
  const slot = assertSlot(s, pool.swapSlot(pfn));
  if ((pool.flags[pfn] & F_DIRTY) !== 0) {
    s.swap.value[slot] = pool.value[pfn];
    pool.flags[pfn] &= ~F_DIRTY;
  }
  if (pool.refcount[pfn] !== 1) return false;
  s.swap.cachePfn[slot] = -1;
  pool.owner[pfn] = -1;
  if (s.swap.count[slot] === 0) s.swap.release(slot);
  putPage(s, pfn);
  return true;
}

function unmapOne(s: ImplState, proc: ImplProcess, addr: number, pfn: number): void {
  if (!(s.pool.mapcount[pfn] > 0)) fail(`unmap of pfn ${pfn} with mapcount ${s.pool.mapcount[pfn]}`, 'mapcount');
  s.pool.mapcount[pfn] -= 1;
  s.rmap.remove(pfn, proc.pid, addr);
  proc.mm.rss[rssCounterOf(s, pfn)] -= 1;
  putPage(s, pfn);
}

/** try_to_unmap for a page cache or shmem frame: its PTEs simply go. */
function unmapFilePage(s: ImplState, pfn: number): void {
  for (const [pid, addr] of s.rmap.walk(pfn)) {
    invalidateRange(s, pid, addr, addr + 1, 'clear');
    const proc = s.processes.get(pid)!;
    const flags = stillMaps(proc, addr, pfn);
    if (flags === 0) continue;
    proc.mm.pt.clear(addr);
    if ((flags & PTE_DIRTY) !== 0) s.pool.flags[pfn] |= F_DIRTY;
    unmapOne(s, proc, addr, pfn);
  }
}

function shrinkFile(s: ImplState, pfn: number): boolean {
  if (s.pool.file(pfn) === -1) return false;
  unmapFilePage(s, pfn);
  const file = fileOf(s, s.pool.file(pfn));
  writeback(s, file, pfn);
  if (s.pool.refcount[pfn] !== 1) return false;
  deleteFromPageCache(s, file, pfn);
  return true;
}

function shrinkShmem(s: ImplState, pfn: number): boolean {
  if (s.pool.file(pfn) === -1) return false;
  unmapFilePage(s, pfn);
  if (s.pool.refcount[pfn] !== 1) return false;
  const slot = allocSwapSlot(s, s.pool.value[pfn]);
  if (slot === -1) return false;
  s.swap.count[slot] = 1;
  const file = fileOf(s, s.pool.file(pfn));
  file.swapped.set(s.pool.index[pfn], slot);
  deleteFromPageCache(s, file, pfn);
  return true;
}

export function reclaimAt(s: ImplState, proc: ImplProcess, addr: number): number {
  const flags = proc.mm.pt.flags(addr);
  if ((flags & PTE_PRESENT) === 0 || (flags & PTE_SPECIAL) !== 0) return 0;
  return shrinkFrame(s, frameOf(s, proc.mm.pt.idx(addr))) ? 1 : 0;
}

export function reclaimOldest(s: ImplState, count: number): number {
  const pool = s.pool;
  const eligible = (pfn: number) => (pool.flags[pfn] & F_RESERVED) === 0;
  let freed = 0;
  for (const [pfn, seq] of s.lru.oldest(count, eligible)) {
    if (pool.isLive(pfn) && pool.seq[pfn] === seq && shrinkFrame(s, pfn)) freed += 1;
  }
  return freed;
}
