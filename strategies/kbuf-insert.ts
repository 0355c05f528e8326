/**
 * Seed 002, mapped as drivers map a kernel buffer today: ->mmap inserts every page of the
 * requested range with vm_insert_page, which is what vm_map_pages(vma, info->pages,
 * BUFFER_PAGES) does (mm/memory.c __vm_map_pages: ENXIO for an offset or a length past
 * the buffer, then vm_insert_page per page, the first error returned; a failed mmap's
 * VMA is torn down with whatever was inserted). The PTEs are normal and refcounted
 * (insert_page_into_pte_locked: folio_get, folio_add_file_rmap_pte, MM_FILEPAGES), the VMA
 * becomes VM_MIXEDMAP, and there is no ->fault: every PTE exists from mmap on, fork copies
 * them (vma_needs_copy: VM_MIXEDMAP), and a page past them (an mremap that grew the VMA)
 * is SIGBUS (do_fault without ->fault).
 *
 * Two designs, one mmap:
 * - kbuf-insert: the buffer's pages from alloc_page, as vm_insert_page asks ("a nice clean
 *   _individual_ kernel allocation"). Sound.
 * - kbuf-insert-kmalloc: the answer's "allocate a page for each entry, use kmalloc,
 *   whatever": each page a kmalloc(PAGE_SIZE) object, virt_to_page'd. A page-sized kmalloc
 *   comes from the kmalloc-4k cache, a slab page, which validate_page_before_insert
 *   refuses (folio_test_slab): vm_insert_page gives EINVAL and so does every mmap of the
 *   buffer. `driver-mmap` names it (the design's mmap refuses only a range past the
 *   buffer, with ENXIO). (Above KMALLOC_MAX_CACHE_SIZE, 8 KiB, kmalloc_large's pages are
 *   no better in 6.18: the folio carries PGTY_large_kmalloc, a page type, which
 *   validate_page_before_insert refuses too; not modelled.)
 */
import type { DriverFile, DriverKernel, DriverVma, FileOperations, VmOperations } from '../kernel-api/driver.ts';
import { KMALLOC_PAGE } from '../kernel-api/driver.ts';
import type { Errno } from '../kernel-api/outcome.ts';
import type { StrategyDefinition } from '../kernel-api/strategy.ts';
import { BUFFER_PAGES, KbufDriver, kbufCalls, type MmapInfo } from './kbuf-common.ts';

class KbufInsert extends KbufDriver {
  /** open and close only print, as the example's; no fault handler. */
  private readonly vmOps: VmOperations;
  protected readonly fops: FileOperations;

  constructor(k: DriverKernel, name: string) {
    super(k, name);
    this.vmOps = { name, open: () => {}, close: () => {} };
    this.fops = { name, mmap: (file, vma) => this.mmap(file, vma), release: (file) => this.release(file) };
  }

  /** vm_map_pages(vma, info->pages, BUFFER_PAGES), under the caller's mmap_lock for write. */
  private mmap(file: DriverFile, vma: DriverVma): Errno | 0 {
    const info = file.privateData as MmapInfo;
    const count = vma.end - vma.start;
    // __vm_map_pages: the user's vm_pgoff and length must lie inside the object.
    if (vma.pgoff < 0 || vma.pgoff >= BUFFER_PAGES || count > BUFFER_PAGES - vma.pgoff) return 'ENXIO';
    vma.vmOps = this.vmOps;
    vma.privateData = info;
    for (let i = 0; i < count; i++) {
      const ret = this.k.vm_insert_page(vma, vma.start + i, info.pages[vma.pgoff + i]);
      if (ret) return ret;
    }
    return 0;
  }

  protected freeBufferPage(pfn: number): void {
    this.k.__free_page(pfn);
  }
}

/** The "use kmalloc, whatever" buffer: each page a page-sized kmalloc object. */
class KbufInsertKmalloc extends KbufInsert {
  protected override readonly pageAllocator = 'kmalloc';
  /** The kmalloc object behind each buffer page (virt_to_page's inverse, for kfree). */
  private readonly objOfPage = new Map<number, number>();

  protected override allocBufferPage(): number | null {
    const obj = this.k.kmalloc('kbuf page', 'GFP_KERNEL', KMALLOC_PAGE);
    if (obj === null) return null;
    const pfn = this.k.virt_to_page(obj);
    this.objOfPage.set(pfn, obj);
    return pfn;
  }

  protected override freeBufferPage(pfn: number): void {
    const obj = this.objOfPage.get(pfn)!;
    this.objOfPage.delete(pfn);
    this.k.kfree(obj);
  }
}

/** The design's mmap fails only with ENXIO (a range past the buffer); the rest is the kernel's. */
const MMAP_REFUSES_ONLY: readonly Errno[] = ['ENXIO'];

export const kbufInsert: StrategyDefinition = {
  name: 'kbuf-insert',
  seed: '002',
  title: 'driver buffer of alloc_page pages mapped in ->mmap with vm_insert_page (vm_map_pages)',
  promises: ['refcount-balance', 'mapcount', 'no-stale-pte', 'no-leak', 'slab', 'rss-counters', 'vma-wellformed', 'driver-mmap'],
  mmapRefusesOnly: MMAP_REFUSES_ONLY,
  calls: kbufCalls('kbuf-insert'),
  create: (k) => new KbufInsert(k, 'kbuf-insert'),
};

export const kbufInsertKmalloc: StrategyDefinition = {
  name: 'kbuf-insert-kmalloc',
  seed: '002',
  title: 'driver buffer of page-sized kmalloc objects mapped in ->mmap with vm_insert_page ("use kmalloc, whatever")',
  promises: ['refcount-balance', 'mapcount', 'no-stale-pte', 'no-leak', 'slab', 'rss-counters', 'vma-wellformed', 'driver-mmap'],
  mmapRefusesOnly: MMAP_REFUSES_ONLY,
  calls: kbufCalls('kbuf-insert-kmalloc'),
  create: (k) => new KbufInsertKmalloc(k, 'kbuf-insert-kmalloc'),
};
