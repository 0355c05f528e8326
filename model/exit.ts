/**
 * exit and the OOM killer (kernel/exit.c, mm/oom_kill.c). exit_mmap zaps every VMA,
 * running ->close on each, and the fd table is closed. The OOM reaper first tears down
 * the victim's private memory (anonymous and private file mappings, not PFN maps) with
 * MMU notifiers told, then the victim exits.
 */
import type { ModelState, Process } from './types.ts';
import { fileRelease } from './driverfile.ts';
import { removeVma } from './vma.ts';
import { zapRange } from './zap.ts';
import type { InvalidateEvent } from './notifier.ts';
import { withMmapLock } from './locks.ts';
import { taskAlive } from './process.ts';

/** exit_mmap: every VMA zapped and removed, in address order. */
export function exitMm(s: ModelState, proc: Process, event: InvalidateEvent): void {
  for (const vma of [...proc.mm.vmas]) {
    zapRange(s, proc, vma.start, vma.end, event);
    removeVma(s, proc.mm, vma);
  }
}

/**
 * exit_group: every thread goes. exit_mmap under the mm's mmap_lock for write (->close
 * hooks with it held; the fput()s of VMAs' files run after it is dropped), then the fd
 * table is closed with no lock held.
 */
export function exitProcess(s: ModelState, proc: Process): boolean {
  // Another thread's exit_group may have run at the lock's scheduling point: nothing left to do.
  if (!withMmapLock(s, proc.pid, 'write', 'exit_mmap', () => taskAlive(s, proc) && (exitMm(s, proc, 'exit'), true))) return false;
  const fds = [...proc.fds.keys()].sort((a, b) => a - b);
  for (const fd of fds) {
    const file = proc.fds.get(fd)!;
    proc.fds.delete(fd);
    fileRelease(s, file);
  }
  proc.state = 'exited';
  // Deleting the entry being visited is safe in a Map iteration: no copy of the table per exit.
  for (const [tid, pid] of s.threads) if (pid === proc.pid) s.threads.delete(tid);
  for (const other of s.processes.values()) {
    if (other.ppid === proc.pid) other.ppid = 0; // reparented to init
  }
  return true;
}

/**
 * __oom_reap_task_mm under the victim's mmap_lock for read, each range's notifiers told
 * without blocking (mmu_notifier_invalidate_range_start_nonblock: the task is atomic while
 * the callbacks run). A range whose callback refuses is skipped (Linux retries later; here
 * the exit takes those pages). Then the victim's exit.
 */
export function oomKill(s: ModelState, proc: Process): boolean {
  const reaped = withMmapLock(s, proc.pid, 'read', 'oom_reap_task_mm', () => {
    if (!taskAlive(s, proc)) return false;
    // Marked once the lock is held: nothing changes before an operation's first lock.
    proc.oomReaped = true;
    for (const vma of [...proc.mm.vmas]) {
      if (vma.pfnmap || !proc.mm.vmas.includes(vma)) continue;
      if (vma.file === -1 || !vma.shared) zapRange(s, proc, vma.start, vma.end, 'oom', undefined, false);
    }
    return true;
  });
  return reaped && exitProcess(s, proc);
}
