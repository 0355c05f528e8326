/**
 * msync (mm/msync.c, Linux 6.18): the model's walk (model/msync.ts says what Linux does) on
 * the implementation's structures — the VMA tree, the rmap index and the frame pool's
 * dirty bits.
 */
import { MS_ASYNC, MS_INVALIDATE, MS_SYNC } from '../kernel-api/op.ts';
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { ImplFile, ImplProcess, ImplState } from './types.ts';
import { withMmapLock, releaseIfHeld, withPtl } from './locks.ts';
import { fileOf, writeback } from './pagecache.ts';
import { rmapLock } from './reclaim.ts';
import { invalidateEnd, invalidateRange } from './notifier.ts';
import { F_DIRTY } from './framepool.ts';
import { PTE_DIRTY, PTE_PRESENT, PTE_SPECIAL, PTE_WRITE } from './pagetable.ts';

type Stop = { errno: Errno | 0 } | { sync: { file: number | null; from: number; to: number } };

export function msync(s: ImplState, proc: ImplProcess, start: number, end: number, flags: number): Outcome {
  let unmapped = false;
  let addr = start;
  for (;;) {
    const stop = withMmapLock(s, proc.mm, 'read', 'msync', (): Stop => {
      for (;;) {
        const vma = proc.mm.vmas.find(addr) ?? undefined;
        if (vma === undefined) return { errno: 'ENOMEM' };
        if (addr < vma.start) {
          if (flags === MS_ASYNC) return { errno: 'ENOMEM' };
          addr = vma.start;
          if (addr >= end) return { errno: 'ENOMEM' };
          unmapped = true;
        }
        if ((flags & MS_INVALIDATE) !== 0 && vma.locked) return { errno: 'EBUSY' };
        const from = vma.pgoff + (addr - vma.start);
        const to = from + (Math.min(end, vma.end) - addr);
        addr = vma.end;
        const hasFile = vma.file !== -1 || vma.driverFile !== null;
        if ((flags & MS_SYNC) !== 0 && hasFile && vma.shared) return { sync: { file: vma.driverFile !== null ? null : vma.file, from, to } };
        if (addr >= end) return { errno: 0 };
      }
    });
    if ('errno' in stop) return stop.errno !== 0 ? err(stop.errno) : unmapped ? err('ENOMEM') : ok(0);
    const e = stop.sync.file === null ? 'EINVAL' : fsyncRange(s, fileOf(s, stop.sync.file), stop.sync.from, stop.sync.to);
    if (e !== 0) return err(e);
    if (addr >= end) return unmapped ? err('ENOMEM') : ok(0);
  }
}

/** vfs_fsync_range over file pages [from, to): every dirty page-cache page cleaned and written back. */
export function fsyncRange(s: ImplState, file: ImplFile, from: number, to: number): Errno | 0 {
  if (file.shmem) return 0; // noop_fsync
  const pool = s.pool;
  const dirty = [...file.pagecache].filter(([index, pfn]) => index >= from && index < to && (pool.flags[pfn]! & F_DIRTY) !== 0).sort((a, b) => a[0] - b[0]);
  for (const [index, pfn] of dirty) {
    // A notifier callback of an earlier page slept: the page may have left the cache meanwhile.
    if (file.pagecache.get(index) !== pfn || !pool.isLive(pfn) || (pool.flags[pfn]! & F_DIRTY) === 0) continue;
    mkclean(s, pfn);
    writeback(s, file, pfn);
  }
  return 0;
}

/** folio_mkclean: each shared VMA's PTE of the page write-protected and clean, its dirty bit moved to the page. */
function mkclean(s: ImplState, pfn: number): void {
  const mappings = s.rmap.walk(pfn).filter(([pid, a]) => s.processes.get(pid)?.mm.vmas.lookup(a)?.shared === true);
  const lock = rmapLock(s, pfn, mappings);
  try {
    for (const [pid, a] of mappings) {
      invalidateRange(s, pid, a, a + 1, 'protection');
      const proc = s.processes.get(pid);
      const f = proc === undefined ? 0 : proc.mm.pt.flags(a);
      if (proc !== undefined && (f & PTE_PRESENT) !== 0 && (f & PTE_SPECIAL) === 0 && proc.mm.pt.idx(a) === pfn && (f & (PTE_WRITE | PTE_DIRTY)) !== 0) {
        withPtl(s, proc.mm, 'page_vma_mkclean_one', () => {
          if ((f & PTE_DIRTY) !== 0) s.pool.flags[pfn]! |= F_DIRTY;
          proc.mm.pt.setFlags(a, f & ~(PTE_WRITE | PTE_DIRTY));
        });
      }
      invalidateEnd(s, pid);
    }
  } catch (e) {
    if (lock !== null) releaseIfHeld(s, lock, 'rmap_walk');
    throw e;
  }
  if (lock !== null) s.locks.release(lock, 'rmap_walk');
}
