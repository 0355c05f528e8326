/**
 * The driver-facing kernel API over the optimised kernel (kernel-api/driver.ts), with the
 * model's semantics (model/driverapi.ts). Every pfn handed to a driver is marked exposed,
 * so that if the driver keeps it past the frame's life the pfn is never reused.
 */
import type {
  Capability, DriverKernel, DriverVma, FaultResult, FileOperations, MmHandle, MmuIntervalNotifier, MmuIntervalNotifierOps, PtraceMode,
} from '../kernel-api/driver.ts';
import { FOLL_GET, FOLL_PIN } from '../kernel-api/driver.ts';
import { PROT_WRITE } from '../kernel-api/op.ts';
import type { Errno } from '../kernel-api/outcome.ts';
import type { ImplDriverFile, ImplNotifier, ImplProcess, ImplState } from './types.ts';
import { ImplVma } from './types.ts';
import { fail } from './assert.ts';
import { allocFrame, exposePfn, frameOf, getPage, pfnValue, putPage, setPfnValue, shouldFailAlloc } from './frames.ts';
import { F_KIND, F_RESERVED, KIND_ANON, KIND_DRIVER } from './framepool.ts';
import { PTE_PRESENT, PTE_SOFT_DIRTY, PTE_SPECIAL, PTE_WRITE } from './pagetable.ts';
import { folioFreeSwap } from './swap.ts';
import { gupOne, ptraceMayAccess, unpinPage } from './access.ts';
import { runningProcess } from './process.ts';
import { vmaLookup } from './vma.ts';
import { mapFrame, zapRange } from './zap.ts';
import { inodeGet } from './pagecache.ts';
import { fileRelease } from './driverfile.ts';
import { rangeIsFree } from './mmap.ts';
import { IntervalTree } from './intervaltree.ts';

const INODE_FOPS: FileOperations = { name: 'file' };

function lowestFreeFd(proc: ImplProcess): number {
  let fd = 3;
  while (proc.fds.has(fd)) fd++;
  return fd;
}

export class ImplDriverKernel implements DriverKernel {
  constructor(private readonly s: ImplState) {}

  get zeroPfn(): number { return this.s.zeroPfn; }

  taskAlive(pid: number): boolean {
    return runningProcess(this.s, pid) !== undefined;
  }

  ptrace_may_access(caller: number, target: number, mode: PtraceMode): boolean {
    const c = runningProcess(this.s, caller);
    const t = runningProcess(this.s, target);
    return c !== undefined && t !== undefined && ptraceMayAccess(this.s, c, t, mode);
  }

  capable(pid: number, _cap: Capability): boolean {
    return runningProcess(this.s, pid)?.uid === 0;
  }

  get_task_mm(pid: number): MmHandle | null {
    return runningProcess(this.s, pid) === undefined ? null : { pid, generation: 0 };
  }

  mmput(_mm: MmHandle): void {}

  mm_reaped(mm: MmHandle): boolean {
    const proc = this.s.processes.get(mm.pid);
    return proc === undefined || proc.oomReaped || proc.state === 'exited';
  }

  private liveMm(mm: MmHandle): ImplProcess | undefined {
    return runningProcess(this.s, mm.pid);
  }

  find_vma(mm: MmHandle, addr: number): DriverVma | null {
    return this.liveMm(mm)?.mm.vmas.find(addr) ?? null;
  }

  find_exact_vma(mm: MmHandle, start: number, end: number): DriverVma | null {
    const proc = this.liveMm(mm);
    const vma = proc && vmaLookup(proc.mm, start);
    return vma !== undefined && vma.start === start && vma.end === end ? vma : null;
  }

  private expose(r: number | Errno): number | Errno {
    if (typeof r === 'number') exposePfn(this.s, r);
    return r;
  }

  get_user_pages_remote(mm: MmHandle, addr: number, gupFlags: number): number | Errno {
    const proc = this.liveMm(mm);
    return proc === undefined ? 'EFAULT' : this.expose(gupOne(this.s, proc, addr, (gupFlags | FOLL_GET) & ~FOLL_PIN));
  }

  pin_user_pages_remote(mm: MmHandle, addr: number, gupFlags: number): number | Errno {
    const proc = this.liveMm(mm);
    return proc === undefined ? 'EFAULT' : this.expose(gupOne(this.s, proc, addr, (gupFlags | FOLL_PIN) & ~FOLL_GET));
  }

  unpin_user_page(pfn: number): void {
    unpinPage(this.s, pfn);
    this.dropOrphanSwapCache(pfn);
  }

  get_page(pfn: number): void {
    if (pfn !== this.s.zeroPfn) getPage(this.s, frameOf(this.s, pfn));
  }

  put_page(pfn: number): void {
    if (pfn === this.s.zeroPfn) return;
    if (!(this.s.pool.isLive(pfn))) fail(`put_page of freed pfn ${pfn}`, 'refcount-balance');
    putPage(this.s, pfn);
    this.dropOrphanSwapCache(pfn);
  }

  private dropOrphanSwapCache(pfn: number): void {
    const pool = this.s.pool;
    if (pool.isLive(pfn) && pool.mapcount[pfn] === 0 && pool.refcount[pfn] === 1) folioFreeSwap(this.s, pfn);
  }

  alloc_page(): number | null {
    const pfn = allocFrame(this.s, KIND_DRIVER, 0);
    if (pfn === -1) return null;
    exposePfn(this.s, pfn);
    return pfn;
  }

  __free_page(pfn: number): void {
    this.put_page(pfn);
  }

  SetPageReserved(pfn: number): void { this.s.pool.flags[frameOf(this.s, pfn)] |= F_RESERVED; }
  ClearPageReserved(pfn: number): void { this.s.pool.flags[frameOf(this.s, pfn)] &= ~F_RESERVED; }
  page_read(pfn: number): number { return pfnValue(this.s, pfn); }
  page_write(pfn: number, value: number): void { setPfnValue(this.s, pfn, value >>> 0); }

  kmalloc(tag: string): number | null {
    if (shouldFailAlloc(this.s)) return null;
    const id = this.s.nextSlabId++;
    this.s.slab.set(id, tag);
    return id;
  }

  kfree(obj: number): void {
    if (!(this.s.slab.has(obj))) fail(`kfree of slab object ${obj} that is not allocated (double free)`, 'slab');
    this.s.slab.delete(obj);
  }

  /** The process and VMA a driver names; a VMA still being set up by f_op->mmap is accepted. */
  private vmaOf(vma: DriverVma): [ImplProcess, ImplVma] {
    const proc = this.s.processes.get(vma.mm);
    if (!(proc !== undefined)) fail(`driver passed a VMA map#${vma.id} of unknown P${vma.mm}`);
    const mapped = vma instanceof ImplVma && proc.mm.vmas.has(vma);
    const beingMapped = !mapped && rangeIsFree(proc, vma.start, vma.end);
    if (!(mapped || beingMapped)) fail(`driver passed a VMA map#${vma.id} that is not mapped`);
    return [proc, vma as ImplVma];
  }

  /**
   * The process and VMA a driver installs PTEs into: vmaOf's, of a running process. An
   * exited process's mm was torn down by exit_mmap and its VMAs freed (a driver still using
   * one has a use after free); nothing may map into it again, which is what lets the
   * differential compare an exited process once, in the step it exits (properties/observe.ts).
   */
  private vmaToFill(dvma: DriverVma): [ImplProcess, ImplVma] {
    const [proc, vma] = this.vmaOf(dvma);
    if (!(proc.state === 'running')) fail(`driver maps into map#${vma.id} of P${proc.pid}, which has exited: exit_mmap freed that VMA`);
    return [proc, vma];
  }

  private specialPte(proc: ImplProcess, vma: ImplVma, addr: number, pfn: number): void {
    if (!(proc.mm.pt.flags(addr) === 0)) fail(`remap over a live PTE at ${addr} of P${proc.pid}`);
    const write = vma.shared && (vma.prot & PROT_WRITE) !== 0;
    exposePfn(this.s, pfn);
    proc.mm.pt.set(addr, pfn, PTE_PRESENT | PTE_SOFT_DIRTY | PTE_SPECIAL | (write ? PTE_WRITE : 0));
  }

  remap_pfn_range(dvma: DriverVma, addr: number, pfn: number, nrPages: number): Errno | 0 {
    const [proc, vma] = this.vmaToFill(dvma);
    if (addr < vma.start || addr + nrPages > vma.end || nrPages <= 0) return 'EINVAL';
    if (!vma.shared && vma.mayWrite) {
      if (addr !== vma.start || addr + nrPages !== vma.end) return 'EINVAL';
      vma.pgoff = pfn;
    }
    vma.io = vma.pfnmap = vma.dontexpand = true;
    for (let i = 0; i < nrPages; i++) this.specialPte(proc, vma, addr + i, pfn + i);
    return 0;
  }

  vm_insert_page(dvma: DriverVma, addr: number, pfn: number): Errno | 0 {
    const [proc, vma] = this.vmaToFill(dvma);
    if (addr < vma.start || addr >= vma.end) return 'EFAULT';
    const page = frameOf(this.s, pfn);
    if ((this.s.pool.flags[page] & F_KIND) === KIND_ANON || this.s.pool.refcount[page] === 0) return 'EINVAL';
    if (proc.mm.pt.flags(addr) !== 0) return 'EBUSY';
    vma.mixedmap = true;
    exposePfn(this.s, page);
    getPage(this.s, page);
    mapFrame(this.s, proc.mm, addr, page, vma.shared && (vma.prot & PROT_WRITE) !== 0, false);
    return 0;
  }

  vmf_insert_pfn(dvma: DriverVma, addr: number, pfn: number): FaultResult {
    const [proc, vma] = this.vmaToFill(dvma);
    if (!(vma.pfnmap || vma.mixedmap)) fail(`vmf_insert_pfn into map#${vma.id} without VM_PFNMAP or VM_MIXEDMAP`);
    if (addr < vma.start || addr >= vma.end) return { kind: 'sigbus' };
    if (proc.mm.pt.flags(addr) === 0) this.specialPte(proc, vma, addr, pfn);
    return { kind: 'nopage' };
  }

  zap_vma_ptes(dvma: DriverVma, addr: number, nrPages: number): void {
    const [proc, vma] = this.vmaOf(dvma);
    if (!vma.pfnmap || addr < vma.start || addr + nrPages > vma.end) return;
    zapRange(this.s, proc, addr, addr + nrPages, 'clear');
  }

  mmu_interval_notifier_insert(mm: MmHandle, start: number, lengthPages: number, ops: MmuIntervalNotifierOps): MmuIntervalNotifier | Errno {
    if (this.liveMm(mm) === undefined) return 'ESRCH';
    if (lengthPages <= 0 || start < 0) return 'EINVAL';
    const n: ImplNotifier = { id: this.s.nextNotifierId++, mm: mm.pid, start, end: start + lengthPages, ops, seq: 0 };
    this.s.notifiers.set(n.id, n);
    let tree = this.s.notifierTrees.get(n.mm);
    if (tree === undefined) {
      tree = new IntervalTree<ImplNotifier>();
      this.s.notifierTrees.set(n.mm, tree);
    }
    tree.insert(n.start, n.end, n.id, n);
    return n;
  }

  mmu_interval_notifier_remove(n: MmuIntervalNotifier): void {
    if (!(this.s.notifiers.has(n.id))) fail(`mmu_interval_notifier_remove of unknown notifier ${n.id}`);
    const stored = this.s.notifiers.get(n.id)!;
    this.s.notifiers.delete(n.id);
    const tree = this.s.notifierTrees.get(stored.mm)!;
    tree.remove(stored.start, stored.id);
    if (tree.size === 0) this.s.notifierTrees.delete(stored.mm);
  }

  mmu_interval_read_begin(n: MmuIntervalNotifier): number {
    return this.s.notifiers.get(n.id)?.seq ?? -1;
  }

  mmu_interval_read_retry(n: MmuIntervalNotifier, seq: number): boolean {
    return this.mmu_interval_read_begin(n) !== seq;
  }

  anon_inode_getfd(pid: number, fop: FileOperations, privateData: unknown): number | Errno {
    const proc = runningProcess(this.s, pid);
    if (proc === undefined) return 'ESRCH';
    if (shouldFailAlloc(this.s)) return 'ENOMEM';
    const fd = lowestFreeFd(proc);
    const file: ImplDriverFile = { id: this.s.nextDriverFileId++, fop, privateData, refcount: 1, released: false, inode: -1, mode: 'rw' };
    proc.fds.set(fd, file);
    return fd;
  }

  open_vma_file(pid: number, dvma: DriverVma, mode: 'r' | 'rw'): number | Errno {
    const [, vma] = this.vmaOf(dvma);
    if (vma.file === -1) return 'EBADF';
    const proc = runningProcess(this.s, pid);
    if (proc === undefined) return 'ESRCH';
    if (shouldFailAlloc(this.s)) return 'ENOMEM';
    const fd = lowestFreeFd(proc);
    proc.fds.set(fd, { id: this.s.nextDriverFileId++, fop: INODE_FOPS, privateData: null, refcount: 1, released: false, inode: vma.file, mode });
    inodeGet(this.s, vma.file);
    return fd;
  }

  vma_inode(dvma: DriverVma): number {
    return (dvma as ImplVma).file;
  }

  fdget(pid: number, fd: number): ImplDriverFile | null {
    return runningProcess(this.s, pid)?.fds.get(fd) ?? null;
  }

  close_fd(pid: number, fd: number): Errno | 0 {
    const proc = runningProcess(this.s, pid);
    const file = proc?.fds.get(fd);
    if (proc === undefined || file === undefined) return 'EBADF';
    proc.fds.delete(fd);
    fileRelease(this.s, file);
    return 0;
  }
}
