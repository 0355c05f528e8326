/**
 * exit and the OOM killer (kernel/exit.c, mm/oom_kill.c). exit_mmap zaps every VMA,
 * running ->close on each, and the fd table is closed. The OOM reaper first tears down
 * the victim's private memory with MMU notifiers told, then the victim exits.
 */
import type { ImplProcess, ImplState } from './types.ts';
import { fail } from './assert.ts';
import { fileRelease } from './driverfile.ts';
import { removeVma } from './vma.ts';
import { zapRange, zapUnnotified } from './zap.ts';
import type { InvalidateEvent } from './notifier.ts';
import { withMmapLock } from './locks.ts';
import { taskAlive, taskExists } from './process.ts';
import { COVER } from '../kernel-api/coverage.ts';

/** exit_mmap: every VMA zapped and removed, in address order. */
export function exitMm(s: ImplState, proc: ImplProcess, event: InvalidateEvent): void {
  for (const vma of proc.mm.vmas.all()) {
    zapRange(s, proc, vma.start, vma.end, event);
    removeVma(s, proc.mm, vma);
  }
}

/**
 * exit_group: every thread goes. exit_mmap under the mm's mmap_lock for write (->close
 * hooks with it held; the fput()s of VMAs' files run after it is dropped), then the fd
 * table is closed with no lock held.
 */
export function exitProcess(s: ImplState, proc: ImplProcess): boolean {
  // Another thread's exit_group may have run at the lock's scheduling point: nothing left to do.
  const ran = withMmapLock(s, proc.mm, 'write', 'exit_mmap', () => {
    if (!taskExists(s, proc)) return false;
    proc.killed = true;
    exitMm(s, proc, 'exit');
    // check_mm: nothing is left in a dead mm (PTEs exist only inside VMAs, and every VMA went).
    if (!(proc.mm.pt.entries === 0)) fail(`exit_mmap left ${proc.mm.pt.entries} PTEs in P${proc.pid}`, 'vma-wellformed');
    return true;
  });
  if (!ran) return false;
  // do_exit: past exit_mm the threads are exiting (PF_EXITING, no mm): nothing new starts on
  // them, and the OOM killer finds no mm to kill, while exit_files runs.
  for (const [tid, pid] of [...s.threads]) if (pid === proc.pid) s.threads.delete(tid);
  const fds = [...proc.fds.keys()].sort((a, b) => a - b);
  for (const fd of fds) {
    const file = proc.fds.get(fd)!;
    proc.fds.delete(fd);
    fileRelease(s, file);
  }
  s.running.delete(proc.pid);
  proc.state = 'exited';
  for (const pid of proc.children) {
    const child = s.processes.get(pid)!;
    if (!(child.ppid === proc.pid || child.ppid === 0)) fail(`P${pid} is a child of P${proc.pid} but has parent P${child.ppid}`);
    child.ppid = 0;
  }
  return true;
}

/**
 * __oom_reap_task_mm under the victim's mmap_lock for read, each range's notifiers told
 * without blocking (mmu_notifier_invalidate_range_start_nonblock: the task is atomic while
 * the callbacks run). A range whose callback refuses is skipped (Linux retries later; here
 * the exit takes those pages). The victim is killed (SIGKILL first, as oom_kill_process
 * sends it) but exits only later, as Linux's oom_reaper and the victim's own do_exit are
 * separate: its `exit` is that do_exit, once it runs (the only operation a killed
 * process can still start). Until then its mm stands, reaped, and is judged so.
 */
export function oomKill(s: ImplState, proc: ImplProcess): boolean {
  const reaped = withMmapLock(s, proc.mm, 'read', 'oom_reap_task_mm', () => {
    if (!taskAlive(s, proc)) return false;
    s.locks.cover(COVER.oomReap);
    // Marked once the lock is held: nothing changes before an operation's first lock.
    proc.oomReaped = true;
    proc.killed = true;
    for (const vma of proc.mm.vmas.all()) {
      if (vma.pfnmap || !proc.mm.vmas.has(vma)) continue;
      if (vma.file !== -1 && vma.shared) continue;
      if (s.oomReapNoNotifier) zapUnnotified(s, proc, vma.start, vma.end); // a corruption, for tests
      else zapRange(s, proc, vma.start, vma.end, 'oom', false);
    }
    return true;
  });
  return reaped;
}
