/**
 * Driver files (struct file with f_op): fds and VMAs each hold a reference (f_count); the
 * last fput calls ->release and drops the inode an inode fd names. fput defers __fput to
 * task work (it runs on the way back to user space): the last fput of a task holding a lock
 * (munmap or exit under mmap_lock) runs ->release only once the lock is dropped
 * (impl/locks.ts runDeferredFput), as model/driverfile.ts does.
 */
import type { ImplDriverFile, ImplState } from './types.ts';
import { fail } from './assert.ts';
import { inodePut } from './pagecache.ts';

export function fileGet(file: ImplDriverFile): void {
  if (!(!file.released)) fail(`get of released driver file ${file.id}`);
  file.refcount += 1;
}

/** fput: the last reference calls f_op->release (deferred while the task holds a lock). */
export function fileRelease(s: ImplState, file: ImplDriverFile): void {
  if (!(file.refcount > 0)) fail(`fput of driver file ${file.id} with f_count ${file.refcount}`);
  file.refcount -= 1;
  if (file.refcount > 0) return;
  const tid = s.locks.current;
  if (s.locks.holdsAny(tid)) {
    const list = s.deferredFput.get(tid);
    if (list === undefined) s.deferredFput.set(tid, [file]);
    else list.push(file);
    return;
  }
  fileReleaseNow(s, file);
}

/** __fput: ->release and the inode reference. */
export function fileReleaseNow(s: ImplState, file: ImplDriverFile): void {
  file.released = true;
  file.fop.release?.(file);
  inodePut(s, file.inode);
}
