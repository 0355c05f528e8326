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
import { invalidateRange } from './notifier.ts';

export function newMm(): Mm {
  return { vmas: [], ptes: new Map(), rss: { anon: 0, file: 0, shmem: 0, swap: 0 }, uffdWpMarkers: new Set() };
}

export function fork(s: ModelState, parent: Process): Outcome {
  if (runningCount(s) >= s.config.processesMax) return err('EAGAIN');
  if (shouldFailAlloc(s)) return err('ENOMEM'); // mm_alloc
  const child: Process = {
    pid: s.nextPid++, ppid: parent.pid, uid: parent.uid, dumpable: parent.dumpable, state: 'running',
    oomReaped: false, mm: newMm(), fds: new Map(parent.fds), children: [],
  };
  for (const file of child.fds.values()) fileGet(file);
  s.processes.set(child.pid, child);
  for (const vma of parent.mm.vmas) {
    if (vma.dontcopy) continue;
    if (shouldFailAlloc(s) || !dupVma(s, parent, child, vma)) {
      // dup_mmap failed: the half-built child is torn down and fork returns ENOMEM.
      exitMm(s, child, 'exit');
      for (const file of child.fds.values()) fileRelease(s, file);
      s.processes.delete(child.pid);
      s.nextPid -= 1;
      return err('ENOMEM');
    }
  }
  s.running.add(child.pid);
  parent.children.push(child.pid);
  return ok(child.pid);
}

const isCowMapping = (vma: Vma) => !vma.shared && vma.mayWrite;

/** vm_area_dup + anon_vma_fork + copy_page_range for one VMA; false when a page copy fails. */
function dupVma(s: ModelState, parent: Process, child: Process, vma: Vma): boolean {
  // dup_userfaultfd without UFFD_FEATURE_EVENT_FORK: the child's VMA is not registered.
  const copy: Vma = { ...vma, id: newVmaId(s), mm: child.pid, anonVma: vma.anonVma === 0 ? 0 : s.nextAnonVma++, uffdCtx: 0 };
  if (copy.driverFile) fileGet(copy.driverFile);
  inodeGet(s, copy.file);
  child.mm.vmas.push(copy);
  copy.vmOps?.open?.(copy);
  if (vma.anonVma === 0 && !vma.pfnmap && !vma.mixedmap) return true;
  // copy_page_range write-protects a COW mapping in the parent: MMU_NOTIFY_PROTECTION_PAGE.
  if (isCowMapping(vma)) invalidateRange(s, parent.pid, vma.start, vma.end, 'protection');
  for (const addr of ptesIn(parent, vma.start, vma.end)) {
    if (!copyPte(s, parent, child, vma, addr)) return false;
  }
  return true;
}

function copyPte(s: ModelState, parent: Process, child: Process, vma: Vma, addr: number): boolean {
  const pte = parent.mm.ptes.get(addr)!;
  if (pte.kind === 'swap') {
    swapDuplicate(s, pte.slot);
    pte.exclusive = false;
    child.mm.ptes.set(addr, { ...pte, uffdWp: false });
    child.mm.rss.swap += 1;
    return true;
  }
  if (pte.special) {
    child.mm.ptes.set(addr, { ...pte, uffdWp: false });
    return true;
  }
  const frame = frameOf(s, pte.pfn);
  if (frame.kind === 'anon' && frame.anonExclusive && frame.pincount > 0) {
    // copy_present_page: the child gets its own copy now; the parent keeps the pinned page.
    const copy = allocFrame(s, 'anon', frame.value);
    if (copy === null) return false;
    copy.anonExclusive = true;
    mapFrame(child.mm, addr, copy, (vma.prot & PROT_WRITE) !== 0, true);
    return true;
  }
  if (frame.kind === 'anon') frame.anonExclusive = false; // folio_try_dup_anon_rmap_pte
  if (isCowMapping(vma)) pte.write = false;
  getPage(frame);
  frame.mapcount += 1;
  child.mm.rss[rssCounterOf(frame)] += 1;
  const childPte: PresentPte = { ...pte, uffdWp: false };
  child.mm.ptes.set(addr, childPte);
  return true;
}
