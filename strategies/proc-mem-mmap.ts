/**
 * Seed 000: the RFC patch "proc: Add mmap callback for /proc/<pid>/mem", written as the
 * patch is written, flaws included. mem_open checks PTRACE_MODE_ATTACH and keeps the
 * target's mm; mem_mmap pins each resident page with get_user_pages_remote(FOLL_GET |
 * FOLL_NOFAULT), maps it with remap_pfn_range (the zero page for a non-resident one), keeps
 * the pinned pages on a list in vm_private_data, and mem_vma_close releases the list only
 * when the VMA is still whole. The locking is the patch's: mem_mmap is called with the
 * caller's mmap_lock held for write (mmap_region → call_mmap) and takes the target's with
 * down_read around the get_user_pages_remote loop. That nests mmap_lock in itself with no
 * nesting annotation, which lockdep reports ("possible recursive locking") on every mmap
 * of another process's mem file, and an mmap of /proc/self/mem asks for the read side of
 * the rwsem the caller holds for write: a self-deadlock. The ENOMEM return inside the loop
 * leaves without up_read, as written (a lock leak). Not emulated: lseek/read/write of the
 * fd (the core proc_mem_read/proc_mem_write ops cover them), and mem_open's
 * exec_update_lock (mm_access), which the driver API does not offer.
 */
import type {
  DriverFile, DriverKernel, DriverVma, FileOperations, MmHandle, RemoteView, StrategyInstance, VmOperations,
} from '../kernel-api/driver.ts';
import { FOLL_GET, FOLL_NOFAULT } from '../kernel-api/driver.ts';
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { DriverHold } from '../kernel-api/state.ts';
import type { StrategyDefinition } from '../kernel-api/strategy.ts';
import { forkedPagePrelude, intArg } from './args.ts';

const NAME = 'proc-mem-mmap';

/** struct page_list_item: one pinned page. `slab` is the kmalloc'd object it lives in. */
type PageListItem = { readonly slab: number; readonly page: number };

/**
 * struct vma_info. The list is kept head-first as list_add builds it. `viewer` and
 * `targetStart` are bookkeeping for remoteViews() only: the C struct has neither.
 */
type VmaInfo = {
  readonly slab: number;
  readonly pageList: PageListItem[];
  readonly vmaStartAddr: number;
  readonly vmaEndAddr: number;
  readonly viewer: number;
  readonly target: number;
  readonly targetStart: number;
  /** vm_pgoff once mem_mmap is done (remap_pfn_range makes a COW mapping's the pfn). */
  pgoffBase: number;
};

class ProcMemMmap implements StrategyInstance {
  /** Every vma_info not yet kfree'd, by slab object: what holds() can still reach. */
  private readonly infos = new Map<number, VmaInfo>();
  /** pr_warn("VMA has been split, operation not supported") count, for tests and stories. */
  splitWarnings = 0;

  private readonly vmOps: VmOperations = {
    name: NAME,
    close: (vma) => this.memVmaClose(vma),
  };

  private readonly fops: FileOperations = {
    name: NAME,
    mmap: (file, vma) => this.memMmap(file, vma),
    release: (file) => this.memRelease(file),
  };

  constructor(private readonly k: DriverKernel) {}

  call(call: string, args: Record<string, number | boolean | string>): Outcome {
    if (call !== 'open') return err('ENOTTY');
    const pid = intArg(args, 'pid');
    const target = intArg(args, 'target');
    if (pid === null || target === null) return err('EINVAL');
    return this.memOpen(pid, target);
  }

  /**
   * mem_open → proc_mem_open(inode, PTRACE_MODE_ATTACH) → mm_access: the task must exist,
   * and another task's mm needs ptrace attach rights (EACCES). The file keeps the mm
   * (mmgrab) as private_data.
   */
  private memOpen(pid: number, target: number): Outcome {
    if (!this.k.taskAlive(pid)) return err('ESRCH');
    if (!this.k.taskAlive(target)) return err('ESRCH'); // get_proc_task fails
    const mm = this.k.get_task_mm(target);
    if (mm !== null && target !== pid && !this.k.ptrace_may_access(pid, target, 'attach')) {
      this.k.mmput(mm);
      return err('EACCES');
    }
    const fd = this.k.anon_inode_getfd(pid, this.fops, mm);
    if (typeof fd === 'string') {
      if (mm !== null) this.k.mmput(mm);
      return err(fd);
    }
    return ok(fd);
  }

  /** mem_release: drop the mm the file kept. */
  private memRelease(file: DriverFile): void {
    const mm = file.privateData as MmHandle | null;
    if (mm !== null) this.k.mmput(mm);
    file.privateData = null;
  }

  /** mem_mmap, line by line. Units: addresses and vm_pgoff are in pages. */
  private memMmap(file: DriverFile, vma: DriverVma): Errno | 0 {
    const mm = file.privateData as MmHandle | null;
    const size = vma.end - vma.start;
    let startAddr = vma.start;
    const targetStartAddr = vma.pgoff; // vm_pgoff << PAGE_SHIFT
    const targetEndAddr = targetStartAddr + size;
    if (!mm) return 'EINVAL';

    const infoSlab = this.k.kmalloc('vma_info', 'GFP_KERNEL');
    if (infoSlab === null) return 'ENOMEM';
    const info: VmaInfo = {
      slab: infoSlab, pageList: [], vmaStartAddr: vma.start, vmaEndAddr: vma.end,
      viewer: vma.mm, target: mm.pid, targetStart: targetStartAddr, pgoffBase: vma.pgoff,
    };
    this.infos.set(infoSlab, info);
    vma.privateData = info;
    vma.vmOps = this.vmOps;
    const zeroPagePfn = this.k.zeroPfn;

    // "Acquire the mmap_lock before pinning the page (get_user_pages_remote)": down_read of
    // the target's, with the caller's held for write by the mmap path.
    this.k.mmap_read_lock(mm);

    for (let addr = targetStartAddr; addr < targetEndAddr; addr++) {
      const page = this.k.get_user_pages_remote(mm, addr, FOLL_GET | FOLL_NOFAULT);
      // Page is not resident (FOLL_NOFAULT): map the zero page and go on.
      if (typeof page === 'string') {
        const ret = this.k.remap_pfn_range(vma, startAddr, zeroPagePfn, 1);
        // `goto err_unlock`: the patch returns 0 with the rest of the VMA left unmapped.
        if (ret) break;
        startAddr += 1;
        continue;
      }
      const itemSlab = this.k.kmalloc('page_list_item', 'GFP_KERNEL');
      if (itemSlab === null) {
        // As written: info is freed but the list (and every page on it) leaks,
        // vma->vm_private_data still points at the freed info, and the return skips
        // err_unlock: the target's mmap_lock stays held for read.
        this.k.kfree(info.slab);
        this.infos.delete(info.slab);
        return 'ENOMEM';
      }
      const item: PageListItem = { slab: itemSlab, page };
      info.pageList.unshift(item); // list_add: at the head
      const ret = this.k.remap_pfn_range(vma, startAddr, page, 1);
      // As written: the item is freed while still on the list, its page still held.
      if (ret) this.k.kfree(item.slab);
      startAddr += 1;
    }
    // err_unlock:
    this.k.mmap_read_unlock(mm);
    info.pgoffBase = vma.pgoff;
    return 0;
  }

  /**
   * mem_vma_close: release the list only when the VMA is the one mem_mmap set up; after a
   * split (munmap or mprotect of part of it) every piece only warns, so nothing is released.
   * vm_private_data may point at an info that was already freed (a fork child's close, or
   * the ENOMEM path): the C reads it anyway, and so does this.
   */
  private memVmaClose(vma: DriverVma): void {
    const info = vma.privateData as VmaInfo | null;
    if (!info) return;
    if (info.vmaStartAddr === vma.start && info.vmaEndAddr === vma.end) {
      for (const item of [...info.pageList]) {
        info.pageList.splice(info.pageList.indexOf(item), 1); // list_del
        this.k.put_page(item.page);
        this.k.kfree(item.slab);
      }
      this.k.kfree(info.slab);
      this.infos.delete(info.slab);
      vma.privateData = null;
    } else {
      this.splitWarnings += 1;
    }
  }

  /** Every page reachable from a live vma_info's list, items freed while listed included. */
  *holds(): Iterable<DriverHold> {
    for (const info of [...this.infos.values()].sort((a, b) => a.slab - b.slab)) {
      for (const item of info.pageList) {
        if (item.page === this.k.zeroPfn) continue; // the zero page is not refcounted
        yield { pfn: item.page, holder: `${NAME} vma_info#${info.slab}`, pins: 0, refs: 1 };
      }
    }
  }

  /**
   * The patch claims the mapping shows the target's memory "reusing the same pages", with the
   * zero page where nothing is resident. Views are reported for the mmapping process's VMAs
   * that still carry a live info: split pieces, and pieces mremap moved, each by its vm_pgoff
   * (a split or a move carries it along, __split_vma and copy_vma), so a page shows the
   * target page it was set up for wherever it went. A fork child's copy is not tracked.
   */
  *remoteViews(): Iterable<RemoteView> {
    for (const info of [...this.infos.values()].sort((a, b) => a.slab - b.slab)) {
      const mm = this.k.get_task_mm(info.viewer);
      if (mm === null) continue;
      for (let vma = this.k.find_vma(mm, 0); vma !== null; vma = this.k.find_vma(mm, vma.end)) {
        if (vma.privateData !== info) continue;
        const first = info.targetStart + (vma.pgoff - info.pgoffBase);
        for (let addr = vma.start; addr < vma.end; addr++) {
          yield { pid: info.viewer, addr, target: info.target, targetAddr: first + (addr - vma.start), onMissing: 'zero' };
        }
      }
      this.k.mmput(mm);
    }
  }
}

export const procMemMmap: StrategyDefinition = {
  name: NAME,
  seed: '000',
  title: 'mmap of /proc/<pid>/mem: pin resident pages with GUP, remap_pfn_range them, release on close',
  // What the patch text claims, not what it achieves: the target's memory mapped "reusing
  // the same pages" (remote-coherence), pinned so it stays put (no-stale-pte), the pinned
  // list "released back on the close call" (refcount-balance, no-leak), behind the
  // existing /proc/<pid>/mem access check (access-control).
  promises: ['remote-coherence', 'no-stale-pte', 'refcount-balance', 'no-leak', 'access-control'],
  calls: [
    {
      name: 'open',
      weight: 3,
      returns: 'fd',
      // mem_open → proc_mem_open(inode, PTRACE_MODE_ATTACH) → mm_access: EACCES.
      access: { mode: 'attach', target: 'target', denied: 'EACCES', deniedOnlyByAccess: true },
      args(ctx, c) {
        if (ctx.pids().length === 0) return null;
        return ctx.attachPair(c);
      },
    },
  ],
  // The file offset is the target address: map a few pages at an address some process uses.
  mmapArgs(ctx, c, pid, _driver, fd) {
    // The target's own addresses (the fd remembers whose mem file it is), half the time where
    // it has pages in memory: FOLL_NOFAULT maps only those, the zero page elsewhere. Mostly
    // MAP_SHARED and often writable, as a debugger or a checkpointer maps it.
    const target = Number(ctx.fdOrigin(pid, fd)?.target ?? ctx.pid(c));
    const pgoff = c.bool() ? ctx.residentAddr(target, c) : ctx.addr(target, c);
    return { pgoff, lengthPages: c.pick([1, 1, 2, 3, 4]), prot: c.pick([1, 3, 3, 7, 0]), shared: c.int(4) !== 0 };
  },
  // P1 writes a private page, maps a one-page file shared and forks P2 (the private page now
  // COW-shared), which reads the file page in; P1 opens /proc/2/mem and maps each of P2's two
  // pages shared and writable: the mapping pins and shows them. The file page is where a
  // store through the view (a special PTE, which dirties no page) is lost at reclaim.
  prelude(config) {
    const { ops, page, view } = forkedPagePrelude(config);
    const [spawn, anon, write, fork] = ops;
    const filePage = page - 4;
    return [
      spawn, anon, write,
      { op: 'creat', sizePages: 1 },
      { op: 'mmap', pid: 1, addr: filePage, lengthPages: 1, prot: 3, shared: true, file: 1, fixed: true },
      fork,
      { op: 'read', pid: 2, addr: filePage },
      { op: 'drv', strategy: NAME, call: 'open', args: { pid: 1, target: 2 } },
      { op: 'mmap', pid: 1, addr: view, lengthPages: 1, prot: 3, shared: true, fd: 3, pgoff: page, fixed: true },
      { op: 'mmap', pid: 1, addr: view - 2, lengthPages: 1, prot: 3, shared: true, fd: 3, pgoff: filePage, fixed: true },
    ];
  },
  create: (k) => new ProcMemMmap(k),
};
