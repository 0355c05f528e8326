/**
 * The page cache and shmem (mm/filemap.c, mm/shmem.c): files are inodes whose pages live
 * in the page cache over a backing store (regular files) or over swap (shmem). Truncation
 * finds the mappings to zap through the inode's i_mmap set rather than every process.
 */
import type { ImplFile, ImplState, ImplVma } from './types.ts';
import { SHMEM_ID_BASE } from './types.ts';
import { fail } from './assert.ts';
import { allocFrame, frameOf, putPage } from './frames.ts';
import { F_DIRTY, F_KIND, KIND_ANON, KIND_FILE, KIND_SHMEM } from './framepool.ts';
import { PTE_SPECIAL, PTE_SWAP } from './pagetable.ts';
import { assertSlot, freeSwapAndCache } from './swap.ts';
import { zapRange } from './zap.ts';
import { iMmapLock, invalidateLock, releaseIfHeld, withLock } from './locks.ts';
import { processesInOrder } from './process.ts';

export function fileOf(s: ImplState, id: number): ImplFile {
  const file = s.files.get(id);
  if (!(file !== undefined)) fail(`file ${id} does not exist`);
  return file;
}

export function newFile(s: ImplState, sizePages: number, shmem: boolean): ImplFile {
  const id = shmem ? SHMEM_ID_BASE + s.nextShmemId++ : s.nextFileId++;
  const file: ImplFile = {
    id, shmem, sizePages, pagecache: new Map(), backing: new Map(), swapped: new Map(), users: 0, immap: new Set(),
  };
  s.files.set(id, file);
  return file;
}

/** filemap_fault / shmem_get_folio: the page cache pfn at `index`, or -1 when allocation fails. */
export function findOrCreatePage(s: ImplState, file: ImplFile, index: number): number {
  if (!(Number.isInteger(index) && index >= 0 && index < 2 ** 31)) fail(`page cache index ${index} out of range`);
  const cached = file.pagecache.get(index);
  if (cached !== undefined) return frameOf(s, cached);
  const slot = file.swapped.get(index);
  if (slot !== undefined) return shmemSwapin(s, file, index, slot);
  const pfn = allocFrame(s, file.shmem ? KIND_SHMEM : KIND_FILE, file.backing.get(index) ?? 0);
  if (pfn === -1) return -1;
  s.pool.owner[pfn] = file.id;
  s.pool.index[pfn] = index;
  file.pagecache.set(index, pfn);
  return pfn;
}

function shmemSwapin(s: ImplState, file: ImplFile, index: number, slot: number): number {
  assertSlot(s, slot);
  if (!(s.swap.cachePfn[slot] === -1)) fail(`shmem slot ${slot} has a swap cache frame`);
  const pfn = allocFrame(s, KIND_SHMEM, s.swap.value[slot]);
  if (pfn === -1) return -1;
  s.pool.owner[pfn] = file.id;
  s.pool.index[pfn] = index;
  s.pool.flags[pfn] |= F_DIRTY;
  file.swapped.delete(index);
  file.pagecache.set(index, pfn);
  freeSwapAndCache(s, slot);
  return pfn;
}

/** Drop a frame from its file's page cache (its reference too). */
export function deleteFromPageCache(s: ImplState, file: ImplFile, pfn: number): void {
  const index = s.pool.index[pfn];
  if (!(file.pagecache.get(index) === pfn)) fail(`pfn ${pfn} not in page cache of file ${file.id}`);
  file.pagecache.delete(index);
  s.pool.owner[pfn] = -1;
  s.pool.index[pfn] = -1;
  putPage(s, pfn);
}

/** Writeback of a dirty page cache frame to the backing store. */
export function writeback(s: ImplState, file: ImplFile, pfn: number): void {
  if ((s.pool.flags[pfn] & F_DIRTY) === 0 || file.shmem) return;
  file.backing.set(s.pool.index[pfn], s.pool.value[pfn]);
  s.pool.flags[pfn] &= ~F_DIRTY;
}

/** The VMAs of i_mmap that `pid`'s mm holds, in address order. */
function immapOf(file: ImplFile, pid: number): ImplVma[] {
  const vmas: ImplVma[] = [];
  for (const vma of file.immap) if (vma.mm === pid) vmas.push(vma);
  return vmas.sort((a, b) => a.start - b.start);
}

/**
 * truncate_pagecache: unmap_mapping_range (private copies too), then drop the cache tail.
 * unmap_mapping_range takes i_mmap_rwsem for read (a trylock, as in reclaim: no scheduling
 * point of the kernel's own here), then zaps each VMA's range with its notifiers. A callback
 * may sleep: a VMA another task removed meanwhile is skipped, and the processes' VMAs are
 * read as each process is reached (as the model walks them).
 */
export function truncateFile(s: ImplState, file: ImplFile, sizePages: number): void {
  if (sizePages < file.sizePages) {
    const lock = iMmapLock(s, file.id);
    if (!s.locks.tryAcquire(lock, 'read', 'unmap_mapping_range')) fail(`truncate of file ${file.id}: ${lock.name} not free for read`);
    try {
      for (const proc of processesInOrder(s)) {
        if (file.immap.size === 0) break;
        for (const vma of immapOf(file, proc.pid)) {
          if (proc.state !== 'running' || !proc.mm.vmas.has(vma)) continue;
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

/** FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE of pages [start, end): as model/pagecache.ts punchHole (even_cows = 0). */
export function punchHole(s: ImplState, file: ImplFile, start: number, end: number): void {
  withLock(s, invalidateLock(s, file.id), 'write', 'filemap_invalidate_lock', () => punchHoleLocked(s, file, start, end));
}

function punchHoleLocked(s: ImplState, file: ImplFile, start: number, end: number): void {
  const lock = iMmapLock(s, file.id);
  if (!s.locks.tryAcquire(lock, 'read', 'unmap_mapping_range')) fail(`hole punch of file ${file.id}: ${lock.name} not free for read`);
  const pool = s.pool;
  const keepCows = (flags: number, idx: number) =>
    (flags & PTE_SWAP) !== 0 || ((flags & PTE_SPECIAL) === 0 && (pool.flags[frameOf(s, idx)] & F_KIND) === KIND_ANON);
  try {
    for (const proc of processesInOrder(s)) {
      if (file.immap.size === 0) break;
      for (const vma of immapOf(file, proc.pid)) {
        if (proc.state !== 'running' || !proc.mm.vmas.has(vma)) continue;
        const lo = Math.max(vma.start, vma.start + (start - vma.pgoff));
        const hi = Math.min(vma.end, vma.start + (end - vma.pgoff));
        if (lo < hi) zapRange(s, proc, lo, hi, 'clear', true, keepCows);
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

export function inodeGet(s: ImplState, id: number): void {
  const file = s.files.get(id);
  if (file !== undefined) file.users += 1;
}

/** Drop a reference on inode `id`; the last user of a shmem object frees its pages and swap. */
export function inodePut(s: ImplState, id: number): void {
  const file = s.files.get(id);
  if (file === undefined) return;
  if (!(file.users > 0)) fail(`inode ${id} put with no users`);
  file.users -= 1;
  if (file.shmem && file.users === 0) {
    truncateFile(s, file, 0);
    s.files.delete(file.id);
  }
}
