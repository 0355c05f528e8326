/**
 * Page faults (mm/memory.c): handle_mm_fault and its cases, named as in Linux —
 * do_anonymous_page, do_read_fault / do_cow_fault / do_shared_fault, do_swap_page,
 * do_wp_page with wp_page_reuse and wp_page_copy. The caller checked that the access is
 * allowed; a fault returns 0 or a VM_FAULT code as a value.
 */
import type { Frame, ModelState, PresentPte, Process, Pte, Vma } from './types.ts';
import { PROT_WRITE } from '../kernel-api/op.ts';
import { assert } from './assert.ts';
import { allocFrame, frameOf, getPage, pfnValue, putPage } from './frames.ts';
import { folioFreeSwap, slotOf } from './swap.ts';
import { fileOf, findOrCreatePage } from './pagecache.ts';
import { invalidateLock, withLock } from './locks.ts';
import { mapFrame, rssCounterOf } from './zap.ts';
import { withInvalidation } from './notifier.ts';
import type { FaultFlags } from '../kernel-api/driver.ts';
import { COVER } from '../kernel-api/coverage.ts';

/** 0, or a VM_FAULT code: RETRY when ->fault released the mmap_lock (only with `allowRetry`). */
export type VmFault = 0 | 'SIGBUS' | 'OOM' | 'RETRY';

/** A fault by GUP (get_user_pages_remote with locked == NULL): ->fault may not drop the mmap_lock. */
export const GUP_FAULT: FaultFlags = { allowRetry: false, tried: false };

const vmaWritable = (vma: Vma) => (vma.prot & PROT_WRITE) !== 0;

/**
 * anon_vma_prepare: find_mergeable_anon_vma reuses the anon_vma of the next VMA, else of the
 * previous one, when it is compatible (adjacent, same file and contiguous vm_pgoff, flags
 * equal but for the access bits) and its chain is singular (not a fork child); else a new one.
 */
export function anonVmaPrepare(s: ModelState, proc: Process, vma: Vma): void {
  if (vma.anonVma !== 0) return;
  const at = proc.mm.vmas.indexOf(vma);
  const next = proc.mm.vmas[at + 1];
  const prev = proc.mm.vmas[at - 1];
  const reused = (next !== undefined ? reusableAnonVma(next, vma, next) : 0) || (prev !== undefined ? reusableAnonVma(prev, prev, vma) : 0);
  vma.anonVma = reused || s.nextAnonVma++;
  vma.forkChild = false;
}

/** reusable_anon_vma: `old`'s anon_vma, if `a` directly below `b` could share one (anon_vma_compatible). */
function reusableAnonVma(old: Vma, a: Vma, b: Vma): number {
  const compatible = a.end === b.start && a.vmFile === b.vmFile && a.driverFile === b.driverFile && a.shared === b.shared &&
    a.mayWrite === b.mayWrite && a.account === b.account && a.pfnmap === b.pfnmap && a.mixedmap === b.mixedmap &&
    a.io === b.io && a.dontcopy === b.dontcopy && a.dontexpand === b.dontexpand && a.wipeonfork === b.wipeonfork && a.locked === b.locked && a.lockonfault === b.lockonfault && (a.uffdCtx !== 0) === (b.uffdCtx !== 0) &&
    b.pgoff === a.pgoff + (b.start - a.start);
  return compatible && old.anonVma !== 0 && !old.forkChild ? old.anonVma : 0;
}

/** handle_mm_fault for one page of `vma`, with the mm's mmap_lock held for read (or write). */
export function handleMmFault(s: ModelState, proc: Process, vma: Vma, addr: number, write: boolean, flags: FaultFlags = GUP_FAULT): VmFault {
  s.locks.cover(COVER.handleMmFault);
  const pte = proc.mm.ptes.get(addr);
  if (pte === undefined && proc.mm.uffdWpMarkers.has(addr)) return handlePteMarker(s, proc, vma, addr, write, flags);
  if (pte === undefined) return doPteMissing(s, proc, vma, addr, write, flags);
  if (pte.kind === 'swap') return doSwapPage(s, proc, vma, addr, write);
  if (write && !pte.write) return doWpPage(s, proc, vma, addr, pte, true);
  return 0;
}

/**
 * handle_pte_marker → pte_marker_handle_uffd_wp: a fault on a uffd-wp marker fills the page
 * as do_pte_missing would, with the uffd-wp bit carried over (vmf_orig_pte_uffd_wp), so the
 * new PTE is write-protected; a write then resolves in do_wp_page, which in asynchronous
 * mode clears the bit. A VMA no longer registered just drops the marker.
 */
function handlePteMarker(s: ModelState, proc: Process, vma: Vma, addr: number, write: boolean, flags: FaultFlags): VmFault {
  s.locks.cover(COVER.handlePteMarker);
  proc.mm.uffdWpMarkers.delete(addr);
  if (vma.uffdCtx === 0) return doPteMissing(s, proc, vma, addr, write, flags);
  const r = doPteMissing(s, proc, vma, addr, write, flags);
  const pte = proc.mm.ptes.get(addr);
  if (r !== 0 || pte?.kind !== 'present') {
    if (pte === undefined) proc.mm.uffdWpMarkers.add(addr); // the fault failed: the marker stays
    return r;
  }
  pte.uffdWp = true;
  pte.write = false;
  return write ? doWpPage(s, proc, vma, addr, pte, true) : 0;
}

function doPteMissing(s: ModelState, proc: Process, vma: Vma, addr: number, write: boolean, flags: FaultFlags): VmFault {
  if (vma.vmOps?.fault) return doDriverFault(s, proc, vma, addr, write, flags);
  // do_fault: a VMA with vm_ops (or a driver's file) but no ->fault cannot be filled.
  if (vma.pfnmap || vma.mixedmap || vma.vmOps !== null || vma.driverFile !== null) {
    s.locks.cover(COVER.doFaultNoHandler);
    return 'SIGBUS';
  }
  if (vma.file === -1) return doAnonymousPage(s, proc, vma, addr, write);
  return doFileFault(s, proc, vma, addr, write);
}

/** do_anonymous_page: the zero page for a read, a fresh exclusive page for a write. */
function doAnonymousPage(s: ModelState, proc: Process, vma: Vma, addr: number, write: boolean): VmFault {
  // check_stable_address_space: the OOM reaper has begun tearing the mm down (MMF_UNSTABLE).
  if (proc.oomReaped) {
    s.locks.cover(COVER.unstableAddressSpace);
    return 'SIGBUS';
  }
  if (!write) {
    s.locks.cover(COVER.doAnonymousPageZero);
    proc.mm.ptes.set(addr, { kind: 'present', pfn: s.zeroPfn, write: false, dirty: false, softDirty: true, special: true, uffdWp: false });
    return 0;
  }
  s.locks.cover(COVER.doAnonymousPage);
  anonVmaPrepare(s, proc, vma);
  // alloc_anon_folio (GFP_HIGHUSER_MOVABLE) may sleep: another thread may fault the same
  // page in meanwhile, which vmf_pte_changed finds under the PTL.
  s.locks.preemptPoint('alloc_anon_folio');
  const frame = allocFrame(s, 'anon', 0);
  if (frame === null) return 'OOM';
  if (proc.mm.ptes.has(addr)) {
    s.locks.cover(COVER.doAnonymousPageRaced);
    putPage(s, frame);
    return 0;
  }
  frame.anonExclusive = true;
  mapFrame(proc.mm, addr, frame, vmaWritable(vma), true);
  return 0;
}

/** do_read_fault, do_cow_fault and do_shared_fault over the page cache (or shmem). */
function doFileFault(s: ModelState, proc: Process, vma: Vma, addr: number, write: boolean): VmFault {
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
  if (page === null) return 'OOM';
  if (proc.mm.ptes.has(addr)) {
    // finish_fault: !pte_none under the PTL, another thread mapped it while this one slept.
    s.locks.cover(COVER.fileFaultRaced);
    return 0;
  }
  page.lru = s.step;
  // finish_fault's check_stable_address_space for a private mapping ("we might have lost our CoWed page").
  if (!vma.shared && proc.oomReaped) {
    s.locks.cover(COVER.unstableAddressSpace);
    return 'SIGBUS';
  }
  if (write && !vma.shared) return doCowFault(s, proc, vma, addr, page.value);
  s.locks.cover(write ? COVER.doSharedFault : COVER.doReadFault);
  getPage(page);
  mapFrame(proc.mm, addr, page, write && vmaWritable(vma), write);
  if (write) page.dirty = true;
  return 0;
}

/** do_cow_fault: a private write copies the file page into a new anonymous page. */
function doCowFault(s: ModelState, proc: Process, vma: Vma, addr: number, value: number): VmFault {
  s.locks.cover(COVER.doCowFault);
  anonVmaPrepare(s, proc, vma);
  const copy = allocFrame(s, 'anon', value);
  if (copy === null) return 'OOM';
  copy.anonExclusive = true;
  mapFrame(proc.mm, addr, copy, vmaWritable(vma), true);
  return 0;
}

/**
 * __do_fault through vm_ops->fault, then finish_fault (or do_cow_fault for a private write).
 * ->fault may sleep: another task may have filled the PTE meanwhile (finish_fault's
 * !pte_none under the PTL), and then the page is dropped and the access retries.
 */
function doDriverFault(s: ModelState, proc: Process, vma: Vma, addr: number, write: boolean, flags: FaultFlags): VmFault {
  s.locks.cover(COVER.driverFault);
  const index = vma.pgoff + (addr - vma.start);
  const pointsBefore = s.locks.points;
  const r = vma.vmOps!.fault!(vma, addr, index, write, flags);
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
    assert(flags.allowRetry, `${vma.vmOps!.name}: VM_FAULT_RETRY at ${addr} of P${proc.pid} without FAULT_FLAG_ALLOW_RETRY`);
    return 'RETRY';
  }
  if (r.kind === 'nopage') {
    s.locks.cover(COVER.driverFaultNopage);
    if (proc.mm.ptes.get(addr)?.kind !== 'present') {
      // Another task may have zapped what the handler installed while it slept: the
      // access retries. Without a scheduling point, nobody could have: a driver bug.
      assert(slept, `${vma.vmOps!.name}: VM_FAULT_NOPAGE at ${addr} without a PTE (the access would refault forever)`);
      return 0;
    }
    return handleMmFault(s, proc, vma, addr, write, flags);
  }
  s.locks.cover(COVER.driverFaultPage);
  const page = frameOf(s, r.pfn);
  if (proc.mm.ptes.has(addr)) {
    s.locks.cover(COVER.driverFaultRaced);
    // finish_fault: !pte_none under the PTL, another task mapped it: drop vmf->page.
    putPage(s, page);
    return 0;
  }
  if (write && !vma.shared) {
    const ret = doCowFault(s, proc, vma, addr, page.value);
    putPage(s, page);
    return ret;
  }
  // The handler's reference (vmf->page) becomes the mapping's.
  mapFrame(proc.mm, addr, page, write && vmaWritable(vma), write);
  if (write) page.dirty = true;
  return 0;
}

/** do_swap_page: bring the page back from the swap cache or the slot. */
function doSwapPage(s: ModelState, proc: Process, vma: Vma, addr: number, write: boolean): VmFault {
  const pte = proc.mm.ptes.get(addr);
  assert(pte?.kind === 'swap', `do_swap_page at ${addr} without a swap entry`);
  const entry = slotOf(s, pte.slot);
  let frame: Frame;
  if (entry.cachePfn !== -1) {
    s.locks.cover(COVER.doSwapPageCache);
    frame = frameOf(s, entry.cachePfn);
    getPage(frame);
  } else {
    const fresh = allocFrame(s, 'anon', entry.value);
    if (fresh === null) return 'OOM';
    s.locks.cover(COVER.doSwapPageRead);
    frame = fresh;
    // swapin_readahead adds the new frame to the swap cache; the allocation's reference
    // is the fault's own and the cache takes one more.
    frame.swapSlot = entry.slot;
    entry.cachePfn = frame.pfn;
    frame.refcount += 1;
  }
  // swapin_readahead's I/O, folio_lock_or_retry: they may sleep, and another thread's fault,
  // a MADV_DONTNEED or a reclaim may change the PTE meanwhile (pte_same under the PTL,
  // out_nomap): the fault's reference is dropped and the access retries.
  s.locks.preemptPoint('swapin');
  if (!samePte(proc.mm.ptes.get(addr), pte)) {
    s.locks.cover(COVER.doSwapPageRaced);
    putPage(s, frame);
    if (frame.refcount > 0 && frame.mapcount === 0) folioFreeSwap(s, frame);
    return 0;
  }
  frame.lru = s.step;
  // swap_free: this entry no longer names the slot.
  entry.count -= 1;
  proc.mm.rss.swap -= 1;
  if (write && frame.refcount === 2) folioFreeSwap(s, frame);
  const reuse = pte.exclusive || frame.refcount === 1;
  if (reuse) s.locks.cover(COVER.doSwapPageReuse);
  if (pte.uffdWp) s.locks.cover(COVER.doSwapPageUffdWp);
  const writable = reuse && vmaWritable(vma);
  proc.mm.ptes.delete(addr);
  // The fault's reference becomes the mapping's.
  // do_swap_page: a uffd-wp swap entry comes back write-protected with the bit kept.
  const writableNow = writable && !pte.uffdWp;
  mapFrame(proc.mm, addr, frame, writableNow, writableNow && write);
  const mapped = proc.mm.ptes.get(addr) as PresentPte;
  mapped.softDirty = pte.softDirty;
  mapped.uffdWp = pte.uffdWp;
  frame.anonExclusive = reuse;
  if (write && !writableNow) return doWpPage(s, proc, vma, addr, mapped, true);
  return 0;
}

/**
 * wp_can_reuse_anon_folio: a non-exclusive anonymous page may be reused for a write when
 * nobody else holds it — after dropping a swap cache copy nobody needs.
 */
function canReuseAnon(s: ModelState, frame: Frame): boolean {
  if (frame.swapSlot !== -1) folioFreeSwap(s, frame);
  return frame.refcount === 1;
}

/**
 * do_wp_page: a write to a present, write-protected PTE. `makeWritable` is false for an
 * unshare fault (a read-only FOLL_PIN of a shared anonymous page), which leaves it read-only.
 */
export function doWpPage(s: ModelState, proc: Process, vma: Vma, addr: number, pte: PresentPte, makeWritable: boolean): VmFault {
  // userfaultfd_pte_wp in asynchronous mode: the write is allowed; only the bit goes.
  s.locks.cover(COVER.doWpPage);
  if (!makeWritable) s.locks.cover(COVER.wpUnshare);
  if (makeWritable && pte.uffdWp) {
    s.locks.cover(COVER.uffdWpAsync);
    pte.uffdWp = false;
  }
  if (pte.special) {
    // vm_normal_page() is NULL for every special PTE, the zero page included: a shared
    // mapping makes it writable in place (wp_pfn_shared), a private one copies.
    if (vma.shared) {
      s.locks.cover(COVER.wpPfnShared);
      pte.write = vmaWritable(vma);
      return 0;
    }
    return wpPageCopy(s, proc, vma, addr, pte, makeWritable);
  }
  const frame = frameOf(s, pte.pfn);
  if (frame.kind === 'anon') {
    const exclusive = frame.anonExclusive;
    if (exclusive || canReuseAnon(s, frame)) {
      s.locks.cover(exclusive ? COVER.wpPageReuse : COVER.wpCanReuseAnonFolio);
      frame.anonExclusive = true;
      return wpPageReuse(proc, vma, pte, makeWritable, frame);
    }
    return wpPageCopy(s, proc, vma, addr, pte, makeWritable);
  }
  if (vma.shared) {
    s.locks.cover(COVER.wpPageShared);
    return wpPageReuse(proc, vma, pte, makeWritable, frame); // wp_page_shared
  }
  return wpPageCopy(s, proc, vma, addr, pte, makeWritable);
}

function wpPageReuse(_proc: Process, vma: Vma, pte: PresentPte, makeWritable: boolean, frame: Frame): VmFault {
  if (!makeWritable) return 0;
  pte.write = vmaWritable(vma);
  pte.dirty = true;
  pte.softDirty = true;
  frame.dirty = true;
  return 0;
}

/** wp_page_copy: a new exclusive anonymous page with the old contents replaces the PTE's page. */
function wpPageCopy(s: ModelState, proc: Process, vma: Vma, addr: number, pte: PresentPte, makeWritable: boolean): VmFault {
  s.locks.cover(pte.special ? COVER.wpPageCopyZero : COVER.wpPageCopy);
  anonVmaPrepare(s, proc, vma);
  // do_wp_page's folio_get: the old page stays while folio_prealloc sleeps (put at the end).
  const held = pte.special ? null : frameOf(s, pte.pfn);
  if (held !== null) getPage(held);
  s.locks.preemptPoint('folio_prealloc');
  const copy = allocFrame(s, 'anon', pfnValue(s, pte.pfn));
  if (copy === null) {
    if (held !== null) putPage(s, held);
    return 'OOM';
  }
  copy.anonExclusive = true;
  // The old PTE is cleared and replaced: secondary MMUs hear of it (MMU_NOTIFY_CLEAR).
  withInvalidation(s, proc.pid, addr, addr + 1, 'clear', () => {
    if (!samePte(proc.mm.ptes.get(addr), pte)) {
      // Another task changed the PTE while the copy was allocated or a callback slept
      // (wp_page_copy's !pte_same under the PTL): drop the copy.
      s.locks.cover(COVER.wpPageCopyRaced);
      putPage(s, copy);
      return;
    }
    proc.mm.ptes.delete(addr);
    if (!pte.special) {
      const old = frameOf(s, pte.pfn);
      assert(old.mapcount > 0, `wp_page_copy of pfn ${old.pfn} with mapcount ${old.mapcount}`, 'mapcount');
      old.mapcount -= 1;
      proc.mm.rss[rssCounterOf(old)] -= 1;
      putPage(s, old);
      if (old.refcount > 0 && old.kind === 'anon' && old.mapcount === 0) folioFreeSwap(s, old);
    }
    const writable = makeWritable && vmaWritable(vma);
    mapFrame(proc.mm, addr, copy, writable, makeWritable);
  });
  if (held !== null) putPage(s, held);
  return 0;
}

/** pte_same: the PTE holds the same value, present or swap entry (one rewritten alike is the same). */
function samePte(now: Pte | undefined, was: Pte): boolean {
  if (now === undefined || now.softDirty !== was.softDirty || now.uffdWp !== was.uffdWp) return false;
  if (now.kind === 'present') return was.kind === 'present' && now.pfn === was.pfn && now.write === was.write && now.dirty === was.dirty && now.special === was.special;
  return was.kind === 'swap' && now.slot === was.slot && now.exclusive === was.exclusive;
}
