/**
 * Seed 002, first answer and the runnable example: a driver buffer mapped by a fault
 * handler that hands out get_page'd pages (vmf->page = my_page_at_index(vmf->pgoff)).
 * Each PTE is a normal, refcounted mapping of a driver page, so two mappings of one buffer
 * share the page and the fd's read/write see what they see. Open/read/write/release are
 * in kbuf-common.ts.
 */
import type { DriverFile, DriverKernel, DriverVma, FaultResult, FileOperations, VmOperations } from '../kernel-api/driver.ts';
import type { Errno } from '../kernel-api/outcome.ts';
import type { StrategyDefinition } from '../kernel-api/strategy.ts';
import { KbufDriver, kbufCalls, type MmapInfo } from './kbuf-common.ts';

const NAME = 'kbuf-fault';

class KbufFault extends KbufDriver {
  /** The example's vm_ops: open and close only print; fault does the work. */
  private readonly vmOps: VmOperations = {
    name: NAME,
    open: () => {},
    close: () => {},
    fault: (vma, _addr, pgoff, _write, _flags) => this.vmFault(vma, pgoff),
  };

  protected readonly fops: FileOperations = {
    name: NAME,
    mmap: (file, vma) => this.mmap(file, vma),
    release: (file) => this.release(file),
  };

  constructor(k: DriverKernel) {
    super(k, NAME);
  }

  /** The example's mmap, plus the range check the first answer asks for. */
  private mmap(file: DriverFile, vma: DriverVma): Errno | 0 {
    if (!this.inBuffer(vma)) return 'EINVAL';
    vma.vmOps = this.vmOps;
    vma.dontexpand = true; // VM_DONTEXPAND | VM_DONTDUMP
    vma.privateData = file.privateData;
    this.vmOps.open!(vma);
    return 0;
  }

  /** vm_fault: the buffer page at vmf->pgoff, with a reference the new PTE will own. No lock, no sleep. */
  private vmFault(vma: DriverVma, pgoff: number): FaultResult {
    const info = vma.privateData as MmapInfo;
    const page = info.pages[pgoff];
    this.k.get_page(page);
    return { kind: 'page', pfn: page };
  }

  protected freeBufferPage(pfn: number): void {
    this.k.__free_page(pfn); // free_page(info->data)
  }
}

export const kbufFault: StrategyDefinition = {
  name: NAME,
  seed: '002',
  title: 'driver buffer mapped by a fault handler handing out get_page\'d pages',
  // A minimal driver that claims to work: every reference it takes is dropped (refcount-
  // balance, mapcount, no-stale-pte, no-leak), every object it allocates is freed (slab).
  // It makes no claim about allocation failure: the example's open() dereferences what
  // kmalloc and get_zeroed_page return unchecked, which the fuzzer finds (kernel-assert).
  promises: ['refcount-balance', 'mapcount', 'no-stale-pte', 'no-leak', 'slab'],
  calls: kbufCalls(NAME),
  create: (k) => new KbufFault(k),
};
