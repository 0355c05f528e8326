/**
 * The driver-facing kernel API over the model (kernel-api/driver.ts): what a strategy may
 * call, with Linux's names and checks. remap_pfn_range and vmf_insert_pfn install special
 * PTEs that hold no reference; vm_insert_page installs a normal, refcounted one.
 */
import type {
  Capability, DriverKernel, DriverVma, FaultResult, FileOperations, MmHandle, MmuIntervalNotifier, MmuIntervalNotifierOps, PtraceMode,
} from '../kernel-api/driver.ts';
import { FOLL_GET, FOLL_PIN } from '../kernel-api/driver.ts';
import { PROT_WRITE } from '../kernel-api/op.ts';
import type { Errno } from '../kernel-api/outcome.ts';
import type { ModelDriverFile, ModelState, Process, Vma } from './types.ts';
import { assert } from './assert.ts';
import { allocFrame, frameOf, getPage, pfnValue, putPage, setPfnValue, shouldFailAlloc } from './frames.ts';
import { folioFreeSwap } from './swap.ts';
import { gupOne, ptraceMayAccess, unpinPage } from './access.ts';
import { runningProcess } from './process.ts';
import { vmaLookup } from './vma.ts';
import { mapFrame, zapRange } from './zap.ts';
import { inodeGet } from './pagecache.ts';
import { fileRelease } from './driverfile.ts';

/** The f_op of an fd on a regular file or shmem inode: mmap is the kernel's own. */
const INODE_FOPS: FileOperations = { name: 'file' };

function lowestFreeFd(proc: Process): number {
  let fd = 3;
  while (proc.fds.has(fd)) fd++;
  return fd;
}

export class ModelDriverKernel implements DriverKernel {
  constructor(private readonly s: ModelState) {}

  get zeroPfn(): number { return this.s.zeroPfn; }

  taskAlive(pid: number): boolean {
    return runningProcess(this.s, pid) !== undefined;
  }

  ptrace_may_access(caller: number, target: number, mode: PtraceMode): boolean {
    const c = runningProcess(this.s, caller);
    const t = runningProcess(this.s, target);
    return c !== undefined && t !== undefined && ptraceMayAccess(this.s, c, t, mode);
  }

  /** No capability model beyond uid: uid 0 holds every capability. */
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

  private liveMm(mm: MmHandle): Process | undefined {
    return runningProcess(this.s, mm.pid);
  }

  find_vma(mm: MmHandle, addr: number): DriverVma | null {
    const proc = this.liveMm(mm);
    return proc?.mm.vmas.find((v) => v.end > addr) ?? null;
  }

  find_exact_vma(mm: MmHandle, start: number, end: number): DriverVma | null {
    const vma = this.liveMm(mm) && vmaLookup(this.liveMm(mm)!.mm, start);
    return vma !== undefined && vma.start === start && vma.end === end ? vma : null;
  }

  get_user_pages_remote(mm: MmHandle, addr: number, gupFlags: number): number | Errno {
    const proc = this.liveMm(mm);
    return proc === undefined ? 'EFAULT' : gupOne(this.s, proc, addr, (gupFlags | FOLL_GET) & ~FOLL_PIN);
  }

  pin_user_pages_remote(mm: MmHandle, addr: number, gupFlags: number): number | Errno {
    const proc = this.liveMm(mm);
    return proc === undefined ? 'EFAULT' : gupOne(this.s, proc, addr, (gupFlags | FOLL_PIN) & ~FOLL_GET);
  }

  unpin_user_page(pfn: number): void {
    unpinPage(this.s, pfn);
    this.dropOrphanSwapCache(pfn);
  }

  get_page(pfn: number): void {
    if (pfn !== this.s.zeroPfn) getPage(frameOf(this.s, pfn));
  }

  put_page(pfn: number): void {
    if (pfn === this.s.zeroPfn) return;
    const frame = this.s.frames.get(pfn);
    assert(frame !== undefined, `put_page of freed pfn ${pfn}`, 'refcount-balance');
    putPage(this.s, frame);
    this.dropOrphanSwapCache(pfn);
  }

  /** An anonymous page nobody maps or holds but the swap cache is dropped from it. */
  private dropOrphanSwapCache(pfn: number): void {
    const frame = this.s.frames.get(pfn);
    if (frame !== undefined && frame.mapcount === 0 && frame.refcount === 1) folioFreeSwap(this.s, frame);
  }

  alloc_page(): number | null {
    return allocFrame(this.s, 'driver', 0)?.pfn ?? null;
  }

  __free_page(pfn: number): void {
    this.put_page(pfn);
  }

  SetPageReserved(pfn: number): void { frameOf(this.s, pfn).reserved = true; }
  ClearPageReserved(pfn: number): void { frameOf(this.s, pfn).reserved = false; }
  page_read(pfn: number): number { return pfnValue(this.s, pfn); }
  page_write(pfn: number, value: number): void { setPfnValue(this.s, pfn, value >>> 0); }

  kmalloc(tag: string): number | null {
    if (shouldFailAlloc(this.s)) return null;
    const id = this.s.nextSlabId++;
    this.s.slab.set(id, tag);
    return id;
  }

  kfree(obj: number): void {
    assert(this.s.slab.has(obj), `kfree of slab object ${obj} that is not allocated (double free)`, 'slab');
    this.s.slab.delete(obj);
  }

  /**
   * The process and VMA a driver names. f_op->mmap runs before mmap_region inserts the new
   * VMA (Linux calls the hook on a VMA not yet in the tree), so a VMA that is not in the
   * mm but whose range is free there is the one being set up and is accepted too.
   */
  private vmaOf(vma: DriverVma): [Process, Vma] {
    const proc = this.s.processes.get(vma.mm);
    assert(proc !== undefined, `driver passed a VMA map#${vma.id} of unknown P${vma.mm}`);
    const mapped = proc.mm.vmas.includes(vma as Vma);
    const beingMapped = !mapped && !proc.mm.vmas.some((v) => v.start < vma.end && v.end > vma.start);
    assert(mapped || beingMapped, `driver passed a VMA map#${vma.id} that is not mapped`);
    return [proc, vma as Vma];
  }

  /**
   * The process and VMA a driver installs PTEs into: vmaOf's, of a running process. An
   * exited process's mm was torn down by exit_mmap and its VMAs freed (a driver still using
   * one has a use after free); nothing may map into it again, which is what lets the
   * differential compare an exited process once, in the step it exits (properties/observe.ts).
   */
  private vmaToFill(dvma: DriverVma): [Process, Vma] {
    const [proc, vma] = this.vmaOf(dvma);
    assert(proc.state === 'running', `driver maps into map#${vma.id} of P${proc.pid}, which has exited: exit_mmap freed that VMA`);
    return [proc, vma];
  }

  private specialPte(proc: Process, vma: Vma, addr: number, pfn: number): void {
    assert(!proc.mm.ptes.has(addr), `remap over a live PTE at ${addr} of P${proc.pid}`);
    const write = vma.shared && (vma.prot & PROT_WRITE) !== 0;
    proc.mm.ptes.set(addr, { kind: 'present', pfn, write, dirty: false, softDirty: true, special: true, uffdWp: false });
  }

  remap_pfn_range(dvma: DriverVma, addr: number, pfn: number, nrPages: number): Errno | 0 {
    const [proc, vma] = this.vmaToFill(dvma);
    if (addr < vma.start || addr + nrPages > vma.end || nrPages <= 0) return 'EINVAL';
    if (!vma.shared && vma.mayWrite) {
      // A COW mapping may only be remapped whole, and its vm_pgoff becomes the pfn.
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
    const frame = frameOf(this.s, pfn);
    if (frame.kind === 'anon' || frame.refcount === 0) return 'EINVAL';
    if (proc.mm.ptes.has(addr)) return 'EBUSY';
    vma.mixedmap = true;
    getPage(frame);
    mapFrame(proc.mm, addr, frame, vma.shared && (vma.prot & PROT_WRITE) !== 0, false);
    return 0;
  }

  vmf_insert_pfn(dvma: DriverVma, addr: number, pfn: number): FaultResult {
    const [proc, vma] = this.vmaToFill(dvma);
    assert(vma.pfnmap || vma.mixedmap, `vmf_insert_pfn into map#${vma.id} without VM_PFNMAP or VM_MIXEDMAP`);
    if (addr < vma.start || addr >= vma.end) return { kind: 'sigbus' };
    if (!proc.mm.ptes.has(addr)) this.specialPte(proc, vma, addr, pfn);
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
    const n = { id: this.s.nextNotifierId++, mm: mm.pid, start, end: start + lengthPages, ops, seq: 0 };
    this.s.notifiers.set(n.id, n);
    return n;
  }

  mmu_interval_notifier_remove(n: MmuIntervalNotifier): void {
    assert(this.s.notifiers.has(n.id), `mmu_interval_notifier_remove of unknown notifier ${n.id}`);
    this.s.notifiers.delete(n.id);
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
    const file: ModelDriverFile = { id: this.s.nextDriverFileId++, fop, privateData, refcount: 1, released: false, inode: -1, mode: 'rw' };
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
    return (dvma as Vma).file;
  }

  fdget(pid: number, fd: number): ModelDriverFile | null {
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
