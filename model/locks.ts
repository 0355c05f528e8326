/**
 * The model's locks, named as CONCURRENCY-SPEC.md's table says: each mm's mmap_lock, the
 * page-table lock, the rmap locks (i_mmap_rwsem, anon_vma->rwsem), and the naming-only lock
 * of an in-progress MMU notifier invalidation. All of them live in the kernel's LockTable.
 * The refs of the numbered ones are kept in `s.lockRefs` once looked up (the table's lookup
 * builds a string key; nothing drops these locks, so a ref stays the table's).
 */
import type { LockMode, LockRef } from '../kernel-api/locks.ts';
import type { Tid } from '../kernel-api/sched.ts';
import type { ModelState } from './types.ts';
import { fileRelease, fileReleaseNow } from './driverfile.ts';

export function mmapLock(s: ModelState, pid: number): LockRef {
  let l = s.lockRefs.mmap.get(pid);
  if (l === undefined) s.lockRefs.mmap.set(pid, (l = s.locks.lock(`mmap_lock:P${pid}`, 'mmap_lock', 'rwsem', `mmap_lock of P${pid}`)));
  return l;
}

export function iMmapLock(s: ModelState, file: number): LockRef {
  let l = s.lockRefs.iMmap.get(file);
  if (l === undefined) s.lockRefs.iMmap.set(file, (l = s.locks.lock(`i_mmap:F${file}`, 'i_mmap_rwsem', 'rwsem', `i_mmap_rwsem of file ${file}`)));
  return l;
}

export function anonVmaLock(s: ModelState, anonVma: number): LockRef {
  let l = s.lockRefs.anonVma.get(anonVma);
  if (l === undefined) s.lockRefs.anonVma.set(anonVma, (l = s.locks.lock(`anon_vma:${anonVma}`, 'anon_vma->rwsem', 'rwsem', `anon_vma ${anonVma}`)));
  return l;
}

export function ptl(s: ModelState, pid: number): LockRef {
  let l = s.lockRefs.ptl.get(pid);
  if (l === undefined) s.lockRefs.ptl.set(pid, (l = s.locks.lock(`ptl:P${pid}`, 'ptl', 'spinlock', `PTL of P${pid}`)));
  return l;
}

/**
 * mapping->invalidate_lock of `file`: a hole punch holds it for write (shmem_fallocate's
 * shmem_falloc, a filesystem's filemap_invalidate_lock), a fault that must bring a page into
 * the page cache takes it for read (filemap_fault's filemap_invalidate_lock_shared; shmem's
 * shmem_falloc_wait): no fault fills the hole while it is punched.
 */
export function invalidateLock(s: ModelState, file: number): LockRef {
  let l = s.lockRefs.invalidate.get(file);
  if (l === undefined) s.lockRefs.invalidate.set(file, (l = s.locks.lock(`invalidate_lock:F${file}`, 'mapping->invalidate_lock', 'rwsem', `invalidate_lock of file ${file}`)));
  return l;
}

export function notifierWq(s: ModelState, pid: number): LockRef {
  return s.locks.lock(`mmu_notifier_wq:P${pid}`, 'mmu_notifier_wq', 'mutex', `the MMU notifier invalidation of P${pid}`);
}

/** The process a task belongs to (task 0, a kernel thread, has none: 0). */
export function pidOfTask(s: ModelState, tid: Tid): number {
  return s.threads.get(tid) ?? tid;
}

/** How tasks are named in lock messages: P<pid> for a main thread, T<tid> for another thread. */
export function taskName(s: ModelState, tid: Tid): string {
  const pid = s.threads.get(tid);
  return pid !== undefined && pid !== tid ? `T${tid}` : `P${tid}`;
}

/** Release `ref` if the current task still holds it (an error path unwinding). */
export function releaseIfHeld(s: ModelState, ref: LockRef, where: string): void {
  if (s.locks.holds(ref)) s.locks.release(ref, where);
}

/**
 * Run `f` holding `ref` (acquired with its scheduling point). Released after `f`, then
 * the fput()s deferred while it was held run (task work), unless the task holds more.
 * An error unwinding releases it only if still held (a hook may have dropped it).
 */
export function withLock<T>(s: ModelState, ref: LockRef, mode: LockMode, where: string, f: () => T, subclass = 0): T {
  s.locks.acquire(ref, mode, where, subclass);
  let r: T;
  try {
    r = f();
  } catch (e) {
    releaseIfHeld(s, ref, where);
    throw e;
  }
  s.locks.release(ref, where);
  runDeferredFput(s);
  return r;
}

/** mmap_read_lock / mmap_write_lock of `pid`'s mm around `f`. */
export function withMmapLock<T>(s: ModelState, pid: number, mode: LockMode, where: string, f: () => T): T {
  return withLock(s, mmapLock(s, pid), mode, where, f);
}

/** PTL of `pid`'s mm around `f` (a spinlock: no scheduling point). */
export function withPtl<T>(s: ModelState, pid: number, where: string, f: () => T): T {
  const l = ptl(s, pid);
  s.locks.spinLock(l, where);
  let r: T;
  try {
    r = f();
  } catch (e) {
    releaseIfHeld(s, l, where);
    throw e;
  }
  s.locks.release(l, where);
  return r;
}

/** fdput of every file the current task's fdget took a reference to during its operation. */
export function fdputAll(s: ModelState): void {
  if (s.fdgetHeld.size === 0) return;
  const list = s.fdgetHeld.get(s.locks.current);
  if (list === undefined) return;
  s.fdgetHeld.delete(s.locks.current);
  for (const file of list) fileRelease(s, file);
}

/** task_work_run: the fput()s the current task deferred, once it holds no lock. */
export function runDeferredFput(s: ModelState): void {
  const tid = s.locks.current;
  if (s.deferredFput.size === 0 || s.locks.holdsAny(tid)) return;
  const list = s.deferredFput.get(tid);
  while (list !== undefined && list.length > 0) fileReleaseNow(s, list.shift()!);
  s.deferredFput.delete(tid);
}
