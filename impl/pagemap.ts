/**
 * The optimised kernel's /proc introspection, with model/pagemap.ts as its specification
 * (fs/proc/task_mmu.c, fs/proc/base.c, fs/userfaultfd.c):
 * /proc/<pid>/pagemap reads, the PAGEMAP_SCAN ioctl with its bounce buffer, walk_end and
 * write-protect-on-match, soft-dirty clearing through clear_refs, userfaultfd registration
 * in asynchronous write-protect mode, and readdir of /proc/<pid>/map_files/.
 *
 * Left out: page-table granularity (an unpopulated page is always a pte_hole, as if empty
 * tables were freed), THP and hugetlb (PAGE_IS_HUGE never set), guard regions
 * (PAGE_IS_GUARD is accepted, never set), synchronous userfaultfd and its fd's lifetime.
 */
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok, okValues } from '../kernel-api/outcome.ts';
import type { ClearRefsOp, MapFilesReaddirOp, PagemapReadOp, PagemapScanOp, UffdRegisterWpOp } from '../kernel-api/op.ts';
import {
  PAGEMAP_READ_PAGES_MAX, PAGEMAP_WALK_PAGES, PAGE_IS_FILE, PAGE_IS_PFNZERO, PAGE_IS_PRESENT, PAGE_IS_SOFT_DIRTY,
  PAGE_IS_SWAPPED, PAGE_IS_WPALLOWED, PAGE_IS_WRITTEN, PAGE_REGION_SIZE, PM_FILE, PM_MMAP_EXCLUSIVE, PM_PRESENT,
  PM_SCAN_ARG_SIZE, PM_SCAN_CATEGORIES, PM_SCAN_CHECK_WPASYNC, PM_SCAN_FLAGS, PM_SCAN_WP_MATCHING, PM_SOFT_DIRTY,
  PM_SWAP, PM_UFFD_WP,
} from '../kernel-api/op.ts';
import type { ImplProcess as Process, ImplState as ModelState, ImplVma as Vma } from './types.ts';
import { frameOf } from './frames.ts';
import { F_KIND, KIND_ANON } from './framepool.ts';
import { PTE_PRESENT, PTE_SOFT_DIRTY, PTE_SPECIAL, PTE_SWAP, PTE_UFFD_WP, PTE_WRITE } from './pagetable.ts';
import { ptraceMayAccess } from './access.ts';
import { runningProcess } from './process.ts';
import { vmasIn } from './vma.ts';
import { vmaAttrs, vmaModify, vmaPrevOf } from './vma-merge.ts';
import { fail } from './assert.ts';
import { invalidateEnd, invalidateRange } from './notifier.ts';
import { withMmapLock } from './locks.ts';

const PAGE_SIZE_BYTES = 4096;

/**
 * CONFIG_MEM_SOFT_DIRTY (KernelConfig.softDirty, default on). Without it pte_soft_dirty()
 * and VM_SOFTDIRTY read as 0 and clear_soft_dirty() is empty; the bits the state keeps are
 * then never shown.
 */
const softDirtyOn = (s: ModelState) => s.config.softDirty !== false;

/** The swap type field of a pagemap swap entry is 5 bits (MAX_SWAPFILES_SHIFT). */
const SWP_TYPE_BITS = 32;

/**
 * Opening a /proc/<pid> file of mode 0400/0200: its owner is the task's uid while it is
 * dumpable and root otherwise (task_dump_owner); uid 0 has CAP_DAC_OVERRIDE.
 */
function procFileMayOpen(caller: Process, target: Process): boolean {
  return caller.uid === 0 || (target.dumpable && caller.uid === target.uid);
}

/** pagemap_open: proc_mem_open(PTRACE_MODE_READ) after the file-mode check; both EACCES. */
function pagemapOpen(s: ModelState, caller: Process, targetPid: number): Process | Errno {
  const target = runningProcess(s, targetPid);
  if (target === undefined) return 'ENOENT';
  if (!procFileMayOpen(caller, target) || !ptraceMayAccess(s, caller, target, 'read')) return 'EACCES';
  return target;
}

const isCowMapping = (vma: Vma) => !vma.shared && vma.mayWrite;

/** A PTE as the model names it, read from the packed flags (undefined: pte_none). */
type Pte =
  | { kind: 'present'; pfn: number; special: boolean; softDirty: boolean; uffdWp: boolean }
  | { kind: 'swap'; slot: number; softDirty: boolean; uffdWp: boolean };

function pteAt(mm: Process['mm'], addr: number): Pte | undefined {
  const flags = mm.pt.flags(addr);
  if (flags === 0) return undefined;
  const softDirty = (flags & PTE_SOFT_DIRTY) !== 0;
  const uffdWp = (flags & PTE_UFFD_WP) !== 0;
  if ((flags & PTE_SWAP) !== 0) return { kind: 'swap', slot: mm.pt.idx(addr), softDirty, uffdWp };
  return { kind: 'present', pfn: mm.pt.idx(addr), special: (flags & PTE_SPECIAL) !== 0, softDirty, uffdWp };
}

const isAnon = (s: ModelState, pfn: number) => (s.pool.flags[frameOf(s, pfn)] & F_KIND) === KIND_ANON;

/** pte_to_pagemap_entry (and pagemap_pte_hole for an empty PTE): bits 55..63 and bits 0..54. */
function pagemapEntry(s: ModelState, mm: Process['mm'], vma: Vma | undefined, addr: number, showPfn: boolean): [number, number] {
  if (vma === undefined) return [0, 0];
  const sd = softDirtyOn(s);
  let flags = sd && vma.softDirty ? PM_SOFT_DIRTY : 0;
  const pte = pteAt(mm, addr);
  if (pte === undefined) {
    // A uffd-wp marker is a non-present, non-none entry: is_swap_pte() holds.
    if (mm.uffdWpMarkers.has(addr)) return [flags | PM_SWAP | PM_UFFD_WP, 0];
    return [flags, 0];
  }
  if (pte.kind === 'swap') {
    flags |= PM_SWAP | (sd && pte.softDirty ? PM_SOFT_DIRTY : 0) | (pte.uffdWp ? PM_UFFD_WP : 0);
    return [flags, showPfn ? pte.slot * SWP_TYPE_BITS : 0];
  }
  flags |= PM_PRESENT | (sd && pte.softDirty ? PM_SOFT_DIRTY : 0) | (pte.uffdWp ? PM_UFFD_WP : 0);
  if (!pte.special) {
    // vm_normal_page: special PTEs (the zero page, PFN maps) have no struct page here.
    if (!isAnon(s, pte.pfn)) flags |= PM_FILE;
    if (s.pool.mapcount[pte.pfn] === 1) flags |= PM_MMAP_EXCLUSIVE; // folio_precise_page_mapcount() == 1
  }
  return [flags, showPfn ? pte.pfn : 0];
}

/** read(2) of /proc/<target>/pagemap: `count` entries from `addr`, clipped at TASK_SIZE. */
export function pagemapRead(s: ModelState, caller: Process, op: PagemapReadOp): Outcome {
  const target = pagemapOpen(s, caller, op.target);
  if (typeof target === 'string') return err(target);
  const count = op.count ?? 1;
  if (!Number.isSafeInteger(op.addr) || op.addr < 0 || !Number.isSafeInteger(count) || count < 0) return err('EINVAL');
  if (count > PAGEMAP_READ_PAGES_MAX) return err('EINVAL');
  const end = Math.min(op.addr + count, s.config.taskSizePages);
  const showPfn = caller.uid === 0; // file_ns_capable(CAP_SYS_ADMIN)
  const values: number[] = [];
  const frames: number[] = [];
  withMmapLock(s, target.mm, 'read', 'pagemap_read', () => {
    for (let addr = op.addr; addr < end; addr++) {
      const vma = vmasIn(target.mm, addr, addr + 1)[0];
      const [flags, frame] = pagemapEntry(s, target.mm, vma, addr, showPfn);
      values.push(flags);
      frames.push(frame);
    }
  });
  return okValues(values.length, values, frames);
}

/** clear_refs_write: "4" clears soft-dirty; 1, 2, 3 and 5 touch nothing emulated. */
export function clearRefs(s: ModelState, caller: Process, op: ClearRefsOp): Outcome {
  const target = runningProcess(s, op.target);
  if (target === undefined) return err('ENOENT');
  if (!procFileMayOpen(caller, target)) return err('EACCES'); // S_IWUSR, no ptrace check
  if (!Number.isSafeInteger(op.mode) || op.mode < 1 || op.mode >= 6) return err('EINVAL');
  // clear_refs_write takes the target's mmap_lock for write for every valid mode.
  return withMmapLock(s, target.mm, 'write', 'clear_refs_write', () => clearRefsLocked(s, target, op.mode));
}

function clearRefsLocked(s: ModelState, target: Process, mode: number): Outcome {
  if (mode !== 4) return ok(0);
  if (!softDirtyOn(s)) {
    // No VM_SOFTDIRTY to clear and an empty clear_soft_dirty(): only the notifier runs.
    invalidateRange(s, target.pid, 0, s.config.taskSizePages, 'protection'); // MMU_NOTIFY_SOFT_DIRTY
    invalidateEnd(s, target.pid);
    return ok(0);
  }
  const vmas = vmasIn(target.mm, 0, s.config.taskSizePages);
  for (const vma of vmas) vma.softDirty = false;
  invalidateRange(s, target.pid, 0, s.config.taskSizePages, 'protection'); // MMU_NOTIFY_SOFT_DIRTY
  const pt = target.mm.pt;
  for (const vma of vmasIn(target.mm, 0, s.config.taskSizePages)) {
    if (vma.pfnmap) continue; // clear_refs_test_walk
    pt.forEach(vma.start, vma.end, (addr, flags, idx) => { pt.setFlags(addr, clearSoftDirty(s, vma, flags, idx)); });
  }
  invalidateEnd(s, target.pid);
  return ok(0);
}

/** clear_soft_dirty: write-protect and clear a present PTE unless it may be pinned for DMA. */
function clearSoftDirty(s: ModelState, vma: Vma, flags: number, idx: number): number {
  if ((flags & PTE_SWAP) !== 0) return flags & ~PTE_SOFT_DIRTY;
  if ((flags & PTE_SPECIAL) === 0 && isCowMapping(vma) && isAnon(s, idx) && s.pool.pins(idx) > 0) return flags; // pte_is_pinned
  return flags & ~(PTE_WRITE | PTE_SOFT_DIRTY);
}

/**
 * userfaultfd() + UFFDIO_API(WP_ASYNC | WP_UNPOPULATED) + UFFDIO_REGISTER(MODE_WP): each
 * call opens a new context, so a VMA already registered (with another) gives EBUSY.
 */
export function uffdRegisterWp(s: ModelState, proc: Process, op: UffdRegisterWpOp): Outcome {
  if (op.async !== true) return err('EINVAL');
  const { addr, lengthPages } = op;
  // validate_range
  if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(lengthPages) || lengthPages <= 0) return err('EINVAL');
  if (addr < s.config.mmapMinAddrPages || addr >= s.config.taskSizePages) return err('EINVAL');
  if (lengthPages > s.config.taskSizePages - addr) return err('EINVAL');
  const end = addr + lengthPages;
  const vmas = vmasIn(proc.mm, addr, end);
  if (vmas.length === 0) return err('EINVAL');
  for (const vma of vmas) {
    // vma_can_userfault allows any memory with WP_ASYNC; a MAP_SHARED map of a read-only fd does not.
    if (!vma.mayWrite) return err('EPERM');
    if (vma.uffdCtx !== 0) return err('EBUSY');
  }
  // userfaultfd_register_range: VMA by VMA, vma_modify_flags_uffd (merge, else split).
  const ctx = s.nextUffdCtx++;
  let start = addr;
  let prev = vmas[0].start < addr ? vmas[0] : vmaPrevOf(proc.mm, addr);
  let vma = proc.mm.vmas.find(addr);
  const stepsMax = proc.mm.vmas.size; // each step passes one of the VMAs there at the start
  for (let steps = 0; vma !== null && vma.start < end; steps++) {
    if (steps >= stepsMax) fail(`uffd register walk of [${addr}, ${end}) does not end`);
    start = Math.max(start, vma.start);
    const target = vmaModify(s, proc.mm, prev, vma, start, Math.min(end, vma.end), vmaAttrs(vma, { uffdCtx: ctx }));
    if (typeof target === 'string') return err(target);
    target.uffdCtx = ctx; // userfaultfd_set_ctx
    prev = target;
    start = target.end;
    vma = proc.mm.vmas.find(start);
  }
  return ok(0);
}

/** getdents of /proc/<target>/map_files/: `start-end` of each VMA with a vm_file. */
export function mapFilesReaddir(s: ModelState, caller: Process, op: MapFilesReaddirOp): Outcome {
  const target = runningProcess(s, op.target);
  if (target === undefined) return err('ENOENT');
  // proc_fd_permission lets the task itself in; then proc_map_files_readdir's PTRACE_MODE_READ.
  const self = caller.pid === target.pid;
  if ((!self && !procFileMayOpen(caller, target)) || !ptraceMayAccess(s, caller, target, 'read')) return err('EACCES');
  const values: number[] = [];
  withMmapLock(s, target.mm, 'read', 'proc_map_files_readdir', () => {
    for (const vma of vmasIn(target.mm, 0, s.config.taskSizePages)) {
      if (vma.file !== -1 || vma.driverFile !== null) values.push(vma.start, vma.end);
    }
  });
  return okValues(values.length / 2, values);
}

type Region = { start: number; end: number; categories: number };

/** struct pagemap_scan_private, in pages. */
type ScanPrivate = {
  op: PagemapScanOp;
  end: number;
  maxPages: number;
  masksOfInterest: number;
  walkEnd: number;
  foundPages: number;
  vecLen: number;
  /** The bounce buffer (vec_buf), null when no output was asked for. */
  buf: Region[] | null;
  bufLen: number;
  bufIndex: number;
  out: Region[];
};

/** pagemap_scan_get_args: every check, in the merged order, with its errno. */
function scanGetArgs(s: ModelState, op: PagemapScanOp): Errno | 0 {
  if ((op.size ?? PM_SCAN_ARG_SIZE) !== PM_SCAN_ARG_SIZE) return 'EINVAL';
  const isMask = (m: number, all: number) => Number.isSafeInteger(m) && m >= 0 && (m & ~all) === 0;
  if (!isMask(op.flags, PM_SCAN_FLAGS)) return 'EINVAL';
  for (const m of [op.category_inverted, op.category_mask, op.category_anyof_mask, op.return_mask]) {
    if (!isMask(m, PM_SCAN_CATEGORIES)) return 'EINVAL';
  }
  if (!Number.isInteger(op.start)) return 'EINVAL'; // IS_ALIGNED(start, PAGE_SIZE)
  // access_ok(start, end - start): the unsigned length must not wrap nor pass TASK_SIZE.
  if (!Number.isFinite(op.end) || op.start < 0 || op.end < op.start || op.end > s.config.taskSizePages) return 'EFAULT';
  const vecLenOk = Number.isSafeInteger(op.vec_len) && op.vec_len >= 0;
  if (op.vecNull && op.vec_len !== 0) return 'EINVAL';
  if (!op.vecNull && (!vecLenOk || op.vec_len * PAGE_REGION_SIZE > s.config.taskSizePages * PAGE_SIZE_BYTES)) return 'EFAULT';
  if (!Number.isSafeInteger(op.max_pages) || op.max_pages < 0) return 'EINVAL'; // a limit of the emulation
  return 0;
}

/** ioctl(PAGEMAP_SCAN): do_pagemap_scan. */
export function pagemapScan(s: ModelState, caller: Process, op: PagemapScanOp): Outcome {
  const target = pagemapOpen(s, caller, op.target ?? op.pid);
  if (typeof target === 'string') return err(target);
  const e = scanGetArgs(s, op);
  if (e !== 0) return err(e);
  const vecLen = op.vecNull ? 0 : op.vec_len;
  const p: ScanPrivate = {
    op, end: Math.ceil(op.end), maxPages: op.max_pages === 0 ? Infinity : op.max_pages,
    masksOfInterest: op.category_mask | op.category_anyof_mask | op.return_mask, walkEnd: 0, foundPages: 0,
    vecLen, buf: null, bufLen: 0, bufIndex: 0, out: [],
  };
  if (vecLen > 0) {
    p.bufLen = Math.min(PAGEMAP_WALK_PAGES, vecLen);
    p.buf = [{ start: 0, end: 0, categories: 0 }];
  }
  let ret: 0 | 'ENOSPC' | 'EPERM' = 0;
  for (let walkStart = op.start; walkStart < p.end; walkStart = p.walkEnd) {
    // Each walk under the target's mmap_lock for read; write-protecting, between
    // invalidate_range_start and _end.
    const wp = (op.flags & PM_SCAN_WP_MATCHING) !== 0;
    ret = withMmapLock(s, target.mm, 'read', 'do_pagemap_scan', () => {
      if (wp) invalidateRange(s, target.pid, walkStart, p.end, 'protection');
      const r = scanWalk(s, target, p, walkStart);
      if (wp) invalidateEnd(s, target.pid);
      return r;
    });
    flushBuffer(p);
    if (ret !== 'ENOSPC') break;
    if (p.vecLen === 0 || p.foundPages === p.maxPages) break;
  }
  if (ret === 'EPERM') return err('EPERM');
  const walkEnd = p.walkEnd === 0 ? p.end : p.walkEnd;
  const values = [walkEnd];
  for (const r of p.out) values.push(r.start, r.end, r.categories);
  return okValues(p.out.length, values);
}

/** pagemap_scan_flush_buffer: copy the filled regions out and start the buffer afresh. */
function flushBuffer(p: ScanPrivate): void {
  if (p.buf === null) return;
  let n = p.bufIndex;
  if (p.buf[n].end !== p.buf[n].start) n++;
  if (n === 0) return;
  p.out.push(...p.buf.slice(0, n).map((r) => ({ ...r })));
  p.vecLen -= n;
  p.bufIndex = 0;
  p.bufLen = Math.min(p.bufLen, p.vecLen);
  p.buf = [{ start: 0, end: 0, categories: p.buf[0].categories }];
}

/** walk_page_range over [walkStart, end): test_walk per VMA, then each page. */
function scanWalk(s: ModelState, target: Process, p: ScanPrivate, walkStart: number): 0 | 'ENOSPC' | 'EPERM' {
  const flags = p.op.flags;
  for (const vma of vmasIn(target.mm, walkStart, p.end)) {
    // pagemap_scan_test_walk
    const wpAllowed = vma.uffdCtx !== 0;
    if (!wpAllowed && (flags & PM_SCAN_CHECK_WPASYNC) !== 0) return 'EPERM';
    if (!wpAllowed && (flags & PM_SCAN_WP_MATCHING) !== 0) continue;
    if (vma.pfnmap) continue;
    const vmaCategory = (wpAllowed ? PAGE_IS_WPALLOWED : 0) | (softDirtyOn(s) && vma.softDirty ? PAGE_IS_SOFT_DIRTY : 0);
    const required = p.op.category_mask & PAGE_IS_WPALLOWED;
    if (((vmaCategory ^ p.op.category_inverted) & required) !== required) continue;
    const r = scanVma(s, target, p, vma, vmaCategory, Math.max(walkStart, vma.start), Math.min(p.end, vma.end));
    if (r !== 0) return r;
  }
  return 0;
}

function isInterestingPage(p: ScanPrivate, categories: number): boolean {
  const c = categories ^ p.op.category_inverted;
  if ((c & p.op.category_mask) !== p.op.category_mask) return false;
  return p.op.category_anyof_mask === 0 || (c & p.op.category_anyof_mask) !== 0;
}

/** pagemap_scan_pmd_entry and pagemap_scan_pte_hole for one VMA's part of the walk. */
function scanVma(s: ModelState, target: Process, p: ScanPrivate, vma: Vma, vmaCategory: number, from: number, to: number): 0 | 'ENOSPC' {
  const mm = target.mm;
  const wpMatching = (p.op.flags & PM_SCAN_WP_MATCHING) !== 0;
  for (let addr = from; addr < to; addr++) {
    const pte = pteAt(mm, addr);
    const marker = pte === undefined && mm.uffdWpMarkers.has(addr);
    if (pte === undefined && !marker) {
      // pagemap_scan_pte_hole: the VMA's categories; write-protect installs a marker.
      if (!isInterestingPage(p, vmaCategory)) continue;
      const r = scanOutput(p, vmaCategory, addr);
      if (r.end === addr) return r.ret;
      if (wpMatching) mm.uffdWpMarkers.add(addr);
      continue;
    }
    if (wpMatching && p.buf === null) {
      // The fast path for an exclusive write-protect: every entry, no matching at all.
      if (pte !== undefined && !pte.uffdWp) makeUffdWpPte(mm, addr);
      continue;
    }
    const categories = vmaCategory | pageCategory(s, p, pte);
    if (!isInterestingPage(p, categories)) continue;
    const r = scanOutput(p, categories, addr);
    if (r.end === addr) return r.ret;
    if (wpMatching && (categories & PAGE_IS_WRITTEN) !== 0 && pte !== undefined) makeUffdWpPte(mm, addr);
  }
  return 0;
}

/** pagemap_page_category of a present PTE, a swap entry, or (pte undefined) a uffd-wp marker. */
function pageCategory(s: ModelState, p: ScanPrivate, pte: Pte | undefined): number {
  if (pte === undefined) return PAGE_IS_SWAPPED; // a marker: is_swap_pte, and uffd-wp
  const sd = softDirtyOn(s);
  if (pte.kind === 'swap') return PAGE_IS_SWAPPED | (pte.uffdWp ? 0 : PAGE_IS_WRITTEN) | (sd && pte.softDirty ? PAGE_IS_SOFT_DIRTY : 0);
  let c = PAGE_IS_PRESENT | (pte.uffdWp ? 0 : PAGE_IS_WRITTEN);
  if ((p.masksOfInterest & PAGE_IS_FILE) !== 0 && !pte.special && !isAnon(s, pte.pfn)) c |= PAGE_IS_FILE;
  if (pte.pfn === s.zeroPfn && pte.special) c |= PAGE_IS_PFNZERO;
  if (sd && pte.softDirty) c |= PAGE_IS_SOFT_DIRTY;
  return c;
}

/** make_uffd_wp_pte: the uffd-wp bit, and a present PTE loses write access. */
function makeUffdWpPte(mm: Process['mm'], addr: number): void {
  const flags = mm.pt.flags(addr) | PTE_UFFD_WP;
  mm.pt.setFlags(addr, (flags & PTE_PRESENT) !== 0 ? flags & ~PTE_WRITE : flags);
}

/** pagemap_scan_output for one page at `addr`: `end` is addr + 1, or addr when nothing fits. */
function scanOutput(p: ScanPrivate, categories: number, addr: number): { ret: 0 | 'ENOSPC'; end: number } {
  if (p.buf === null) return { ret: 0, end: addr + 1 };
  const c = categories & p.op.return_mask;
  let end = addr + 1;
  let n = 1;
  let ret: 0 | 'ENOSPC' = 0;
  if (p.foundPages + n > p.maxPages) {
    end = addr;
    n = 0;
    ret = 'ENOSPC';
  }
  if (!pushRange(p, c, addr, end)) {
    end = addr;
    n = 0;
    ret = 'ENOSPC';
  }
  p.foundPages += n;
  if (ret !== 0) p.walkEnd = end;
  return { ret, end };
}

/** pagemap_scan_push_range: extend the current region or open the next one. */
function pushRange(p: ScanPrivate, categories: number, addr: number, end: number): boolean {
  const buf = p.buf!;
  let cur = buf[p.bufIndex];
  if (addr === cur.end && categories === cur.categories) {
    cur.end = end;
    return true;
  }
  if (cur.end !== 0) {
    if (p.bufIndex >= p.bufLen - 1) return false;
    p.bufIndex += 1;
    cur = { start: 0, end: 0, categories: 0 };
    buf[p.bufIndex] = cur;
  }
  cur.start = addr;
  cur.end = end;
  cur.categories = categories;
  return true;
}
