/**
 * Driver files (struct file with f_op): fds and VMAs each hold a reference (f_count); the
 * last fput calls ->release and drops the inode an inode fd names.
 */
import type { ImplDriverFile, ImplState } from './types.ts';
import { fail } from './assert.ts';
import { inodePut } from './pagecache.ts';

export function fileGet(file: ImplDriverFile): void {
  if (!(!file.released)) fail(`get of released driver file ${file.id}`);
  file.refcount += 1;
}

export function fileRelease(s: ImplState, file: ImplDriverFile): void {
  if (!(file.refcount > 0)) fail(`fput of driver file ${file.id} with f_count ${file.refcount}`);
  file.refcount -= 1;
  if (file.refcount > 0) return;
  file.released = true;
  file.fop.release?.(file);
  inodePut(s, file.inode);
}
