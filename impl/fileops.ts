/**
 * File calls on regular files: creat, pread, pwrite and truncate, through the page cache
 * as in mm/filemap.c. pread past the end returns -1 (a read of zero bytes).
 */
import type { CreatOp, PreadOp, PwriteOp, TruncateOp } from '../kernel-api/op.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { ImplFile, ImplState } from './types.ts';
import { F_DIRTY } from './framepool.ts';
import { findOrCreatePage, newFile, truncateFile } from './pagecache.ts';

/** Files are at most this many pages (EINVAL past it), as in the model. */
export const FILE_PAGES_MAX = 1 << 20;

function regularFile(s: ImplState, id: number): ImplFile | undefined {
  const file = s.files.get(id);
  return file !== undefined && !file.shmem ? file : undefined;
}

const validIndex = (n: number) => Number.isSafeInteger(n) && n >= 0;

export function creat(s: ImplState, op: CreatOp): Outcome {
  if (!validIndex(op.sizePages) || op.sizePages > FILE_PAGES_MAX) return err('EINVAL');
  return ok(newFile(s, op.sizePages, false).id);
}

export function pread(s: ImplState, op: PreadOp): Outcome {
  const file = regularFile(s, op.file);
  if (file === undefined) return err('EBADF');
  if (!validIndex(op.index)) return err('EINVAL');
  if (op.index >= file.sizePages) return ok(-1);
  const page = findOrCreatePage(s, file, op.index);
  if (page === -1) return err('ENOMEM');
  s.lru.touch(page, s.step);
  return ok(s.pool.value[page]);
}

export function pwrite(s: ImplState, op: PwriteOp): Outcome {
  const file = regularFile(s, op.file);
  if (file === undefined) return err('EBADF');
  if (!validIndex(op.index)) return err('EINVAL');
  if (op.index >= FILE_PAGES_MAX) return err('EINVAL');
  const page = findOrCreatePage(s, file, op.index);
  if (page === -1) return err('ENOMEM');
  s.pool.value[page] = op.value >>> 0;
  s.pool.flags[page] |= F_DIRTY;
  s.lru.touch(page, s.step);
  if (op.index >= file.sizePages) file.sizePages = op.index + 1;
  return ok(0);
}

export function truncate(s: ImplState, op: TruncateOp): Outcome {
  const file = regularFile(s, op.file);
  if (file === undefined) return err('EBADF');
  if (!validIndex(op.sizePages) || op.sizePages > FILE_PAGES_MAX) return err('EINVAL');
  truncateFile(s, file, op.sizePages);
  return ok(0);
}
