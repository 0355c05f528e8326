/**
 * The page cache and shmem (mm/filemap.c, mm/shmem.c): files are inodes whose pages live
 * in the page cache over a backing store (regular files) or over swap (shmem). The page
 * cache holds one reference on each of its frames.
 */
import type { File, Frame, ModelState, Pte } from './types.ts';
import { SHMEM_ID_BASE } from './types.ts';
import { assert } from './assert.ts';
import { allocFrame, frameOf, putPage } from './frames.ts';
import { freeSwapAndCache, slotOf } from './swap.ts';
import { processesInOrder } from './process.ts';
import { zapRange } from './zap.ts';
import { iMmapLock, invalidateLock, releaseIfHeld, withLock } from './locks.ts';

export function fileOf(s: ModelState, id: number): File {
  const file = s.files.get(id);
  assert(file !== undefined, `file ${id} does not exist`);
  return file;
}

export function newFile(s: ModelState, sizePages: number, shmem: boolean): File {
  const id = shmem ? SHMEM_ID_BASE + s.nextShmemId++ : s.nextFileId++;
  const file: File = { id, shmem, sizePages, pagecache: new Map(), backing: new Map(), swapped: new Map(), users: 0 };
  s.files.set(id, file);
  return file;
}

/**
 * filemap_fault / shmem_get_folio: the page cache frame at `index`, read in from the
 * backing store or swap if needed. Null when the allocation fails. The caller must take its
 * own reference.
 */
export function findOrCreatePage(s: ModelState, file: File, index: number): Frame | null {
  const cached = file.pagecache.get(index);
  if (cached !== undefined) return frameOf(s, cached);
  const slot = file.swapped.get(index);
  if (slot !== undefined) return shmemSwapin(s, file, index, slot);
  const frame = allocFrame(s, file.shmem ? 'shmem' : 'file', file.backing.get(index) ?? 0);
  if (frame === null) return null;
  frame.file = file.id;
  frame.index = index;
  file.pagecache.set(index, frame.pfn);
  return frame;
}

/** shmem_swapin_folio: from the swap cache if the slot has one, else a fresh frame. */
function shmemSwapin(s: ModelState, file: File, index: number, slot: number): Frame | null {
  const entry = slotOf(s, slot);
  assert(entry.cachePfn === -1, `shmem slot ${slot} has a swap cache frame`);
  const frame = allocFrame(s, 'shmem', entry.value);
  if (frame === null) return null;
  frame.file = file.id;
  frame.index = index;
  frame.dirty = true;
  file.swapped.delete(index);
  file.pagecache.set(index, frame.pfn);
  freeSwapAndCache(s, slot);
  return frame;
}

/** Drop a frame from its file's page cache (its reference too). */
export function deleteFromPageCache(s: ModelState, file: File, frame: Frame): void {
  assert(file.pagecache.get(frame.index) === frame.pfn, `pfn ${frame.pfn} not in page cache of file ${file.id}`);
  file.pagecache.delete(frame.index);
  frame.file = -1;
  frame.index = -1;
  putPage(s, frame);
}

/** Writeback of a dirty page cache frame to the backing store. */
export function writeback(file: File, frame: Frame): void {
  if (!frame.dirty || file.shmem) return;
  file.backing.set(frame.index, frame.value);
  frame.dirty = false;
}

/**
 * truncate_pagecache: shrink or grow a file. Pages at or past the new size leave every
 * mapping (private copies too, as unmap_mapping_range with even_cows does) and the cache.
 */
export function truncateFile(s: ModelState, file: File, sizePages: number): void {
  if (sizePages < file.sizePages) {
    // unmap_mapping_range: i_mmap_rwsem for read (a trylock, as in reclaim: no scheduling
    // point of the kernel's own here), then each VMA's range with its notifiers. A callback
    // may sleep: a VMA another task removed meanwhile is skipped.
    const lock = iMmapLock(s, file.id);
    assert(s.locks.tryAcquire(lock, 'read', 'unmap_mapping_range'), `truncate of file ${file.id}: ${lock.name} not free for read`);
    try {
      for (const proc of processesInOrder(s)) {
        for (const vma of proc.mm.vmas.filter((v) => v.file === file.id)) {
          if (proc.state !== 'running' || !proc.mm.vmas.includes(vma)) continue;
          const start = Math.max(vma.start, vma.start + (sizePages - vma.pgoff));
          if (start < vma.end) zapRange(s, proc, start, vma.end, 'clear');
        }
      }
    } finally {
      releaseIfHeld(s, lock, 'unmap_mapping_range');
    }
    for (const index of [...file.pagecache.keys()].filter((i) => i >= sizePages).sort((a, b) => a - b)) {
      deleteFromPageCache(s, file, frameOf(s, file.pagecache.get(index)!));
    }
    for (const index of [...file.backing.keys()].filter((i) => i >= sizePages)) file.backing.delete(index);
    for (const index of [...file.swapped.keys()].filter((i) => i >= sizePages).sort((a, b) => a - b)) {
      freeSwapAndCache(s, file.swapped.get(index)!);
      file.swapped.delete(index);
    }
  }
  file.sizePages = sizePages;
}

/**
 * FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE of pages [start, end) (shmem_fallocate,
 * ext4_punch_hole → truncate_pagecache_range): unmap_mapping_range with even_cows = 0 —
 * every mapping's PTEs of the file's pages go, a private mapping's anonymous COW copies and
 * their swap entries stay (should_zap_folio / should_zap_cows) — then the pages leave the
 * cache and the backing store (shmem: its swap), so the range reads zero. The size stays.
 */
export function punchHole(s: ModelState, file: File, start: number, end: number): void {
  withLock(s, invalidateLock(s, file.id), 'write', 'filemap_invalidate_lock', () => punchHoleLocked(s, file, start, end));
}

function punchHoleLocked(s: ModelState, file: File, start: number, end: number): void {
  const lock = iMmapLock(s, file.id);
  assert(s.locks.tryAcquire(lock, 'read', 'unmap_mapping_range'), `hole punch of file ${file.id}: ${lock.name} not free for read`);
  const keepCows = (_addr: number, pte: Pte) => pte.kind === 'swap' || (!pte.special && frameOf(s, pte.pfn).kind === 'anon');
  try {
    for (const proc of processesInOrder(s)) {
      for (const vma of proc.mm.vmas.filter((v) => v.file === file.id)) {
        if (proc.state !== 'running' || !proc.mm.vmas.includes(vma)) continue;
        const lo = Math.max(vma.start, vma.start + (start - vma.pgoff));
        const hi = Math.min(vma.end, vma.start + (end - vma.pgoff));
        if (lo < hi) zapRange(s, proc, lo, hi, 'clear', keepCows);
      }
    }
  } finally {
    releaseIfHeld(s, lock, 'unmap_mapping_range');
  }
  for (const index of [...file.pagecache.keys()].filter((i) => i >= start && i < end).sort((a, b) => a - b)) {
    deleteFromPageCache(s, file, frameOf(s, file.pagecache.get(index)!));
  }
  for (const index of [...file.backing.keys()].filter((i) => i >= start && i < end)) file.backing.delete(index);
  for (const index of [...file.swapped.keys()].filter((i) => i >= start && i < end).sort((a, b) => a - b)) {
    freeSwapAndCache(s, file.swapped.get(index)!);
    file.swapped.delete(index);
  }
}

/** A mapping or an fd takes a reference on inode `id` (-1: none). */
export function inodeGet(s: ModelState, id: number): void {
  const file = s.files.get(id);
  if (file !== undefined) file.users += 1;
}

/** Drop a reference on inode `id`; the last user of a shmem object frees its pages and swap. */
export function inodePut(s: ModelState, id: number): void {
  const file = s.files.get(id);
  if (file === undefined) return;
  assert(file.users > 0, `inode ${id} put with no users`);
  file.users -= 1;
  if (file.shmem && file.users === 0) {
    truncateFile(s, file, 0);
    s.files.delete(file.id);
  }
}
