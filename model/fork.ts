/**
 * fork (kernel/fork.c dup_mmap, mm/memory.c copy_page_range): each VMA but VM_DONTCOPY
 * ones is duplicated and ->open runs on the copy. PTEs are copied only where the VMA has
 * an anon_vma or is a PFN/mixed map (vma_needs_copy); others refault from their object.
 * A private anonymous page becomes copy-on-write in both, except one that may be pinned
 * for DMA, which the child gets a copy of at once (page_needs_cow_for_dma).
 */
import type { Outcome } from '../kernel-api/outcome.ts';
import { PROT_WRITE } from '../kernel-api/op.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { Mm, ModelState, PresentPte, Process, Vma } from './types.ts';
import { allocFrame, frameOf, getPage, shouldFailAlloc } from './frames.ts';
import { swapDuplicate } from './swap.ts';
import { inodeGet } from './pagecache.ts';
import { fileGet, fileRelease } from './driverfile.ts';
import { mapFrame, ptesIn, rssCounterOf } from './zap.ts';
import { newVmaId } from './vma.ts';
import { runningCount } from './process.ts';
import { exitMm } from './exit.ts';
import { withInvalidation } from './notifier.ts';
import { mmapLock, releaseIfHeld } from './locks.ts';
import { anonVmaRootOf } from './reclaim.ts';
import { COVER } from '../kernel-api/coverage.ts';

export function newMm(): Mm {
  return { vmas: [], ptes: new Map(), rss: { anon: 0, file: 0, shmem: 0, swap: 0 }, uffdWpMarkers: new Set(), defLocked: false, defLockOnFault: false };
}

/**
 * fork, called with the parent's mmap_lock held for write (model/kernel.ts): the child's
 * is taken nested (mmap_write_lock_nested, SINGLE_DEPTH_NESTING), so ->open of the copied
 * VMAs runs with both held. Only the calling thread is copied: the child's one thread has
 * tid == pid, and it becomes visible to other operations only when fork completes.
 */
export function fork(s: ModelState, parent: Process): Outcome {
  if (runningCount(s) >= s.config.processesMax) return err('EAGAIN');
  if (shouldFailAlloc(s)) return err('ENOMEM'); // mm_alloc
  const child: Process = {
    pid: s.nextPid++, ppid: parent.pid, uid: parent.uid, dumpable: parent.dumpable, state: 'running',
    oomReaped: false, killed: false, mm: newMm(), fds: new Map(parent.fds), children: [],
  };
  for (const file of child.fds.values()) fileGet(file);
  s.processes.set(child.pid, child);
  const childLock = mmapLock(s, child.pid);
  try {
    s.locks.acquire(childLock, 'write', 'dup_mmap', 1);
    for (const vma of [...parent.mm.vmas]) {
      if (vma.dontcopy) s.locks.cover(COVER.forkDontcopy);
      if (vma.dontcopy || !parent.mm.vmas.includes(vma)) continue;
      if (shouldFailAlloc(s) || !dupVma(s, parent, child, vma)) {
        // dup_mmap failed: the half-built child is torn down and fork returns ENOMEM.
        exitMm(s, child, 'exit');
        for (const file of child.fds.values()) fileRelease(s, file);
        s.locks.release(childLock, 'dup_mmap');
        s.processes.delete(child.pid);
        // Another task may have taken a pid meanwhile (at a scheduling point): then this one stays used.
        if (s.nextPid === child.pid + 1) s.nextPid -= 1;
        return err('ENOMEM');
      }
    }
    s.locks.release(childLock, 'dup_mmap');
  } catch (e) {
    releaseIfHeld(s, childLock, 'dup_mmap');
    throw e;
  }
  s.threads.set(child.pid, child.pid);
  s.running.add(child.pid);
  parent.children.push(child.pid);
  return ok(child.pid);
}

const isCowMapping = (vma: Vma) => !vma.shared && vma.mayWrite;

/** vm_area_dup + anon_vma_fork + copy_page_range for one VMA; false when a page copy fails. */
function dupVma(s: ModelState, parent: Process, child: Process, vma: Vma): boolean {
  // dup_userfaultfd without UFFD_FEATURE_EVENT_FORK: the child's VMA is not registered.
  // anon_vma_fork: a faulted parent VMA's child gets its own anon_vma linked below the
  // parent's, a chain of more than one (vma_is_fork_child), sharing the parent's root
  // (whose rwsem rmap takes).
  // dup_mmap: a VM_WIPEONFORK VMA gets a clean slate in the child (tmp->anon_vma = NULL, no
  // anon_vma_fork, no copy_page_range); it keeps the flag.
  const linked = vma.anonVma !== 0 && !vma.wipeonfork;
  const copy: Vma = {
    // dup_mmap: vm_flags_clear(tmp, VM_LOCKED_MASK); the child's def_flags are cleared too (mm_init).
    ...vma, id: newVmaId(s), mm: child.pid, anonVma: linked ? s.nextAnonVma++ : 0, forkChild: linked, uffdCtx: 0, locked: false, lockonfault: false,
  };
  if (copy.anonVma !== 0) s.anonVmaRoot.set(copy.anonVma, anonVmaRootOf(s, vma.anonVma));
  if (copy.driverFile) fileGet(copy.driverFile);
  inodeGet(s, copy.file);
  child.mm.vmas.push(copy);
  copy.vmOps?.open?.(copy);
  if (vma.wipeonfork) {
    s.locks.cover(COVER.forkWipeonfork);
    return true;
  }
  if (vma.anonVma === 0 && !vma.pfnmap && !vma.mixedmap) return true;
  // copy_page_range write-protects a COW mapping in the parent: MMU_NOTIFY_PROTECTION_PAGE.
  const copyPtes = () => {
    for (const addr of ptesIn(parent, vma.start, vma.end)) {
      if (!copyPte(s, parent, child, vma, addr)) return false;
    }
    return true;
  };
  return isCowMapping(vma) ? withInvalidation(s, parent.pid, vma.start, vma.end, 'protection', copyPtes) : copyPtes();
}

function copyPte(s: ModelState, parent: Process, child: Process, vma: Vma, addr: number): boolean {
  const pte = parent.mm.ptes.get(addr)!;
  if (pte.kind === 'swap') {
    s.locks.cover(COVER.copyNonpresentPte);
    swapDuplicate(s, pte.slot);
    pte.exclusive = false;
    child.mm.ptes.set(addr, { ...pte, uffdWp: false });
    child.mm.rss.swap += 1;
    return true;
  }
  if (pte.special) {
    s.locks.cover(COVER.copyPresentPteSpecial);
    child.mm.ptes.set(addr, { ...pte, uffdWp: false });
    return true;
  }
  const frame = frameOf(s, pte.pfn);
  if (frame.kind === 'anon' && frame.anonExclusive && frame.pincount > 0 && !s.skipForkDmaCopy) {
    // copy_present_page: the child gets its own copy now; the parent keeps the pinned page.
    s.locks.cover(COVER.copyPresentPage);
    const copy = allocFrame(s, 'anon', frame.value);
    if (copy === null) return false;
    copy.anonExclusive = true;
    mapFrame(child.mm, addr, copy, (vma.prot & PROT_WRITE) !== 0, true);
    return true;
  }
  s.locks.cover(COVER.copyPresentPte);
  if (frame.kind === 'anon') frame.anonExclusive = false; // folio_try_dup_anon_rmap_pte
  if (isCowMapping(vma)) pte.write = false;
  getPage(frame);
  frame.mapcount += 1;
  child.mm.rss[rssCounterOf(frame)] += 1;
  const childPte: PresentPte = { ...pte, uffdWp: false };
  child.mm.ptes.set(addr, childPte);
  return true;
}
