/**
 * vmsplice(2) into a pipe and read(2) from it (fs/splice.c vmsplice_to_pipe, iter_to_pipe;
 * fs/pipe.c pipe_read; Linux 6.18), over the pipe table of kernel-api/pipes.ts. vmsplice
 * takes a page reference per page as get_user_pages_fast does (FOLL_GET, not FOLL_PIN:
 * iov_iter_get_pages2 → get_user_pages_fast(addr, n, 0)), so the pipe keeps the *page*: a
 * later store through a PTE that still maps it shows in the pipe, and a COW break that
 * gives the process a new page leaves the pipe the old one (do_wp_page reuses an anonymous
 * page only when PageAnonExclusive, or when its refcount says nobody else holds it:
 * wp_can_reuse_anon_folio — the pipe's reference counts). Not emulated: SPLICE_F_GIFT,
 * several iovecs, partial pages, vmsplice from a pipe to memory.
 */
import type { Errno, Outcome } from '../kernel-api/outcome.ts';
import { err, ok, okValues } from '../kernel-api/outcome.ts';
import { FOLL_GET } from '../kernel-api/driver.ts';
import type { PipeReadOp, VmspliceOp } from '../kernel-api/op.ts';
import { PIPE_DEF_BUFFERS, PipeTable, pipeLock } from '../kernel-api/pipes.ts';
import type { Pipe, PipeBuffer } from '../kernel-api/pipes.ts';
import type { ModelState, Process } from './types.ts';
import { frameOf, getPage, pfnValue, putPage } from './frames.ts';
import { folioFreeSwap } from './swap.ts';
import { gupOne } from './access.ts';
import { vmaLookup } from './vma.ts';
import { taskAlive } from './process.ts';
import { withLock, withMmapLock } from './locks.ts';

/** The pages one iov_iter_get_pages2 call asks for (iter_to_pipe's `struct page *pages[16]`). */
const GUP_BATCH_PAGES = 16;

/**
 * get_user_pages_fast(addr, count, 0) as gup_fast_fallback runs it: gup_fast first, lockless
 * and without faults, takes each present, normal PTE whose VMA is not PROT_NONE
 * (pte_protnone) — it checks no VMA permission, so a write-only page already present is
 * taken — and stops at the first other; the rest go to get_user_pages_unlocked under
 * mmap_lock for read (check_vma_flags, faults, the zero page through follow_page_pte), which
 * stops at the first page that fails. Returns the pages taken, each with its reference, and
 * the error that stopped it (null when all were taken).
 */
function getUserPagesFast(s: ModelState, proc: Process, addr: number, count: number): { pfns: number[]; errno: Errno | null } {
  const pfns: number[] = [];
  for (; pfns.length < count; ) {
    const a = addr + pfns.length;
    const pte = proc.mm.ptes.get(a);
    const vma = vmaLookup(proc.mm, a);
    if (pte?.kind !== 'present' || pte.special || vma === undefined || vma.prot === 0) break;
    getPage(frameOf(s, pte.pfn)); // try_grab_folio_fast
    pfns.push(pte.pfn);
  }
  if (pfns.length === count) return { pfns, errno: null };
  let errno: Errno | null = null;
  withMmapLock(s, proc.pid, 'read', 'get_user_pages_unlocked', () => {
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

/**
 * A pipe buffer's ->release (page_cache_pipe_buf_release: put_page). The zero page GUP
 * returned is never freed (try_grab_folio takes a reference on it too; the emulation
 * counts none there). An anonymous page the put leaves in the swap cache, mapped nowhere,
 * and named by no swap entry is dropped from it, as zapPte's free_swap_cache does: Linux
 * leaves it to reclaim (README, "Known simplifications").
 */
export function pipeBufRelease(s: ModelState, pfn: number): void {
  if (pfn === s.zeroPfn) return;
  const frame = frameOf(s, pfn);
  putPage(s, frame);
  if (frame.refcount > 0 && frame.kind === 'anon' && frame.mapcount === 0) folioFreeSwap(s, frame);
}

/**
 * iter_to_pipe: batches of up to 16 pages from get_user_pages_fast, each page added to the
 * pipe (add_to_pipe) while it has room; once full, the rest of the batch is put back and the
 * call ends. A batch that stopped short (a hole, a fault that failed) is followed by another
 * from the page that stopped it, which fails there (or, fault injection being one-shot,
 * succeeds). Returns the buffers made, and the error when there are none.
 */
function iterToPipe(s: ModelState, proc: Process, pipe: Pipe | null, addr: number, end: number): { bufs: PipeBuffer[]; errno: Errno | null } {
  const bufs: PipeBuffer[] = [];
  const room = () => (pipe !== null ? PipeTable.hasRoom(pipe, bufs.length) : bufs.length < PIPE_DEF_BUFFERS);
  let errno: Errno | null = null;
  for (let a = addr; a < end; ) {
    const got = getUserPagesFast(s, proc, a, Math.min(GUP_BATCH_PAGES, end - a));
    if (got.pfns.length === 0 || got.errno === 'ESRCH') {
      errno = got.errno;
      for (const pfn of got.pfns) pipeBufRelease(s, pfn);
      break;
    }
    for (const [i, pfn] of got.pfns.entries()) {
      if (!room()) {
        for (const rest of got.pfns.slice(i)) pipeBufRelease(s, rest);
        return { bufs, errno: 'EAGAIN' };
      }
      bufs.push({ pfn });
    }
    a += got.pfns.length;
  }
  return { bufs, errno };
}

/**
 * vmsplice_to_pipe with SPLICE_F_NONBLOCK: import_iovec's access_ok (EFAULT past the task
 * size), a pipe the caller holds (fdget: EBADF), nothing to do for an empty iovec, then
 * under pipe_lock wait_for_space (a full pipe: EAGAIN) and iter_to_pipe. Without `op.pipe`,
 * pipe2(O_NONBLOCK) first: the pipe is kept only when a page went into it.
 */
export function vmsplice(s: ModelState, proc: Process, op: VmspliceOp): Outcome {
  const target = s.pipes.vmspliceTarget(op, proc.pid, s.config.taskSizePages);
  if ('result' in target) return target.result === 0 ? ok(0) : err(target.result);
  const pipe = target.pipe;
  const splice = (): Outcome => {
    if (!taskAlive(s, proc)) return err('ESRCH');
    if (pipe !== null && !PipeTable.hasRoom(pipe)) return err('EAGAIN');
    const r = iterToPipe(s, proc, pipe, op.addr, op.addr + op.lengthPages);
    // Killed meanwhile (another thread's exit_group): the pipe goes at its last fput, the pages with it.
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

/**
 * pipe_read with O_NONBLOCK, under pipe_lock: up to `pages` buffers, each copied out
 * (copy_page_to_iter of the page as it is now) and released (pipe_buf_release: put_page).
 * A negative count is EFAULT (vfs_read's access_ok, before rw_verify_area), 0 reads nothing, an empty pipe is EAGAIN.
 */
export function pipeRead(s: ModelState, proc: Process, op: PipeReadOp): Outcome {
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

/** exit_files of `proc` (after exit_mm): the pipes it was the last to hold are freed, their pages released. */
export function exitPipes(s: ModelState, pid: number): void {
  for (const pfn of s.pipes.exit(pid)) pipeBufRelease(s, pfn);
}
