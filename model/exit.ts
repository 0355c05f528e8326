/**
 * exit and the OOM killer (kernel/exit.c, mm/oom_kill.c). exit_mmap zaps every VMA,
 * running ->close on each, and the fd table is closed. The OOM reaper first tears down
 * the victim's private memory (anonymous and private file mappings, not PFN maps) with
 * MMU notifiers told, then the victim exits.
 */
import type { ModelState, Process } from './types.ts';
import { assert } from './assert.ts';
import { fileRelease } from './driverfile.ts';
import { removeVma } from './vma.ts';
import { zapRange } from './zap.ts';
import type { InvalidateEvent } from './notifier.ts';

/** exit_mmap: every VMA zapped and removed, in address order. */
export function exitMm(s: ModelState, proc: Process, event: InvalidateEvent): void {
  for (const vma of [...proc.mm.vmas]) {
    zapRange(s, proc, vma.start, vma.end, event);
    removeVma(s, proc.mm, vma);
  }
}

export function exitProcess(s: ModelState, proc: Process): void {
  exitMm(s, proc, 'exit');
  // check_mm: nothing is left in a dead mm (PTEs exist only inside VMAs, and every VMA went).
  assert(proc.mm.ptes.size === 0, `exit_mmap left ${proc.mm.ptes.size} PTEs in P${proc.pid}`, 'vma-wellformed');
  const fds = [...proc.fds.keys()].sort((a, b) => a - b);
  for (const fd of fds) {
    const file = proc.fds.get(fd)!;
    proc.fds.delete(fd);
    fileRelease(s, file);
  }
  proc.state = 'exited';
  s.running.delete(proc.pid);
  for (const pid of proc.children) {
    const child = s.processes.get(pid)!;
    assert(child.ppid === proc.pid || child.ppid === 0, `P${pid} is a child of P${proc.pid} but has parent P${child.ppid}`);
    child.ppid = 0; // reparented to init
  }
}

/** __oom_reap_task_mm, then the victim's exit. */
export function oomKill(s: ModelState, proc: Process): void {
  proc.oomReaped = true;
  for (const vma of proc.mm.vmas) {
    if (vma.pfnmap) continue;
    if (vma.file === -1 || !vma.shared) zapRange(s, proc, vma.start, vma.end, 'oom');
  }
  exitProcess(s, proc);
}
