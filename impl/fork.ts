/**
 * fork (kernel/fork.c dup_mmap, mm/memory.c copy_page_range): each VMA but VM_DONTCOPY
 * ones is duplicated and ->open runs on the copy. PTEs are copied, table by table, only
 * where the VMA has an anon_vma or is a PFN/mixed map; a private anonymous page becomes
 * copy-on-write in both, except a maybe-pinned one, which the child gets a copy of at once.
 */
import type { Outcome } from '../kernel-api/outcome.ts';
import { PROT_WRITE } from '../kernel-api/op.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { ImplProcess, ImplState, ImplVma } from './types.ts';
import { ImplMm } from './types.ts';
import { allocFrame, frameOf, getPage, rssCounterOf, shouldFailAlloc } from './frames.ts';
import { F_ANON_EXCLUSIVE, F_KIND, KIND_ANON } from './framepool.ts';
import { PTE_EXCLUSIVE, PTE_SPECIAL, PTE_SWAP, PTE_UFFD_WP, PTE_WRITE } from './pagetable.ts';
import { swapDuplicate } from './swap.ts';
import { inodeGet } from './pagecache.ts';
import { fileGet, fileRelease } from './driverfile.ts';
import { mapFrame } from './zap.ts';
import { insertVma, newVmaId } from './vma.ts';
import { exitMm } from './exit.ts';
import { invalidateEnd, invalidateRange } from './notifier.ts';
import { mmLock, releaseIfHeld } from './locks.ts';
import { anonVmaRootOf } from './reclaim.ts';
import { COVER } from '../kernel-api/coverage.ts';

/**
 * fork, called with the parent's mmap_lock held for write (impl/kernel.ts): the child's
 * is taken nested (mmap_write_lock_nested, SINGLE_DEPTH_NESTING), so ->open of the copied
 * VMAs runs with both held. Only the calling thread is copied: the child's one thread has
 * tid == pid, and it becomes visible to other operations only when fork completes.
 */
export function fork(s: ImplState, parent: ImplProcess): Outcome {
  if (s.running.size >= s.config.processesMax) return err('EAGAIN');
  if (shouldFailAlloc(s)) return err('ENOMEM');
  const pid = s.nextPid++;
  const child: ImplProcess = {
    pid, ppid: parent.pid, uid: parent.uid, dumpable: parent.dumpable, state: 'running',
    oomReaped: false, killed: false, mm: new ImplMm(pid, s.quicklist), fds: new Map(parent.fds), children: [],
  };
  for (const file of child.fds.values()) fileGet(file);
  s.processes.set(child.pid, child);
  const childLock = mmLock(s, child.mm);
  try {
    s.locks.acquire(childLock, 'write', 'dup_mmap', 1);
    for (const vma of parent.mm.vmas.all()) {
      if (vma.dontcopy) s.locks.cover(COVER.forkDontcopy);
      if (vma.dontcopy || !parent.mm.vmas.has(vma)) continue;
      if (shouldFailAlloc(s) || !dupVma(s, parent, child, vma)) {
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
  s.running.add(pid);
  parent.children.push(pid);
  return ok(child.pid);
}

const isCowMapping = (vma: ImplVma) => !vma.shared && vma.mayWrite;

function dupVma(s: ImplState, parent: ImplProcess, child: ImplProcess, vma: ImplVma): boolean {
  const copy = vma.dup(newVmaId(s));
  copy.mm = child.pid;
  // dup_mmap: a VM_WIPEONFORK VMA gets a clean slate (tmp->anon_vma = NULL, no anon_vma_fork).
  const linked = vma.anonVma !== 0 && !vma.wipeonfork;
  copy.anonVma = linked ? s.nextAnonVma++ : 0;
  // anon_vma_fork: the child's anon_vma shares the parent's root (whose rwsem rmap takes).
  if (copy.anonVma !== 0) s.anonVmaRoot.set(copy.anonVma, anonVmaRootOf(s, vma.anonVma));
  copy.forkChild = linked; // anon_vma_fork: a chain of more than one (vma_is_fork_child)
  copy.uffdCtx = 0; // dup_userfaultfd without UFFD_FEATURE_EVENT_FORK
  // dup_mmap: vm_flags_clear(tmp, VM_LOCKED_MASK); the child's def_flags are cleared too (mm_init).
  copy.locked = false;
  copy.lockonfault = false;
  if (copy.driverFile) fileGet(copy.driverFile);
  inodeGet(s, copy.file);
  insertVma(s, child.mm, copy);
  copy.vmOps?.open?.(copy);
  // dup_mmap: copy_page_range is not called for VM_WIPEONFORK (the child faults in zero pages).
  if (vma.wipeonfork) {
    s.locks.cover(COVER.forkWipeonfork);
    return true;
  }
  if (vma.anonVma === 0 && !vma.pfnmap && !vma.mixedmap) return true;
  // copy_page_range write-protects a COW mapping in the parent: MMU_NOTIFY_PROTECTION_PAGE.
  if (isCowMapping(vma)) invalidateRange(s, parent.pid, vma.start, vma.end, 'protection');
  const copied = copyPteRange(s, parent, child, vma);
  if (isCowMapping(vma)) invalidateEnd(s, parent.pid);
  return copied;
}

/** copy_pte_range over the VMA; false when a page copy fails. */
function copyPteRange(s: ImplState, parent: ImplProcess, child: ImplProcess, vma: ImplVma): boolean {
  const pool = s.pool;
  const ppt = parent.mm.pt;
  const cpt = child.mm.pt;
  const cow = isCowMapping(vma);
  let ok = true;
  // Collected first: a failing copy stops the walk, and the visitor must not install in
  // the table it walks (the child's is another table, so installing there is fine).
  ppt.forEach(vma.start, vma.end, (addr, flags, idx) => {
    if (!ok) return;
    if ((flags & PTE_SWAP) !== 0) {
      s.locks.cover(COVER.copyNonpresentPte);
      swapDuplicate(s, idx);
      const shared = flags & ~PTE_EXCLUSIVE;
      ppt.setFlags(addr, shared);
      cpt.set(addr, idx, shared & ~PTE_UFFD_WP);
      child.mm.rss.swap += 1;
      return;
    }
    if ((flags & PTE_SPECIAL) !== 0) {
      s.locks.cover(COVER.copyPresentPteSpecial);
      cpt.set(addr, idx, flags & ~PTE_UFFD_WP);
      return;
    }
    const pfn = frameOf(s, idx);
    const anon = (pool.flags[pfn] & F_KIND) === KIND_ANON;
    if (anon && (pool.flags[pfn] & F_ANON_EXCLUSIVE) !== 0 && pool.pins(pfn) > 0 && !s.skipForkDmaCopy) {
      s.locks.cover(COVER.copyPresentPage);
      const copy = allocFrame(s, KIND_ANON, pool.value[pfn]);
      if (copy === -1) {
        ok = false;
        return;
      }
      pool.flags[copy] |= F_ANON_EXCLUSIVE;
      mapFrame(s, child.mm, addr, copy, (vma.prot & PROT_WRITE) !== 0, true);
      return;
    }
    s.locks.cover(COVER.copyPresentPte);
    if (anon) pool.flags[pfn] &= ~F_ANON_EXCLUSIVE;
    let childFlags = flags;
    if (cow && (flags & PTE_WRITE) !== 0) {
      childFlags = flags & ~PTE_WRITE;
      ppt.setFlags(addr, childFlags);
    }
    getPage(s, pfn);
    pool.mapcount[pfn] += 1;
    s.rmap.add(pfn, child.pid, addr);
    child.mm.rss[rssCounterOf(s, pfn)] += 1;
    cpt.set(addr, pfn, childFlags & ~PTE_UFFD_WP);
  });
  return ok;
}
