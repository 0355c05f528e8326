/**
 * Reclaim (mm/vmscan.c shrink_folio_list, mm/rmap.c try_to_unmap): unmap a frame from
 * every PTE through rmap — a walk over all processes here — then anonymous pages go to swap,
 * clean file pages are dropped, dirty ones are written back first, shmem goes to swap.
 * A frame someone else still references stays in the swap cache or page cache, unmapped.
 * An exclusive anonymous page that may be pinned for DMA is not unmapped at all.
 */
import type { Frame, ModelState, Process } from './types.ts';
import { frameOf, putPage } from './frames.ts';
import { addToSwapCache, allocSwapSlot, slotOf } from './swap.ts';
import { deleteFromPageCache, fileOf, writeback } from './pagecache.ts';
import { processesInOrder } from './process.ts';
import { withInvalidation } from './notifier.ts';
import { ptesIn, rssCounterOf } from './zap.ts';
import { assert } from './assert.ts';
import { anonVmaLock, iMmapLock, releaseIfHeld, withPtl } from './locks.ts';
import { vmaLookup } from './vma.ts';
import { COVER } from '../kernel-api/coverage.ts';

/** Frames on the LRU lists, oldest first. */
export function lruFrames(s: ModelState): Frame[] {
  return [...s.frames.values()]
    .filter((f) => (f.kind === 'anon' || f.kind === 'file' || f.kind === 'shmem') && !f.reserved && f.fresh !== true)
    .sort((a, b) => a.lru - b.lru || a.pfn - b.pfn);
}

/** Every (process, address) whose normal PTE maps `frame`, in pid then address order. */
export function rmapWalk(s: ModelState, frame: Frame): Array<[Process, number]> {
  const found: Array<[Process, number]> = [];
  for (const proc of processesInOrder(s)) {
    for (const addr of ptesIn(proc, 0, Infinity)) {
      const pte = proc.mm.ptes.get(addr)!;
      if (pte.kind === 'present' && !pte.special && pte.pfn === frame.pfn) found.push([proc, addr]);
    }
  }
  return found;
}

/** anon_vma->root: the anon_vma whose rwsem anon_vma_lock_read takes. */
export function anonVmaRootOf(s: ModelState, anonVma: number): number {
  return s.anonVmaRoot.get(anonVma) ?? anonVma;
}

/**
 * rmap_walk's lock, for read: i_mmap_rwsem of a file or shmem frame's inode, the root
 * anon_vma of an anonymous frame (through the VMA of its first mapping). Reclaim has no
 * scheduling point of its own, so it is taken with a trylock, which cannot fail: nothing
 * holds an rmap lock for write across a point. A frame mapped nowhere needs no walk.
 */
export function withRmapLock<T>(s: ModelState, frame: Frame, mappings: Array<[Process, number]>, f: () => T): T {
  if (mappings.length === 0) return f();
  let lock;
  if (frame.kind === 'anon') {
    const [proc, addr] = mappings[0]!;
    lock = anonVmaLock(s, anonVmaRootOf(s, vmaLookup(proc.mm, addr)?.anonVma ?? 0));
  } else {
    lock = iMmapLock(s, frame.file);
  }
  assert(s.locks.tryAcquire(lock, 'read', 'rmap_walk'), `reclaim of pfn ${frame.pfn}: ${lock.name} not free for read in rmap_walk`);
  let r: T;
  try {
    r = f();
  } catch (e) {
    releaseIfHeld(s, lock, 'rmap_walk');
    throw e;
  }
  s.locks.release(lock, 'rmap_walk');
  return r;
}

/** The frame is still the live one at its pfn (a notifier callback that slept may have let another task free it). */
const live = (s: ModelState, frame: Frame) => s.frames.get(frame.pfn) === frame;

/**
 * A mapping of the frame lies in a VM_LOCKED VMA: folio_referenced_one (folio_check_references
 * keeps it, FOLIOREF_ACTIVATE) and try_to_unmap_one (without TTU_IGNORE_MLOCK) stop there,
 * so reclaim keeps the page.
 */
function mappedLocked(s: ModelState, frame: Frame): boolean {
  if (!processesInOrder(s).some((p) => p.mm.vmas.some((v) => v.locked))) return false;
  return rmapWalk(s, frame).some(([proc, addr]) => vmaLookup(proc.mm, addr)?.locked === true);
}

/** shrink_folio_list for one frame. Returns true when the frame left memory. */
export function shrinkFrame(s: ModelState, frame: Frame): boolean {
  s.locks.cover(COVER.shrinkFolio);
  if (mappedLocked(s, frame)) {
    s.locks.cover(COVER.reclaimMlocked);
    return false;
  }
  if (frame.kind === 'anon') return shrinkAnon(s, frame);
  if (frame.kind === 'file') return shrinkFile(s, frame);
  if (frame.kind === 'shmem') return shrinkShmem(s, frame);
  return false;
}

function shrinkAnon(s: ModelState, frame: Frame): boolean {
  if (frame.lazyfree === true) return shrinkLazyfree(s, frame);
  if (frame.swapSlot === -1) {
    // shrink_folio_list: a folio that may be pinned for DMA is kept before add_to_swap, so
    // it takes no slot and does not enter the swap cache.
    if (frame.pincount > 0) {
      s.locks.cover(COVER.reclaimPinnedKept);
      return false;
    }
    const entry = allocSwapSlot(s, frame.value);
    if (entry === null) {
      s.locks.cover(COVER.swapFull);
      return false;
    }
    s.locks.cover(COVER.addToSwap);
    addToSwapCache(frame, entry);
  }
  const mappings = rmapWalk(s, frame);
  const unmapped = withRmapLock(s, frame, mappings, () => {
    for (const [proc, addr] of mappings) {
      // try_to_unmap_one: folio_try_share_anon_rmap_pte fails on a maybe-pinned exclusive page.
      if (frame.anonExclusive && frame.pincount > 0) {
        s.locks.cover(COVER.tryToUnmapExclusivePinned);
        return false;
      }
      const gone = withInvalidation(s, proc.pid, addr, addr + 1, 'clear', () => {
        if (!live(s, frame) || frame.swapSlot === -1) return true;
        const pte = proc.mm.ptes.get(addr);
        if (pte?.kind !== 'present' || pte.pfn !== frame.pfn) return false;
        withPtl(s, proc.pid, 'try_to_unmap_one', () => {
          s.locks.cover(COVER.tryToUnmapAnon);
          proc.mm.ptes.set(addr, { kind: 'swap', slot: frame.swapSlot, exclusive: frame.anonExclusive, softDirty: pte.softDirty, uffdWp: pte.uffdWp });
          slotOf(s, frame.swapSlot).count += 1;
          if (pte.dirty) frame.dirty = true;
          frame.anonExclusive = false;
          unmapOne(s, proc, frame);
          proc.mm.rss.swap += 1;
        });
        return false;
      });
      if (gone) return false;
    }
    return true;
  });
  if (!unmapped) return false;
  // pageout, then __remove_mapping: only the swap cache may still hold it.
  const entry = slotOf(s, frame.swapSlot);
  if (frame.dirty) {
    entry.value = frame.value;
    frame.dirty = false;
  }
  if (frame.refcount !== 1) {
    s.locks.cover(COVER.reclaimReferenced);
    return false;
  }
  s.locks.cover(COVER.pageoutAnon);
  entry.cachePfn = -1;
  frame.swapSlot = -1;
  if (entry.count === 0) s.swap.delete(entry.slot);
  putPage(s, frame);
  return true;
}

/**
 * shrink_folio_list for a lazily freed anonymous page (MADV_FREE, !PG_swapbacked): no swap
 * slot. try_to_unmap_one discards each mapping while the page is clean and only its
 * mappings hold it (ref_count == 1 + map_count, the 1 reclaim's isolation reference); a
 * dirty PTE (a store since MADV_FREE), a dirty page (a GUP write) or another reference (a
 * pin, a GUP or driver reference) puts PG_swapbacked back and stops there: the page stays,
 * an ordinary anonymous page again, the mappings discarded before it gone.
 */
function shrinkLazyfree(s: ModelState, frame: Frame): boolean {
  const mappings = rmapWalk(s, frame);
  const discarded = withRmapLock(s, frame, mappings, () => {
    for (const [proc, addr] of mappings) {
      const stop = withInvalidation(s, proc.pid, addr, addr + 1, 'clear', () => {
        if (!live(s, frame) || frame.lazyfree !== true) return true;
        const pte = proc.mm.ptes.get(addr);
        if (pte?.kind !== 'present' || pte.pfn !== frame.pfn) return false;
        return withPtl(s, proc.pid, 'try_to_unmap_one', () => {
          if (pte.dirty) frame.dirty = true;
          if (frame.dirty || frame.refcount !== frame.mapcount) {
            s.locks.cover(COVER.lazyfreeRedirtied);
            delete frame.lazyfree; // folio_set_swapbacked
            return true;
          }
          s.locks.cover(COVER.lazyfreeDiscard);
          proc.mm.ptes.delete(addr);
          unmapOne(s, proc, frame); // the last mapping's reference was the last: the page is freed
          return false;
        });
      });
      if (stop) return false;
    }
    return true;
  });
  return discarded && !live(s, frame);
}

function unmapOne(s: ModelState, proc: Process, frame: Frame): void {
  assert(frame.mapcount > 0, `unmap of pfn ${frame.pfn} with mapcount ${frame.mapcount}`, 'mapcount');
  frame.mapcount -= 1;
  proc.mm.rss[rssCounterOf(frame)] -= 1;
  putPage(s, frame);
}

/**
 * try_to_unmap for a page cache or shmem frame: its PTEs simply go (it can be refaulted).
 * False when the frame left the cache meanwhile (a callback slept and another task freed it).
 */
function unmapFilePage(s: ModelState, frame: Frame): boolean {
  const mappings = rmapWalk(s, frame);
  return withRmapLock(s, frame, mappings, () => {
    for (const [proc, addr] of mappings) {
      const gone = withInvalidation(s, proc.pid, addr, addr + 1, 'clear', () => {
        if (!live(s, frame) || frame.file === -1) return true;
        const pte = proc.mm.ptes.get(addr);
        if (pte?.kind !== 'present' || pte.pfn !== frame.pfn) return false;
        withPtl(s, proc.pid, 'try_to_unmap_one', () => {
          s.locks.cover(COVER.tryToUnmapFile);
          proc.mm.ptes.delete(addr);
          if (pte.dirty) frame.dirty = true;
          unmapOne(s, proc, frame);
        });
        return false;
      });
      if (gone) return false;
    }
    return true;
  });
}

function shrinkFile(s: ModelState, frame: Frame): boolean {
  if (frame.file === -1) return false;
  if (!unmapFilePage(s, frame)) return false;
  const file = fileOf(s, frame.file);
  writeback(file, frame);
  if (frame.refcount !== 1) {
    s.locks.cover(COVER.reclaimReferenced);
    return false;
  }
  s.locks.cover(COVER.pageoutFile);
  deleteFromPageCache(s, file, frame);
  return true;
}

/** shmem_writeout: a frame only the shmem mapping holds moves to a swap slot. */
function shrinkShmem(s: ModelState, frame: Frame): boolean {
  if (frame.file === -1) return false;
  if (!unmapFilePage(s, frame)) return false;
  if (frame.refcount !== 1) {
    s.locks.cover(COVER.reclaimReferenced);
    return false;
  }
  const entry = allocSwapSlot(s, frame.value);
  if (entry === null) {
    s.locks.cover(COVER.swapFull);
    return false;
  }
  s.locks.cover(COVER.shmemWriteout);
  entry.count = 1;
  const file = fileOf(s, frame.file);
  file.swapped.set(frame.index, entry.slot);
  deleteFromPageCache(s, file, frame);
  return true;
}

/** The `reclaim` operation: one frame by address, or the `count` oldest on the LRU. */
export function reclaimAt(s: ModelState, proc: Process, addr: number): number {
  const pte = proc.mm.ptes.get(addr);
  if (pte?.kind !== 'present' || pte.special) return 0;
  return shrinkFrame(s, frameOf(s, pte.pfn)) ? 1 : 0;
}

export function reclaimOldest(s: ModelState, count: number): number {
  let freed = 0;
  for (const frame of lruFrames(s).slice(0, count)) {
    if (s.frames.has(frame.pfn) && shrinkFrame(s, frame)) freed += 1;
  }
  return freed;
}
