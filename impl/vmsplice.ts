/**
 * vmsplice(2) into a pipe and read(2) from it (fs/splice.c, fs/pipe.c, Linux 6.18), as
 * model/vmsplice.ts states them, over the frame pool: each pipe buffer holds a FOLL_GET
 * reference (get_user_pages_fast), released by pipe_read or when the pipe is freed.
 */
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok, okValues } from '../kernel-api/outcome.ts';
import { FOLL_GET } from '../kernel-api/driver.ts';
import type { PipeReadOp, VmspliceOp } from '../kernel-api/op.ts';
import { PIPE_DEF_BUFFERS, PipeTable, pipeLock } from '../kernel-api/pipes.ts';
import type { Pipe, PipeBuffer } from '../kernel-api/pipes.ts';
import type { ImplProcess, ImplState } from './types.ts';
import { frameOf, getPage, pfnValue, putPage } from './frames.ts';
import { F_KIND, KIND_ANON } from './framepool.ts';
import { PTE_PRESENT, PTE_SPECIAL } from './pagetable.ts';
import { folioFreeSwap } from './swap.ts';
import { gupOne } from './access.ts';
import { vmaLookup } from './vma.ts';
import { taskAlive } from './process.ts';
import { withLock, withMmapLock } from './locks.ts';

const GUP_BATCH_PAGES = 16;

/** get_user_pages_fast: gup_fast over present normal PTEs, the rest under mmap_lock (model/vmsplice.ts). */
function getUserPagesFast(s: ImplState, proc: ImplProcess, addr: number, count: number): { pfns: number[]; errno: Errno | null } {
  const pfns: number[] = [];
  const pt = proc.mm.pt;
  for (; pfns.length < count; ) {
    const a = addr + pfns.length;
    const flags = pt.flags(a);
    if ((flags & PTE_PRESENT) === 0 || (flags & PTE_SPECIAL) !== 0) break;
    const vma = vmaLookup(proc.mm, a);
    if (vma === undefined || vma.prot === 0) break;
    const pfn = frameOf(s, pt.idx(a));
    getPage(s, pfn);
    pfns.push(pfn);
  }
  if (pfns.length === count) return { pfns, errno: null };
  let errno: Errno | null = null;
  withMmapLock(s, proc.mm, 'read', 'get_user_pages_unlocked', () => {
    for (; pfns.length < count; ) {
      if (!taskAlive(s, proc)) {
        errno = 'ESRCH';
        return;
      }
      const r = gupOne(s, proc, addr + pfns.length, FOLL_GET);
      if (typeof r === 'string') {
        errno = r;
        return;
      }
      pfns.push(r);
    }
  });
  return { pfns, errno };
}

/** A pipe buffer's ->release: put_page, and an unmapped swap-cache copy nobody names dropped (model/vmsplice.ts). */
export function pipeBufRelease(s: ImplState, pfn: number): void {
  if (pfn === s.zeroPfn) return;
  frameOf(s, pfn);
  putPage(s, pfn);
  const pool = s.pool;
  if (pool.refcount[pfn] > 0 && (pool.flags[pfn] & F_KIND) === KIND_ANON && pool.mapcount[pfn] === 0) folioFreeSwap(s, pfn);
}

function iterToPipe(s: ImplState, proc: ImplProcess, pipe: Pipe | null, addr: number, end: number): { bufs: PipeBuffer[]; errno: Errno | null } {
  const bufs: PipeBuffer[] = [];
  let errno: Errno | null = null;
  for (let a = addr; a < end; ) {
    const got = getUserPagesFast(s, proc, a, Math.min(GUP_BATCH_PAGES, end - a));
    if (got.pfns.length === 0 || got.errno === 'ESRCH') {
      errno = got.errno;
      for (const pfn of got.pfns) pipeBufRelease(s, pfn);
      break;
    }
    for (let i = 0; i < got.pfns.length; i++) {
      const room = pipe !== null ? PipeTable.hasRoom(pipe, bufs.length) : bufs.length < PIPE_DEF_BUFFERS;
      if (!room) {
        for (let j = i; j < got.pfns.length; j++) pipeBufRelease(s, got.pfns[j]!);
        return { bufs, errno: 'EAGAIN' };
      }
      bufs.push({ pfn: got.pfns[i]! });
    }
    a += got.pfns.length;
  }
  return { bufs, errno };
}

export function vmsplice(s: ImplState, proc: ImplProcess, op: VmspliceOp): Outcome {
  const target = s.pipes.vmspliceTarget(op, proc.pid, s.config.taskSizePages);
  if ('result' in target) return target.result === 0 ? ok(0) : err(target.result);
  const pipe = target.pipe;
  const splice = (): Outcome => {
    if (!taskAlive(s, proc)) return err('ESRCH');
    if (pipe !== null && !PipeTable.hasRoom(pipe)) return err('EAGAIN');
    const r = iterToPipe(s, proc, pipe, op.addr, op.addr + op.lengthPages);
    if (!taskAlive(s, proc)) {
      for (const b of r.bufs) pipeBufRelease(s, b.pfn);
      return err('ESRCH');
    }
    if (r.bufs.length === 0) return err(r.errno ?? 'EFAULT');
    if (pipe !== null) {
      pipe.bufs.push(...r.bufs);
      return ok(r.bufs.length);
    }
    const made = s.pipes.create(proc.pid, r.bufs)!;
    return okValues(r.bufs.length, [made.id]);
  };
  // One scheduling point, before anything changes: pipe_lock (pipe2's for a new pipe); past
  // it, no other task starts (README: simplifications), so the pages are taken as they stand
  // at completion, where ghost memory takes the operation.
  if (pipe === null) {
    s.locks.preemptPoint('do_pipe2');
    return s.locks.uninterrupted(splice);
  }
  return withLock(s, pipeLock(s.locks, pipe.id), 'write', 'vmsplice_to_pipe', () => s.locks.uninterrupted(splice));
}

export function pipeRead(s: ImplState, proc: ImplProcess, op: PipeReadOp): Outcome {
  const pipe = s.pipes.lookup(op.pipe, proc.pid);
  if (pipe === undefined) return err('EBADF');
  if (op.pages < 0) return err('EFAULT'); // vfs_read's access_ok of a count read as size_t
  if (op.pages === 0) return ok(0);
  return withLock(s, pipeLock(s.locks, pipe.id), 'write', 'pipe_read', () => s.locks.uninterrupted(() => {
    if (!taskAlive(s, proc)) return err('ESRCH');
    if (pipe.bufs.length === 0) return err('EAGAIN');
    const taken = pipe.bufs.splice(0, Math.min(op.pages, pipe.bufs.length));
    const values = taken.map((b) => pfnValue(s, b.pfn));
    for (const b of taken) pipeBufRelease(s, b.pfn);
    return okValues(taken.length, values);
  }));
}

export function exitPipes(s: ImplState, pid: number): void {
  for (const pfn of s.pipes.exit(pid)) pipeBufRelease(s, pfn);
}
