/**
 * Page faults (mm/memory.c): handle_mm_fault and its cases — do_anonymous_page,
 * do_read_fault / do_cow_fault / do_shared_fault, do_swap_page, do_wp_page with
 * wp_page_reuse (an exclusive anonymous page is reused without a copy) and wp_page_copy.
 * The caller checked the access; a fault returns 0 or a VM_FAULT code as a value.
 */
import { PROT_WRITE } from '../kernel-api/op.ts';
import type { ImplProcess, ImplState, ImplVma } from './types.ts';
import { fail } from './assert.ts';
import { allocFrame, exposePfn, frameOf, getPage, pfnValue, putPage, rssCounterOf } from './frames.ts';
import { F_ANON_EXCLUSIVE, F_DIRTY, F_KIND, KIND_ANON } from './framepool.ts';
import {
  PTE_DIRTY, PTE_EXCLUSIVE, PTE_PRESENT, PTE_SOFT_DIRTY, PTE_SPECIAL, PTE_SWAP, PTE_UFFD_WP, PTE_WRITE,
} from './pagetable.ts';
import { assertSlot, folioFreeSwap } from './swap.ts';
import { fileOf, findOrCreatePage } from './pagecache.ts';
import { invalidateLock, withLock } from './locks.ts';
import { mapFrame } from './zap.ts';
import { invalidateEnd, invalidateRange } from './notifier.ts';
import type { FaultFlags } from '../kernel-api/driver.ts';
import { COVER } from '../kernel-api/coverage.ts';

/** 0, or a VM_FAULT code: RETRY when ->fault released the mmap_lock (only with `allowRetry`). */
export type VmFault = 0 | 'SIGBUS' | 'OOM' | 'RETRY';

/** A fault by GUP (get_user_pages_remote with locked == NULL): ->fault may not drop the mmap_lock. */
export const GUP_FAULT: FaultFlags = { allowRetry: false, tried: false };

const vmaWritable = (vma: ImplVma) => (vma.prot & PROT_WRITE) !== 0;

/**
 * anon_vma_prepare: find_mergeable_anon_vma reuses the anon_vma of the next VMA, else of the
 * previous one, when compatible (adjacent, same file and contiguous vm_pgoff, flags equal
 * but for the access bits) and not a fork child's; else a new one.
 */
export function anonVmaPrepare(s: ImplState, proc: ImplProcess, vma: ImplVma): void {
  if (vma.anonVma !== 0) return;
  const next = proc.mm.vmas.nextOf(vma.start);
  const prev = proc.mm.vmas.prevOf(vma.start);
  const reused = (next !== null ? reusableAnonVma(next, vma, next) : 0) || (prev !== null ? reusableAnonVma(prev, prev, vma) : 0);
  vma.anonVma = reused || s.nextAnonVma++;
  vma.forkChild = false;
}

/** reusable_anon_vma: `old`'s anon_vma, if `a` directly below `b` could share one (anon_vma_compatible). */
function reusableAnonVma(old: ImplVma, a: ImplVma, b: ImplVma): number {
  const compatible = a.end === b.start && a.vmFile === b.vmFile && a.driverFile === b.driverFile && a.shared === b.shared &&
    a.mayWrite === b.mayWrite && a.account === b.account && a.pfnmap === b.pfnmap && a.mixedmap === b.mixedmap &&
    a.io === b.io && a.dontcopy === b.dontcopy && a.dontexpand === b.dontexpand && a.wipeonfork === b.wipeonfork && a.locked === b.locked && a.lockonfault === b.lockonfault && (a.uffdCtx !== 0) === (b.uffdCtx !== 0) &&
    b.pgoff === a.pgoff + (b.start - a.start);
  return compatible && old.anonVma !== 0 && !old.forkChild ? old.anonVma : 0;
}

/** handle_mm_fault for one page of `vma`, with the mm's mmap_lock held for read (or write). */
export function handleMmFault(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, write: boolean, ff: FaultFlags = GUP_FAULT): VmFault {
  s.locks.cover(COVER.handleMmFault);
  const flags = proc.mm.pt.flags(addr);
  if (flags === 0 && proc.mm.uffdWpMarkers.has(addr)) return handlePteMarker(s, proc, vma, addr, write, ff);
  if (flags === 0) return doPteMissing(s, proc, vma, addr, write, ff);
  if ((flags & PTE_SWAP) !== 0) return doSwapPage(s, proc, vma, addr, write);
  if (write && (flags & PTE_WRITE) === 0) return doWpPage(s, proc, vma, addr, true);
  return 0;
}

/**
 * handle_pte_marker → pte_marker_handle_uffd_wp: the page is filled as do_pte_missing
 * would, keeping the uffd-wp bit (so write-protected); a write then resolves in do_wp_page.
 */
function handlePteMarker(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, write: boolean, ff: FaultFlags): VmFault {
  s.locks.cover(COVER.handlePteMarker);
  const pt = proc.mm.pt;
  proc.mm.uffdWpMarkers.delete(addr);
  if (vma.uffdCtx === 0) return doPteMissing(s, proc, vma, addr, write, ff);
  const r = doPteMissing(s, proc, vma, addr, write, ff);
  const flags = pt.flags(addr);
  if (r !== 0 || (flags & PTE_PRESENT) === 0) {
    if (flags === 0) proc.mm.uffdWpMarkers.add(addr);
    return r;
  }
  pt.setFlags(addr, (flags | PTE_UFFD_WP) & ~PTE_WRITE);
  return write ? doWpPage(s, proc, vma, addr, true) : 0;
}

function doPteMissing(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, write: boolean, ff: FaultFlags): VmFault {
  if (vma.vmOps?.fault) return doDriverFault(s, proc, vma, addr, write, ff);
  // do_fault: a VMA with vm_ops (or a driver's file) but no ->fault cannot be filled.
  if (vma.pfnmap || vma.mixedmap || vma.vmOps !== null || vma.driverFile !== null) {
    s.locks.cover(COVER.doFaultNoHandler);
    return 'SIGBUS';
  }
  if (vma.file === -1) return doAnonymousPage(s, proc, vma, addr, write);
  return doFileFault(s, proc, vma, addr, write);
}

function doAnonymousPage(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, write: boolean): VmFault {
  // check_stable_address_space: the OOM reaper has begun tearing the mm down (MMF_UNSTABLE).
  if (proc.oomReaped) {
    s.locks.cover(COVER.unstableAddressSpace);
    return 'SIGBUS';
  }
  if (!write) {
    s.locks.cover(COVER.doAnonymousPageZero);
    proc.mm.pt.set(addr, s.zeroPfn, PTE_PRESENT | PTE_SOFT_DIRTY | PTE_SPECIAL);
    return 0;
  }
  s.locks.cover(COVER.doAnonymousPage);
  anonVmaPrepare(s, proc, vma);
  // alloc_anon_folio may sleep: another thread may fault the page in (vmf_pte_changed).
  s.locks.preemptPoint('alloc_anon_folio');
  const pfn = allocFrame(s, KIND_ANON, 0);
  if (pfn === -1) return 'OOM';
  if (proc.mm.pt.flags(addr) !== 0) {
    s.locks.cover(COVER.doAnonymousPageRaced);
    putPage(s, pfn);
    return 0;
  }
  s.pool.flags[pfn] |= F_ANON_EXCLUSIVE;
  mapFrame(s, proc.mm, addr, pfn, vmaWritable(vma), true);
  return 0;
}

function doFileFault(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, write: boolean): VmFault {
  // do_cow_fault's folio_prealloc comes first, and may sleep (a truncate may run, or another
  // thread fault the page in: the EOF and !pte_none checks below come after it).
  if (write && !vma.shared) s.locks.preemptPoint('folio_prealloc');
  const file = fileOf(s, vma.file);
  const index = vma.pgoff + (addr - vma.start);
  if (index >= file.sizePages) {
    s.locks.cover(COVER.fileBeyondEof);
    return 'SIGBUS';
  }
  // Not cached: filemap_fault takes the invalidate_lock shared to bring it in (a point).
  const page = file.pagecache.has(index) ? findOrCreatePage(s, file, index)
    : withLock(s, invalidateLock(s, file.id), 'read', 'filemap_fault', () => findOrCreatePage(s, file, index));
  if (page === -1) return 'OOM';
  if (proc.mm.pt.flags(addr) !== 0) {
    // finish_fault: !pte_none under the PTL, another thread mapped it while this one slept.
    s.locks.cover(COVER.fileFaultRaced);
    return 0;
  }
  s.lru.touch(page, s.step);
  // finish_fault's check_stable_address_space for a private mapping ("we might have lost our CoWed page").
  if (!vma.shared && proc.oomReaped) {
    s.locks.cover(COVER.unstableAddressSpace);
    return 'SIGBUS';
  }
  if (write && !vma.shared) return doCowFault(s, proc, vma, addr, s.pool.value[page]);
  s.locks.cover(write ? COVER.doSharedFault : COVER.doReadFault);
  getPage(s, page);
  mapFrame(s, proc.mm, addr, page, write && vmaWritable(vma), write);
  if (write) s.pool.flags[page] |= F_DIRTY;
  return 0;
}

function doCowFault(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, value: number): VmFault {
  s.locks.cover(COVER.doCowFault);
  anonVmaPrepare(s, proc, vma);
  const copy = allocFrame(s, KIND_ANON, value);
  if (copy === -1) return 'OOM';
  s.pool.flags[copy] |= F_ANON_EXCLUSIVE;
  mapFrame(s, proc.mm, addr, copy, vmaWritable(vma), true);
  return 0;
}

/**
 * __do_fault through vm_ops->fault, then finish_fault (or do_cow_fault for a private write).
 * ->fault may sleep: another task may have filled the PTE meanwhile (finish_fault's
 * !pte_none under the PTL), and then the page is dropped and the access retries.
 */
function doDriverFault(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, write: boolean, ff: FaultFlags): VmFault {
  s.locks.cover(COVER.driverFault);
  const index = vma.pgoff + (addr - vma.start);
  const pointsBefore = s.locks.points;
  const r = vma.vmOps!.fault!(vma, addr, index, write, ff);
  const slept = s.locks.points !== pointsBefore;
  if (r.kind === 'sigbus') {
    s.locks.cover(COVER.driverFaultSigbus);
    return 'SIGBUS';
  }
  if (r.kind === 'oom') {
    s.locks.cover(COVER.driverFaultOom);
    return 'OOM';
  }
  if (r.kind === 'retry') {
    s.locks.cover(COVER.driverFaultRetry);
    if (!ff.allowRetry) fail(`${vma.vmOps!.name}: VM_FAULT_RETRY at ${addr} of P${proc.pid} without FAULT_FLAG_ALLOW_RETRY`);
    return 'RETRY';
  }
  if (r.kind === 'nopage') {
    s.locks.cover(COVER.driverFaultNopage);
    if ((proc.mm.pt.flags(addr) & PTE_PRESENT) === 0) {
      // Another task may have zapped what the handler installed while it slept: the
      // access retries. Without a scheduling point, nobody could have: a driver bug.
      if (!slept) fail(`${vma.vmOps!.name}: VM_FAULT_NOPAGE at ${addr} without a PTE (the access would refault forever)`);
      return 0;
    }
    return handleMmFault(s, proc, vma, addr, write, ff);
  }
  s.locks.cover(COVER.driverFaultPage);
  const page = frameOf(s, r.pfn);
  exposePfn(s, page);
  if (proc.mm.pt.flags(addr) !== 0) {
    s.locks.cover(COVER.driverFaultRaced);
    // finish_fault: !pte_none under the PTL, another task mapped it: drop vmf->page.
    putPage(s, page);
    return 0;
  }
  if (write && !vma.shared) {
    const ret = doCowFault(s, proc, vma, addr, s.pool.value[page]);
    putPage(s, page);
    return ret;
  }
  mapFrame(s, proc.mm, addr, page, write && vmaWritable(vma), write);
  if (write) s.pool.flags[page] |= F_DIRTY;
  return 0;
}

/** do_swap_page: bring the page back from the swap cache or the slot. */
function doSwapPage(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, write: boolean): VmFault {
  const pt = proc.mm.pt;
  const pteFlags = pt.flags(addr);
  if (!((pteFlags & PTE_SWAP) !== 0)) fail(`do_swap_page at ${addr} without a swap entry`);
  const slot = assertSlot(s, pt.idx(addr));
  const pool = s.pool;
  let pfn = s.swap.cachePfn[slot];
  if (pfn !== -1) {
    s.locks.cover(COVER.doSwapPageCache);
    frameOf(s, pfn);
    getPage(s, pfn);
  } else {
    pfn = allocFrame(s, KIND_ANON, s.swap.value[slot]);
    if (pfn === -1) return 'OOM';
    s.locks.cover(COVER.doSwapPageRead);
    pool.owner[pfn] = slot;
    s.swap.cachePfn[slot] = pfn;
    pool.refcount[pfn] += 1;
  }
  // swapin_readahead's I/O, folio_lock_or_retry: they may sleep, and another thread's fault,
  // a MADV_DONTNEED or a reclaim may change the PTE meanwhile (pte_same, out_nomap).
  s.locks.preemptPoint('swapin');
  if (pt.flags(addr) !== pteFlags || pt.idx(addr) !== slot) {
    s.locks.cover(COVER.doSwapPageRaced);
    putPage(s, pfn);
    if (pool.refcount[pfn] > 0 && pool.mapcount[pfn] === 0) folioFreeSwap(s, pfn);
    return 0;
  }
  s.lru.touch(pfn, s.step);
  s.swap.count[slot] -= 1;
  proc.mm.rss.swap -= 1;
  if (write && pool.refcount[pfn] === 2) folioFreeSwap(s, pfn);
  const reuse = (pteFlags & PTE_EXCLUSIVE) !== 0 || pool.refcount[pfn] === 1;
  if (reuse) s.locks.cover(COVER.doSwapPageReuse);
  if ((pteFlags & PTE_UFFD_WP) !== 0) s.locks.cover(COVER.doSwapPageUffdWp);
  // A uffd-wp swap entry comes back write-protected with the bit kept.
  const writable = reuse && vmaWritable(vma) && (pteFlags & PTE_UFFD_WP) === 0;
  pt.clear(addr);
  mapFrame(s, proc.mm, addr, pfn, writable, writable && write);
  if ((pteFlags & PTE_SOFT_DIRTY) === 0) pt.setFlags(addr, pt.flags(addr) & ~PTE_SOFT_DIRTY);
  if ((pteFlags & PTE_UFFD_WP) !== 0) pt.setFlags(addr, pt.flags(addr) | PTE_UFFD_WP);
  if (reuse) pool.flags[pfn] |= F_ANON_EXCLUSIVE;
  else pool.flags[pfn] &= ~F_ANON_EXCLUSIVE;
  if (write && !writable) return doWpPage(s, proc, vma, addr, true);
  return 0;
}

function canReuseAnon(s: ImplState, pfn: number): boolean {
  if (s.pool.swapSlot(pfn) !== -1) folioFreeSwap(s, pfn);
  return s.pool.refcount[pfn] === 1;
}

/**
 * do_wp_page: a write to the present, write-protected PTE at `addr`. `makeWritable` is false
 * for an unshare fault (a read-only FOLL_PIN of a shared anonymous page).
 */
export function doWpPage(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, makeWritable: boolean): VmFault {
  const pt = proc.mm.pt;
  // userfaultfd_pte_wp in asynchronous mode: the write is allowed; only the bit goes.
  s.locks.cover(COVER.doWpPage);
  if (!makeWritable) s.locks.cover(COVER.wpUnshare);
  if (makeWritable && (pt.flags(addr) & PTE_UFFD_WP) !== 0) {
    s.locks.cover(COVER.uffdWpAsync);
    pt.setFlags(addr, pt.flags(addr) & ~PTE_UFFD_WP);
  }
  const flags = pt.flags(addr);
  const target = pt.idx(addr);
  if (!((flags & PTE_PRESENT) !== 0)) fail(`do_wp_page at ${addr} without a present PTE`);
  if ((flags & PTE_SPECIAL) !== 0) {
    // vm_normal_page() is NULL for every special PTE, the zero page included: a shared
    // mapping makes it writable in place (wp_pfn_shared), a private one copies.
    if (vma.shared) {
      s.locks.cover(COVER.wpPfnShared);
      pt.setFlags(addr, vmaWritable(vma) ? flags | PTE_WRITE : flags & ~PTE_WRITE); // wp_pfn_shared
      return 0;
    }
    return wpPageCopy(s, proc, vma, addr, makeWritable);
  }
  const pfn = frameOf(s, target);
  const pool = s.pool;
  if ((pool.flags[pfn] & F_KIND) === KIND_ANON) {
    const exclusive = (pool.flags[pfn] & F_ANON_EXCLUSIVE) !== 0;
    if (exclusive || canReuseAnon(s, pfn)) {
      s.locks.cover(exclusive ? COVER.wpPageReuse : COVER.wpCanReuseAnonFolio);
      pool.flags[pfn] |= F_ANON_EXCLUSIVE;
      return wpPageReuse(s, proc, vma, addr, makeWritable, pfn);
    }
    return wpPageCopy(s, proc, vma, addr, makeWritable);
  }
  if (vma.shared) {
    s.locks.cover(COVER.wpPageShared);
    return wpPageReuse(s, proc, vma, addr, makeWritable, pfn); // wp_page_shared
  }
  return wpPageCopy(s, proc, vma, addr, makeWritable);
}

/** wp_page_reuse: the page stays; the PTE becomes writable and dirty. */
function wpPageReuse(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, makeWritable: boolean, pfn: number): VmFault {
  if (!makeWritable) return 0;
  const pt = proc.mm.pt;
  const flags = pt.flags(addr) | PTE_DIRTY | PTE_SOFT_DIRTY;
  pt.setFlags(addr, vmaWritable(vma) ? flags | PTE_WRITE : flags & ~PTE_WRITE);
  s.pool.flags[pfn] |= F_DIRTY;
  return 0;
}

/** wp_page_copy: a new exclusive anonymous page with the old contents replaces the PTE's page. */
function wpPageCopy(s: ImplState, proc: ImplProcess, vma: ImplVma, addr: number, makeWritable: boolean): VmFault {
  const pt = proc.mm.pt;
  const flags = pt.flags(addr);
  s.locks.cover((flags & PTE_SPECIAL) !== 0 ? COVER.wpPageCopyZero : COVER.wpPageCopy);
  anonVmaPrepare(s, proc, vma);
  const old = pt.idx(addr);
  // do_wp_page's folio_get: the old page stays while folio_prealloc sleeps (put at the end).
  const held = (flags & PTE_SPECIAL) === 0;
  if (held) getPage(s, old);
  s.locks.preemptPoint('folio_prealloc');
  const copy = allocFrame(s, KIND_ANON, pfnValue(s, old));
  if (copy === -1) {
    if (held) putPage(s, old);
    return 'OOM';
  }
  const pool = s.pool;
  pool.flags[copy] |= F_ANON_EXCLUSIVE;
  // The old PTE is cleared and replaced: secondary MMUs hear of it (MMU_NOTIFY_CLEAR).
  invalidateRange(s, proc.pid, addr, addr + 1, 'clear');
  if (pt.flags(addr) !== flags || pt.idx(addr) !== old) {
    // Another task changed the PTE while the copy was allocated or a callback slept
    // (wp_page_copy's !pte_same under the PTL): drop the copy.
    s.locks.cover(COVER.wpPageCopyRaced);
    putPage(s, copy);
    invalidateEnd(s, proc.pid);
    if (held) putPage(s, old);
    return 0;
  }
  pt.clear(addr);
  if ((flags & PTE_SPECIAL) === 0) {
    frameOf(s, old);
    if (!(pool.mapcount[old] > 0)) fail(`wp_page_copy of pfn ${old} with mapcount ${pool.mapcount[old]}`, 'mapcount');
    pool.mapcount[old] -= 1;
    s.rmap.remove(old, proc.pid, addr);
    proc.mm.rss[rssCounterOf(s, old)] -= 1;
    putPage(s, old);
    if (pool.refcount[old] > 0 && (pool.flags[old] & F_KIND) === KIND_ANON && pool.mapcount[old] === 0) folioFreeSwap(s, old);
  }
  const writable = makeWritable && vmaWritable(vma);
  mapFrame(s, proc.mm, addr, copy, writable, makeWritable);
  invalidateEnd(s, proc.pid);
  if (held) putPage(s, old);
  return 0;
}
