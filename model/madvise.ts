/**
 * madvise (mm/madvise.c): DONTNEED zaps (private copies vanish, shared pages stay in their
 * object), PAGEOUT reclaims pages this process maps alone, COLD ages them, DONTFORK and
 * DOFORK set VM_DONTCOPY (vma_modify_flags: merging or splitting, unless it is already as asked). Unmapped parts give ENOMEM after the mapped parts
 * are done, as madvise_walk_vmas does.
 */
import type { Advice, MadviseOp } from '../kernel-api/op.ts';
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { Frame, ModelState, Process, Vma } from './types.ts';
import { frameOf } from './frames.ts';
import { madviseSpan } from '../kernel-api/bytes.ts';
import { findVma } from './vma.ts';
import { vmaModify, vmaPrevOf } from './vma-merge.ts';
import { assert } from './assert.ts';
import { withInvalidation } from './notifier.ts';
import { withPtl } from './locks.ts';
import { folioFreeSwap, freeSwapAndCache } from './swap.ts';
import { ptesIn, zapRange } from './zap.ts';
import { shrinkFrame } from './reclaim.ts';
import { fileOf, punchHole } from './pagecache.ts';
import { vmaLookup } from './vma.ts';
import { GUP_FAULT, handleMmFault } from './fault.ts';
import { GUP_ATTEMPTS_MAX } from './access.ts';
import { PROT_READ, PROT_WRITE } from '../kernel-api/op.ts';

const ADVICES: readonly Advice[] = [
  'DONTNEED', 'PAGEOUT', 'COLD', 'DONTFORK', 'DOFORK', 'WILLNEED', 'WIPEONFORK', 'KEEPONFORK', 'POPULATE_READ', 'POPULATE_WRITE', 'REMOVE', 'FREE',
];

/** madvise_walk_vmas: VMA by VMA with the VMA before as prev; a hole gives ENOMEM after the rest is done. */
export function madvise(s: ModelState, proc: Process, op: MadviseOp): Outcome {
  if (!ADVICES.includes(op.advice) || !Number.isSafeInteger(op.addr) || !Number.isSafeInteger(op.lengthPages)) return err('EINVAL');
  if (op.lengthPages === 0) return ok(0);
  const span = madviseSpan(op.addr, op.lengthPages, s.config.taskSizePages);
  if (span !== null) {
    if ('errno' in span) return err(span.errno);
    const inside = madvise(s, proc, { ...op, lengthPages: span.inside });
    return inside.kind === 'errno' ? inside : err('ENOMEM');
  }
  // madvise_do_behavior: MADV_POPULATE_(READ|WRITE) does not walk the VMAs as the others do.
  if (op.advice === 'POPULATE_READ' || op.advice === 'POPULATE_WRITE') {
    return madvisePopulate(s, proc, op.addr, op.addr + op.lengthPages, op.advice === 'POPULATE_WRITE');
  }
  const lastEnd = op.addr + op.lengthPages;
  let start = op.addr;
  let unmapped = false;
  let vma = findVma(proc.mm, start);
  let prev = vma !== undefined && vma.start < start ? vma : vmaPrevOf(proc.mm, start);
  // A limit on the walk: each step moves `start` past one of the VMAs there at the start.
  const stepsMax = proc.mm.vmas.length + 1;
  for (let steps = 0; ; steps++) {
    assert(steps < stepsMax, `madvise walk of [${op.addr}, ${lastEnd}) does not end`);
    if (vma === undefined) return err('ENOMEM');
    if (start < vma.start) {
      unmapped = true;
      start = vma.start;
      if (start >= lastEnd) break;
    }
    let end = Math.min(vma.end, lastEnd);
    const r = madviseVma(s, proc, prev, vma, start, end, op.advice);
    if (typeof r === 'string') return err(r);
    vma = r;
    prev = vma;
    if (end < vma.end) end = vma.end;
    if (end >= lastEnd) break;
    vma = findVma(proc.mm, end);
    start = end;
  }
  return unmapped ? err('ENOMEM') : ok(0);
}

/** madvise_vma_behavior for [start, end) of `vma`; returns the VMA now holding the range. */
function madviseVma(s: ModelState, proc: Process, prev: Vma | undefined, vma: Vma, start: number, end: number, advice: Advice): Vma | Errno {
  switch (advice) {
    case 'DONTNEED':
      // madvise_dontneed_free_valid_vma: VM_PFNMAP, and VM_LOCKED (MADV_DONTNEED_LOCKED aside).
      if (vma.pfnmap || vma.locked) return 'EINVAL';
      zapRange(s, proc, start, end, 'clear');
      return vma;
    case 'PAGEOUT':
    case 'COLD':
      // can_madv_lru_vma: not VM_LOCKED, VM_PFNMAP or VM_HUGETLB.
      if (vma.pfnmap || vma.locked) return 'EINVAL';
      for (const frame of unsharedFrames(s, proc, start, end)) {
        // A notifier callback of an earlier frame's reclaim may have slept and let another
        // task free this one (reclaim needs no mmap_lock).
        if (s.frames.get(frame.pfn) !== frame) continue;
        if (advice === 'COLD') frame.lru = 0;
        else shrinkFrame(s, frame);
      }
      return vma;
    case 'FREE':
      // madvise_dontneed_free_valid_vma: VM_PFNMAP and VM_LOCKED refused; then
      // madvise_free_single_vma: anonymous memory only (vma_is_anonymous: no vm_ops, so no
      // file, shmem or driver mapping).
      if (vma.pfnmap || vma.locked) return 'EINVAL';
      if (vma.file !== -1 || vma.driverFile !== null || vma.vmOps !== null) return 'EINVAL';
      madviseFree(s, proc, start, end);
      return vma;
    case 'WILLNEED':
      // madvise_willneed schedules readahead only: swap-in of swap entries into the swap cache
      // (anon: swapin_walk_ops; shmem: shmem_swapin_range) or vfs_fadvise(POSIX_FADV_WILLNEED)
      // page-cache readahead (a driver file: generic_fadvise's no-op). It never maps a PTE and
      // never fails per VMA. Readahead is not emulated (README, Known simplifications).
      return vma;
    case 'REMOVE': {
      // madvise_remove: VM_LOCKED EINVAL; no vm_file EINVAL; not VM_SHARED with
      // VM_MAYWRITE (vma_is_shared_maywrite) EACCES; then vfs_fallocate(PUNCH_HOLE |
      // KEEP_SIZE): a driver's file is no regular file (ENODEV); shmem and regular files
      // (tmpfs, ext4) punch the hole. The mmap_lock Linux drops around it is kept here.
      if (vma.locked || (vma.file === -1 && vma.driverFile === null)) return 'EINVAL';
      if (!vma.shared || !vma.mayWrite) return 'EACCES';
      if (vma.driverFile !== null || vma.file === -1) return 'ENODEV';
      const file = fileOf(s, vma.file);
      punchHole(s, file, vma.pgoff + (start - vma.start), vma.pgoff + (end - vma.start));
      return vma;
    }
    case 'WIPEONFORK':
    case 'KEEPONFORK': {
      // madvise_vma_behavior: MADV_WIPEONFORK is only for private anonymous memory (no
      // vm_file, not VM_SHARED); KEEPONFORK clears VM_WIPEONFORK on any VMA (VM_DROPPABLE not emulated).
      if (advice === 'WIPEONFORK' && (vma.file !== -1 || vma.driverFile !== null || vma.vmFile !== 0 || vma.shared)) return 'EINVAL';
      const wipeonfork = advice === 'WIPEONFORK';
      if (vma.wipeonfork === wipeonfork) return vma;
      const target = vmaModify(s, proc.mm, prev, vma, start, end, { ...vma, wipeonfork });
      if (typeof target === 'string') return target === 'ENOMEM' ? 'EAGAIN' : target;
      target.wipeonfork = wipeonfork;
      return target;
    }
    case 'POPULATE_READ':
    case 'POPULATE_WRITE':
      throw new Error('madvise_populate does not walk the VMAs with madvise_vma_behavior');
    case 'DONTFORK':
    case 'DOFORK': {
      if (advice === 'DOFORK' && vma.io) return 'EINVAL';
      const dontcopy = advice === 'DONTFORK';
      // madvise_update_vma: the flags are already what the advice asks, nothing to do.
      if (vma.dontcopy === dontcopy) return vma;
      const target = vmaModify(s, proc.mm, prev, vma, start, end, { ...vma, dontcopy });
      if (typeof target === 'string') return target === 'ENOMEM' ? 'EAGAIN' : target;
      target.dontcopy = dontcopy;
      return target;
    }
  }
}

/**
 * madvise_free_single_vma → madvise_free_pte_range, inside an MMU_NOTIFY_CLEAR invalidation
 * of the range: a swap entry is dropped (free_swap_and_cache: the page reads zero again); an
 * anonymous page this mm alone maps (folio_maybe_mapped_shared false) is made clean — its
 * swap cache copy freed first (folio_free_swap), or the page left alone if a swap entry
 * still needs that copy —, its PTE cleaned too, and marked lazily free (folio_mark_lazyfree):
 * reclaim discards it while it stays clean; a store dirties the PTE and keeps it. The zero
 * page and special PTEs are left.
 */
function madviseFree(s: ModelState, proc: Process, start: number, end: number): void {
  withInvalidation(s, proc.pid, start, end, 'clear', () => withPtl(s, proc.pid, 'madvise_free_pte_range', () => {
    for (const addr of ptesIn(proc, start, end)) {
      const pte = proc.mm.ptes.get(addr)!;
      if (pte.kind === 'swap') {
        proc.mm.ptes.delete(addr);
        proc.mm.rss.swap -= 1;
        freeSwapAndCache(s, pte.slot);
        continue;
      }
      if (pte.special) continue;
      const frame = frameOf(s, pte.pfn);
      if (frame.kind !== 'anon' || frame.mapcount > 1) continue;
      if (frame.swapSlot !== -1 && !folioFreeSwap(s, frame)) continue;
      frame.dirty = false;
      pte.dirty = false;
      frame.lazyfree = true;
    }
  }));
}

/** Frames mapped in [start, end) by a normal PTE and by no other mapping (mapcount 1). */
function unsharedFrames(s: ModelState, proc: Process, start: number, end: number): Frame[] {
  const frames: Frame[] = [];
  for (const addr of ptesIn(proc, start, end)) {
    const pte = proc.mm.ptes.get(addr)!;
    if (pte.kind !== 'present' || pte.special) continue;
    const frame = frameOf(s, pte.pfn);
    if (frame.mapcount === 1 && frame.kind !== 'driver' && !frame.reserved) frames.push(frame);
  }
  return frames;
}

/**
 * madvise_populate → faultin_page_range (mm/gup.c, __get_user_pages with FOLL_MADV_POPULATE |
 * FOLL_TOUCH | FOLL_UNLOCKABLE, and FOLL_WRITE for POPULATE_WRITE), page by page with the
 * mmap_lock held for read: no VMA gives ENOMEM, one check_vma_flags refuses (VM_IO|VM_PFNMAP,
 * no VM_READ for a read, no VM_WRITE for a write: no FOLL_FORCE) EINVAL, VM_FAULT_SIGBUS
 * EFAULT, VM_FAULT_OOM ENOMEM; the pages before stay populated. A page already mapped as
 * asked (follow_page_mask; a special PTE too, -EEXIST without pages) takes no fault; else
 * handle_mm_fault — a write fault breaks COW — and cond_resched() before it looks again.
 * FOLL_TOUCH's mark_accessed is not emulated (LRU age follows faults only), and the fault
 * is GUP_FAULT's (no VM_FAULT_RETRY; README, Known simplifications).
 */
function madvisePopulate(s: ModelState, proc: Process, start: number, end: number, write: boolean): Outcome {
  for (let addr = start; addr < end; addr++) {
    const vma = vmaLookup(proc.mm, addr);
    if (vma === undefined) return err('ENOMEM');
    if (vma.io || vma.pfnmap || (vma.prot & (write ? PROT_WRITE : PROT_READ)) === 0) return err('EINVAL');
    for (let attempt = 0; ; attempt++) {
      if (attempt >= GUP_ATTEMPTS_MAX) return err('EFAULT');
      const pte = proc.mm.ptes.get(addr);
      if (pte?.kind === 'present' && (!write || pte.write)) break;
      const r = handleMmFault(s, proc, vma, addr, write, GUP_FAULT);
      if (r === 'OOM') return err('ENOMEM');
      if (r === 'SIGBUS') return err('EFAULT');
      s.locks.preemptPoint('faultin_page_range');
    }
  }
  return ok(0);
}
