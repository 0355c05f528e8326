/**
 * Tasks and scheduling points: where a kernel path lets another task run.
 *
 * A kernel path reaches a scheduling point wherever Linux can sleep — at a lock that can
 * block (mutex_lock, down_read/down_write, mmap_read_lock), at a driver-API call that may
 * sleep (kmalloc(GFP_KERNEL), alloc_page, page-table allocation), inside GUP between
 * faulting a page in and looking it up again — and calls `LockTable.preemptPoint`. There
 * the scheduler (properties/sched.ts) may run another task's operation. Nothing is a
 * scheduling point where Linux cannot sleep: the emulated kernel is non-preemptible
 * (CONFIG_PREEMPT_NONE), so a sleep under a spinlock is `sleep-in-atomic`.
 *
 * The emulated kernels are synchronous, so another task's operation runs *nested* at the
 * point, to completion, and the preempted task resumes after it. That explores every
 * schedule in which the preempting operation never waits for a lock a preempted task holds.
 * When it would wait, the schedule cannot be emulated this way: `WouldBlock` is raised.
 * Raised before the preempting operation changed anything (at its first lock), the
 * operation is simply not started there; later, the whole schedule is abandoned
 * (README: "Design decisions", and kernel-oracle/SIMPLIFICATIONS.md).
 */
import type { LockMode, LockRef } from './locks.ts';
import type { Outcome } from './outcome.ts';

/** A task id: Linux's tid. A process's main thread has tid == pid; task 0 runs the ops no process issues (reclaim by count, file ops, fault injection). */
export type Tid = number;

/** What a kernel asks of the scheduler at a scheduling point. */
export interface SchedHooks {
  /** The current task may sleep at `where`: another task's operation may run to completion here. */
  preempt(where: string): void;
  /**
   * The current operation has taken effect, with this outcome, and what it does next changes
   * no memory user space sees before it completes — bar the COW copies of a populate, which
   * ghost memory takes at completion: vm_mmap_pgoff's do_mmap done, mm_populate to come. An
   * operation run nested after this point sees its effect (properties/sched.ts).
   */
  linearized?(outcome: Outcome): void;
}

/** A task would have to wait for a lock another task holds: the nested schedule cannot go on. */
export class WouldBlock extends Error {
  override readonly name = 'WouldBlock' as const;
  /** Unhandled, it is a wait nothing can end. */
  readonly invariant = 'deadlock' as const;
  constructor(readonly tid: Tid, readonly lock: LockRef, readonly mode: LockMode, readonly holder: Tid, readonly where: string) {
    super(`task ${tid} would wait in ${where} for ${lock.name}, held by task ${holder}`);
  }
}
