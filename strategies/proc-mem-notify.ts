/**
 * A worked example of a new strategy (README, "Validating a new strategy"): seed 000's
 * mmap of /proc/<pid>/mem redone so that the view stays coherent. Nothing is pinned at
 * mmap time: the VMA is filled at fault time (get_user_pages_remote, then vmf_insert_pfn
 * and put_page, under mmu_interval_read_begin/_retry), and an mmu_interval_notifier on the
 * target zaps the view whenever the target's PTEs change. The VMA cannot be split
 * (may_split), is not copied at fork (VM_DONTCOPY), is shared only (a private view would
 * need COW of a PFN map), and its VMAs are counted so that mremap's open/close pair keeps
 * the context alive. The view is read-only (PROT_WRITE refused, VM_MAYWRITE cleared): a
 * writable one would have to take the target page for write at fault time, and that
 * breaks copy-on-write in the target as a side effect of a remote read — the fuzzer found
 * exactly that in the first version of this file (README, "Validating a new strategy").
 *
 * Locking, designed to be lockdep-clean under every interleaving:
 * - The notifier is inserted when the file is opened, over the whole address space (the
 *   ranges are not known yet), with no lock held. Inserting it in ->mmap would take the
 *   target's mmap_lock for write (mmu_notifier_register) under the caller's, held for
 *   write by the mmap path: a self-deadlock for /proc/self/mem, mmap_lock nested in
 *   itself otherwise.
 * - One mutex per view (the open file), `proc-mem-notify:view->lock`, guards the view's
 *   VMAs and its prefetched pages and orders mmu_interval_read_retry + the PTE install
 *   against the notifier, which takes it before it zaps. It is only ever taken innermost
 *   but for the PTL: under the mmap_lock (->mmap, ->open, ->close, ->fault; the target's
 *   in the fault's first call) and under whatever an invalidation holds (the target's
 *   mmap_lock, the rmap locks).
 * - GUP needs the target's mmap_lock. The fault holds its own mm's for read, and taking a
 *   second mm's under it nests the class in itself (an ABBA with queued writers), so the
 *   fault drops its own first, which a handler may do only with FAULT_FLAG_ALLOW_RETRY and
 *   only to return VM_FAULT_RETRY (the VMA may be gone once it is dropped). So a fault is
 *   two calls: the first reads the sequence, drops the mmap_lock, pins the file's view
 *   (a reference, as filemap's maybe_unlock_mmap_for_io takes one on the file), takes the
 *   page under the target's mmap_lock, keeps it (with the sequence) for the faulting task
 *   and returns retry; the retry (mmap_lock held again, the VMA looked up again by the
 *   kernel) installs that page under the view lock if no invalidation began since, else
 *   goes round again.
 * - The notifier zaps under the view lock; a zap calls the viewer mm's notifiers, and one
 *   of ours called from inside our own zap (the same task) returns at once: its range lies
 *   in the PFN-map VMA being zapped, whose pages no view shows (GUP refuses VM_IO |
 *   VM_PFNMAP), so it has nothing to do, and taking a second view lock there would nest
 *   the class. In the OOM reaper's non-blockable range the view lock is only tried, and a
 *   range a VMA of the view shows is refused (false: the reaper leaves it to the exit):
 *   zap_vma_ptes tells the viewer mm's notifiers blockably, which may sleep.
 */
import type {
  DriverFile, DriverKernel, DriverVma, FaultFlags, FaultResult, FileOperations, MmHandle, MmuIntervalNotifier,
  MmuNotifierRange, RemoteView, StrategyInstance, VmOperations,
} from '../kernel-api/driver.ts';
import type { LockRef } from '../kernel-api/locks.ts';
import { PROT_WRITE } from '../kernel-api/op.ts';
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { Tid } from '../kernel-api/sched.ts';
import type { DriverHold } from '../kernel-api/state.ts';
import type { StrategyDefinition } from '../kernel-api/strategy.ts';
import { forkedPagePrelude, intArg } from './args.ts';

const NAME = 'proc-mem-notify';
/** The notifier covers the whole address space (ULONG_MAX bytes: 2^52 pages). */
const WHOLE_MM_PAGES = 2 ** 52;

/** A page the first call of a fault took, for its retry: GUP's result and the sequence read before it. */
type Prefetch = { readonly pgoff: number; readonly seq: number; readonly page: number | Errno };

/** The open file: the view of one target, shared by every VMA that maps it. */
type MemView = {
  readonly slab: number;
  readonly target: number;
  readonly mm: MmHandle;
  readonly notifier: MmuIntervalNotifier;
  /** `proc-mem-notify:view->lock`. */
  readonly lock: LockRef;
  /** The live VMAs mapping this file; under `lock`. */
  readonly vmas: Set<DriverVma>;
  /** Per faulting task, the page its fault's first call took; under `lock`. */
  readonly pending: Map<Tid, Prefetch>;
  /**
   * `proc-mem-notify:view->ref_lock`, a spinlock: it guards `refs` alone, and is taken
   * innermost, so a get or put may run anywhere (a fault under the mmap_lock, ->release
   * with nothing held). What the last put frees may sleep and is done after it is dropped.
   */
  readonly refLock: LockRef;
  /** References: the file's, and one per fault between dropping and retaking the mmap_lock; under `refLock`. */
  refs: number;
};

/** The knobs a test may turn to show what each check is for; never set by the harness. */
export type ProcMemNotifyOptions = {
  /** Skip mmu_interval_read_retry before the install (a broken variant: stale PTEs). */
  readonly skipReadRetry?: boolean;
  /** Free the view with `ref_lock` still held (a broken variant: mmu_interval_notifier_remove sleeps under a spinlock). */
  readonly freeUnderRefLock?: boolean;
};

export class ProcMemNotify implements StrategyInstance {
  private readonly views = new Set<MemView>();
  /** Tasks inside one of our notifier's zaps (see the header): a nested callback of theirs has nothing to do. */
  private readonly zapping = new Set<Tid>();

  private readonly vmOps: VmOperations = {
    name: NAME,
    open: (vma) => this.vmOpen(vma),
    close: (vma) => this.vmClose(vma),
    fault: (vma, addr, pgoff, _write, flags) => this.fault(vma, addr, pgoff, flags),
    may_split: () => 'EINVAL',
  };

  private readonly fops: FileOperations = {
    name: NAME,
    mmap: (file, vma) => this.mmap(file, vma),
    release: (file) => this.viewPut(file.privateData as MemView),
  };

  constructor(private readonly k: DriverKernel, private readonly opts: ProcMemNotifyOptions = {}) {}

  /** open("/proc/<target>/mem"): the access check, the mm, the view and its notifier, then the fd. No lock is held. */
  call(call: string, args: Record<string, number | boolean | string>): Outcome {
    if (call !== 'open') return err('ENOTTY');
    const pid = intArg(args, 'pid');
    const target = intArg(args, 'target');
    if (pid === null || target === null) return err('EINVAL');
    if (!this.k.taskAlive(target)) return err('ESRCH');
    if (!this.k.ptrace_may_access(pid, target, 'attach')) return err('EACCES');
    const mm = this.k.get_task_mm(target);
    if (mm === null) return err('ESRCH');
    // The notifier first: the call that may wait (for the target's mmap_lock, for write),
    // before this open allocates anything. Until the view exists, an invalidation finds
    // nothing of it mapped.
    let view: MemView | undefined;
    const notifier = this.k.mmu_interval_notifier_insert(mm, 0, WHOLE_MM_PAGES, {
      invalidate: (_n, range) => (view === undefined ? true : this.invalidate(view, range)),
    });
    if (typeof notifier === 'string') {
      this.k.mmput(mm);
      return err(notifier);
    }
    const slab = this.k.kmalloc('mem_view', 'GFP_KERNEL');
    if (slab === null) {
      this.k.mmu_interval_notifier_remove(notifier);
      this.k.mmput(mm);
      return err('ENOMEM');
    }
    view = {
      slab, target, mm, notifier, lock: this.k.mutex_init(`${NAME}:view->lock`),
      refLock: this.k.spin_lock_init(`${NAME}:view->ref_lock`), vmas: new Set(), pending: new Map(), refs: 1,
    };
    this.views.add(view);
    const fd = this.k.anon_inode_getfd(pid, this.fops, view);
    if (typeof fd === 'string') {
      this.viewPut(view);
      return err(fd);
    }
    return ok(fd);
  }

  /** Drop a reference; the last one frees the view: its kept pages, the notifier, the mm. No lock is held. */
  private viewPut(view: MemView): void {
    this.k.spin_lock(view.refLock);
    const last = --view.refs === 0;
    if (!last || this.opts.freeUnderRefLock !== true) this.k.spin_unlock(view.refLock);
    if (!last) return;
    // No one else can reach the view now. First the call that may wait (for an
    // invalidation in progress), then the changes.
    this.k.mmu_interval_notifier_remove(view.notifier);
    for (const p of view.pending.values()) if (typeof p.page === 'number') this.k.put_page(p.page);
    view.pending.clear();
    this.k.kfree(view.slab);
    this.k.mmput(view.mm);
    this.views.delete(view);
    if (this.opts.freeUnderRefLock === true) this.k.spin_unlock(view.refLock);
  }

  /** ->mmap, with the caller's mmap_lock held for write. */
  private mmap(file: DriverFile, vma: DriverVma): Errno | 0 {
    if (!vma.shared) return 'EINVAL';
    if ((vma.prot & PROT_WRITE) !== 0) return 'EACCES';
    const view = file.privateData as MemView;
    if (this.k.mm_reaped(view.mm)) return 'ESRCH';
    this.k.mutex_lock(view.lock);
    view.vmas.add(vma);
    this.k.mutex_unlock(view.lock);
    vma.pfnmap = vma.io = vma.dontexpand = vma.dontcopy = true;
    vma.mayWrite = false;
    vma.vmOps = this.vmOps;
    vma.privateData = view;
    return 0;
  }

  /** ->open (mremap's copy), under the mmap_lock for write. */
  private vmOpen(vma: DriverVma): void {
    const view = vma.privateData as MemView;
    this.k.mutex_lock(view.lock);
    view.vmas.add(vma);
    this.k.mutex_unlock(view.lock);
  }

  /** ->close, under the mmap_lock for write; the VMA's file reference (the view's) goes after it. */
  private vmClose(vma: DriverVma): void {
    const view = vma.privateData as MemView;
    this.k.mutex_lock(view.lock);
    view.vmas.delete(vma);
    this.k.mutex_unlock(view.lock);
  }

  /** The target's [start, end) changes: zap what every VMA of the view shows of it. */
  private invalidate(view: MemView, range: MmuNotifierRange): boolean {
    const tid = this.k.current();
    if (this.zapping.has(tid)) return true;
    if (!range.blockable) {
      if (!this.k.mutex_trylock(view.lock)) return false;
      const shown = [...view.vmas].some((vma) => this.window(vma, range.start, range.end) !== null);
      this.k.mutex_unlock(view.lock);
      return !shown;
    }
    this.k.mutex_lock(view.lock);
    this.zapping.add(tid);
    for (const vma of [...view.vmas]) {
      const w = this.window(vma, range.start, range.end);
      if (w !== null) this.k.zap_vma_ptes(vma, w.addr, w.pages);
    }
    this.zapping.delete(tid);
    this.k.mutex_unlock(view.lock);
    return true;
  }

  /** The pages of `vma` that show target pages [start, end), or null. */
  private window(vma: DriverVma, start: number, end: number): { addr: number; pages: number } | null {
    const from = Math.max(start, vma.pgoff);
    const to = Math.min(end, vma.pgoff + (vma.end - vma.start));
    return from < to ? { addr: vma.start + (from - vma.pgoff), pages: to - from } : null;
  }

  /**
   * ->fault, with the faulting mm's mmap_lock held for read. The retry of a fault finds the
   * page its first call kept and installs it if no invalidation began since; otherwise
   * (and on the first call) it reads the sequence, drops the mmap_lock, takes the page under
   * the target's and returns VM_FAULT_RETRY (see the header).
   */
  private fault(vma: DriverVma, addr: number, pgoff: number, flags: FaultFlags): FaultResult {
    const view = vma.privateData as MemView;
    if (this.k.mm_reaped(view.mm)) return { kind: 'sigbus' };
    const tid = this.k.current();
    this.k.mutex_lock(view.lock);
    const kept = view.pending.get(tid);
    view.pending.delete(tid);
    if (kept !== undefined && kept.pgoff === pgoff && (this.opts.skipReadRetry === true || !this.k.mmu_interval_read_retry(view.notifier, kept.seq))) {
      // Nothing in the target changed since the page was looked up: it is still the one there.
      const r: FaultResult = typeof kept.page === 'number'
        ? this.k.vmf_insert_pfn(vma, addr, kept.page)
        : kept.page === 'ENOMEM' ? { kind: 'oom' } : { kind: 'sigbus' };
      this.k.mutex_unlock(view.lock);
      if (typeof kept.page === 'number') this.k.put_page(kept.page);
      return r;
    }
    this.k.mutex_unlock(view.lock);
    if (kept !== undefined && typeof kept.page === 'number') this.k.put_page(kept.page);
    // Without FAULT_FLAG_ALLOW_RETRY the mmap_lock may not be dropped, and under it the
    // target's may not be taken. (Not reached: GUP refuses this VM_IO | VM_PFNMAP VMA
    // before it faults, so every fault here is a user fault.)
    if (!flags.allowRetry) return { kind: 'sigbus' };
    const seq = this.k.mmu_interval_read_begin(view.notifier);
    this.k.spin_lock(view.refLock);
    view.refs += 1;
    this.k.spin_unlock(view.refLock);
    this.k.mmap_read_unlock(this.k.current_mm());
    // The mmap_lock is dropped: neither `vma` nor `addr`'s mapping may be used from here on.
    this.k.mmap_read_lock(view.mm);
    // A read of the target, as the view is read-only: the zero page for an untouched page.
    const page = this.k.get_user_pages_remote(view.mm, pgoff, 0);
    // Kept under the view lock, taken inside the target's mmap_lock (the order the
    // notifier's callers take them in).
    this.k.mutex_lock(view.lock);
    view.pending.set(tid, { pgoff, seq, page });
    this.k.mutex_unlock(view.lock);
    this.k.mmap_read_unlock(view.mm);
    this.viewPut(view);
    return { kind: 'retry' };
  }

  /** The pages kept between a fault's two calls (each holds GUP's reference). */
  *holds(): Iterable<DriverHold> {
    for (const view of [...this.views].sort((a, b) => a.slab - b.slab)) {
      for (const [tid, p] of [...view.pending].sort((a, b) => a[0] - b[0])) {
        if (typeof p.page !== 'number' || p.page === this.k.zeroPfn) continue;
        yield { pfn: p.page, holder: `${NAME} view#${view.slab} fault of task ${tid}`, pins: 0, refs: 1 };
      }
    }
  }

  *remoteViews(): Iterable<RemoteView> {
    for (const view of this.views) {
      for (const vma of view.vmas) {
        for (let addr = vma.start; addr < vma.end; addr++) {
          yield { pid: vma.mm, addr, target: view.target, targetAddr: vma.pgoff + (addr - vma.start), onMissing: 'sigbus' };
        }
      }
    }
  }
}

export const procMemNotify: StrategyDefinition = {
  name: NAME,
  seed: 'new',
  title: 'mmap of /proc/<pid>/mem filled at fault time and zapped by an MMU interval notifier (a fixed seed 000)',
  promises: [
    'remote-coherence', 'no-stale-pte', 'refcount-balance', 'mapcount', 'no-leak', 'access-control', 'slab',
    'zero-page', 'cow-isolation', 'exclusive-anon', 'file-integrity', 'kernel-assert',
  ],
  calls: [{
    name: 'open', weight: 3, returns: 'fd',
    // As /proc/<pid>/mem's open: PTRACE_MODE_ATTACH, EACCES.
    access: { mode: 'attach', target: 'target', denied: 'EACCES', deniedOnlyByAccess: true },
    args(ctx, c) {
      if (ctx.pids().length === 0) return null;
      return ctx.attachPair(c);
    },
  }],
  // Mostly what the design accepts — shared and read-only — now and then what it refuses.
  mmapArgs(ctx, c, pid, _driver, fd) {
    // The target's own addresses (the fd remembers whose mem file it is), three times in
    // four a page it has in memory: a view over nothing faults SIGBUS and shows no page a
    // notifier could have to zap.
    const target = Number(ctx.fdOrigin(pid, fd)?.target ?? ctx.pid(c));
    const pgoff = c.int(4) !== 3 ? ctx.residentAddr(target, c) : ctx.addr(target, c);
    return { pgoff, lengthPages: c.pick([1, 1, 2, 3, 4]), prot: c.pick([1, 1, 1, 3]), shared: c.int(8) !== 7 };
  },
  // P1 writes a private page and forks P2 (the page now COW-shared), opens /proc/2/mem, maps
  // a view of P2's two pages and reads through it: the view shows P2's page.
  prelude(config) {
    const { ops, page, view } = forkedPagePrelude(config);
    return [
      ...ops,
      { op: 'drv', strategy: NAME, call: 'open', args: { pid: 1, target: 2 } },
      { op: 'mmap', pid: 1, addr: view, lengthPages: 2, prot: 1, shared: true, fd: 3, pgoff: page, fixed: true },
      { op: 'read', pid: 1, addr: view },
    ];
  },
  create: (k: DriverKernel) => new ProcMemNotify(k),
};
