/**
 * A control design, correct in Linux: long-term pinned buffers, as io_uring's
 * IORING_REGISTER_BUFFERS (io_uring/rsrc.c io_sqe_buffer_register, pin_user_pages with
 * FOLL_WRITE | FOLL_LONGTERM) or an RDMA memory registration keeps them. `register` pins a
 * few pages of the caller's memory and returns an fd (the ring) that owns the pins; `read`
 * is the kernel's data path through a pinned page (a fixed read, a DMA); `unregister`
 * (IORING_UNREGISTER_BUFFERS) drops them, and so does ->release on the last fput. It is
 * the one design that holds FOLL_PIN pins across steps, so reclaim's and fork's handling
 * of maybe-pinned pages (shrink_folio_list, page_needs_cow_for_dma) is exercised.
 *
 * Locking, as io_uring's: register pins under mmap_read_lock of the caller's mm (the
 * VMA check and pin_user_pages under it, as io_sqe_buffer_register did); the ring's
 * uring_lock (a mutex, `pin-buffers:uring_lock`) serializes the fixed read, unregister and
 * the teardown at release, so a read never uses a page unregister is unpinning.
 *
 * Left out: FOLL_LONGTERM is not in the driver API, so the pin is FOLL_WRITE; there are
 * no zones, so nothing is migrated out of ZONE_MOVABLE. Regular-file mappings are refused
 * (EOPNOTSUPP, as io_uring did while it checked the VMAs itself), shared and private
 * alike. Today's io_uring leaves that to FOLL_LONGTERM, which refuses only shared ones,
 * and pins a private file page by breaking copy-on-write: the process then holds an
 * anonymous copy that no longer follows the file although it never stored to it, and
 * ghost memory, which learns of COW breaks only from stores, calls that a cow-isolation
 * failure (the fuzzer found it in the first version of this file). A kernel-side *write*
 * through the pin is left out for the same reason: ghost memory learns only from core
 * operations and remote views, not from a store made by a `drv` call.
 */
import type { DriverFile, DriverKernel, FileOperations, MmHandle, RemoteView, StrategyInstance } from '../kernel-api/driver.ts';
import { FOLL_WRITE } from '../kernel-api/driver.ts';
import type { LockRef } from '../kernel-api/locks.ts';
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { DriverHold } from '../kernel-api/state.ts';
import { SHMEM_ID_BASE } from '../kernel-api/state.ts';
import type { StrategyDefinition } from '../kernel-api/strategy.ts';
import { DriverBug, intArg } from './args.ts';

const NAME = 'pin-buffers';
/** Pages one registration pins at most (io_uring's limit is 1 GiB a buffer). */
export const REGISTER_PAGES_MAX = 4;
/** FOLL_LONGTERM is not in the driver API: the pin is FOLL_WRITE (see the header). */
const PIN_FLAGS = FOLL_WRITE;

/** The ring's registration: its slab object, its uring_lock and the pfns it pins, by buffer page index (under the lock). */
type Registration = { readonly slab: number; readonly pid: number; readonly lock: LockRef; pages: number[] };

class PinBuffers implements StrategyInstance {
  /** Every registration whose file is not yet released, by slab object. */
  private readonly regs = new Map<number, Registration>();

  private readonly fops: FileOperations = {
    name: NAME,
    release: (file) => this.release(file),
  };

  constructor(private readonly k: DriverKernel) {}

  call(call: string, args: Record<string, number | boolean | string>): Outcome {
    const pid = intArg(args, 'pid');
    if (pid === null) return err('EINVAL');
    if (call === 'register') {
      const addr = intArg(args, 'addr');
      const lengthPages = intArg(args, 'lengthPages');
      return addr === null || lengthPages === null ? err('EINVAL') : this.register(pid, addr, lengthPages);
    }
    const fd = intArg(args, 'fd');
    if (fd === null) return err('EINVAL');
    const file = this.k.fdget(pid, fd);
    if (file === null) return err('EBADF');
    if (file.fop !== this.fops) return err('EINVAL');
    const reg = file.privateData as Registration;
    if (call === 'read') {
      const index = intArg(args, 'index');
      return index === null ? err('EINVAL') : this.read(reg, index);
    }
    if (call === 'unregister') return this.unregister(reg);
    return err('ENOTTY');
  }

  /**
   * io_sqe_buffer_register for one buffer of `lengthPages` pages at `addr` of `pid`'s own
   * memory: the registration, then one long-term pin a page, then the fd. On an errno
   * midway everything taken so far is given back, so a failed register leaves nothing.
   */
  private register(pid: number, addr: number, lengthPages: number): Outcome {
    // io_buffer_validate: an empty or oversized iovec is EFAULT.
    if (lengthPages < 1 || lengthPages > REGISTER_PAGES_MAX || addr < 0) return err('EFAULT');
    if (!this.k.taskAlive(pid)) return err('ESRCH');
    const mm = this.k.get_task_mm(pid);
    if (mm === null) return err('ESRCH');
    const slab = this.k.kmalloc('io_mapped_ubuf', 'GFP_KERNEL');
    if (slab === null) {
      this.k.mmput(mm);
      return err('ENOMEM');
    }
    const reg: Registration = { slab, pid, lock: this.k.mutex_init(`${NAME}:uring_lock`), pages: [] };
    this.k.mmap_read_lock(mm);
    for (let i = 0; i < lengthPages; i++) {
      const pfn = this.pinLongterm(mm, addr + i);
      if (typeof pfn === 'string') {
        this.k.mmap_read_unlock(mm);
        return this.abortRegister(reg, mm, pfn);
      }
      reg.pages.push(pfn);
    }
    this.k.mmap_read_unlock(mm);
    const fd = this.k.anon_inode_getfd(pid, this.fops, reg);
    if (typeof fd === 'string') return this.abortRegister(reg, mm, fd);
    this.k.mmput(mm);
    this.regs.set(slab, reg);
    return ok(fd);
  }

  /**
   * One long-term pin (the caller holds mmap_read_lock(mm)), after io_uring's former VMA check ("don't support file backed
   * memory"): a page of a regular-file mapping, shared or private, is EOPNOTSUPP; anonymous
   * and shmem pages are pinned. It is checked before the pin rather than after as io_uring
   * did, because a FOLL_WRITE pin of a private file page breaks copy-on-write without a
   * store, which ghost memory cannot follow (see the header).
   */
  private pinLongterm(mm: MmHandle, addr: number): number | Errno {
    const vma = this.k.find_vma(mm, addr);
    if (vma !== null && vma.start <= addr) {
      const inode = this.k.vma_inode(vma);
      if (inode !== -1 && inode < SHMEM_ID_BASE) return 'EOPNOTSUPP';
    }
    return this.k.pin_user_pages_remote(mm, addr, PIN_FLAGS);
  }

  private abortRegister(reg: Registration, mm: MmHandle, errno: Errno): Outcome {
    this.unpinAll(reg);
    this.k.kfree(reg.slab);
    this.k.mmput(mm);
    return err(errno);
  }

  /** A fixed read: the kernel loads from the pinned page through the direct map. */
  private read(reg: Registration, index: number): Outcome {
    this.k.mutex_lock(reg.lock);
    // io_import_fixed: a buffer index past the registered ones (none after unregister) is EFAULT.
    if (index < 0 || index >= reg.pages.length) {
      this.k.mutex_unlock(reg.lock);
      return err('EFAULT');
    }
    const value = this.k.page_read(reg.pages[index]);
    this.k.mutex_unlock(reg.lock);
    return ok(value);
  }

  /** IORING_UNREGISTER_BUFFERS, under uring_lock: unpin every page; ENXIO when nothing is registered. */
  private unregister(reg: Registration): Outcome {
    this.k.mutex_lock(reg.lock);
    if (reg.pages.length === 0) {
      this.k.mutex_unlock(reg.lock);
      return err('ENXIO');
    }
    this.unpinAll(reg);
    this.k.mutex_unlock(reg.lock);
    return ok(0);
  }

  private unpinAll(reg: Registration): void {
    for (const pfn of reg.pages) this.k.unpin_user_page(pfn);
    reg.pages = [];
  }

  /** The last fput of the ring (every fd closed, in every process that inherited it). */
  private release(file: DriverFile): void {
    const reg = file.privateData as Registration;
    if (!this.regs.has(reg.slab)) throw new DriverBug(`${NAME}: release of registration ${reg.slab}, which is not live`, 'slab');
    this.k.mutex_lock(reg.lock); // io_ring_ctx_free → io_sqe_buffers_unregister under uring_lock
    this.unpinAll(reg);
    this.k.mutex_unlock(reg.lock);
    this.k.kfree(reg.slab);
    this.regs.delete(reg.slab);
  }

  /** Each pinned page: a FOLL_PIN pin adds one to the refcount and one to the pincount. */
  *holds(): Iterable<DriverHold> {
    for (const slab of [...this.regs.keys()].sort((a, b) => a - b)) {
      const reg = this.regs.get(slab)!;
      for (let i = 0; i < reg.pages.length; i++) {
        yield { pfn: reg.pages[i], holder: `${NAME}#${slab}[${i}] of P${reg.pid}`, pins: 1, refs: 0, forWrite: (PIN_FLAGS & FOLL_WRITE) !== 0 };
      }
    }
  }

  /** A pinned buffer is not mapped anywhere: no remote views. */
  remoteViews(): Iterable<RemoteView> {
    return [];
  }
}

export const pinBuffers: StrategyDefinition = {
  name: NAME,
  seed: 'new',
  title: 'long-term pinned buffers, as io_uring IORING_REGISTER_BUFFERS or an RDMA registration (a control: correct in Linux)',
  promises: [
    'refcount-balance', 'mapcount', 'no-stale-pte', 'remote-coherence', 'cow-isolation', 'exclusive-anon', 'zero-page',
    'file-integrity', 'rss-counters', 'swap-accounting', 'vma-wellformed', 'no-leak', 'access-control', 'slab',
    'kernel-assert', 'pagemap-scan', 'pin-coherence',
  ],
  calls: [
    {
      name: 'register', weight: 4, returns: 'fd',
      args(ctx, c) {
        if (ctx.pids().length === 0) return null;
        const pid = ctx.pid(c);
        const pick = c.int(4);
        // Mostly pages in memory (one or two, so that most registrations succeed), then
        // ranges across VMA edges, now and then an empty or oversized buffer.
        if (pick <= 1) return { pid, addr: ctx.residentAddr(pid, c), lengthPages: c.pick([1, 1, 2]) };
        if (pick === 2) {
          const range = ctx.range(pid, c);
          return { pid, addr: range.addr, lengthPages: Math.min(REGISTER_PAGES_MAX, Math.max(1, range.lengthPages)) };
        }
        return { pid, addr: ctx.addr(pid, c), lengthPages: c.int(4) === 0 ? c.pick([0, REGISTER_PAGES_MAX + 1]) : 1 + c.int(REGISTER_PAGES_MAX) };
      },
    },
    {
      name: 'read', weight: 4,
      args(ctx, c) {
        const pid = ctx.pid(c);
        const fds = ctx.fds(pid, NAME);
        if (fds.length === 0) return null;
        const fd = c.pick(fds);
        // Mostly a page the register call asked for, now and then one past them.
        const registered = Number(ctx.fdOrigin(pid, fd)?.lengthPages ?? REGISTER_PAGES_MAX);
        const index = c.int(8) === 0 ? registered : c.int(Math.max(1, registered));
        return { pid, fd, index };
      },
    },
    {
      name: 'unregister', weight: 1,
      args(ctx, c) {
        const pid = ctx.pid(c);
        const fds = ctx.fds(pid, NAME);
        return fds.length === 0 ? null : { pid, fd: c.pick(fds) };
      },
    },
  ],
  create: (k: DriverKernel) => new PinBuffers(k),
};
