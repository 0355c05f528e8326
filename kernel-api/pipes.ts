/**
 * Pipes as vmsplice(2) fills them (fs/pipe.c, fs/splice.c, Linux 6.18), the table both kernels
 * keep: each pipe a ring of at most PIPE_DEF_BUFFERS buffers, each buffer one whole page with
 * the page reference GUP took for it (user_page_pipe_buf_ops: ->release is put_page). A pipe
 * is named by an id, 1, 2, … in the order pipes are made (deterministic); its holders are the
 * process that made it and the fork children that inherited its fds. A buffer's reference goes
 * when pipe_read consumes it, or when the last holder exits (free_pipe_info). What releasing
 * a page means is the kernel's business: the table hands the pfns back.
 * Not emulated: partial pages (every buffer is PAGE_SIZE at offset 0), pipe(2) without
 * vmsplice, F_SETPIPE_SZ, closing one end (so readers and writers always exist: no EPIPE).
 */
import type { LockRef, LockTable } from './locks.ts';
import type { Errno } from './outcome.ts';
import type { VmspliceOp } from './op.ts';

/** PIPE_DEF_BUFFERS: the slots of a pipe as pipe(2) makes it (pipe->max_usage). */
export const PIPE_DEF_BUFFERS = 16;
/** The most pipes alive at once (the oracle's table has as many slots: PIPES_MAX). */
export const PIPES_MAX = 512;

/** struct pipe_buffer, as vmsplice makes it: one page, offset 0, PAGE_SIZE long. */
export type PipeBuffer = { pfn: number };

export type Pipe = {
  id: number;
  /** Processes holding its fds, in pid order. */
  holders: number[];
  /** The ring from tail (read next) to head. */
  bufs: PipeBuffer[];
};

/** A pipe as the inspection interface shows it. */
export type PipeView = { id: number; holders: readonly number[]; pfns: readonly number[] };

/** pipe->mutex (pipe_lock): vmsplice_to_pipe holds it across GUP, pipe_read across the copy. */
export function pipeLock(locks: LockTable, id: number): LockRef {
  return locks.lock(`pipe:${id}`, 'pipe->mutex', 'mutex', `pipe ${id}`);
}

const NO_PIPES: readonly PipeView[] = [];

export class PipeTable {
  private readonly pipes = new Map<number, Pipe>();
  private nextId = 1;

  /** The pipe `id` if `pid` holds it, else undefined (an fd it does not have: EBADF). */
  lookup(id: number, pid: number): Pipe | undefined {
    const p = this.pipes.get(id);
    return p !== undefined && p.holders.includes(pid) ? p : undefined;
  }

  /** pipe(2) by `pid`: a new pipe with the next id, holding `bufs`; null when PIPES_MAX are alive. */
  create(pid: number, bufs: PipeBuffer[]): Pipe | null {
    if (this.pipes.size >= PIPES_MAX) return null;
    if (bufs.length > PIPE_DEF_BUFFERS) throw new Error(`pipe made with ${bufs.length} buffers, more than PIPE_DEF_BUFFERS`);
    const p: Pipe = { id: this.nextId++, holders: [pid], bufs };
    this.pipes.set(p.id, p);
    return p;
  }

  /** Room for another buffer (pipe_full is false). */
  static hasRoom(p: Pipe, pending = 0): boolean {
    return p.bufs.length + pending < PIPE_DEF_BUFFERS;
  }

  /** dup_fd at fork: the child holds every pipe the parent holds. */
  fork(parent: number, child: number): void {
    for (const p of this.pipes.values()) {
      if (p.holders.includes(parent) && !p.holders.includes(child)) p.holders.push(child);
    }
  }

  /**
   * exit_files of `pid`: it lets go of every pipe it holds; a pipe nobody holds any more is
   * freed (free_pipe_info), and the pages of its buffers are returned for release, by pipe id
   * then ring order.
   */
  exit(pid: number): number[] {
    const released: number[] = [];
    for (const [id, p] of [...this.pipes].sort((a, b) => a[0] - b[0])) {
      const at = p.holders.indexOf(pid);
      if (at === -1) continue;
      p.holders.splice(at, 1);
      if (p.holders.length > 0) continue;
      for (const b of p.bufs) released.push(b.pfn);
      this.pipes.delete(id);
    }
    return released;
  }

  /**
   * vmsplice's checks before it takes a page, which both kernels make alike: the pipe fd
   * (fdget; one `pid` does not hold is EBADF), pipe2's fd limit for a new pipe (EMFILE at
   * PIPES_MAX), the iovec's access_ok (EFAULT past TASK_SIZE or negative, as size_t). The
   * pipe to splice into (null: a new one), or the call's result (0 for an empty iovec).
   */
  vmspliceTarget(op: VmspliceOp, pid: number, taskSizePages: number): { pipe: Pipe | null } | { result: Errno | 0 } {
    let pipe: Pipe | null = null;
    if (op.pipe !== undefined) {
      pipe = this.lookup(op.pipe, pid) ?? null;
      if (pipe === null) return { result: 'EBADF' };
    } else if (this.pipes.size >= PIPES_MAX) {
      return { result: 'EMFILE' };
    }
    if (op.lengthPages < 0 || op.addr < 0 || op.addr + op.lengthPages > taskSizePages) return { result: 'EFAULT' };
    return op.lengthPages === 0 ? { result: 0 } : { pipe };
  }

  /** Every pipe, by id (most steps of most runs have none: nothing is allocated then). */
  views(): readonly PipeView[] {
    if (this.pipes.size === 0) return NO_PIPES;
    return [...this.pipes.values()].sort((a, b) => a.id - b.id).map((p) => ({ id: p.id, holders: [...p.holders], pfns: p.bufs.map((b) => b.pfn) }));
  }

  get size(): number {
    return this.pipes.size;
  }
}
