/**
 * File calls on regular files: creat, pread, pwrite and truncate, all through the page
 * cache as in mm/filemap.c. pread past the end returns -1 (a read of zero bytes).
 */
import type { CreatOp, PreadOp, PwriteOp, TruncateOp } from '../kernel-api/op.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { File, ModelState } from './types.ts';
import { findOrCreatePage, newFile, truncateFile } from './pagecache.ts';

/** Files are at most this many pages (a limit on everything; EFBIG past it). */
export const FILE_PAGES_MAX = 1 << 20;

function regularFile(s: ModelState, id: number): File | undefined {
  const file = s.files.get(id);
  return file !== undefined && !file.shmem ? file : undefined;
}

const validIndex = (n: number) => Number.isSafeInteger(n) && n >= 0;

export function creat(s: ModelState, op: CreatOp): Outcome {
  if (!validIndex(op.sizePages) || op.sizePages > FILE_PAGES_MAX) return err('EINVAL');
  return ok(newFile(s, op.sizePages, false).id);
}

export function pread(s: ModelState, op: PreadOp): Outcome {
  const file = regularFile(s, op.file);
  if (file === undefined) return err('EBADF');
  if (!validIndex(op.index)) return err('EINVAL');
  if (op.index >= file.sizePages) return ok(-1);
  const page = findOrCreatePage(s, file, op.index);
  if (page === null) return err('ENOMEM');
  page.lru = s.step;
  return ok(page.value);
}

export function pwrite(s: ModelState, op: PwriteOp): Outcome {
  const file = regularFile(s, op.file);
  if (file === undefined) return err('EBADF');
  if (!validIndex(op.index)) return err('EINVAL');
  if (op.index >= FILE_PAGES_MAX) return err('EINVAL');
  const page = findOrCreatePage(s, file, op.index);
  if (page === null) return err('ENOMEM');
  page.value = op.value >>> 0;
  page.dirty = true;
  page.lru = s.step;
  if (op.index >= file.sizePages) file.sizePages = op.index + 1;
  return ok(0);
}

export function truncate(s: ModelState, op: TruncateOp): Outcome {
  const file = regularFile(s, op.file);
  if (file === undefined) return err('EBADF');
  if (!validIndex(op.sizePages) || op.sizePages > FILE_PAGES_MAX) return err('EINVAL');
  truncateFile(s, file, op.sizePages);
  return ok(0);
}
