/**
 * Seed 001: Bitdefender's remote mapping (mm/remote_mapping.c of the "Remote mapping" RFC,
 * 2020) with its pidfd_mem() front end. pidfd_mem returns a control fd (PIDFD_MEM_MAP /
 * _UNMAP / _LOCK) and an access fd; a view maps offsets [offset, offset+size) of the access
 * fd to addresses [address, address+size) of the target, watched by an
 * mmu_interval_notifier. An mmap of the access fd is a mirror VMA: its fault handler looks
 * the target page up with get_user_pages_remote, installs a PTE that holds no reference and
 * drops the GUP reference; the notifier zaps mirror PTEs when the target's change. Faults
 * give SIGBUS on holes, on views removed by UNMAP and once the target is reaped. The legacy
 * /dev/mirror-proc REMOTE_PROC_MAP interface (one view over the whole address space) is the
 * `remote_proc_map` call.
 *
 * The seed gives the API and the promises; the details below follow the posted patch (the
 * RESEND of 2020-09-04, mm/remote_mapping.c), and each place the seed leaves open says which
 * choice was taken. Its locks are the patch's: fctx->views_lock (a mutex) around the view
 * tree, view->rmap_lock around the mirror VMAs of a view, view->user_lock around the
 * sequence check and the PTE install, fctx->fault_srcu around a fault; mirror_vm_fault drops
 * the faulting mm's mmap_lock to take the target's, as written. Where the driver API has no
 * equivalent: user_lock is a mutex, not the patch's spinlock (remote_map_page avoids page-
 * table allocation to run under a spinlock; vmf_insert_pfn here may allocate, i.e. sleep,
 * and the patch's own comment says "user_lock can be a mutex if allocation is needed");
 * fault_srcu is the driver API's srcu_struct, whose synchronize_srcu in PIDFD_MEM_UNMAP
 * waits for the faults in progress. Not emulated: THP (the PMD fault
 * path), PIDFD_MEM_REMAP, FAULT_FLAG_RETRY_NOWAIT and FAULT_FLAG_KILLABLE, read/write of
 * the access fd (the patch does not support them either).
 */
import type {
  DriverFile, DriverKernel, DriverVma, FaultResult, FileOperations, MmHandle, MmuIntervalNotifier,
  MmuIntervalNotifierOps, RemoteView, StrategyInstance, VmOperations,
} from '../kernel-api/driver.ts';
import type { FaultFlags, MmuNotifierRange } from '../kernel-api/driver.ts';
import { FOLL_FORCE, FOLL_GET, FOLL_WRITE } from '../kernel-api/driver.ts';
import type { LockRef } from '../kernel-api/locks.ts';
import { PROT_WRITE } from '../kernel-api/op.ts';
import type { Op } from '../kernel-api/op.ts';
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { DriverHold } from '../kernel-api/state.ts';
import type { Choice, DriverArgs, GenContext, StrategyDefinition } from '../kernel-api/strategy.ts';
import { DriverBug, forkedPagePrelude, intArg } from './args.ts';

const NAME = 'pidfd-mem';

/** The legacy identity view spans ULONG_MAX bytes: 2^52 pages. */
const IDENTITY_VIEW_PAGES = 2 ** 52;
/** Bound on mirror_vm_fault's `goto fault_retry` loop; the C has none (a livelock). */
const FAULT_RETRIES_MAX = 4;

/** struct remote_file_context, shared by the control fd and the access fd. */
type FileContext = {
  readonly slab: number;
  refcount: number;
  mm: MmHandle | null;
  locked: boolean;
  /** rb_view, kept sorted by offset; under views_lock. */
  views: MirrorView[];
  /** struct mutex views_lock. */
  readonly viewsLock: LockRef;
  /** struct srcu_struct fault_srcu: mirror_vm_fault's read side, PIDFD_MEM_UNMAP's synchronize_srcu. */
  readonly faultSrcu: LockRef;
};

/** struct remote_view. Offsets and addresses in pages. */
type MirrorView = {
  readonly slab: number;
  refcount: number;
  readonly address: number;
  readonly size: number;
  readonly offset: number;
  valid: boolean;
  mmin: MmuIntervalNotifier | null;
  /** rb_rmap: the mirror VMAs linked to this view; under rmap_lock. */
  readonly rmap: VmaContext[];
  /** struct rw_semaphore rmap_lock. */
  readonly rmapLock: LockRef;
  /** spinlock_t user_lock (a mutex here: vmf_insert_pfn may sleep; see the header). */
  readonly userLock: LockRef;
  /** Set by view_put's kfree: a fault that still uses the view after it is a use-after-free. */
  freed: boolean;
};

/** struct remote_vma_context. `fctx` is vma->vm_file->private_data, kept here for the fault path. */
type VmaContext = { readonly slab: number; readonly vma: DriverVma; readonly view: MirrorView; readonly fctx: FileContext };

class PidfdMem implements StrategyInstance {
  /** Live remote_vma_contexts (between mirror_dev_mmap and mirror_vm_close), for remoteViews(). */
  private readonly contexts = new Set<VmaContext>();

  /**
   * No ->open and no ->pfn_mkwrite, as posted; and mirror_dev_mmap leaves VM_MAYWRITE (the
   * access fd is O_RDWR). So a read-only mirror mprotect'ed writable takes a write fault on
   * its special PTE to wp_pfn_shared, which makes the PTE writable in place: the write
   * lands in the target's page even when the target shares it copy-on-write with its
   * parent, which then reads it (corpus/pidfd-mem/cow-isolation-*).
   */
  private readonly mirrorVmOps: VmOperations = {
    name: NAME,
    close: (vma) => this.mirrorVmClose(vma),
    fault: (vma, addr, pgoff, _write, flags) => this.mirrorVmFault(vma, addr, pgoff, flags),
    may_split: () => 'EINVAL', // mirror_vm_split: "prevent partial unmap of destination VMA"
  };

  /** pidfd_mem_ctrl_ops: ioctls only. */
  private readonly ctrlFops: FileOperations = { name: `${NAME}.ctrl`, release: (f) => this.fctxRelease(f) };
  /** pidfd_mem_map_fops: the access fd. */
  private readonly mapFops: FileOperations = {
    name: `${NAME}.map`, mmap: (f, vma) => this.mirrorDevMmap(f, vma), release: (f) => this.fctxRelease(f),
  };
  /** mirror_ops of the legacy /dev/mirror-proc device. */
  private readonly mirrorFops: FileOperations = {
    name: `${NAME}.mirror-proc`, mmap: (f, vma) => this.mirrorDevMmap(f, vma), release: (f) => this.fctxRelease(f),
  };

  constructor(private readonly k: DriverKernel) {}

  call(call: string, args: DriverArgs): Outcome {
    const pid = intArg(args, 'pid');
    if (pid === null) return err('EINVAL');
    if (!this.k.taskAlive(pid)) return err('ESRCH');
    switch (call) {
      case 'pidfd_mem': return this.pidfdMem(pid, intArg(args, 'target'));
      case 'remote_proc_map': return this.remoteProcMap(pid, intArg(args, 'target'));
      case 'map':
      case 'unmap':
      case 'lock': return this.ctrlIoctl(pid, call, args);
      default: return err('ENOTTY');
    }
  }

  // ---- file contexts and views ---------------------------------------------------------

  private fctxPut(fctx: FileContext): void {
    if (fctx.refcount <= 0) throw new DriverBug(`${NAME}: refcount_t underflow; use-after-free of remote_file_context#${fctx.slab}`, 'slab');
    fctx.refcount -= 1;
    if (fctx.refcount > 0) return;
    for (const view of fctx.views) this.viewPut(view); // rbtree_postorder_for_each_entry_safe
    fctx.views = [];
    if (fctx.mm) this.k.mmput(fctx.mm); // mmdrop
    this.k.kfree(fctx.slab);
  }

  /** mirror_dev_release / pidfd_mem_ctrl_release. The VFS skips ->release when ->open failed. */
  private fctxRelease(file: DriverFile): void {
    const fctx = file.privateData as FileContext | null;
    if (fctx !== null) this.fctxPut(fctx);
  }

  /** remote_file_context_alloc: kzalloc, then remote_file_context_init (refcount 1, views_lock, fault_srcu). */
  private fctxAlloc(): FileContext | null {
    const slab = this.k.kmalloc('remote_file_context');
    if (slab === null) return null;
    return {
      slab, refcount: 1, mm: null, locked: false, views: [],
      viewsLock: this.k.mutex_init(`${NAME}:views_lock`),
      faultSrcu: this.k.init_srcu_struct(`${NAME}:fault_srcu`),
    };
  }

  /** view_alloc: a view with one reference and its interval notifier on the target. */
  private viewAlloc(mm: MmHandle, address: number, size: number, offset: number): MirrorView | Errno {
    const slab = this.k.kmalloc('remote_view');
    if (slab === null) return 'ENOMEM';
    const view: MirrorView = {
      slab, refcount: 1, address, size, offset, valid: true, mmin: null, rmap: [],
      rmapLock: this.k.init_rwsem(`${NAME}:rmap_lock`), userLock: this.k.mutex_init(`${NAME}:user_lock`), freed: false,
    };
    const ops: MmuIntervalNotifierOps = { invalidate: (_n, range) => this.mminInvalidate(view, range) };
    const mmin = this.k.mmu_interval_notifier_insert(mm, address, size, ops);
    if (typeof mmin === 'string') {
      this.k.kfree(slab);
      return mmin;
    }
    view.mmin = mmin;
    return view;
  }

  private viewPut(view: MirrorView): void {
    if (view.refcount <= 0) throw new DriverBug(`${NAME}: refcount_t underflow; use-after-free of remote_view#${view.slab}`, 'slab');
    view.refcount -= 1;
    if (view.refcount > 0) return;
    if (view.mmin !== null) this.k.mmu_interval_notifier_remove(view.mmin);
    view.mmin = null;
    this.k.kfree(view.slab);
    view.freed = true;
  }

  private viewInsert(fctx: FileContext, view: MirrorView): void {
    fctx.views.push(view);
    fctx.views.sort((a, b) => a.offset - b.offset || a.slab - b.slab);
    view.refcount += 1;
  }

  /** view_search_get: the first view (by offset) meeting [start, last), with a reference. Under views_lock (lockdep_assert_held). */
  private viewSearchGet(fctx: FileContext, start: number, last: number): MirrorView | null {
    const view = fctx.views.find((v) => v.offset < last && start < v.offset + v.size) ?? null;
    if (view !== null) view.refcount += 1;
    return view;
  }

  /** getme_matching_view: that view, if it contains [start, last). */
  private matchingView(fctx: FileContext, start: number, last: number): MirrorView | null {
    const view = this.viewSearchGet(fctx, start, last);
    if (view === null) return null;
    if (start < view.offset || last > view.offset + view.size) {
      this.viewPut(view);
      return null;
    }
    return view;
  }

  /** getme_exact_view: that view, if it is exactly [start, last). */
  private exactView(fctx: FileContext, start: number, last: number): MirrorView | null {
    const view = this.viewSearchGet(fctx, start, last);
    if (view === null) return null;
    if (start !== view.offset || last !== view.offset + view.size) {
      this.viewPut(view);
      return null;
    }
    return view;
  }

  // ---- pidfd_mem and the legacy device ---------------------------------------------------

  /**
   * pidfd_mem(pidfd) → task_remote_map. The access check lives in patch 5, which the seed
   * does not show; we take the one pidfd_getfd makes (PTRACE_MODE_ATTACH, else EPERM).
   * The error path is as written: it puts the context once per fd it closes *and* once more,
   * and tests `fds[i] != -1` where a failed anon_inode_getfd left a negative errno, so any
   * failure to install an fd underflows the refcount.
   */
  private pidfdMem(pid: number, target: number | null): Outcome {
    if (target === null) return err('EINVAL');
    if (!this.k.taskAlive(target)) return err('ESRCH');
    if (!this.k.ptrace_may_access(pid, target, 'attach')) return err('EPERM');
    const fctx = this.fctxAlloc();
    if (fctx === null) return err('ENOMEM');
    const fds: Array<number | Errno> = [-1, -1];
    let ret: Errno = 'EINVAL';
    fds[0] = this.k.anon_inode_getfd(pid, this.ctrlFops, fctx);
    if (typeof fds[0] === 'string') ret = fds[0];
    else {
      fctx.refcount += 1;
      fds[1] = this.k.anon_inode_getfd(pid, this.mapFops, fctx);
      if (typeof fds[1] === 'string') ret = fds[1];
      else {
        fctx.refcount += 1;
        const mm = this.k.get_task_mm(target);
        if (mm !== null) {
          fctx.mm = mm; // mmgrab(mm); fctx->mm = mm; mmput(mm)
          this.fctxPut(fctx); // usage reference
          return ok(fds[0]);
        }
      }
    }
    // out:
    for (const fd of fds) {
      if (fd === -1) continue;
      if (typeof fd === 'number') this.k.close_fd(pid, fd);
      this.fctxPut(fctx);
    }
    this.fctxPut(fctx);
    return err(ret);
  }

  /**
   * open("/dev/mirror-proc") then ioctl(REMOTE_PROC_MAP, target), as one call returning the
   * fd (closed again when the ioctl fails). The misc device node is root's with mode 0600,
   * so opening it needs DAC override; do_remote_proc_map itself makes no ptrace check.
   */
  private remoteProcMap(pid: number, target: number | null): Outcome {
    if (target === null) return err('EINVAL');
    if (!this.k.capable(pid, 'CAP_DAC_OVERRIDE')) return err('EACCES');
    const fd = this.k.anon_inode_getfd(pid, this.mirrorFops, null);
    if (typeof fd === 'string') return err(fd);
    const file = this.k.fdget(pid, fd)!;
    const fctx = this.fctxAlloc(); // mirror_dev_open
    if (fctx === null) {
      this.k.close_fd(pid, fd);
      return err('ENOMEM');
    }
    file.privateData = fctx;
    const ret = this.doRemoteProcMap(fctx, target);
    if (ret !== 0) {
      this.k.close_fd(pid, fd);
      return err(ret);
    }
    return ok(fd);
  }

  /** do_remote_proc_map. As written, a failed identity view drops the mm but leaves fctx->mm set. */
  private doRemoteProcMap(fctx: FileContext, target: number): Errno | 0 {
    if (!this.k.taskAlive(target)) return 'ESRCH';
    const mm = this.k.get_task_mm(target);
    if (mm === null) return 'EINVAL';
    fctx.mm = mm; // cmpxchg + mmgrab; a second call would give EALREADY
    const id = this.viewAlloc(mm, 0, IDENTITY_VIEW_PAGES, 0);
    if (typeof id === 'string') return id;
    this.viewInsert(fctx, id); // "one view only, don't need to take mutex"

    this.viewPut(id); // usage reference
    return 0;
  }

  // ---- the control fd's ioctls ------------------------------------------------------------

  private ctrlIoctl(pid: number, call: 'map' | 'unmap' | 'lock', args: DriverArgs): Outcome {
    const fd = intArg(args, 'fd');
    const file = fd === null ? null : this.k.fdget(pid, fd);
    if (file === null) return err('EBADF');
    // The access fd and the legacy device know only PIDFD_MEM_REMAP / REMOTE_PROC_MAP.
    if (file.fop !== this.ctrlFops) return err('ENOTTY');
    const fctx = file.privateData as FileContext;
    if (call === 'lock') return this.pidfdMemLock(fctx, intArg(args, 'arg'));
    const offset = intArg(args, 'offset');
    const size = intArg(args, 'size');
    // The PAGE_ALIGNED checks hold by construction (page units); what is left to refuse is
    // a negative off_t. A zero size fails in mmu_interval_notifier_insert.
    if (offset === null || size === null || offset < 0 || size < 0) return err('EINVAL');
    if (call === 'unmap') return this.pidfdMemUnmap(fctx, offset, size);
    const address = intArg(args, 'address');
    if (address === null || address < 0) return err('EINVAL');
    return this.pidfdMemMap(fctx, address, offset, size);
  }

  /**
   * PIDFD_MEM_LOCK. The seed's spec: "it should just check that the argument is zero" (the
   * posted patch checks nothing); after it, MAP and UNMAP fail with EPERM (the patch says
   * EINVAL; EPERM is what "forbids" reads as and what this harness specifies).
   */
  private pidfdMemLock(fctx: FileContext, arg: number | null): Outcome {
    if (arg !== 0) return err('EINVAL');
    this.k.mutex_lock(fctx.viewsLock);
    fctx.locked = true;
    this.k.mutex_unlock(fctx.viewsLock);
    return ok(0);
  }

  /** pidfd_mem_map. An overlap in offset space is EINVAL here (the patch: EALREADY). */
  private pidfdMemMap(fctx: FileContext, address: number, offset: number, size: number): Outcome {
    const mm = fctx.mm === null ? null : this.k.get_task_mm(fctx.mm.pid); // mmget_not_zero
    if (mm === null) return err('EINVAL');
    let result: Errno | 0 = 0;
    const view = this.viewAlloc(mm, address, size, offset);
    if (typeof view === 'string') result = view;
    else {
      this.k.mutex_lock(fctx.viewsLock);
      if (fctx.locked) result = 'EPERM';
      else if (fctx.views.some((v) => v.offset < offset + size && offset < v.offset + v.size)) result = 'EINVAL';
      else this.viewInsert(fctx, view);
      this.k.mutex_unlock(fctx.viewsLock);
      this.viewPut(view); // usage reference
    }
    this.k.mmput(mm);
    return result === 0 ? ok(0) : err(result);
  }

  /**
   * pidfd_mem_unmap: under views_lock the exact view leaves the tree; it turns invalid,
   * synchronize_srcu waits for the faults in progress ("wait until local faults finish"),
   * and its mirrors are zapped. The wait is checked first, before anything changes: a
   * fault in progress makes the whole unmap wait (WouldBlock), which is the schedule in
   * which the unmap starts once that fault is done — the same outcome for the fault, which
   * reads `valid` only before it drops the mmap_lock, and for the unmap.
   */
  private pidfdMemUnmap(fctx: FileContext, offset: number, size: number): Outcome {
    if (this.k.srcu_readers_active(fctx.faultSrcu)) this.k.synchronize_srcu(fctx.faultSrcu);
    this.k.mutex_lock(fctx.viewsLock);
    if (fctx.locked) {
      this.k.mutex_unlock(fctx.viewsLock);
      return err('EPERM');
    }
    const view = this.exactView(fctx, offset, offset + size);
    if (view === null) {
      this.k.mutex_unlock(fctx.viewsLock);
      return err('EINVAL');
    }
    fctx.views.splice(fctx.views.indexOf(view), 1); // view_remove
    this.viewPut(view);
    this.k.mutex_unlock(fctx.viewsLock);
    view.valid = false;
    this.k.synchronize_srcu(fctx.faultSrcu);
    this.mirrorClearView(view, 0, Infinity, false);
    this.viewPut(view); // usage reference
    return ok(0);
  }

  // ---- mirror VMAs -------------------------------------------------------------------------

  /**
   * mirror_dev_mmap: a shared VMA whose offsets lie inside one view. The patch's VMA-specific
   * zap (patch 2: "a remote mapping VMA does not own the pages it maps, so all it has to do
   * is clear the PTEs") is what VM_PFNMAP gives here: special PTEs that hold nothing, and
   * zap_vma_ptes to clear them. The view's validity is not checked, as written.
   */
  private mirrorDevMmap(file: DriverFile, vma: DriverVma): Errno | 0 {
    const fctx = file.privateData as FileContext;
    const start = vma.pgoff;
    const last = start + (vma.end - vma.start);
    if (!vma.shared) return 'EINVAL';
    const slab = this.k.kmalloc('remote_vma_context');
    if (slab === null) return 'ENOMEM';
    this.k.mutex_lock(fctx.viewsLock);
    const view = this.matchingView(fctx, start, last);
    this.k.mutex_unlock(fctx.viewsLock);
    if (view === null) {
      this.k.kfree(slab);
      return 'EINVAL';
    }
    const ctx: VmaContext = { slab, vma, view, fctx };
    vma.privateData = ctx;
    // "view may already be invalidated by the time it's linked"
    this.k.down_write(view.rmapLock);
    view.rmap.push(ctx); // the view reference goes here
    this.k.up_write(view.rmapLock);
    // VM_DONTCOPY | VM_DONTDUMP | VM_DONTEXPAND, as posted: not VM_IO, so MADV_DOFORK may
    // lift VM_DONTCOPY, and with no ->open fork then copies a mirror (and its PTEs) that no
    // context names: the notifier never zaps the child's copy (corpus/pidfd-mem/no-stale-pte-*).
    vma.dontcopy = true;
    vma.dontexpand = true;
    vma.pfnmap = true;
    vma.vmOps = this.mirrorVmOps;
    this.contexts.add(ctx);
    return 0;
  }

  /**
   * mirror_vm_close. There is no ->open, so a VMA that mremap moved carries the old one's
   * context, freed when the old VMA closed: the C uses it anyway, and so does this.
   */
  private mirrorVmClose(vma: DriverVma): void {
    const ctx = vma.privateData as VmaContext;
    const view = ctx.view;
    // "will wait for any running invalidate notifiers to finish"
    this.k.down_write(view.rmapLock);
    const at = view.rmap.indexOf(ctx);
    if (at >= 0) view.rmap.splice(at, 1);
    this.k.up_write(view.rmapLock);
    this.viewPut(view);
    this.k.kfree(ctx.slab);
    this.contexts.delete(ctx);
  }

  /** First page of the target range a mirror VMA shows (ctx_start). */
  private ctxStart(ctx: VmaContext): number {
    return ctx.vma.pgoff - ctx.view.offset + ctx.view.address;
  }

  /**
   * mirror_vm_fault, as written, with the fault's mmap_lock (current->mm's, held for read)
   * juggled as the patch juggles it:
   *
   *   fault_retry: seq = mmu_interval_read_begin; srcu_read_lock; an invalid view is SIGBUS;
   *   up_read(current->mm) — unconditionally, FAULT_FLAG_ALLOW_RETRY or not; take the
   *   target's mmap_lock; GUP; drop it; down_read(current->mm) again; mmu_interval_check_retry
   *   ("expedite retry"): goto fault_retry; find_vma(current->mm, address) == vmf->vma, and
   *   only then, under user_lock, mmu_interval_read_retry (goto fault_retry) and the PTE;
   *   else the result stays VM_FAULT_SIGBUS.
   *
   * The flaws come with it: the VMA and its context are used after the mmap_lock was
   * dropped (the review's "vmf->vma can go away"), and nothing keeps the view alive across
   * that window either: when it is freed meanwhile, the next read of it is reported as the
   * use-after-free it is. VM_FAULT_RETRY is returned where the C returns it (out_retry: GUP
   * failing with ERESTARTSYS or EBUSY), with the mmap_lock released.
   */
  private mirrorVmFault(vma: DriverVma, addr: number, pgoff: number, flags: FaultFlags): FaultResult {
    const mm = this.k.current_mm(); // vma->vm_mm, which is current->mm for a user fault
    const ctx = vma.privateData as VmaContext;
    const view = ctx.view;
    const fctx = ctx.fctx;
    const srcMm = fctx.mm;
    let result: FaultResult = { kind: 'sigbus' };
    for (let attempt = 0; attempt < FAULT_RETRIES_MAX; attempt++) {
      // fault_retry:
      if (view.mmin === null) return { kind: 'sigbus' };
      const seq = this.k.mmu_interval_read_begin(view.mmin);
      this.k.srcu_read_lock(fctx.faultSrcu);
      if (!view.valid || srcMm === null) {
        // out_invalid (srcMm is set whenever a view exists: views are made on fctx->mm)
        this.k.srcu_read_unlock(fctx.faultSrcu);
        return result;
      }
      // "drop current mm semapchore"
      this.k.mmap_read_unlock(this.k.current_mm());
      // "take remote mm semaphore": down_read_trylock with FAULT_FLAG_ALLOW_RETRY (goto
      // out_retry when it fails), else down_read.
      if (flags.allowRetry) {
        if (!this.k.mmap_read_trylock(srcMm)) return this.outRetry(fctx, mm, flags);
      } else {
        this.k.mmap_read_lock(srcMm);
      }
      const gupFlags = (vma.prot & PROT_WRITE) !== 0 ? FOLL_WRITE | FOLL_FORCE : 0;
      const reqAddr = pgoff - view.offset + view.address;
      const page = this.mmRemoteGetPage(srcMm, reqAddr, gupFlags);
      if (typeof page === 'string') {
        this.k.mmap_read_unlock(srcMm);
        // -ERESTARTSYS (a fatal signal in GUP) has no errno here and never happens; -EBUSY does
        // not come from this API's GUP either, but the path is the patch's.
        if (page === 'EBUSY') return this.outRetry(fctx, mm, flags);
        // out_err: retake current mm semaphore
        this.k.mmap_read_lock(this.k.current_mm());
        this.k.srcu_read_unlock(fctx.faultSrcu);
        return result;
      }
      this.k.mmap_read_unlock(srcMm);
      // "retake current mm semapchore"
      this.k.mmap_read_lock(this.k.current_mm());
      if (view.freed) {
        throw new DriverBug(`${NAME}: mirror_vm_fault at ${addr} of P${vma.mm} reads remote_view#${view.slab} after it was freed while the fault had dropped the mmap_lock (use-after-free)`, 'slab');
      }
      // "expedite retry": the lockless early check
      if (this.k.mmu_interval_check_retry(view.mmin!, seq)) {
        this.k.put_page(page);
        this.k.srcu_read_unlock(fctx.faultSrcu);
        continue;
      }
      // "make sure the VMA hasn't gone away"
      if (this.k.find_vma(this.k.current_mm(), addr) === vma) {
        this.k.mutex_lock(view.userLock);
        if (this.k.mmu_interval_read_retry(view.mmin!, seq)) {
          this.k.mutex_unlock(view.userLock);
          this.k.put_page(page);
          this.k.srcu_read_unlock(fctx.faultSrcu);
          continue;
        }
        result = this.k.vmf_insert_pfn(vma, addr, page); // remote_map_page: install PTE here
        this.k.mutex_unlock(view.userLock);
      }
      this.k.put_page(page);
      this.k.srcu_read_unlock(fctx.faultSrcu);
      return result;
    }
    throw new DriverBug(`${NAME}: mirror_vm_fault at ${addr} of P${vma.mm} retried ${FAULT_RETRIES_MAX} times (livelock)`);
  }

  /**
   * out_retry: retake current->mm's mmap_lock, leave the srcu section, and with
   * FAULT_FLAG_ALLOW_RETRY or FAULT_FLAG_TRIED drop the lock again and return
   * VM_FAULT_RETRY (no FAULT_FLAG_RETRY_NOWAIT here); else VM_FAULT_SIGBUS, lock held.
   */
  private outRetry(fctx: FileContext, mm: MmHandle, flags: FaultFlags): FaultResult {
    this.k.mmap_read_lock(this.k.current_mm());
    this.k.srcu_read_unlock(fctx.faultSrcu);
    if (flags.allowRetry || flags.tried) {
      this.k.mmap_read_unlock(mm);
      return { kind: 'retry' };
    }
    return { kind: 'sigbus' };
  }

  /**
   * mm_remote_get_page: might_sleep, then GUP with FOLL_ANON | FOLL_MIGRATION under the
   * target's mmap_lock (the caller holds it), then only anonymous pages. FOLL_ANON
   * (check_vma_flags) refuses a VMA that is not anonymous; within a private anonymous VMA
   * the one page that is not PageAnon is the zero page. A reaped target fails as GUP does
   * there (check_stable_address_space gives VM_FAULT_SIGBUS after the OOM reaper).
   */
  private mmRemoteGetPage(mm: MmHandle, addr: number, gupFlags: number): number | Errno {
    this.k.might_sleep('mm_remote_get_page');
    if (this.k.mm_reaped(mm)) return 'EFAULT';
    const vma = this.k.find_vma(mm, addr);
    if (vma === null || vma.start > addr || vma.vmOps !== null || this.k.vma_inode(vma) !== -1) return 'EFAULT';
    const page = this.k.get_user_pages_remote(mm, addr, gupFlags | FOLL_GET);
    if (typeof page === 'string') return page;
    if (page === this.k.zeroPfn) {
      this.k.put_page(page);
      return 'EINVAL';
    }
    return page;
  }

  /**
   * mmin_invalidate: user_lock around the sequence update (the kernel sets the sequence
   * before the callback; taking the lock still waits for a fault that checked it and is
   * installing its PTE), MMU_NOTIFY_RELEASE (exit_mmap's notification, 'exit' here) marks
   * the view invalid, then the zap. In the non-blockable OOM reap the patch's spinlock can
   * be taken; the mutex that stands for it here only by trylock, and a failed one returns
   * false (the reaper skips the range).
   */
  private mminInvalidate(view: MirrorView, range: MmuNotifierRange): boolean {
    if (range.blockable) this.k.mutex_lock(view.userLock);
    else if (!this.k.mutex_trylock(view.userLock)) return false;
    this.k.mutex_unlock(view.userLock);
    if (range.event === 'exit') view.valid = false;
    return this.mirrorClearView(view, range.start, range.end, !range.blockable);
  }

  /**
   * mirror_clear_view: under rmap_lock (down_read, or down_read_trylock in atomic context,
   * false when it fails), zap the mirror PTEs that show target pages [start, end). In
   * atomic context the patch zaps with mmu_notifier_invalidate_range_start_nonblock (its
   * patch 1), and a refusal there makes the callback refuse too.
   */
  private mirrorClearView(view: MirrorView, start: number, end: number, atomic: boolean): boolean {
    if (!atomic) this.k.down_read(view.rmapLock);
    else if (!this.k.down_read_trylock(view.rmapLock)) return false;
    for (const ctx of [...view.rmap]) {
      const ctxStart = this.ctxStart(ctx);
      const ctxEnd = ctxStart + (ctx.vma.end - ctx.vma.start);
      const srcStart = Math.max(start, ctxStart);
      const srcEnd = Math.min(end, ctxEnd);
      if (srcStart >= srcEnd) continue;
      if (!this.k.zap_vma_ptes(ctx.vma, ctx.vma.start + (srcStart - ctxStart), srcEnd - srcStart, atomic)) {
        this.k.up_read(view.rmapLock);
        return false;
      }
    }
    this.k.up_read(view.rmapLock);
    return true;
  }

  /** The design holds no page: the GUP reference is dropped once the PTE is in. */
  holds(): Iterable<DriverHold> {
    return [];
  }

  /** Every page of every live mirror VMA shows its target page, or faults with SIGBUS. */
  *remoteViews(): Iterable<RemoteView> {
    for (const ctx of [...this.contexts].sort((a, b) => a.slab - b.slab)) {
      const mm = ctx.fctx.mm;
      if (mm === null) continue;
      const first = this.ctxStart(ctx);
      for (let i = 0; i < ctx.vma.end - ctx.vma.start; i++) {
        yield { pid: ctx.vma.mm, addr: ctx.vma.start + i, target: mm.pid, targetAddr: first + i, onMissing: 'sigbus' };
      }
    }
  }
}

/**
 * A control fd of `pid` seven times in eight (when it has one); else any fd it got from this
 * strategy, whose ioctls fail with ENOTTY.
 */
function ctrlFdArgs(ctx: GenContext, c: Choice): { pid: number; fd: number } | null {
  const pid = ctx.pid(c);
  const ctrl = ctx.fds(pid, `${NAME}.ctrl`);
  const fds = ctrl.length > 0 && c.int(8) !== 7 ? ctrl : ctx.fds(pid, NAME);
  return fds.length === 0 ? null : { pid, fd: c.pick(fds) };
}

/** Offsets in the access fd that views are made at and mapped from: mostly the first, so the two meet. */
const OFFSETS = [0, 0, 0, 1, 2, 3];

export const pidfdMem: StrategyDefinition = {
  name: NAME,
  seed: '001',
  title: 'pidfd_mem remote mapping: views on a control fd, mirror VMAs filled at fault time, zapped by an interval notifier',
  // The cover letter: "transparent and zero-copy access" whose VMAs "mirror the contents of
  // the remote process address space" (remote-coherence), PTEs "removed by the
  // mmu_interval_notifier invalidate callback" and "no further memory management" (no-stale-
  // pte, refcount-balance, mapcount, no-leak), for a parent handing its memory to a child
  // (access-control).
  promises: ['remote-coherence', 'no-stale-pte', 'refcount-balance', 'mapcount', 'no-leak', 'access-control'],
  calls: [
    {
      name: 'pidfd_mem', weight: 2, returns: 'fd',
      // pidfd_getfd's check, which patch 5 is taken to make: PTRACE_MODE_ATTACH, EPERM.
      access: { mode: 'attach', target: 'target', denied: 'EPERM', deniedOnlyByAccess: true },
      args(ctx, c) {
        if (ctx.pids().length === 0) return null;
        return ctx.attachPair(c);
      },
    },
    {
      name: 'map', weight: 4,
      args(ctx, c) {
        const base = ctrlFdArgs(ctx, c);
        if (base === null) return null;
        // The target the control fd names (remembered from its pidfd_mem call; any other pid
        // when the fd came some other way): half the time a range at its VMA edges, half a
        // page it has in memory, so faults through the view find something to mirror.
        // Offsets stay small, like mmap's pgoff.
        const target = Number(ctx.fdOrigin(base.pid, base.fd)?.target ?? ctx.otherPid(base.pid, c));
        const r = c.bool() ? { addr: ctx.residentAddr(target, c), lengthPages: c.pick([1, 1, 2, 4]) } : ctx.range(target, c);
        return { ...base, address: r.addr, offset: OFFSETS[c.int(OFFSETS.length)], size: r.lengthPages };
      },
    },
    {
      name: 'unmap', weight: 1, waitsFirst: true,
      args(ctx, c) {
        const base = ctrlFdArgs(ctx, c);
        return base === null ? null : { ...base, offset: c.int(4), size: c.pick([1, 1, 2, 3, 4, 8, 0]) };
      },
    },
    {
      name: 'lock', weight: 1,
      args(ctx, c) {
        const base = ctrlFdArgs(ctx, c);
        return base === null ? null : { ...base, arg: c.int(4) === 0 ? 1 : 0 };
      },
    },
    {
      name: 'remote_proc_map', weight: 1, returns: 'fd',
      args(ctx, c) {
        if (ctx.pids().length === 0) return null;
        const pid = ctx.pid(c);
        return { pid, target: ctx.otherPid(pid, c) };
      },
    },
  ],
  // The access fd is mapped at the small offsets views are created at; the legacy
  // mirror-proc fd at a target address. Both MAP_SHARED, as mirror_dev_mmap requires,
  // seven times in eight: left to the generic draw (shared one time in four), six in seven
  // mmaps of the access fd failed with EINVAL and mirror VMAs were all but never made.
  mmapArgs(ctx, c, pid, driver, fd) {
    const shared = c.int(8) !== 7;
    if (driver === `${NAME}.mirror-proc`) {
      const target = Number(ctx.fdOrigin(pid, fd)?.target ?? ctx.pid(c));
      return { pgoff: c.bool() ? ctx.residentAddr(target, c) : ctx.addr(target, c), lengthPages: c.pick([1, 1, 2, 3]), shared };
    }
    return { pgoff: OFFSETS[c.int(OFFSETS.length)], lengthPages: c.pick([1, 1, 1, 2, 3, 4]), shared };
  },
  // P1 writes a private page and forks P2 (the page now COW-shared), takes pidfd_mem on P2
  // (control fd 3, access fd 4), makes a view of P2's two pages at offset 0, maps the access
  // fd and reads through the mirror: it shows P2's page.
  prelude(config): Op[] {
    const { ops, page, view } = forkedPagePrelude(config);
    return [
      ...ops,
      { op: 'drv', strategy: NAME, call: 'pidfd_mem', args: { pid: 1, target: 2 } },
      { op: 'drv', strategy: NAME, call: 'map', args: { pid: 1, fd: 3, address: page, offset: 0, size: 2 } },
      { op: 'mmap', pid: 1, addr: view, lengthPages: 2, prot: 1, shared: true, fd: 4, pgoff: 0, fixed: true },
      { op: 'read', pid: 1, addr: view },
    ];
  },
  unmappable: [`${NAME}.ctrl`],
  create: (k) => new PidfdMem(k),
};
