/**
 * Seed 002, the question's approach: the buffer's pages marked SetPageReserved at mmap time
 * and mapped with remap_pfn_range, so the PTEs are special (no refcount, no mapcount) and
 * the buffer must outlive them — which it does because each VMA holds the file and release
 * frees the pages (ClearPageReserved, then free) only after the last VMA is gone. The pages
 * are not contiguous, so they are remapped one at a time; a private (COW) mapping of more
 * than one page therefore fails with EINVAL, as remap_pfn_range refuses part of a COW VMA.
 */
import type { DriverFile, DriverKernel, DriverVma, FileOperations, VmOperations } from '../kernel-api/driver.ts';
import type { Errno } from '../kernel-api/outcome.ts';
import type { StrategyDefinition } from '../kernel-api/strategy.ts';
import { KbufDriver, kbufCalls, type MmapInfo } from './kbuf-common.ts';

const NAME = 'kbuf-remap';

class KbufRemap extends KbufDriver {
  /** The example's open/close, which only print; no fault handler: every PTE exists from mmap on. */
  private readonly vmOps: VmOperations = { name: NAME, open: () => {}, close: () => {} };

  protected readonly fops: FileOperations = {
    name: NAME,
    mmap: (file, vma) => this.mmap(file, vma),
    release: (file) => this.release(file),
  };

  constructor(k: DriverKernel) {
    super(k, NAME);
  }

  private mmap(file: DriverFile, vma: DriverVma): Errno | 0 {
    if (!this.inBuffer(vma)) return 'EINVAL';
    const info = file.privateData as MmapInfo;
    vma.vmOps = this.vmOps;
    vma.privateData = info;
    for (let i = 0; i < vma.end - vma.start; i++) {
      const pfn = info.pages[vma.pgoff + i];
      this.k.SetPageReserved(pfn);
      const ret = this.k.remap_pfn_range(vma, vma.start + i, pfn, 1);
      if (ret) return ret;
    }
    return 0;
  }

  protected freeBufferPage(pfn: number): void {
    this.k.ClearPageReserved(pfn);
    this.k.__free_page(pfn);
  }
}

export const kbufRemap: StrategyDefinition = {
  name: NAME,
  seed: '002',
  title: 'driver buffer of reserved pages mapped with remap_pfn_range',
  promises: ['refcount-balance', 'mapcount', 'no-stale-pte', 'no-leak', 'slab'],
  calls: kbufCalls(NAME),
  create: (k) => new KbufRemap(k),
};
