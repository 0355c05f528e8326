/**
 * Seed 002, the part both answers share: a driver buffer allocated at open (the example's
 * `open`: kmalloc of mmap_info, then the buffer's pages, unchecked, then "asdf" copied in),
 * read and written through the fd, freed at release. kbuf-fault.ts and kbuf-remap.ts add
 * the two ways of mapping it. The example's buffer is four bytes in one page; here it is
 * BUFFER_PAGES pages, one alloc_page each ("an array and allocate a page for each entry"),
 * so a file offset is a page index. The example takes no lock; its allocations are
 * GFP_KERNEL in ->open, where nothing is held, and read/write's copy_to_user and
 * copy_from_user may fault, i.e. sleep (a scheduling point).
 */
import type { DriverFile, DriverKernel, DriverVma, FileOperations, RemoteView, StrategyInstance } from '../kernel-api/driver.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { DriverHold } from '../kernel-api/state.ts';
import type { StrategyCall } from '../kernel-api/strategy.ts';
import { DriverBug, intArg } from './args.ts';

/** Size of every buffer, in pages (the example's BUFFER_SIZE, scaled to pages). */
export const BUFFER_PAGES = 4;
/** What open copies into the first page: "asdf" read as a little-endian u32. */
export const ASDF = 0x66647361;

/** struct mmap_info: the slab object and the buffer's pages (data). */
export type MmapInfo = { readonly slab: number; readonly pages: number[] };

export abstract class KbufDriver implements StrategyInstance {
  /** Every mmap_info not yet kfree'd, by slab object. */
  protected readonly infos = new Map<number, MmapInfo>();
  protected abstract readonly fops: FileOperations;

  constructor(protected readonly k: DriverKernel, private readonly name: string) {}

  call(call: string, args: Record<string, number | boolean | string>): Outcome {
    const pid = intArg(args, 'pid');
    if (pid === null) return err('EINVAL');
    if (call === 'open') return this.open(pid);
    const fd = intArg(args, 'fd');
    const index = intArg(args, 'index');
    if (fd === null || index === null || index < 0) return err('EINVAL');
    const file = this.k.fdget(pid, fd);
    if (file === null) return err('EBADF');
    if (file.fop !== this.fops) return err('EINVAL');
    const info = file.privateData as MmapInfo;
    if (call === 'read') return this.read(info, index);
    if (call === 'write') {
      const value = intArg(args, 'value');
      return value === null ? err('EINVAL') : this.write(info, index, value);
    }
    return err('ENOTTY');
  }

  /**
   * The VFS allocates the struct file first (anon_inode_getfd here), then calls ->open,
   * which is the example's open: allocations unchecked, as written. A failed one is the
   * NULL dereference the C would oops on.
   */
  private open(pid: number): Outcome {
    const fd = this.k.anon_inode_getfd(pid, this.fops, null);
    if (typeof fd === 'string') return err(fd);
    const file = this.k.fdget(pid, fd)!;
    const slab = this.k.kmalloc('mmap_info', 'GFP_KERNEL');
    if (slab === null) throw new DriverBug(`${this.name}: open dereferences the NULL that kmalloc(mmap_info) returned`);
    const info: MmapInfo = { slab, pages: [] };
    this.infos.set(slab, info);
    for (let i = 0; i < BUFFER_PAGES; i++) {
      const page = this.allocBufferPage();
      if (page === null) throw new DriverBug(`${this.name}: open writes to the NULL page that ${this.pageAllocator} returned`);
      info.pages.push(page);
    }
    this.k.page_write(info.pages[0], ASDF); // memcpy(info->data, "asdf", BUFFER_SIZE)
    file.privateData = info;
    return ok(fd);
  }

  /** read at page `index`; at or past the end the example returns 0 bytes, shown as value 0. */
  private read(info: MmapInfo, index: number): Outcome {
    if (index >= BUFFER_PAGES) return ok(0);
    const value = this.k.page_read(info.pages[index]);
    this.k.might_sleep('copy_to_user');
    return ok(value);
  }

  /**
   * write at page `index`. The example copies to the start of its one-page buffer whatever
   * the offset; per page, writing the page at the offset is that behaviour scaled up, and a
   * write past the buffer has nowhere to go (ENOSPC, as a full device answers).
   */
  private write(info: MmapInfo, index: number, value: number): Outcome {
    if (index >= BUFFER_PAGES) return err('ENOSPC');
    this.k.might_sleep('copy_from_user');
    this.k.page_write(info.pages[index], value >>> 0);
    return ok(0);
  }

  /** release: free the buffer and the info. Runs only once no fd and no VMA holds the file. */
  protected release(file: DriverFile): void {
    const info = file.privateData as MmapInfo | null;
    if (info === null) return;
    for (const page of info.pages) this.freeBufferPage(page);
    this.k.kfree(info.slab);
    this.infos.delete(info.slab);
    file.privateData = null;
  }

  /** What allocates a buffer page, as the C names it (for the NULL dereference's message). */
  protected readonly pageAllocator: string = 'alloc_page';

  /** One page of the buffer ("allocate a page for each entry"): alloc_page unless a design says otherwise. */
  protected allocBufferPage(): number | null {
    return this.k.alloc_page();
  }

  protected abstract freeBufferPage(pfn: number): void;

  /** The range check the first answer asks of my_mmap: the VMA must lie inside the buffer. */
  protected inBuffer(vma: DriverVma): boolean {
    return vma.pgoff >= 0 && vma.pgoff + (vma.end - vma.start) <= BUFFER_PAGES;
  }

  /** Each buffer page holds the reference alloc_page gave it. */
  *holds(): Iterable<DriverHold> {
    for (const info of [...this.infos.values()].sort((a, b) => a.slab - b.slab)) {
      for (const pfn of info.pages) yield { pfn, holder: `${this.name} mmap_info#${info.slab}`, pins: 0, refs: 1 };
    }
  }

  /** A driver buffer mirrors no process: no remote views. */
  remoteViews(): Iterable<RemoteView> {
    return [];
  }
}

/** The calls both kbuf strategies declare: open, read and write on the fd. */
export function kbufCalls(name: string): StrategyCall[] {
  return [
    { name: 'open', weight: 2, returns: 'fd', args: (ctx, c) => (ctx.pids().length === 0 ? null : { pid: ctx.pid(c) }) },
    {
      name: 'read', weight: 2,
      args(ctx, c) {
        const pid = ctx.pid(c);
        const fds = ctx.fds(pid, name);
        return fds.length === 0 ? null : { pid, fd: c.pick(fds), index: c.int(BUFFER_PAGES + 1) };
      },
    },
    {
      name: 'write', weight: 2,
      args(ctx, c) {
        const pid = ctx.pid(c);
        const fds = ctx.fds(pid, name);
        return fds.length === 0 ? null : { pid, fd: c.pick(fds), index: c.int(BUFFER_PAGES + 1), value: ctx.value(c) };
      },
    },
  ];
}
