/**
 * The driver-facing kernel API over the model (kernel-api/driver.ts): what a strategy may
 * call, with Linux's names and checks. remap_pfn_range and vmf_insert_pfn install special
 * PTEs that hold no reference; vm_insert_page installs a normal, refcounted one.
 */
import type {
  Capability, DriverKernel, DriverVma, FaultResult, FileOperations, MmHandle, MmuIntervalNotifier, MmuIntervalNotifierOps, PtraceMode,
} from '../kernel-api/driver.ts';
import type { LockRef } from '../kernel-api/locks.ts';
import { DRIVER_POINT } from '../kernel-api/coverage.ts';
import { LockViolation } from '../kernel-api/locks.ts';
import type { Tid } from '../kernel-api/sched.ts';
import { mmapLock, notifierWq, pidOfTask, taskName, withPtl } from './locks.ts';
import { activeInvalidations, type ActiveInvalidation } from './notifier.ts';
import { FOLL_GET, FOLL_PIN, KMALLOC_PAGE } from '../kernel-api/driver.ts';
import { PROT_WRITE } from '../kernel-api/op.ts';
import type { Errno } from '../kernel-api/outcome.ts';
import type { ModelDriverFile, ModelState, Process, Vma } from './types.ts';
import { assert, KernelAssertionError } from './assert.ts';
import { allocFrame, frameOf, getPage, pfnValue, putPage, setPfnValue, shouldFailAlloc } from './frames.ts';
import { folioFreeSwap } from './swap.ts';
import { gupOne, ptraceMayAccess, unpinPage } from './access.ts';
import { runningProcess, threadsOf } from './process.ts';
import { vmaLookup } from './vma.ts';
import { mapFrame, zapRange } from './zap.ts';
import { inodeGet } from './pagecache.ts';
import { fileGet, fileRelease } from './driverfile.ts';

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
    this.s.locks.cover(DRIVER_POINT.taskAlive);
    return runningProcess(this.s, pid) !== undefined;
  }

  ptrace_may_access(caller: number, target: number, mode: PtraceMode): boolean {
    this.s.locks.cover(DRIVER_POINT.ptrace_may_access);
    const c = runningProcess(this.s, caller);
    const t = runningProcess(this.s, target);
    return c !== undefined && t !== undefined && ptraceMayAccess(this.s, c, t, mode);
  }

  /** No capability model beyond uid: uid 0 holds every capability. */
  capable(pid: number, _cap: Capability): boolean {
    this.s.locks.cover(DRIVER_POINT.capable);
    return runningProcess(this.s, pid)?.uid === 0;
  }

  get_task_mm(pid: number): MmHandle | null {
    this.s.locks.cover(DRIVER_POINT.get_task_mm);
    return runningProcess(this.s, pid) === undefined ? null : { pid, generation: 0 };
  }

  mmput(_mm: MmHandle): void {
    this.s.locks.cover(DRIVER_POINT.mmput);
  }

  mm_reaped(mm: MmHandle): boolean {
    this.s.locks.cover(DRIVER_POINT.mm_reaped);
    const proc = this.s.processes.get(mm.pid);
    return proc === undefined || proc.oomReaped || proc.state === 'exited';
  }

  private liveMm(mm: MmHandle): Process | undefined {
    return runningProcess(this.s, mm.pid);
  }

  find_vma(mm: MmHandle, addr: number): DriverVma | null {
    this.s.locks.cover(DRIVER_POINT.find_vma);
    const proc = this.liveMm(mm);
    return proc?.mm.vmas.find((v) => v.end > addr) ?? null;
  }

  find_exact_vma(mm: MmHandle, start: number, end: number): DriverVma | null {
    this.s.locks.cover(DRIVER_POINT.find_exact_vma);
    const vma = this.liveMm(mm) && vmaLookup(this.liveMm(mm)!.mm, start);
    return vma !== undefined && vma.start === start && vma.end === end ? vma : null;
  }

  /** mmap_assert_locked(mm): the caller must hold the mm's mmap_lock, read or write. */
  private assertMmapLocked(mm: MmHandle, fn: string): void {
    if (!this.s.locks.holds(mmapLock(this.s, mm.pid))) {
      throw new KernelAssertionError(`${fn} without mmap_lock of P${mm.pid} held (mmap_assert_locked)`, 'kernel-assert');
    }
  }

  get_user_pages_remote(mm: MmHandle, addr: number, gupFlags: number): number | Errno {
    this.s.locks.cover(DRIVER_POINT.get_user_pages_remote);
    this.assertMmapLocked(mm, 'get_user_pages_remote');
    const proc = this.liveMm(mm);
    return proc === undefined ? 'EFAULT' : gupOne(this.s, proc, addr, (gupFlags | FOLL_GET) & ~FOLL_PIN);
  }

  pin_user_pages_remote(mm: MmHandle, addr: number, gupFlags: number): number | Errno {
    this.s.locks.cover(DRIVER_POINT.pin_user_pages_remote);
    this.assertMmapLocked(mm, 'get_user_pages_remote');
    const proc = this.liveMm(mm);
    return proc === undefined ? 'EFAULT' : gupOne(this.s, proc, addr, (gupFlags | FOLL_PIN) & ~FOLL_GET);
  }

  unpin_user_page(pfn: number): void {
    this.s.locks.cover(DRIVER_POINT.unpin_user_page);
    unpinPage(this.s, pfn);
    this.dropOrphanSwapCache(pfn);
  }

  get_page(pfn: number): void {
    this.s.locks.cover(DRIVER_POINT.get_page);
    if (pfn !== this.s.zeroPfn) getPage(frameOf(this.s, pfn));
  }

  put_page(pfn: number): void {
    this.s.locks.cover(DRIVER_POINT.put_page);
    this.releasePage(pfn);
  }

  /** put_page's work, for __free_page and kfree too (counted as theirs). */
  private releasePage(pfn: number): void {
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
    this.s.locks.cover(DRIVER_POINT.alloc_page);
    this.s.locks.preemptPoint('alloc_page');
    return allocFrame(this.s, 'driver', 0)?.pfn ?? null;
  }

  __free_page(pfn: number): void {
    this.s.locks.cover(DRIVER_POINT.__free_page);
    this.releasePage(pfn);
  }

  SetPageReserved(pfn: number): void {
    this.s.locks.cover(DRIVER_POINT.SetPageReserved);
    frameOf(this.s, pfn).reserved = true;
  }
  ClearPageReserved(pfn: number): void {
    this.s.locks.cover(DRIVER_POINT.ClearPageReserved);
    frameOf(this.s, pfn).reserved = false;
  }
  page_read(pfn: number): number {
    this.s.locks.cover(DRIVER_POINT.page_read);
    return pfnValue(this.s, pfn);
  }
  page_write(pfn: number, value: number): void {
    this.s.locks.cover(DRIVER_POINT.page_write);
    setPfnValue(this.s, pfn, value >>> 0);
  }

  /**
   * kmalloc: a slab object. A page-sized one (bytes >= PAGE_SIZE, up to
   * KMALLOC_MAX_CACHE_SIZE: __kmalloc from the kmalloc-4k cache) has a page of its own
   * here, marked PageSlab: one object per slab page, the slab's reference its refcount
   * (Linux 6.18 allocates slab pages frozen, refcount 0; either way vm_insert_page refuses
   * them, validate_page_before_insert's folio_test_slab).
   */
  kmalloc(tag: string, gfp: 'GFP_KERNEL' | 'GFP_ATOMIC' = 'GFP_KERNEL', bytes = 0): number | null {
    this.s.locks.cover(DRIVER_POINT.kmalloc);
    assert(bytes <= KMALLOC_PAGE, `kmalloc of ${bytes} bytes: objects above a page (kmalloc-8k, kmalloc_large) are not modelled`);
    if (gfp === 'GFP_KERNEL') this.s.locks.preemptPoint('kmalloc');
    let page = -1;
    if (bytes >= KMALLOC_PAGE) {
      // One allocation, one fail_nth count: the slab page's (allocFrame counts it).
      const frame = allocFrame(this.s, 'driver', 0);
      if (frame === null) return null;
      page = frame.pfn;
    } else if (shouldFailAlloc(this.s)) return null;
    const id = this.s.nextSlabId++;
    this.s.slab.set(id, tag);
    if (page !== -1) {
      this.s.slabPage.set(id, page);
      this.s.slabPfns.add(page);
    }
    return id;
  }

  kfree(obj: number): void {
    this.s.locks.cover(DRIVER_POINT.kfree);
    assert(this.s.slab.has(obj), `kfree of slab object ${obj} that is not allocated (double free)`, 'slab');
    this.s.slab.delete(obj);
    const page = this.s.slabPage.get(obj);
    if (page === undefined) return;
    // The slab page goes back to the page allocator: its last reference, unless a PTE or GUP still holds one.
    this.s.slabPage.delete(obj);
    this.s.slabPfns.delete(page);
    this.releasePage(page);
  }

  virt_to_page(obj: number): number {
    this.s.locks.cover(DRIVER_POINT.virt_to_page);
    const page = this.s.slabPage.get(obj);
    assert(page !== undefined, `virt_to_page of slab object ${obj}, which has no page of its own (not a live page-sized kmalloc)`);
    return page;
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

  /**
   * remap_pfn_range: page-table allocation may sleep (a scheduling point), then the PTEs
   * under the mm's PTL. The VMA's flags are set before (vm_flags_set), as in Linux.
   */
  remap_pfn_range(dvma: DriverVma, addr: number, pfn: number, nrPages: number): Errno | 0 {
    this.s.locks.cover(DRIVER_POINT.remap_pfn_range);
    const [proc, vma] = this.vmaToFill(dvma);
    if (addr < vma.start || addr + nrPages > vma.end || nrPages <= 0) return 'EINVAL';
    if (!vma.shared && vma.mayWrite) {
      // A COW mapping may only be remapped whole, and its vm_pgoff becomes the pfn.
      if (addr !== vma.start || addr + nrPages !== vma.end) return 'EINVAL';
      vma.pgoff = pfn;
    }
    vma.io = vma.pfnmap = vma.dontexpand = true;
    this.s.locks.preemptPoint('remap_pfn_range');
    withPtl(this.s, proc.pid, 'remap_pfn_range', () => {
      for (let i = 0; i < nrPages; i++) this.specialPte(proc, vma, addr + i, pfn + i);
    });
    return 0;
  }

  /**
   * vm_insert_page (mm/memory.c): EFAULT outside the VMA; on a VMA not yet VM_MIXEDMAP,
   * BUG_ON(mmap_read_trylock(mm)) — the caller must hold the mmap_lock for write, as ->mmap
   * does (a fault handler, under the read lock, must have set VM_MIXEDMAP in ->mmap) — and
   * BUG_ON(VM_PFNMAP), then vm_flags_set(VM_MIXEDMAP); then insert_page:
   * validate_page_before_insert refuses (EINVAL) a page with no reference, an anonymous
   * page or a slab page (folio_test_slab: what kmalloc gives), then a point (get_locked_pte
   * may allocate a page table), then under the PTL insert_page_into_pte_locked: EBUSY
   * unless pte_none, else folio_get, inc_mm_counter(mm_counter_file),
   * folio_add_file_rmap_pte and the PTE (writable only in a shared writable VMA:
   * vm_page_prot).
   */
  vm_insert_page(dvma: DriverVma, addr: number, pfn: number): Errno | 0 {
    this.s.locks.cover(DRIVER_POINT.vm_insert_page);
    const [proc, vma] = this.vmaToFill(dvma);
    if (addr < vma.start || addr >= vma.end) return 'EFAULT';
    if (!vma.mixedmap) {
      assert(this.s.locks.holds(mmapLock(this.s, proc.pid), 'write'),
        `vm_insert_page into map#${vma.id} of P${proc.pid}, not VM_MIXEDMAP, without its mmap_lock held for write (BUG_ON(mmap_read_trylock))`);
      // BUG_ON(vma->vm_flags & VM_PFNMAP) before a VMA becomes VM_MIXEDMAP: a pfn map has no pages to count.
      assert(!vma.pfnmap, `vm_insert_page into map#${vma.id}, a VM_PFNMAP VMA`);
      vma.mixedmap = true;
    }
    const frame = frameOf(this.s, pfn);
    if (frame.refcount === 0 || frame.kind === 'anon' || this.s.slabPfns.has(pfn)) return 'EINVAL';
    this.s.locks.preemptPoint('vm_insert_page');
    return withPtl(this.s, proc.pid, 'vm_insert_page', () => {
      if (proc.mm.ptes.has(addr)) return 'EBUSY';
      // The page may have been freed while the task slept: the driver's reference keeps it.
      getPage(frameOf(this.s, pfn));
      mapFrame(proc.mm, addr, frameOf(this.s, pfn), vma.shared && (vma.prot & PROT_WRITE) !== 0, false);
      return 0;
    });
  }

  /** vmf_insert_pfn: a point (page-table allocation), then under the PTL; a PTE already there is left alone (VM_FAULT_NOPAGE). */
  vmf_insert_pfn(dvma: DriverVma, addr: number, pfn: number): FaultResult {
    this.s.locks.cover(DRIVER_POINT.vmf_insert_pfn);
    const [proc, vma] = this.vmaToFill(dvma);
    assert(vma.pfnmap || vma.mixedmap, `vmf_insert_pfn into map#${vma.id} without VM_PFNMAP or VM_MIXEDMAP`);
    if (addr < vma.start || addr >= vma.end) return { kind: 'sigbus' };
    this.s.locks.preemptPoint('vmf_insert_pfn');
    withPtl(this.s, proc.pid, 'vmf_insert_pfn', () => {
      if (!proc.mm.ptes.has(addr)) this.specialPte(proc, vma, addr, pfn);
    });
    return { kind: 'nopage' };
  }

  /** zap_page_range_single: the notifiers of vma's mm, then the PTEs under the PTL (zapRange). */
  zap_vma_ptes(dvma: DriverVma, addr: number, nrPages: number, atomic = false): boolean {
    this.s.locks.cover(DRIVER_POINT.zap_vma_ptes);
    const [proc, vma] = this.vmaOf(dvma);
    if (!vma.pfnmap || addr < vma.start || addr + nrPages > vma.end) return true;
    return zapRange(this.s, proc, addr, addr + nrPages, 'clear', undefined, !atomic);
  }

  /**
   * A point, then mmap_write_lock + unlock of `mm` (mmu_notifier_register's, taken on every
   * insert as Linux's might_lock would report it), then the interval is inserted.
   */
  mmu_interval_notifier_insert(mm: MmHandle, start: number, lengthPages: number, ops: MmuIntervalNotifierOps): MmuIntervalNotifier | Errno {
    this.s.locks.cover(DRIVER_POINT.mmu_interval_notifier_insert);
    if (this.liveMm(mm) === undefined) return 'ESRCH';
    if (lengthPages <= 0 || start < 0) return 'EINVAL';
    this.s.locks.preemptPoint('mmu_interval_notifier_insert');
    const l = mmapLock(this.s, mm.pid);
    this.s.locks.acquire(l, 'write', 'mmu_interval_notifier_insert');
    this.s.locks.release(l, 'mmu_interval_notifier_insert');
    if (this.liveMm(mm) === undefined) return 'ESRCH';
    const n = { id: this.s.nextNotifierId++, mm: mm.pid, start, end: start + lengthPages, ops, seq: 0 };
    this.s.notifiers.set(n.id, n);
    return n;
  }

  /**
   * An in-progress invalidation `fn` would wait for: by another task, the nested schedule
   * cannot go on (WouldBlock); by the current task itself, it waits forever (deadlock).
   */
  private waitForInvalidation(pid: number, active: ActiveInvalidation[], fn: string): void {
    if (active.length === 0) return;
    const me: Tid = this.s.locks.current;
    const own = active.find((i) => i.task === me);
    if (own !== undefined) {
      throw new LockViolation(
        `${taskName(this.s, me)} waits for its own invalidation of P${pid} [${own.start}, ${own.end}) in ${fn}: it would sleep forever`,
        'deadlock',
      );
    }
    this.s.locks.wait(notifierWq(this.s, pid), 'write', active[0]!.task, fn);
  }

  /** A point; waits for an invalidation of the notifier's mm in progress; then it is gone. */
  mmu_interval_notifier_remove(n: MmuIntervalNotifier): void {
    this.s.locks.cover(DRIVER_POINT.mmu_interval_notifier_remove);
    assert(this.s.notifiers.has(n.id), `mmu_interval_notifier_remove of unknown notifier ${n.id}`);
    this.s.locks.preemptPoint('mmu_interval_notifier_remove');
    this.waitForInvalidation(n.mm, activeInvalidations(this.s, n.mm), 'mmu_interval_notifier_remove');
    this.s.notifiers.delete(n.id);
  }

  /** A point; waits while an invalidation overlapping the interval is in progress; then the sequence. */
  mmu_interval_read_begin(n: MmuIntervalNotifier): number {
    this.s.locks.cover(DRIVER_POINT.mmu_interval_read_begin);
    this.s.locks.preemptPoint('mmu_interval_read_begin');
    this.waitForInvalidation(n.mm, activeInvalidations(this.s, n.mm, n.start, n.end), 'mmu_interval_read_begin');
    return this.seqOf(n);
  }

  private seqOf(n: MmuIntervalNotifier): number {
    return this.s.notifiers.get(n.id)?.seq ?? -1;
  }

  mmu_interval_read_retry(n: MmuIntervalNotifier, seq: number): boolean {
    this.s.locks.cover(DRIVER_POINT.mmu_interval_read_retry);
    return this.seqOf(n) !== seq;
  }

  mmu_interval_check_retry(n: MmuIntervalNotifier, seq: number): boolean {
    this.s.locks.cover(DRIVER_POINT.mmu_interval_check_retry);
    return this.seqOf(n) !== seq;
  }

  current(): Tid {
    this.s.locks.cover(DRIVER_POINT.current);
    return this.s.locks.current;
  }

  current_mm(): MmHandle {
    this.s.locks.cover(DRIVER_POINT.current_mm);
    return { pid: pidOfTask(this.s, this.s.locks.current), generation: 0 };
  }

  mmap_read_lock(mm: MmHandle): void {
    this.s.locks.cover(DRIVER_POINT.mmap_read_lock);
    this.s.locks.acquire(mmapLock(this.s, mm.pid), 'read', 'mmap_read_lock');
  }

  mmap_read_lock_killable(mm: MmHandle): 0 | 'EINTR' {
    this.s.locks.cover(DRIVER_POINT.mmap_read_lock_killable);
    this.s.locks.acquire(mmapLock(this.s, mm.pid), 'read', 'mmap_read_lock_killable');
    return 0;
  }

  mmap_read_unlock(mm: MmHandle): void {
    this.s.locks.cover(DRIVER_POINT.mmap_read_unlock);
    this.s.locks.release(mmapLock(this.s, mm.pid), 'mmap_read_unlock');
  }
  mmap_read_trylock(mm: MmHandle): boolean {
    this.s.locks.cover(DRIVER_POINT.mmap_read_trylock);
    return this.s.locks.tryAcquire(mmapLock(this.s, mm.pid), 'read', 'mmap_read_trylock');
  }

  mutex_init(cls: string): LockRef {
    this.s.locks.cover(DRIVER_POINT.mutex_init);
    return this.s.locks.newLock(cls, 'mutex', cls);
  }

  spin_lock_init(cls: string): LockRef {
    this.s.locks.cover(DRIVER_POINT.spin_lock_init);
    return this.s.locks.newLock(cls, 'spinlock', cls);
  }

  mutex_lock(l: LockRef): void {
    this.s.locks.cover(DRIVER_POINT.mutex_lock);
    this.s.locks.acquire(l, 'write', 'mutex_lock');
  }

  mutex_trylock(l: LockRef): boolean {
    this.s.locks.cover(DRIVER_POINT.mutex_trylock);
    return this.s.locks.tryAcquire(l, 'write', 'mutex_trylock');
  }

  mutex_unlock(l: LockRef): void {
    this.s.locks.cover(DRIVER_POINT.mutex_unlock);
    this.s.locks.release(l, 'mutex_unlock');
  }

  init_rwsem(cls: string): LockRef {
    this.s.locks.cover(DRIVER_POINT.init_rwsem);
    return this.s.locks.newLock(cls, 'rwsem', cls);
  }

  down_read(l: LockRef): void {
    this.s.locks.cover(DRIVER_POINT.down_read);
    this.s.locks.acquire(l, 'read', 'down_read');
  }

  down_read_trylock(l: LockRef): boolean {
    this.s.locks.cover(DRIVER_POINT.down_read_trylock);
    return this.s.locks.tryAcquire(l, 'read', 'down_read_trylock');
  }

  up_read(l: LockRef): void {
    this.s.locks.cover(DRIVER_POINT.up_read);
    this.s.locks.release(l, 'up_read');
  }

  down_write(l: LockRef): void {
    this.s.locks.cover(DRIVER_POINT.down_write);
    this.s.locks.acquire(l, 'write', 'down_write');
  }

  up_write(l: LockRef): void {
    this.s.locks.cover(DRIVER_POINT.up_write);
    this.s.locks.release(l, 'up_write');
  }

  spin_lock(l: LockRef): void {
    this.s.locks.cover(DRIVER_POINT.spin_lock);
    this.s.locks.spinLock(l, 'spin_lock');
  }

  spin_unlock(l: LockRef): void {
    this.s.locks.cover(DRIVER_POINT.spin_unlock);
    this.s.locks.release(l, 'spin_unlock');
  }

  init_srcu_struct(cls: string): LockRef {
    this.s.locks.cover(DRIVER_POINT.init_srcu_struct);
    return this.s.locks.newLock(cls, 'srcu', cls);
  }

  srcu_read_lock(l: LockRef): void {
    this.s.locks.cover(DRIVER_POINT.srcu_read_lock);
    this.s.locks.srcuReadLock(l, 'srcu_read_lock');
  }

  srcu_read_unlock(l: LockRef): void {
    this.s.locks.cover(DRIVER_POINT.srcu_read_unlock);
    this.s.locks.release(l, 'srcu_read_unlock');
  }

  synchronize_srcu(l: LockRef): void {
    this.s.locks.cover(DRIVER_POINT.synchronize_srcu);
    this.s.locks.synchronizeSrcu(l, 'synchronize_srcu');
  }

  srcu_readers_active(l: LockRef): boolean {
    this.s.locks.cover(DRIVER_POINT.srcu_readers_active);
    return this.s.locks.srcuReadersActive(l);
  }

  might_sleep(where: string): void {
    this.s.locks.cover(DRIVER_POINT.might_sleep);
    this.s.locks.preemptPoint(where);
  }

  anon_inode_getfd(pid: number, fop: FileOperations, privateData: unknown): number | Errno {
    this.s.locks.cover(DRIVER_POINT.anon_inode_getfd);
    const proc = runningProcess(this.s, pid);
    if (proc === undefined) return 'ESRCH';
    this.s.locks.preemptPoint('anon_inode_getfd');
    if (runningProcess(this.s, pid) !== proc) return 'ESRCH';
    if (shouldFailAlloc(this.s)) return 'ENOMEM';
    const fd = lowestFreeFd(proc);
    const file: ModelDriverFile = { id: this.s.nextDriverFileId++, fop, privateData, refcount: 1, released: false, inode: -1, mode: 'rw' };
    proc.fds.set(fd, file);
    return fd;
  }

  open_vma_file(pid: number, dvma: DriverVma, mode: 'r' | 'rw'): number | Errno {
    this.s.locks.cover(DRIVER_POINT.open_vma_file);
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
    this.s.locks.cover(DRIVER_POINT.vma_inode);
    return (dvma as Vma).file;
  }

  /**
   * fdget: the file, with a reference the operation holds until it returns (fdput) when
   * the process has other threads (its file table is shared: __fget_light takes one); a
   * single-threaded process's fdget takes none, as Linux's.
   */
  fdget(pid: number, fd: number): ModelDriverFile | null {
    this.s.locks.cover(DRIVER_POINT.fdget);
    const file = runningProcess(this.s, pid)?.fds.get(fd) ?? null;
    if (file === null || threadsOf(this.s, pid).length <= 1) return file;
    fileGet(file);
    const tid = this.s.locks.current;
    const held = this.s.fdgetHeld.get(tid);
    if (held === undefined) this.s.fdgetHeld.set(tid, [file]);
    else held.push(file);
    return file;
  }

  close_fd(pid: number, fd: number): Errno | 0 {
    this.s.locks.cover(DRIVER_POINT.close_fd);
    const proc = runningProcess(this.s, pid);
    const file = proc?.fds.get(fd);
    if (proc === undefined || file === undefined) return 'EBADF';
    proc.fds.delete(fd);
    fileRelease(this.s, file);
    return 0;
  }
}
