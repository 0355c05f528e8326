/**
 * msync (mm/msync.c, Linux 6.18), once its arguments are checked (kernel-api/bytes.ts
 * msyncPages). Under mmap_lock for read it walks the VMAs from `start`: a hole is ENOMEM, at
 * once for MS_ASYNC alone, else at the end (the walk goes on past it); MS_INVALIDATE on a
 * VM_LOCKED VMA is EBUSY there. For MS_SYNC and a shared mapping of a file it drops
 * mmap_lock (get_file) and calls vfs_fsync_range on the VMA's part of the file, then looks
 * the next VMA up again. Nothing else changes: MS_ASYNC and MS_INVALIDATE do nothing more.
 *
 * vfs_fsync_range of a regular file: each dirty page-cache page of the range is
 * folio_clear_dirty_for_io'd — folio_mkclean write-protects and cleans every shared VMA's PTE
 * of it (page_vma_mkclean_one, with an MMU_NOTIFY_PROTECTION_PAGE invalidation), so the next
 * store faults and dirties it again — and written back. shmem's fsync is noop_fsync. A
 * driver's file has no ->fsync in any emulated design: EINVAL.
 */
import { MS_ASYNC, MS_INVALIDATE, MS_SYNC } from '../kernel-api/op.ts';
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { File, Frame, ModelState, Process } from './types.ts';
import { findVma, vmaLookup } from './vma.ts';
import { withMmapLock, withPtl } from './locks.ts';
import { fileOf, writeback } from './pagecache.ts';
import { rmapWalk, withRmapLock } from './reclaim.ts';
import { withInvalidation } from './notifier.ts';

/** What the walk under mmap_lock ended on: an errno or 0 (done), or a file range to sync with mmap_lock dropped. */
type Stop = { errno: Errno | 0 } | { sync: { file: number | null; from: number; to: number } };

export function msync(s: ModelState, proc: Process, start: number, end: number, flags: number): Outcome {
  let unmapped = false;
  let addr = start;
  for (;;) {
    const stop = withMmapLock(s, proc.pid, 'read', 'msync', (): Stop => {
      for (;;) {
        const vma = findVma(proc.mm, addr);
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
export function fsyncRange(s: ModelState, file: File, from: number, to: number): Errno | 0 {
  if (file.shmem) return 0; // noop_fsync
  const dirty = [...file.pagecache].filter(([index, pfn]) => index >= from && index < to && s.frames.get(pfn)?.dirty === true).sort((a, b) => a[0] - b[0]);
  for (const [index, pfn] of dirty) {
    const frame = s.frames.get(pfn);
    // A notifier callback of an earlier page slept: the page may have left the cache meanwhile.
    if (frame === undefined || file.pagecache.get(index) !== pfn || !frame.dirty) continue;
    mkclean(s, frame);
    writeback(file, frame);
  }
  return 0;
}

/** folio_mkclean: each shared VMA's PTE of the page write-protected and clean, its dirty bit moved to the page. */
function mkclean(s: ModelState, frame: Frame): void {
  const mappings = rmapWalk(s, frame).filter(([p, a]) => vmaLookup(p.mm, a)?.shared === true);
  withRmapLock(s, frame, mappings, () => {
    for (const [p, a] of mappings) {
      withInvalidation(s, p.pid, a, a + 1, 'protection', () => {
        const pte = p.mm.ptes.get(a);
        if (pte?.kind !== 'present' || pte.pfn !== frame.pfn || pte.special || (!pte.write && !pte.dirty)) return;
        withPtl(s, p.pid, 'page_vma_mkclean_one', () => {
          if (pte.dirty) frame.dirty = true;
          pte.write = false;
          pte.dirty = false;
        });
      });
    }
  });
}
