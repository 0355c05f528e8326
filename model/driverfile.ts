/**
 * Driver files (struct file with f_op): fds and VMAs each hold a reference (f_count);
 * the last fput calls ->release.
 */
import type { ModelDriverFile, ModelState } from './types.ts';
import { assert } from './assert.ts';
import { inodePut } from './pagecache.ts';

export function fileGet(file: ModelDriverFile): void {
  assert(!file.released, `get of released driver file ${file.id}`);
  file.refcount += 1;
}

/** fput: the last reference calls f_op->release. */
export function fileRelease(s: ModelState, file: ModelDriverFile): void {
  assert(file.refcount > 0, `fput of driver file ${file.id} with f_count ${file.refcount}`);
  file.refcount -= 1;
  if (file.refcount > 0) return;
  file.released = true;
  file.fop.release?.(file);
  inodePut(s, file.inode);
}
