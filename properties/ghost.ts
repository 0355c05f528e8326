/**
 * Ghost memory: a small record of what each process must read, kept apart from frames,
 * PTEs and swap. It knows only logical contents — private pages are copied at fork,
 * shared objects are shared, private file pages follow the file until written — and it
 * is updated from each operation and its outcome alone. `cow-isolation` and
 * `file-integrity` judge the kernels against it.
 *
 * It does not judge pages of driver mappings (their contents are the strategy's business,
 * judged by remote-coherence), except that a write through a shared remote view lands in
 * the target's logical page — while the view shows the target's page. A view a fork
 * copied into the child (a PFN map is copied with its PTEs) is followed as the parent's
 * is. A store through a stale view (one that maps another frame than the target has, or
 * the zero page) reaches no logical page: it is the view's flaw, judged by
 * remote-coherence and zero-page, not a change to whatever the target maps there later.
 *
 * Dirty tracking, from Linux's rule and not from the kernels: a store through a special PTE
 * (a PFN map: vm_normal_page() is NULL) changes the page but never dirties it
 * (zap_present_folio_ptes and try_to_unmap_one move a PTE's dirty bit to the folio only for
 * a normal page). So such a store to a clean page-cache page of a regular file is lost when
 * the page leaves the cache (shrink_folio_list drops a clean folio without pageout; the next
 * access reads the backing store). The ghost keeps its own dirty set of regular-file pages:
 * dirtied by a write path (pwrite, a store through a shared file mapping, a GUP write of
 * /proc/<pid>/mem or process_vm_writev), cleaned by pageout when the page leaves the cache.
 * Which page a reclaim picks is the kernel's policy: the ghost learns only from the page
 * cache whether a page left it, and from the page tables whether reclaim unmapped it from
 * every process while a reference kept it in the cache (shrink_folio_list: try_to_unmap,
 * pageout, then __remove_mapping fails on the extra reference): written back too; one no
 * process mapped by a normal PTE, that a reclaim left in the cache clean, likewise (the
 * folio's dirty flag is all there is of its dirtiness then, and a kernel that cleans a page
 * without writing it back is still caught: the file then reads what the ghost says was
 * written, or file-integrity fails once the page leaves the cache). A lost store is kept in
 * `lost` for remote-coherence.
 */
import type { Op } from '../kernel-api/op.ts';
import { MS_INVALIDATE, MS_SYNC, PROT_WRITE } from '../kernel-api/op.ts';
import { msyncPages } from '../kernel-api/bytes.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import type { KernelInspect, PteView, VmaView } from '../kernel-api/state.ts';
import type { RemoteView } from '../kernel-api/driver.ts';
import { residency } from './invariants/content.ts';
import { GhostPipes } from './ghost-pipes.ts';

/** What backs a range: private anonymous, a shared object (shmem or file), a private file, or unknown. */
type Backing =
  | { kind: 'anon' }
  | { kind: 'shared'; obj: string; pgoff: number }
  | { kind: 'private-file'; file: number; pgoff: number }
  | { kind: 'unknown' };

/** `wipeonfork`: VM_WIPEONFORK, so a fork's child starts this range empty (private anonymous memory only). */
type Range = { start: number; end: number; backing: Backing; dontfork: boolean; wipeonfork: boolean };

/** A store through a special PTE to a clean regular-file page, lost if that page leaves the cache. */
type Fragile = { pfn: number; durable: number; value: number; pid: number; addr: number };
/** A fragile store whose page left the page cache: the write is lost (remote-coherence). */
export type LostStore = { file: number; index: number; value: number; durable: number; pid: number; addr: number };

type GhostProcess = {
  ranges: Range[];
  /** Private values: anonymous pages and COW copies of private file pages, by address. */
  priv: Map<number, number>;
  /** Remote views this process inherited at fork (the strategy reports the parent's only), by address. */
  views: Map<number, { target: number; targetAddr: number }>;
};

/** What a read must return: a value, SIGBUS, or nothing known. */
export type Expectation =
  | { kind: 'value'; value: number }
  // MADV_FREE's lazily freed page: its value until reclaim discards it, 0 after.
  | { kind: 'lazyfree'; value: number }
  | { kind: 'sigbus' } | { kind: 'unmapped' } | { kind: 'unknown' };

/**
 * A private value MADV_FREE lazily freed is kept as value + LAZY: it reads as the value until
 * reclaim discards the page (it reads 0 then); a store makes it a plain value again.
 */
const LAZY = 2 ** 32;

/**
 * Which part of an operation `Ghost.apply` takes: all of it; or, for one that took effect
 * before it completed (properties/sched.ts `Linearized`), the effect at that instant, then
 * the rest at its completion.
 */
export type GhostPart = 'whole' | 'effect' | 'rest';

export class Ghost {
  private readonly procs = new Map<number, GhostProcess>();
  /** Object contents: 'f<id>' for regular files, 'shm<n>' for shared anonymous memory. */
  private readonly objects = new Map<string, Map<number, number>>();
  private readonly fileSize = new Map<number, number>();
  private nextShm = 1;
  private readonly shmSize = new Map<string, number>();
  /** The kernel's shmem inode ids, learnt at mmap, so a map_files mapping finds the same object. */
  private readonly shmemByInode = new Map<number, string>();
  /** Regular-file pages dirtied by a write path and not yet written back, as 'f<id>:<index>'. */
  private readonly dirty = new Set<string>();
  /** Processes that may hold lazily freed values (MADV_FREE): settle looks for their discarded pages. */
  private readonly lazyPids = new Set<number>();
  /** Stores through a special PTE to a clean regular-file page, by 'f<id>:<index>'. */
  private readonly fragile = new Map<string, Fragile>();
  /** The dirty pages some process mapped after the last step, with their frame: what a reclaim may unmap. */
  private mappedDirty = new Map<string, number>();
  /** Stores found lost by the last apply (its page left the cache clean). */
  lost: LostStore[] = [];
  /** What each pipe buffer's page may hold (properties/ghost-pipes.ts). */
  private pipeBufs = new GhostPipes();

  /** An independent copy: what ghost memory said at this instant (a concurrent step's checks, properties/session.ts). */
  clone(): Ghost {
    const g = new Ghost();
    for (const [pid, p] of this.procs) g.procs.set(pid, { ranges: p.ranges.map((r) => ({ ...r })), priv: new Map(p.priv), views: new Map(p.views) });
    for (const [obj, contents] of this.objects) g.objects.set(obj, new Map(contents));
    for (const [id, size] of this.fileSize) g.fileSize.set(id, size);
    for (const [obj, size] of this.shmSize) g.shmSize.set(obj, size);
    for (const [inode, obj] of this.shmemByInode) g.shmemByInode.set(inode, obj);
    for (const key of this.dirty) g.dirty.add(key);
    for (const [key, f] of this.fragile) g.fragile.set(key, { ...f });
    g.lost = [...this.lost];
    g.pipeBufs = this.pipeBufs.clone();
    g.mappedDirty = new Map(this.mappedDirty);
    g.nextShm = this.nextShm;
    for (const pid of this.lazyPids) g.lazyPids.add(pid);
    return g;
  }

  /** What `pid` must read at `addr`. */
  expect(pid: number, addr: number): Expectation {
    const p = this.procs.get(pid);
    const r = p?.ranges.find((x) => x.start <= addr && addr < x.end);
    if (p === undefined || r === undefined) return { kind: 'unmapped' };
    const b = r.backing;
    if (b.kind === 'unknown') return { kind: 'unknown' };
    if (b.kind === 'anon') {
      const v = p.priv.get(addr) ?? 0;
      return v >= LAZY ? { kind: 'lazyfree', value: v - LAZY } : { kind: 'value', value: v };
    }
    if (b.kind === 'shared') return this.objectRead(b.obj, b.pgoff + (addr - r.start));
    const index = b.pgoff + (addr - r.start);
    if (index >= (this.fileSize.get(b.file) ?? 0)) return { kind: 'sigbus' };
    const cow = p.priv.get(addr);
    return cow !== undefined ? { kind: 'value', value: cow } : this.objectRead(`f${b.file}`, index);
  }

  /**
   * The values each page `op` read from its pipe may hold (null: not judged), as many as it
   * returned: before the ghost took `op`, the pipe's first buffers; after, those it consumed.
   */
  pipeReadExpect(op: Extract<Op, { op: 'pipe_read' }>, count: number): (Set<number> | null)[] {
    return this.pipeBufs.expectRead(op, op.pipe, count);
  }

  /** The contents of regular file `id` at `index` (0 past what was written). */
  fileValue(id: number, index: number): number {
    return this.objects.get(`f${id}`)?.get(index) ?? 0;
  }

  fileSizePages(id: number): number | undefined {
    return this.fileSize.get(id);
  }

  private objectRead(obj: string, index: number): Expectation {
    if (obj.startsWith('f') && index >= (this.fileSize.get(Number(obj.slice(1))) ?? 0)) return { kind: 'sigbus' };
    // A shmem object keeps the size of the mmap that made it; pages a grown mapping reaches past it SIGBUS.
    if (obj.startsWith('shm') && index >= (this.shmSize.get(obj) ?? 0)) return { kind: 'sigbus' };
    return { kind: 'value', value: this.objects.get(obj)?.get(index) ?? 0 };
  }

  private objectWrite(obj: string, index: number, value: number): void {
    if (!this.pipeBufs.empty) this.pipeBufs.objectStore(`${obj}:${index}`, value);
    let contents = this.objects.get(obj);
    if (contents === undefined) this.objects.set(obj, (contents = new Map()));
    contents.set(index, value);
  }

  /**
   * Apply one step. `k` is consulted only for what the operation itself names but the ghost
   * cannot know: which inode a mapping of an fd maps. `views` are the strategies' remote views.
   */
  apply(op: Op, outcome: Outcome, k: KernelInspect, views: readonly RemoteView[], part: GhostPart = 'whole'): void {
    this.lost = [];
    this.pipeBufs.beginStep();
    this.applyOp(op, outcome, k, views, part);
    this.settle(op, k);
  }

  private applyOp(op: Op, outcome: Outcome, k: KernelInspect, views: readonly RemoteView[], part: GhostPart): void {
    // The rest of an operation that took effect before it completed (an mmap or mremap whose
    // new VM_LOCKED range is populated after mmap_lock is dropped): the populate's COW copies.
    if (part === 'rest') {
      if (outcome.kind !== 'ok') return; // killed while it populated (ESRCH): its task is dying
      if (op.op === 'mmap') this.populated({ ...op, addr: outcome.value }, k);
      if (op.op === 'mremap') this.populated({ ...op, newAddr: outcome.value }, k);
      return;
    }
    // ESRCH: the calling thread is not there (gone, or killed meanwhile): nothing was done. But
    // a driver's ->mmap may refuse with ESRCH too (its target gone) after a MAP_FIXED mmap
    // cleared the range: that case is the failed MAP_FIXED rule's below, which asks the
    // kernel's VMAs (a range a dead caller never touched is still mapped there).
    // A driver call may store into any page it reaches (its pins, its mirrors); a mremap
    // moves pages, whatever it returned: pipe buffers are judged no further.
    if (!this.pipeBufs.empty && op.op === 'drv') this.pipeBufs.unknownAll();
    if (!this.pipeBufs.empty && op.op === 'mremap') this.pipeBufs.unknownFor(op.pid);
    if (outcome.kind === 'errno' && outcome.errno === 'ESRCH' && !(op.op === 'mmap' && op.fixed)) return;
    if (op.op === 'vmsplice') {
      this.vmsplice(op, outcome, k);
      return;
    }
    if (op.op === 'pipe_read') {
      if (outcome.kind === 'ok') this.pipeBufs.consumed(op, op.pipe, outcome.value);
      return;
    }
    // Byte addresses and lengths (a fraction of a page): Linux refuses an unaligned start
    // before it looks at a VMA, and rounds a byte length up to whole pages (PAGE_ALIGN).
    // mmap: an unaligned offset, or an unaligned MAP_FIXED address, is refused before anything
    // is cleared; a byte length rounds up, and the kernel says where a hint landed.
    if (op.op === 'mmap') {
      if ((op.pgoff !== undefined && !Number.isInteger(op.pgoff)) || ((op.fixed === true || op.noreplace === true) && !Number.isInteger(op.addr))) return;
      if (!Number.isInteger(op.lengthPages)) op = { ...op, lengthPages: Math.ceil(op.lengthPages) };
    }
    if (op.op === 'munmap' || op.op === 'mprotect' || op.op === 'madvise' || op.op === 'mincore') {
      if (!Number.isInteger(op.addr)) return;
      if (!Number.isInteger(op.lengthPages)) op = { ...op, lengthPages: Math.ceil(op.lengthPages) };
    }
    // mremap likewise, its new address too when the flags name one (check_mremap_params).
    if (op.op === 'mremap') {
      if (!Number.isInteger(op.addr) || ((op.fixed === true || op.dontunmap === true) && op.newAddr !== undefined && !Number.isInteger(op.newAddr))) return;
      if (!Number.isInteger(op.oldPages) || !Number.isInteger(op.newPages)) op = { ...op, oldPages: Math.ceil(op.oldPages) || 0, newPages: Math.ceil(op.newPages) || 0 };
    }
    // madvise over a range with holes applies to the mapped parts, then returns ENOMEM;
    // one that meets a PFN map (EINVAL for DONTNEED) has done the VMAs before it.
    // MADV_POPULATE_WRITE's ENOMEM may be a failed allocation instead, its faults stopped
    // anywhere: what they reached, the kernel says (below).
    if (op.op === 'madvise' && outcome.kind === 'errno' && outcome.errno === 'ENOMEM' && op.advice !== 'POPULATE_WRITE') {
      this.madvise(op.pid, op.addr, op.addr + op.lengthPages, op.advice);
      return;
    }
    // MADV_REMOVE stops at the first VMA that is not a shared writable mapping of a file or
    // shmem object (EINVAL, EACCES, ENODEV), having punched the holes before it.
    if (op.op === 'madvise' && op.advice === 'REMOVE' && outcome.kind === 'errno' && op.lengthPages > 0) {
      const end = op.addr + op.lengthPages;
      const refused = [...k.vmas(op.pid)].find((v) => v.end > op.addr && v.start < end && (v.locked || !(v.shared && v.mayWrite && v.file !== -1 && v.driver === '')));
      if (refused !== undefined && refused.start > op.addr) this.madvise(op.pid, op.addr, refused.start, op.advice);
      return;
    }
    if (op.op === 'madvise' && outcome.kind === 'errno' && outcome.errno === 'EINVAL' && op.lengthPages > 0 && op.advice !== 'WIPEONFORK' && op.advice !== 'KEEPONFORK') {
      const end = op.addr + op.lengthPages;
      // VM_PFNMAP refuses every such advice; VM_LOCKED refuses DONTNEED, PAGEOUT, COLD and
      // FREE; FREE refuses all but anonymous memory (vma_is_anonymous).
      const lockedRefuses = op.advice === 'DONTNEED' || op.advice === 'PAGEOUT' || op.advice === 'COLD' || op.advice === 'FREE';
      const refuses = (v: VmaView) => v.pfnmap || (lockedRefuses && v.locked) || (op.advice === 'FREE' && (v.file !== -1 || v.driver !== ''));
      const pfnmap = [...k.vmas(op.pid)].find((v) => refuses(v) && v.end > op.addr && v.start < end);
      if (pfnmap !== undefined && pfnmap.start > op.addr) this.madvise(op.pid, op.addr, pfnmap.start, op.advice);
      return;
    }
    // DONTFORK and DOFORK stop at the first VMA they fail to split (EAGAIN), having set
    // VM_DONTCOPY on the VMAs before it (madvise_walk_vmas): which ones, the kernel's VMAs say.
    if (op.op === 'madvise' && outcome.kind === 'errno' && outcome.errno === 'EAGAIN' && (op.advice === 'DONTFORK' || op.advice === 'DOFORK')) {
      const end = op.addr + op.lengthPages;
      for (const v of k.vmas(op.pid)) {
        if (v.dontcopy === (op.advice === 'DONTFORK') && v.end > op.addr && v.start < end) {
          this.madvise(op.pid, Math.max(op.addr, v.start), Math.min(end, v.end), op.advice);
        }
      }
      return;
    }
    // WIPEONFORK and KEEPONFORK likewise stop at a VMA they fail to split (EAGAIN) or that
    // refuses (EINVAL: a file or shared mapping for WIPEONFORK), having set the VMAs before it.
    if (op.op === 'madvise' && outcome.kind === 'errno' && (outcome.errno === 'EAGAIN' || outcome.errno === 'EINVAL') &&
      (op.advice === 'WIPEONFORK' || op.advice === 'KEEPONFORK')) {
      const end = op.addr + op.lengthPages;
      for (const v of k.vmas(op.pid)) {
        if (v.wipeonfork === (op.advice === 'WIPEONFORK') && v.end > op.addr && v.start < end) {
          this.madvise(op.pid, Math.max(op.addr, v.start), Math.min(end, v.end), op.advice);
        }
      }
      return;
    }
    // MADV_POPULATE_WRITE that stops (a hole: ENOMEM; SIGBUS: EFAULT) has faulted in the pages
    // before: the private file pages among them that now have a COW copy of their own (an
    // anonymous frame, the kernel says) keep the file's contents of now.
    if (op.op === 'madvise' && op.advice === 'POPULATE_WRITE' && outcome.kind === 'errno') {
      this.cowCopiesMade(op.pid, op.addr, op.addr + op.lengthPages, k);
      this.sharedPagesDirtied(op.pid, op.addr, op.addr + op.lengthPages, k);
      return;
    }
    // mlock and mlockall fault their pages in (__mm_populate), with a write fault where the
    // VMA is private and writable: private file pages are COW-copied then, what they hold
    // kept, whatever the outcome (a populate that stops keeps the pages before). The kernel
    // says which pages got a copy of their own (an anonymous frame).
    if (op.op === 'mlock' || op.op === 'mlockall') {
      if (op.op === 'mlock') this.cowCopiesMade(op.pid, Math.floor(op.addr), Math.ceil(op.addr + Math.max(0, op.lengthPages)), k);
      else this.cowCopiesMade(op.pid, -Infinity, Infinity, k);
      return;
    }
    // mprotect_fixup: a private VM_LOCKED VMA made writable is populated at once
    // (populate_vma_page_range, a write fault a page): its private file pages are COW-copied
    // with what the file holds then, whatever the outcome (the VMAs before a hole were done).
    if (op.op === 'mprotect' && (op.prot & PROT_WRITE) !== 0 && Number.isInteger(op.addr) && op.lengthPages > 0) {
      this.cowCopiesMade(op.pid, op.addr, op.addr + Math.ceil(op.lengthPages), k);
    }
    // A MAP_FIXED mmap that fails after __mmap_setup has cleared the old mapping's PTEs
    // leaves a gap (mm/vma.c: vms_clean_up_area, then vms_abort_munmap_vmas finds the PTEs
    // gone): the old contents are lost. One that fails earlier leaves the range intact. The
    // kernel says which: only all or nothing of the range mapped is taken from it.
    if (op.op === 'mmap' && op.fixed && outcome.kind === 'errno' && op.lengthPages > 0) {
      this.failedFixedMmap(op.pid, op.addr, op.addr + op.lengthPages, k);
      return;
    }
    // mremap_to unmaps an MREMAP_FIXED destination (do_munmap) before it moves anything: a
    // move that fails after that (ENOMEM from fail_nth, say) leaves it unmapped; one that
    // fails earlier leaves it intact. The kernel says which, as for a failed MAP_FIXED mmap.
    if (op.op === 'mremap' && op.fixed === true && op.newAddr !== undefined && outcome.kind === 'errno' && op.newPages > 0) {
      this.failedFixedMmap(op.pid, op.newAddr, op.newAddr + op.newPages, k);
      return;
    }
    if (op.op === 'msync') {
      this.msync(op, outcome, k);
      return;
    }
    if (outcome.kind !== 'ok') return;
    switch (op.op) {
      case 'spawn': this.procs.set(outcome.value, { ranges: [], priv: new Map(), views: new Map() }); return;
      case 'creat': this.fileSize.set(outcome.value, op.sizePages); return;
      case 'pwrite':
        this.objectWrite(`f${op.file}`, op.index, op.value >>> 0);
        this.dirtied(`f${op.file}`, op.index); // generic_perform_write: folio_mark_dirty
        if (op.index >= (this.fileSize.get(op.file) ?? 0)) this.fileSize.set(op.file, op.index + 1);
        return;
      case 'truncate': this.truncate(op.file, op.sizePages); return;
      case 'mmap':
        this.mmap(op, outcome.value, k);
        if (part === 'whole') this.populated({ ...op, addr: outcome.value }, k);
        return;
      case 'munmap': this.unmap(op.pid, op.addr, op.addr + op.lengthPages); return;
      case 'mremap':
        this.mremap(op, outcome.value);
        if (part === 'whole') this.populated({ ...op, newAddr: outcome.value }, k);
        return;
      case 'madvise':
        this.madvise(op.pid, op.addr, op.addr + op.lengthPages, op.advice);
        if (op.advice === 'POPULATE_WRITE') this.sharedPagesDirtied(op.pid, op.addr, op.addr + op.lengthPages, k);
        return;
      case 'write': this.store(op.pid, op.addr, op.value >>> 0, k, views); return;
      case 'proc_mem_write':
      case 'process_vm_writev': this.store(op.target, op.addr, op.value >>> 0, k, views); return;
      case 'fork':
        if (!this.pipeBufs.empty) this.pipeBufs.forked(op.pid, (addr) => this.forkLeavesPage(op.pid, addr, k));
        this.fork(op.pid, outcome.value, views);
        return;
      // The OOM reaper leaves the victim's mappings in place (reaped pages fault with SIGBUS,
      // check_stable_address_space; a range a notifier refused keeps its pages): they go at its exit.
      case 'exit': this.procs.delete(op.pid); return;
      default: return;
    }
  }

  /**
   * msync(MS_SYNC) writes back the dirty pages of the shared file mappings it walks
   * (vfs_fsync_range): clean again, kept in the cache. The walk stops, that VMA not synced, at
   * the first VM_LOCKED VMA under MS_INVALIDATE (EBUSY) or a shared driver mapping (its file
   * has no ->fsync: EINVAL); at a hole it goes on (ENOMEM at the end). Which VMAs are locked
   * or a driver's, the kernel says; the pages it cleans are ghost memory's own dirty set.
   */
  private msync(op: Extract<Op, { op: 'msync' }>, outcome: Outcome, k: KernelInspect): void {
    const o = msyncPages(op);
    if ('errno' in o || (o.flags & MS_SYNC) === 0 || this.dirty.size === 0) return;
    if (outcome.kind === 'errno' && outcome.errno !== 'ENOMEM' && outcome.errno !== 'EBUSY' && outcome.errno !== 'EINVAL') return;
    const p = this.procs.get(op.pid);
    if (p === undefined) return;
    let end = o.addr + o.lengthPages;
    for (const v of k.vmas(op.pid)) {
      if (v.end <= o.addr || v.start >= end) continue;
      if (((o.flags & MS_INVALIDATE) !== 0 && v.locked) || (v.shared && v.driver !== '')) end = Math.max(o.addr, v.start);
    }
    for (const r of p.ranges) {
      const b = r.backing;
      if (b.kind !== 'shared' || !b.obj.startsWith('f') || r.end <= o.addr || r.start >= end) continue;
      const lo = Math.max(o.addr, r.start);
      const hi = Math.min(end, r.end);
      for (let a = lo; a < hi; a++) this.dirty.delete(`${b.obj}:${b.pgoff + (a - r.start)}`);
    }
  }

  private failedFixedMmap(pid: number, start: number, end: number, k: KernelInspect): void {
    const p = this.procs.get(pid);
    if (p === undefined) return;
    let mapped = 0;
    for (const v of k.vmas(pid)) mapped += Math.max(0, Math.min(end, v.end) - Math.max(start, v.start));
    let known = 0;
    for (const r of p.ranges) known += Math.max(0, Math.min(end, r.end) - Math.max(start, r.start));
    // A gap where the ghost knew a mapping: the whole old range is gone. Any other
    // difference is left for cow-isolation to report.
    if (mapped === 0 && known > 0) this.unmap(pid, start, end);
  }

  private mmap(op: Extract<Op, { op: 'mmap' }>, addr: number, k: KernelInspect): void {
    const p = this.procs.get(op.pid);
    if (p === undefined) return;
    this.unmap(op.pid, addr, addr + op.lengthPages);
    let backing: Backing;
    if (op.fd !== undefined) {
      const vma = [...k.vmas(op.pid)].find((v) => v.start <= addr && addr < v.end);
      backing = vma === undefined || vma.driver !== '' || vma.file === -1 ? { kind: 'unknown' }
        : this.inodeBacking(vma.file, vma.pgoff - (vma.start - addr), op.shared, k);
    } else if (op.file !== undefined) {
      backing = op.shared ? { kind: 'shared', obj: `f${op.file}`, pgoff: op.pgoff ?? 0 } : { kind: 'private-file', file: op.file, pgoff: op.pgoff ?? 0 };
    } else if (op.shared) {
      const obj = `shm${this.nextShm++}`;
      this.shmSize.set(obj, op.lengthPages);
      const vma = [...k.vmas(op.pid)].find((v) => v.start <= addr && addr < v.end);
      if (vma !== undefined) this.shmemByInode.set(vma.file, obj);
      backing = { kind: 'shared', obj, pgoff: 0 };
    } else {
      backing = { kind: 'anon' };
    }
    insertRange(p, { start: addr, end: addr + op.lengthPages, backing, dontfork: false, wipeonfork: false });
  }

  /** A mapping of an inode reached through an fd (map_files). */
  private inodeBacking(inode: number, pgoff: number, shared: boolean, k: KernelInspect): Backing {
    const shmem = [...k.files()].find((f) => f.id === inode)?.shmem ?? false;
    if (shmem) {
      const obj = this.shmemByInode.get(inode);
      return obj === undefined || !shared ? { kind: 'unknown' } : { kind: 'shared', obj, pgoff };
    }
    return shared ? { kind: 'shared', obj: `f${inode}`, pgoff } : { kind: 'private-file', file: inode, pgoff };
  }

  private unmap(pid: number, start: number, end: number): void {
    const p = this.procs.get(pid);
    if (p === undefined) return;
    cutRanges(p, start, end);
    for (const addr of [...p.priv.keys()]) if (addr >= start && addr < end) p.priv.delete(addr);
    for (const addr of [...p.views.keys()]) if (addr >= start && addr < end) p.views.delete(addr);
  }

  private mremap(op: Extract<Op, { op: 'mremap' }>, newAddr: number): void {
    const p = this.procs.get(op.pid);
    if (p === undefined) return;
    const { addr, oldPages, newPages } = op;
    if (newAddr === addr) {
      if (newPages < oldPages) this.unmap(op.pid, addr + newPages, addr + oldPages);
      else if (newPages > oldPages) growInPlace(p, addr, oldPages, newPages);
      return;
    }
    if (oldPages === 0) {
      // A zero old_len maps the shared object at addr a second time, from addr's offset
      // (check_prep_vma refuses a private mapping); the old mapping stays as it is.
      const r = p.ranges.find((x) => x.start <= addr && addr < x.end);
      this.unmap(op.pid, newAddr, newAddr + newPages);
      if (r !== undefined) insertRange(p, { ...r, start: newAddr, end: newAddr + newPages, backing: shiftBacking(r.backing, addr - r.start) });
      return;
    }
    // A move: the surviving part of the old range goes to newAddr with its private values.
    const keep = Math.min(oldPages, newPages);
    const moved = p.ranges.filter((r) => r.end > addr && r.start < addr + keep).map((r) => {
      const start = Math.max(r.start, addr);
      return { ...r, start, end: Math.min(r.end, addr + keep), backing: shiftBacking(r.backing, start - r.start) };
    });
    const values = [...p.priv].filter(([a]) => a >= addr && a < addr + keep);
    if (op.dontunmap === true) {
      // MREMAP_DONTUNMAP: the old range stays mapped, emptied of its private pages (anonymous
      // memory reads zero, a private file mapping the file again); shared objects are unchanged.
      for (const a of [...p.priv.keys()]) if (a >= addr && a < addr + oldPages) p.priv.delete(a);
      for (const a of [...p.views.keys()]) if (a >= addr && a < addr + oldPages) p.views.delete(a);
    } else {
      this.unmap(op.pid, addr, addr + oldPages);
    }
    this.unmap(op.pid, newAddr, newAddr + newPages);
    for (const r of moved) {
      insertRange(p, { ...r, start: newAddr + (r.start - addr), end: newAddr + (r.end - addr) });
    }
    if (newPages > oldPages && moved.length > 0) {
      const last = moved[moved.length - 1];
      insertRange(p, { ...last, start: newAddr + oldPages, end: newAddr + newPages, backing: shiftBacking(last.backing, last.end - last.start) });
    }
    for (const [a, v] of values) p.priv.set(newAddr + (a - addr), v);
  }

  private madvise(pid: number, start: number, end: number, advice: string): void {
    const p = this.procs.get(pid);
    if (p === undefined) return;
    if (advice === 'DONTNEED') {
      for (const r of p.ranges) {
        if (r.backing.kind !== 'anon' && r.backing.kind !== 'private-file') continue;
        for (const addr of [...p.priv.keys()]) if (addr >= Math.max(start, r.start) && addr < Math.min(end, r.end)) p.priv.delete(addr);
      }
    } else if (advice === 'DONTFORK' || advice === 'DOFORK') {
      splitAt(p, start);
      splitAt(p, end);
      for (const r of p.ranges) if (r.start >= start && r.end <= end) r.dontfork = advice === 'DONTFORK';
    } else if (advice === 'WIPEONFORK' || advice === 'KEEPONFORK') {
      splitAt(p, start);
      splitAt(p, end);
      for (const r of p.ranges) if (r.start >= start && r.end <= end) r.wipeonfork = advice === 'WIPEONFORK';
    } else if (advice === 'REMOVE') {
      // A punched hole: the shared object's pages in the range read zero, in every mapping
      // (a private mapping's COW copies keep theirs).
      for (const r of p.ranges) {
        if (r.backing.kind !== 'shared') continue;
        const contents = this.objects.get(r.backing.obj);
        for (let addr = Math.max(start, r.start); addr < Math.min(end, r.end); addr++) contents?.delete(r.backing.pgoff + (addr - r.start));
      }
    } else if (advice === 'FREE') {
      // The private anonymous pages are lazily freed: each reads as it is until reclaim
      // discards it (settle learns which from the kernel: its PTE is gone), 0 after.
      for (const r of p.ranges) {
        if (r.backing.kind !== 'anon') continue;
        for (const [addr, v] of p.priv) if (addr >= Math.max(start, r.start) && addr < Math.min(end, r.end) && v !== 0 && v < LAZY) p.priv.set(addr, v + LAZY);
      }
      this.lazyPids.add(pid);
    } else if (advice === 'POPULATE_WRITE') {
      // A write fault on each page (madvise_populate, FOLL_WRITE): a private file page is COW
      // copied now, with the file's contents, and a later change to the file no longer reaches it.
      for (const r of p.ranges) {
        if (r.backing.kind !== 'private-file') continue;
        for (let addr = Math.max(start, r.start); addr < Math.min(end, r.end); addr++) this.cowCopy(p, r, addr);
      }
    }
    // WILLNEED (readahead) and POPULATE_READ (faulting in) change no contents.
  }

  /**
   * A new VM_LOCKED range faulted in (mm_populate after do_mmap, or after do_mremap grew a
   * locked VMA; MAP_LOCKED or mlockall(MCL_FUTURE)): COW copies of private file pages. `op`
   * carries where the mapping landed (mmap: addr; mremap: newAddr).
   */
  private populated(op: Extract<Op, { op: 'mmap' | 'mremap' }>, k: KernelInspect): void {
    if (op.op === 'mmap') {
      this.cowCopiesMade(op.pid, op.addr, op.addr + Math.ceil(op.lengthPages), k);
      return;
    }
    const at = op.newAddr ?? op.addr;
    const oldEnd = at + Math.ceil(op.oldPages);
    const newEnd = at + Math.ceil(op.newPages);
    if (newEnd > oldEnd && [...k.vmas(op.pid)].some((v) => v.locked && v.start <= oldEnd && oldEnd < v.end)) this.cowCopiesMade(op.pid, oldEnd, newEnd, k);
  }

  /** The private file pages of [start, end) that the kernel now maps with a frame of their own: COW copies made by a fault that stored nothing. */
  private cowCopiesMade(pid: number, start: number, end: number, k: KernelInspect): void {
    this.presentPages(pid, start, end, k, (r) => r.backing.kind === 'private-file', (p, r, addr, pte) => {
      if (k.frame(pte.pfn)?.kind === 'anon') this.cowCopy(p, r, addr);
    });
  }

  /** `f` for each page of [start, end) in a range `want` picks that the kernel maps present now. */
  private presentPages(pid: number, start: number, end: number, k: KernelInspect, want: (r: Range) => boolean,
    f: (p: GhostProcess, r: Range, addr: number, pte: Extract<PteView, { kind: 'present' }>) => void): void {
    const p = this.procs.get(pid);
    if (p === undefined) return;
    let ptes: Map<number, PteView> | undefined;
    for (const r of p.ranges) {
      if (r.end <= start || r.start >= end || !want(r)) continue;
      ptes ??= new Map(k.ptes(pid));
      for (let addr = Math.max(start, r.start); addr < Math.min(end, r.end); addr++) {
        const pte = ptes.get(addr);
        if (pte?.kind === 'present') f(p, r, addr, pte);
      }
    }
  }

  /** A private file page COW-copied by a write fault that stored nothing: it keeps what the file holds now. */
  private cowCopy(p: GhostProcess, r: Range, addr: number): void {
    if (p.priv.has(addr) || r.backing.kind !== 'private-file') return;
    const e = this.objectRead(`f${r.backing.file}`, r.backing.pgoff + (addr - r.start));
    if (e.kind === 'value') p.priv.set(addr, e.value);
  }

  /**
   * A store by `pid` at `addr`. `special`: it came through a shared remote view's special PTE
   * (pfn: the frame it wrote; by: the viewer), which changes the page but dirties nothing.
   */
  private store(pid: number, addr: number, value: number, k: KernelInspect, views: readonly RemoteView[],
    special?: { pfn: number; by: number; at: number }): void {
    const p = this.procs.get(pid);
    const r = p?.ranges.find((x) => x.start <= addr && addr < x.end);
    if (p === undefined || r === undefined) return;
    const b = r.backing;
    if (b.kind === 'anon' || b.kind === 'private-file') {
      p.priv.set(addr, value);
      if (!this.pipeBufs.empty) this.pipeBufs.privateStore(pid, addr, value);
    } else if (b.kind === 'shared') {
      const index = b.pgoff + (addr - r.start);
      const key = `${b.obj}:${index}`;
      if (special === undefined) this.dirtied(b.obj, index);
      else if (b.obj.startsWith('f') && !this.dirty.has(key)) {
        // A clean page: the store survives only while the page stays in the cache.
        const durable = this.fragile.get(key)?.durable ?? this.objects.get(b.obj)?.get(index) ?? 0;
        this.fragile.set(key, { pfn: special.pfn, durable, value, pid: special.by, addr: special.at });
      }
      this.objectWrite(b.obj, index, value);
    } else {
      // A store through a driver mapping reaches whatever page it maps, perhaps one a pipe holds.
      if (!this.pipeBufs.empty) this.pipeBufs.unknownAll();
      // A write through a shared remote view lands in the target's page (a private view COWs),
      // the view a fork copied likewise, while the view shows the frame the target has.
      const view = views.find((v) => v.pid === pid && v.addr === addr) ?? p.views.get(addr);
      const shared = [...k.vmas(pid)].find((v) => v.start <= addr && addr < v.end)?.shared ?? false;
      if (view !== undefined && shared && showsTargetPage(k, pid, addr, view.target, view.targetAddr)) {
        const pfn = new Map(k.ptes(pid)).get(addr);
        this.store(view.target, view.targetAddr, value, k, [], { pfn: pfn?.kind === 'present' ? pfn.pfn : -1, by: pid, at: addr });
      }
    }
  }

  /**
   * vmsplice put `outcome.value` pages from `op.addr` on into its pipe (the new one's id is
   * the outcome's first value): each may hold what the process has there now, and later
   * whatever a store that can reach that page stores (properties/ghost-pipes.ts).
   */
  private vmsplice(op: Extract<Op, { op: 'vmsplice' }>, outcome: Outcome, k: KernelInspect): void {
    if (outcome.kind !== 'ok' || outcome.value <= 0) return;
    const id = op.pipe ?? outcome.values?.[0];
    if (id === undefined) return;
    const vmas = [...k.vmas(op.pid)];
    for (let addr = op.addr; addr < op.addr + outcome.value; addr++) {
      const vma = vmas.find((v) => v.start <= addr && addr < v.end);
      const p = this.procs.get(op.pid);
      const r = p?.ranges.find((x) => x.start <= addr && addr < x.end);
      const want = this.expect(op.pid, addr);
      const values = want.kind === 'value' ? [want.value] : want.kind === 'lazyfree' ? [want.value, 0] : null;
      if (p === undefined || r === undefined || vma === undefined || vma.driver !== '' || vma.pfnmap || values === null) {
        this.pipeBufs.spliced(id, null, null);
        continue;
      }
      const b = r.backing;
      const index = b.kind === 'anon' || b.kind === 'unknown' ? 0 : b.pgoff + (addr - r.start);
      if (b.kind === 'anon' || (b.kind === 'private-file' && p.priv.has(addr))) this.pipeBufs.spliced(id, values, { kind: 'private', pid: op.pid, addr, open: true });
      else if (b.kind === 'private-file') this.pipeBufs.spliced(id, values, { kind: 'object', key: `f${b.file}:${index}`, pid: op.pid, addr });
      else if (b.kind === 'shared') this.pipeBufs.spliced(id, values, { kind: 'object', key: `${b.obj}:${index}`, pid: op.pid, addr });
      else this.pipeBufs.spliced(id, null, null);
    }
  }

  /**
   * Fork leaves the parent's page at `addr` exclusive and writable: a VM_DONTCOPY or
   * VM_WIPEONFORK range (the child gets none of it), or a page a FOLL_PIN pin holds
   * (copy_present_page gives the child a copy). Whether a pin holds it, the kernel says.
   */
  private forkLeavesPage(pid: number, addr: number, k: KernelInspect): boolean {
    const r = this.procs.get(pid)?.ranges.find((x) => x.start <= addr && addr < x.end);
    if (r === undefined || r.dontfork || r.wipeonfork) return true;
    for (const [a, pte] of k.ptes(pid)) if (a === addr && pte.kind === 'present') return (k.frame(pte.pfn)?.pincount ?? 0) > 0;
    return false;
  }

  private fork(parent: number, child: number, views: readonly RemoteView[]): void {
    const p = this.procs.get(parent);
    if (p === undefined) return;
    const ranges = p.ranges.filter((r) => !r.dontfork).map((r) => ({ ...r }));
    const copied = (a: number) => ranges.some((r) => r.start <= a && a < r.end);
    // dup_mmap: a VM_WIPEONFORK range is empty in the child (it reads zeroes), and keeps the flag.
    const wiped = (a: number) => ranges.some((r) => r.wipeonfork && r.start <= a && a < r.end);
    const priv = new Map([...p.priv].filter(([a]) => copied(a) && !wiped(a)));
    // The child's copy of each view the parent has (its own, or one it inherited).
    const childViews = new Map([...p.views].filter(([a]) => copied(a)));
    for (const v of views) if (v.pid === parent && copied(v.addr)) childViews.set(v.addr, { target: v.target, targetAddr: v.targetAddr });
    this.procs.set(child, { ranges, priv, views: childViews });
    if (this.lazyPids.has(parent)) this.lazyPids.add(child);
  }

  /**
   * MADV_POPULATE_WRITE's write faults on a shared file mapping dirty each page they reach
   * (do_shared_fault → fault_dirty_shared_page), as a store would: a later store through a
   * special PTE to such a page is written back with it. The kernel says which pages it
   * reached (present and dirty now; a partial populate stops at an error).
   */
  private sharedPagesDirtied(pid: number, start: number, end: number, k: KernelInspect): void {
    if (!Number.isInteger(start)) return;
    this.presentPages(pid, start, end, k, (r) => r.backing.kind === 'shared' && r.backing.obj.startsWith('f'), (_p, r, addr, pte) => {
      if (pte.dirty && !pte.special && r.backing.kind === 'shared') this.dirtied(r.backing.obj, r.backing.pgoff + (addr - r.start));
    });
  }

  /** folio_mark_dirty of a regular-file page by a write path: what is in it now will be written back. */
  private dirtied(obj: string, index: number): void {
    if (!obj.startsWith('f')) return;
    this.dirty.add(`${obj}:${index}`);
    this.fragile.delete(`${obj}:${index}`);
  }

  /**
   * Lazily freed pages reclaim discarded (try_to_unmap_one's MADV_FREE case clears the PTE)
   * or MADV_FREE dropped from swap: no PTE is left there, and the page reads 0 from now on.
   * One the process stored to again is a plain value already (store).
   */
  private settleLazyfree(k: KernelInspect): void {
    for (const pid of [...this.lazyPids]) {
      const p = this.procs.get(pid);
      const lazy = p === undefined ? [] : [...p.priv].filter(([, v]) => v >= LAZY);
      if (lazy.length === 0) {
        this.lazyPids.delete(pid);
        continue;
      }
      const ptes = new Map(k.ptes(pid));
      for (const [addr] of lazy) if (!ptes.has(addr)) p!.priv.delete(addr);
    }
  }

  /**
   * After a step: pageout of the regular-file pages it wrote back, and the fragile stores
   * whose page left the page cache (lost: the next read finds the backing store's value).
   */
  private settle(op: Op, k: KernelInspect): void {
    if (this.lazyPids.size > 0) this.settleLazyfree(k);
    if (this.dirty.size === 0 && this.fragile.size === 0) {
      this.mappedDirty.clear();
      return;
    }
    // (No closures here: tsx's keepNames makes each one an Object.defineProperty per step.)
    const cached = new Map<number, Map<number, number>>();
    const reclaim = op.op === 'reclaim' || (op.op === 'madvise' && op.advice === 'PAGEOUT');
    const before = this.mappedDirty;
    this.mappedDirty = new Map();
    for (const key of [...this.dirty]) {
      const [obj, index] = key.split(':');
      const pfn = pagecacheOf(cached, k, Number(obj.slice(1))).get(Number(index));
      if (pfn === undefined) {
        this.dirty.delete(key);
        continue;
      }
      const frame = k.frame(pfn);
      const mapped = (frame?.mapcount ?? 0) > 0;
      // A reclaim unmapped it from every process while a reference kept it in the cache, or
      // found it mapped by none (only special PTEs, or nothing) and left it clean: pageout
      // wrote it back, and __remove_mapping failed on the extra reference.
      if (reclaim && !mapped && (before.get(key) === pfn || frame?.dirty === false)) this.dirty.delete(key);
      else if (mapped) this.mappedDirty.set(key, pfn);
    }
    for (const [key, f] of [...this.fragile]) {
      const [obj, i] = key.split(':');
      const file = Number(obj.slice(1));
      const index = Number(i);
      if (pagecacheOf(cached, k, file).get(index) === f.pfn) continue;
      this.fragile.delete(key);
      if (index >= (this.fileSize.get(file) ?? 0)) continue; // truncated: gone anyway
      // The page still holds the stored value (no later store changed it) and that differs
      // from what the backing store has: the next read sees the difference.
      if (this.objects.get(obj)?.get(index) !== f.value || f.value === f.durable) continue;
      this.objectWrite(obj, index, f.durable);
      this.lost.push({ file, index, value: f.value, durable: f.durable, pid: f.pid, addr: f.addr });
    }
  }

  private truncate(file: number, sizePages: number): void {
    this.fileSize.set(file, sizePages);
    const contents = this.objects.get(`f${file}`);
    for (const index of [...(contents?.keys() ?? [])]) if (index >= sizePages) contents!.delete(index);
    // unmap_mapping_range(even_cows): private copies past the end go too.
    for (const p of this.procs.values()) {
      for (const r of p.ranges) {
        if (r.backing.kind !== 'private-file' || r.backing.file !== file) continue;
        for (const addr of [...p.priv.keys()]) {
          if (addr >= r.start && addr < r.end && r.backing.pgoff + (addr - r.start) >= sizePages) p.priv.delete(addr);
        }
      }
    }
  }
}

/** `file`'s page cache (index → pfn), read from the kernel once per settle (`cached`). */
function pagecacheOf(cached: Map<number, Map<number, number>>, k: KernelInspect, file: number): Map<number, number> {
  let m = cached.get(file);
  if (m === undefined) cached.set(file, (m = new Map(k.pagecache(file))));
  return m;
}

/** Whether `pid`'s page at `addr` maps the frame `target` has at `targetAddr` (mapped, or held in the swap or page cache). */
function showsTargetPage(k: KernelInspect, pid: number, addr: number, target: number, targetAddr: number): boolean {
  let shown = -1;
  for (const [a, pte] of k.ptes(pid)) if (a === addr && pte.kind === 'present') shown = pte.pfn;
  if (shown === -1 || shown === k.zeroPfn) return false;
  const now = residency(k, target, targetAddr);
  return (now.kind === 'present' || now.kind === 'cached') && now.pfn === shown;
}

function shiftBacking(b: Backing, by: number): Backing {
  return b.kind === 'shared' || b.kind === 'private-file' ? { ...b, pgoff: b.pgoff + by } : b;
}

function insertRange(p: GhostProcess, r: Range): void {
  cutRanges(p, r.start, r.end);
  p.ranges.push(r);
  p.ranges.sort((a, b) => a.start - b.start);
}

function splitAt(p: GhostProcess, addr: number): void {
  const at = p.ranges.findIndex((r) => r.start < addr && addr < r.end);
  if (at === -1) return;
  const r = p.ranges[at];
  const upper: Range = { ...r, start: addr, backing: shiftBacking(r.backing, addr - r.start) };
  p.ranges.splice(at, 1, { ...r, end: addr }, upper);
}

function cutRanges(p: GhostProcess, start: number, end: number): void {
  splitAt(p, start);
  splitAt(p, end);
  p.ranges = p.ranges.filter((r) => r.end <= start || r.start >= end);
}

function growInPlace(p: GhostProcess, addr: number, oldPages: number, newPages: number): void {
  const last = p.ranges.find((r) => r.start <= addr + oldPages - 1 && addr + oldPages - 1 < r.end);
  if (last === undefined) return;
  insertRange(p, { ...last, start: addr + oldPages, end: addr + newPages, backing: shiftBacking(last.backing, addr + oldPages - last.start) });
}
