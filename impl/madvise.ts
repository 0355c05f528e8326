/**
 * madvise (mm/madvise.c): DONTNEED zaps, PAGEOUT reclaims pages this process maps alone,
 * COLD ages them, DONTFORK and DOFORK set VM_DONTCOPY (vma_modify_flags: merging or splitting, unless it is already as asked). Unmapped parts give
 * ENOMEM after the mapped parts are done, as madvise_walk_vmas does.
 */
import type { Advice, MadviseOp } from '../kernel-api/op.ts';
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { ImplProcess, ImplState, ImplVma } from './types.ts';
import { frameOf } from './frames.ts';
import { F_DIRTY, F_KIND, F_LAZYFREE, F_RESERVED, KIND_ANON, KIND_DRIVER } from './framepool.ts';
import { PTE_DIRTY, PTE_PRESENT, PTE_SPECIAL, PTE_SWAP, PTE_WRITE } from './pagetable.ts';
import { withInvalidation } from './notifier.ts';
import { withPtl } from './locks.ts';
import { folioFreeSwap, freeSwapAndCache } from './swap.ts';
import { madviseSpan } from '../kernel-api/bytes.ts';
import { vmaAttrs, vmaModify, vmaPrevOf } from './vma-merge.ts';
import { fail } from './assert.ts';
import { zapRange } from './zap.ts';
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
export function madvise(s: ImplState, proc: ImplProcess, op: MadviseOp): Outcome {
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
  let vma: ImplVma | null = proc.mm.vmas.find(start);
  let prev = vma !== null && vma.start < start ? vma : vmaPrevOf(proc.mm, start);
  const stepsMax = proc.mm.vmas.size + 1; // each step passes one of the VMAs there at the start
  for (let steps = 0; ; steps++) {
    if (steps >= stepsMax) fail(`madvise walk of [${op.addr}, ${lastEnd}) does not end`);
    if (vma === null) return err('ENOMEM');
    if (start < vma.start) {
      unmapped = true;
      start = vma.start;
      if (start >= lastEnd) break;
    }
    let end = Math.min(vma.end, lastEnd);
    const r = madviseVma(s, proc, prev, vma, start, end, op.advice);
    if (typeof r === 'string') return err(r);
    prev = r;
    if (end < r.end) end = r.end;
    if (end >= lastEnd) break;
    vma = proc.mm.vmas.find(end);
    start = end;
  }
  return unmapped ? err('ENOMEM') : ok(0);
}

/** madvise_vma_behavior for [start, end) of `vma`; returns the VMA now holding the range. */
function madviseVma(
  s: ImplState, proc: ImplProcess, prev: ImplVma | undefined, vma: ImplVma, start: number, end: number, advice: Advice,
): ImplVma | Errno {
  switch (advice) {
    case 'DONTNEED':
      // madvise_dontneed_free_valid_vma: VM_PFNMAP, and VM_LOCKED (MADV_DONTNEED_LOCKED aside).
      if (vma.pfnmap || vma.locked) return 'EINVAL';
      zapRange(s, proc, start, end, 'clear');
      return vma;
    case 'FREE':
      // madvise_dontneed_free_valid_vma, then madvise_free_single_vma (model/madvise.ts).
      if (vma.pfnmap || vma.locked) return 'EINVAL';
      if (vma.file !== -1 || vma.driverFile !== null || vma.vmOps !== null) return 'EINVAL';
      madviseFree(s, proc, start, end);
      return vma;
    case 'PAGEOUT':
    case 'COLD':
      // can_madv_lru_vma: not VM_LOCKED, VM_PFNMAP or VM_HUGETLB.
      if (vma.pfnmap || vma.locked) return 'EINVAL';
      for (const [pfn, seq] of unsharedFrames(s, proc, start, end)) {
        // A notifier callback of an earlier frame's reclaim may have slept and let another
        // task free this one (reclaim needs no mmap_lock), and the pfn may be another frame's now.
        if (!s.pool.isLive(pfn) || s.pool.seq[pfn] !== seq) continue;
        if (advice === 'COLD') s.lru.touch(pfn, 0);
        else shrinkFrame(s, pfn);
      }
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
      const target = vmaModify(s, proc.mm, prev, vma, start, end, vmaAttrs(vma, { wipeonfork }));
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
      const target = vmaModify(s, proc.mm, prev, vma, start, end, vmaAttrs(vma, { dontcopy }));
      if (typeof target === 'string') return target === 'ENOMEM' ? 'EAGAIN' : target;
      target.dontcopy = dontcopy;
      return target;
    }
  }
}

/** madvise_free_pte_range under an MMU_NOTIFY_CLEAR invalidation (model/madvise.ts madviseFree). */
function madviseFree(s: ImplState, proc: ImplProcess, start: number, end: number): void {
  const pool = s.pool;
  const pt = proc.mm.pt;
  withInvalidation(s, proc.pid, start, end, 'clear', () => withPtl(s, proc.mm, 'madvise_free_pte_range', () => {
    for (const addr of pt.collect(start, end)) {
      const flags = pt.flags(addr);
      if ((flags & PTE_SWAP) !== 0) {
        const slot = pt.idx(addr);
        pt.clear(addr);
        proc.mm.rss.swap -= 1;
        freeSwapAndCache(s, slot);
        continue;
      }
      if ((flags & PTE_PRESENT) === 0 || (flags & PTE_SPECIAL) !== 0) continue;
      const pfn = frameOf(s, pt.idx(addr));
      if ((pool.flags[pfn]! & F_KIND) !== KIND_ANON || pool.mapcount[pfn]! > 1) continue;
      if (pool.swapSlot(pfn) !== -1 && !folioFreeSwap(s, pfn)) continue;
      pool.flags[pfn]! &= ~F_DIRTY;
      pool.flags[pfn]! |= F_LAZYFREE;
      if ((flags & PTE_DIRTY) !== 0) pt.setFlags(addr, flags & ~PTE_DIRTY);
    }
  }));
}

/** Frames mapped in [start, end) by a normal PTE and by no other mapping (mapcount 1), with their allocation sequence numbers. */
function unsharedFrames(s: ImplState, proc: ImplProcess, start: number, end: number): Array<[number, number]> {
  const pfns: Array<[number, number]> = [];
  const pool = s.pool;
  proc.mm.pt.forEach(start, end, (_addr, flags, idx) => {
    if ((flags & PTE_PRESENT) === 0 || (flags & PTE_SPECIAL) !== 0) return;
    const pfn = frameOf(s, idx);
    if (pool.mapcount[pfn] === 1 && (pool.flags[pfn] & F_KIND) !== KIND_DRIVER && (pool.flags[pfn] & F_RESERVED) === 0) pfns.push([pfn, pool.seq[pfn]]);
  });
  return pfns;
}

/**
 * madvise_populate → faultin_page_range (mm/gup.c, __get_user_pages with FOLL_MADV_POPULATE |
 * FOLL_TOUCH | FOLL_UNLOCKABLE, and FOLL_WRITE for POPULATE_WRITE), as model/madvise.ts:
 * no VMA ENOMEM, check_vma_flags EINVAL, SIGBUS EFAULT, OOM ENOMEM, the pages before kept.
 */
function madvisePopulate(s: ImplState, proc: ImplProcess, start: number, end: number, write: boolean): Outcome {
  const pt = proc.mm.pt;
  for (let addr = start; addr < end; addr++) {
    const vma = vmaLookup(proc.mm, addr);
    if (vma === undefined) return err('ENOMEM');
    if (vma.io || vma.pfnmap || (vma.prot & (write ? PROT_WRITE : PROT_READ)) === 0) return err('EINVAL');
    for (let attempt = 0; ; attempt++) {
      if (attempt >= GUP_ATTEMPTS_MAX) return err('EFAULT');
      const flags = pt.flags(addr);
      if ((flags & PTE_PRESENT) !== 0 && (!write || (flags & PTE_WRITE) !== 0)) break;
      const r = handleMmFault(s, proc, vma, addr, write, GUP_FAULT);
      if (r === 'OOM') return err('ENOMEM');
      if (r === 'SIGBUS') return err('EFAULT');
      s.locks.preemptPoint('faultin_page_range');
    }
  }
  return ok(0);
}
