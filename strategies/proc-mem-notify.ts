/**
 * A worked example of a new strategy (README, "Validating a new strategy"): seed 000's
 * mmap of /proc/<pid>/mem redone so that the view stays coherent. Nothing is pinned at
 * mmap time: the VMA is filled at fault time (get_user_pages_remote, then vmf_insert_pfn
 * and put_page, under mmu_interval_read_begin/_retry), and an mmu_interval_notifier on the
 * target range zaps the view whenever the target's PTEs change. The VMA cannot be split
 * (may_split), is not copied at fork (VM_DONTCOPY), is shared only (a private view would
 * need COW of a PFN map), and counts its VMAs so that mremap's open/close pair keeps the
 * context alive. The view is read-only (PROT_WRITE refused, VM_MAYWRITE cleared): a
 * writable one would have to take the target page for write at fault time, and that
 * breaks copy-on-write in the target as a side effect of a remote read — the fuzzer found
 * exactly that in the first version of this file (README, "Validating a new strategy").
 */
import type {
  DriverFile, DriverKernel, DriverVma, FaultResult, FileOperations, MmHandle, MmuIntervalNotifier, RemoteView,
  StrategyInstance, VmOperations,
} from '../kernel-api/driver.ts';
import { PROT_WRITE } from '../kernel-api/op.ts';
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { StrategyDefinition } from '../kernel-api/strategy.ts';
import { forkedPagePrelude, intArg } from './args.ts';

const NAME = 'proc-mem-notify';
/** Bound on the fault handler's retry when an invalidation races with it. */
const FAULT_RETRIES_MAX = 4;

/** The open file: the target mm, taken at open as mem_open does. */
type FileCtx = { readonly target: number; readonly mm: MmHandle };

/** One mapping of the file, shared by the VMAs an mremap makes of it. */
type ViewCtx = {
  readonly slab: number;
  readonly file: FileCtx;
  /** The target range [start, start + pages): the mmap's pgoff and length. */
  readonly start: number;
  readonly pages: number;
  readonly notifier: MmuIntervalNotifier;
  /** The live VMAs showing this view (one, or two for a moment during mremap). */
  readonly vmas: Set<DriverVma>;
  /** Set while the invalidate callback zaps, so a view inside its own target range does not recurse. */
  invalidating: boolean;
};

class ProcMemNotify implements StrategyInstance {
  private readonly views = new Set<ViewCtx>();

  private readonly vmOps: VmOperations = {
    name: NAME,
    open: (vma) => (vma.privateData as ViewCtx).vmas.add(vma),
    close: (vma) => this.close(vma),
    fault: (vma, addr, pgoff) => this.fault(vma, addr, pgoff),
    may_split: () => 'EINVAL',
  };

  private readonly fops: FileOperations = {
    name: NAME,
    mmap: (file, vma) => this.mmap(file, vma),
    release: (file) => this.k.mmput((file.privateData as FileCtx).mm),
  };

  constructor(private readonly k: DriverKernel) {}

  call(call: string, args: Record<string, number | boolean | string>): Outcome {
    if (call !== 'open') return err('ENOTTY');
    const pid = intArg(args, 'pid');
    const target = intArg(args, 'target');
    if (pid === null || target === null) return err('EINVAL');
    if (!this.k.taskAlive(target)) return err('ESRCH');
    if (!this.k.ptrace_may_access(pid, target, 'attach')) return err('EACCES');
    const mm = this.k.get_task_mm(target);
    if (mm === null) return err('ESRCH');
    const fd = this.k.anon_inode_getfd(pid, this.fops, { target, mm } satisfies FileCtx);
    if (typeof fd === 'string') this.k.mmput(mm);
    return typeof fd === 'string' ? err(fd) : ok(fd);
  }

  private mmap(file: DriverFile, vma: DriverVma): Errno | 0 {
    if (!vma.shared) return 'EINVAL';
    if ((vma.prot & PROT_WRITE) !== 0) return 'EACCES';
    const fctx = file.privateData as FileCtx;
    if (this.k.mm_reaped(fctx.mm)) return 'ESRCH';
    const slab = this.k.kmalloc('view_ctx');
    if (slab === null) return 'ENOMEM';
    const pages = vma.end - vma.start;
    let view: ViewCtx | undefined;
    const notifier = this.k.mmu_interval_notifier_insert(fctx.mm, vma.pgoff, pages, {
      invalidate: (_n, range) => this.invalidate(view!, range.start, range.end),
    });
    if (typeof notifier === 'string') {
      this.k.kfree(slab);
      return notifier;
    }
    view = { slab, file: fctx, start: vma.pgoff, pages, notifier, vmas: new Set([vma]), invalidating: false };
    this.views.add(view);
    vma.pfnmap = vma.io = vma.dontexpand = vma.dontcopy = true;
    vma.mayWrite = false;
    vma.vmOps = this.vmOps;
    vma.privateData = view;
    return 0;
  }

  private close(vma: DriverVma): void {
    const view = vma.privateData as ViewCtx;
    view.vmas.delete(vma);
    if (view.vmas.size > 0) return;
    this.k.mmu_interval_notifier_remove(view.notifier);
    this.k.kfree(view.slab);
    this.views.delete(view);
  }

  /** The target's [start, end) changes: zap what every VMA of the view shows of it. */
  private invalidate(view: ViewCtx, start: number, end: number): boolean {
    if (view.invalidating) return true;
    view.invalidating = true;
    try {
      for (const vma of view.vmas) {
        const from = Math.max(start, vma.pgoff);
        const to = Math.min(end, vma.pgoff + (vma.end - vma.start));
        if (from < to) this.k.zap_vma_ptes(vma, vma.start + (from - vma.pgoff), to - from);
      }
    } finally {
      view.invalidating = false;
    }
    return true;
  }

  private fault(vma: DriverVma, addr: number, pgoff: number): FaultResult {
    const view = vma.privateData as ViewCtx;
    if (this.k.mm_reaped(view.file.mm)) return { kind: 'sigbus' };
    // A read of the target, as the view is read-only: the zero page for an untouched page.
    const gupFlags = 0;
    for (let attempt = 0; attempt < FAULT_RETRIES_MAX; attempt++) {
      const seq = this.k.mmu_interval_read_begin(view.notifier);
      const pfn = this.k.get_user_pages_remote(view.file.mm, pgoff, gupFlags);
      if (typeof pfn === 'string') return pfn === 'ENOMEM' ? { kind: 'oom' } : { kind: 'sigbus' };
      if (this.k.mmu_interval_read_retry(view.notifier, seq)) {
        this.k.put_page(pfn);
        continue;
      }
      const r = this.k.vmf_insert_pfn(vma, addr, pfn);
      this.k.put_page(pfn);
      return r;
    }
    return { kind: 'sigbus' };
  }

  holds() {
    return [];
  }

  *remoteViews(): Iterable<RemoteView> {
    for (const view of this.views) {
      for (const vma of view.vmas) {
        for (let addr = vma.start; addr < vma.end; addr++) {
          yield { pid: vma.mm, addr, target: view.file.target, targetAddr: vma.pgoff + (addr - vma.start), onMissing: 'sigbus' };
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
