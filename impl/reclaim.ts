/**
 * Reclaim (mm/vmscan.c shrink_folio_list, mm/rmap.c try_to_unmap): unmap a frame from
 * every PTE found through its rmap chain, then anonymous pages go to swap, clean file
 * pages are dropped, dirty ones written back first, shmem goes to swap. A frame someone
 * else still references stays in the swap cache or page cache, unmapped.
 */
import type { ImplProcess, ImplState } from './types.ts';
import { frameOf, putPage, rssCounterOf } from './frames.ts';
import { F_ANON_EXCLUSIVE, F_DIRTY, F_FRESH, F_KIND, F_LAZYFREE, F_RESERVED, KIND_ANON, KIND_FILE, KIND_SHMEM } from './framepool.ts';
import { PTE_DIRTY, PTE_EXCLUSIVE, PTE_PRESENT, PTE_SOFT_DIRTY, PTE_SPECIAL, PTE_SWAP, PTE_UFFD_WP } from './pagetable.ts';
import { addToSwapCache, allocSwapSlot, assertSlot } from './swap.ts';
import { deleteFromPageCache, fileOf, writeback } from './pagecache.ts';
import { invalidateEnd, invalidateRange } from './notifier.ts';
import { anonVmaLock, iMmapLock, releaseIfHeld, withPtl } from './locks.ts';
import { vmaLookup } from './vma.ts';
import type { LockRef } from '../kernel-api/locks.ts';
import { fail } from './assert.ts';
import { COVER } from '../kernel-api/coverage.ts';

/** shrink_folio_list for one frame. Returns true when the frame left memory. */
export function shrinkFrame(s: ImplState, pfn: number): boolean {
  s.locks.cover(COVER.shrinkFolio);
  if (mappedLocked(s, pfn)) {
    s.locks.cover(COVER.reclaimMlocked);
    return false;
  }
  const kind = s.pool.flags[pfn] & F_KIND;
  if (kind === KIND_ANON) return shrinkAnon(s, pfn);
  if (kind === KIND_FILE) return shrinkFile(s, pfn);
  if (kind === KIND_SHMEM) return shrinkShmem(s, pfn);
  return false;
}

/**
 * A mapping of the frame lies in a VM_LOCKED VMA: folio_referenced_one (folio_check_references
 * keeps it, FOLIOREF_ACTIVATE) and try_to_unmap_one (without TTU_IGNORE_MLOCK) stop there,
 * so reclaim keeps the page.
 */
function mappedLocked(s: ImplState, pfn: number): boolean {
  let any = false;
  for (const p of s.processes.values()) if (p.mm.vmas.all().some((v) => v.locked)) any = true;
  if (!any) return false;
  return s.rmap.walk(pfn).some(([pid, addr]) => s.processes.get(pid)!.mm.vmas.lookup(addr)?.locked === true);
}

/** The PTE at (proc, addr) still maps `pfn` with a normal present entry. */
function stillMaps(proc: ImplProcess, addr: number, pfn: number): number {
  const flags = proc.mm.pt.flags(addr);
  if ((flags & PTE_PRESENT) === 0 || (flags & PTE_SPECIAL) !== 0 || proc.mm.pt.idx(addr) !== pfn) return 0;
  return flags;
}

/** anon_vma->root: the anon_vma whose rwsem anon_vma_lock_read takes. */
export function anonVmaRootOf(s: ImplState, anonVma: number): number {
  return s.anonVmaRoot.get(anonVma) ?? anonVma;
}

/**
 * rmap_walk's lock, for read: i_mmap_rwsem of a file or shmem frame's inode, the root
 * anon_vma of an anonymous frame (through the VMA of its first mapping). Reclaim has no
 * scheduling point of its own, so it is taken with a trylock, which cannot fail: nothing
 * holds an rmap lock for write across a point. A frame mapped nowhere needs no walk.
 * Null when there is nothing to lock.
 */
export function rmapLock(s: ImplState, pfn: number, mappings: Array<[number, number]>): LockRef | null {
  if (mappings.length === 0) return null;
  let lock: LockRef;
  if ((s.pool.flags[pfn] & F_KIND) === KIND_ANON) {
    const [pid, addr] = mappings[0]!;
    const proc = s.processes.get(pid);
    lock = anonVmaLock(s, anonVmaRootOf(s, (proc && vmaLookup(proc.mm, addr))?.anonVma ?? 0));
  } else {
    lock = iMmapLock(s, s.pool.file(pfn));
  }
  if (!s.locks.tryAcquire(lock, 'read', 'rmap_walk')) fail(`reclaim of pfn ${pfn}: ${lock.name} not free for read in rmap_walk`);
  return lock;
}

/** The frame is still the one reclaim started on (a notifier callback that slept may have let another task free it). */
const live = (s: ImplState, pfn: number, seq: number) => s.pool.isLive(pfn) && s.pool.seq[pfn] === seq;

function shrinkAnon(s: ImplState, pfn: number): boolean {
  const pool = s.pool;
  if ((pool.flags[pfn]! & F_LAZYFREE) !== 0) return shrinkLazyfree(s, pfn);
  if (pool.swapSlot(pfn) === -1) {
    if (pool.pins(pfn) > 0) {
      s.locks.cover(COVER.reclaimPinnedKept);
      return false;
    }
    const slot = allocSwapSlot(s, pool.value[pfn]);
    if (slot === -1) {
      s.locks.cover(COVER.swapFull);
      return false;
    }
    s.locks.cover(COVER.addToSwap);
    addToSwapCache(s, pfn, slot);
  }
  const seq = pool.seq[pfn];
  const mappings = s.rmap.walk(pfn);
  const lock = rmapLock(s, pfn, mappings);
  let unmapped = true;
  try {
    unmapped = unmapAnon(s, pfn, seq, mappings);
  } catch (e) {
    if (lock !== null) releaseIfHeld(s, lock, 'rmap_walk');
    throw e;
  }
  if (lock !== null) s.locks.release(lock, 'rmap_walk');
  if (!unmapped) return false;
  const slot = assertSlot(s, pool.swapSlot(pfn));
  if ((pool.flags[pfn] & F_DIRTY) !== 0) {
    s.swap.value[slot] = pool.value[pfn];
    pool.flags[pfn] &= ~F_DIRTY;
  }
  if (pool.refcount[pfn] !== 1) {
    s.locks.cover(COVER.reclaimReferenced);
    return false;
  }
  s.locks.cover(COVER.pageoutAnon);
  s.swap.cachePfn[slot] = -1;
  pool.owner[pfn] = -1;
  if (s.swap.count[slot] === 0) s.swap.release(slot);
  putPage(s, pfn);
  return true;
}

/** shrink_folio_list for a lazily freed anonymous page (model/reclaim.ts shrinkLazyfree). */
function shrinkLazyfree(s: ImplState, pfn: number): boolean {
  const pool = s.pool;
  const seq = pool.seq[pfn];
  const mappings = s.rmap.walk(pfn);
  const lock = rmapLock(s, pfn, mappings);
  let discarded = true;
  try {
    for (const [pid, addr] of mappings) {
      invalidateRange(s, pid, addr, addr + 1, 'clear');
      const gone = !live(s, pfn, seq) || (pool.flags[pfn]! & F_LAZYFREE) === 0;
      const proc = s.processes.get(pid);
      const flags = gone || proc === undefined ? 0 : stillMaps(proc, addr, pfn);
      let stop = gone;
      if (proc !== undefined && flags !== 0) {
        stop = withPtl(s, proc.mm, 'try_to_unmap_one', () => {
          if ((flags & PTE_DIRTY) !== 0) pool.flags[pfn]! |= F_DIRTY;
          if ((pool.flags[pfn]! & F_DIRTY) !== 0 || pool.refcount[pfn] !== pool.mapcount[pfn]) {
            s.locks.cover(COVER.lazyfreeRedirtied);
            pool.flags[pfn]! &= ~F_LAZYFREE; // folio_set_swapbacked
            return true;
          }
          s.locks.cover(COVER.lazyfreeDiscard);
          proc.mm.pt.clear(addr);
          unmapOne(s, proc, addr, pfn);
          return false;
        });
      }
      invalidateEnd(s, pid);
      if (stop) {
        discarded = false;
        break;
      }
    }
  } catch (e) {
    if (lock !== null) releaseIfHeld(s, lock, 'rmap_walk');
    throw e;
  }
  if (lock !== null) s.locks.release(lock, 'rmap_walk');
  return discarded && !live(s, pfn, seq);
}

/** try_to_unmap of an anonymous frame in the swap cache; false when it stopped (pinned, or the frame went). */
function unmapAnon(s: ImplState, pfn: number, seq: number, mappings: Array<[number, number]>): boolean {
  const pool = s.pool;
  for (const [pid, addr] of mappings) {
    if ((pool.flags[pfn] & F_ANON_EXCLUSIVE) !== 0 && pool.pins(pfn) > 0) {
      s.locks.cover(COVER.tryToUnmapExclusivePinned);
      return false;
    }
    invalidateRange(s, pid, addr, addr + 1, 'clear');
    const gone = !live(s, pfn, seq) || pool.swapSlot(pfn) === -1;
    const proc = s.processes.get(pid);
    const flags = gone || proc === undefined ? 0 : stillMaps(proc, addr, pfn);
    if (proc !== undefined && flags !== 0) {
      withPtl(s, proc.mm, 'try_to_unmap_one', () => {
        s.locks.cover(COVER.tryToUnmapAnon);
        const slot = pool.swapSlot(pfn);
        const exclusive = (pool.flags[pfn] & F_ANON_EXCLUSIVE) !== 0;
        proc.mm.pt.set(addr, slot, PTE_SWAP | (exclusive ? PTE_EXCLUSIVE : 0) | (flags & (PTE_SOFT_DIRTY | PTE_UFFD_WP)));
        s.swap.count[assertSlot(s, slot)] += 1;
        if ((flags & PTE_DIRTY) !== 0) pool.flags[pfn] |= F_DIRTY;
        pool.flags[pfn] &= ~F_ANON_EXCLUSIVE;
        unmapOne(s, proc, addr, pfn);
        proc.mm.rss.swap += 1;
      });
    }
    invalidateEnd(s, pid);
    if (gone) return false;
  }
  return true;
}

function unmapOne(s: ImplState, proc: ImplProcess, addr: number, pfn: number): void {
  if (!(s.pool.mapcount[pfn] > 0)) fail(`unmap of pfn ${pfn} with mapcount ${s.pool.mapcount[pfn]}`, 'mapcount');
  s.pool.mapcount[pfn] -= 1;
  s.rmap.remove(pfn, proc.pid, addr);
  proc.mm.rss[rssCounterOf(s, pfn)] -= 1;
  putPage(s, pfn);
}

/**
 * try_to_unmap for a page cache or shmem frame: its PTEs simply go. False when the frame
 * left the cache meanwhile (a callback slept and another task freed it).
 */
function unmapFilePage(s: ImplState, pfn: number): boolean {
  const seq = s.pool.seq[pfn];
  const mappings = s.rmap.walk(pfn);
  const lock = rmapLock(s, pfn, mappings);
  let unmapped = true;
  try {
    for (const [pid, addr] of mappings) {
      invalidateRange(s, pid, addr, addr + 1, 'clear');
      const gone = !live(s, pfn, seq) || s.pool.file(pfn) === -1;
      const proc = s.processes.get(pid);
      const flags = gone || proc === undefined ? 0 : stillMaps(proc, addr, pfn);
      if (proc !== undefined && flags !== 0) {
        withPtl(s, proc.mm, 'try_to_unmap_one', () => {
          s.locks.cover(COVER.tryToUnmapFile);
          proc.mm.pt.clear(addr);
          if ((flags & PTE_DIRTY) !== 0) s.pool.flags[pfn] |= F_DIRTY;
          unmapOne(s, proc, addr, pfn);
        });
      }
      invalidateEnd(s, pid);
      if (gone) {
        unmapped = false;
        break;
      }
    }
  } catch (e) {
    if (lock !== null) releaseIfHeld(s, lock, 'rmap_walk');
    throw e;
  }
  if (lock !== null) s.locks.release(lock, 'rmap_walk');
  return unmapped;
}

function shrinkFile(s: ImplState, pfn: number): boolean {
  if (s.pool.file(pfn) === -1) return false;
  if (!unmapFilePage(s, pfn)) return false;
  const file = fileOf(s, s.pool.file(pfn));
  writeback(s, file, pfn);
  if (s.pool.refcount[pfn] !== 1) {
    s.locks.cover(COVER.reclaimReferenced);
    return false;
  }
  s.locks.cover(COVER.pageoutFile);
  deleteFromPageCache(s, file, pfn);
  return true;
}

function shrinkShmem(s: ImplState, pfn: number): boolean {
  if (s.pool.file(pfn) === -1) return false;
  if (!unmapFilePage(s, pfn)) return false;
  if (s.pool.refcount[pfn] !== 1) {
    s.locks.cover(COVER.reclaimReferenced);
    return false;
  }
  const slot = allocSwapSlot(s, s.pool.value[pfn]);
  if (slot === -1) {
    s.locks.cover(COVER.swapFull);
    return false;
  }
  s.locks.cover(COVER.shmemWriteout);
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
  const eligible = (pfn: number) => (pool.flags[pfn] & (F_RESERVED | F_FRESH)) === 0;
  let freed = 0;
  for (const [pfn, seq] of s.lru.oldest(count, eligible)) {
    if (pool.isLive(pfn) && pool.seq[pfn] === seq && shrinkFrame(s, pfn)) freed += 1;
  }
  return freed;
}
