/**
 * exit and the OOM killer (kernel/exit.c, mm/oom_kill.c). exit_mmap zaps every VMA,
 * running ->close on each, and the fd table is closed. The OOM reaper first tears down
 * the victim's private memory with MMU notifiers told, then the victim exits.
 */
import type { ImplProcess, ImplState } from './types.ts';
import { fileRelease } from './driverfile.ts';
import { removeVma } from './vma.ts';
import { zapRange } from './zap.ts';
import type { InvalidateEvent } from './notifier.ts';

export function exitMm(s: ImplState, proc: ImplProcess, event: InvalidateEvent): void {
  for (const vma of proc.mm.vmas.all()) {
    zapRange(s, proc, vma.start, vma.end, event);
    removeVma(s, proc.mm, vma);
  }
}

export function exitProcess(s: ImplState, proc: ImplProcess): void {
  exitMm(s, proc, 'exit');
  const fds = [...proc.fds.keys()].sort((a, b) => a - b);
  for (const fd of fds) {
    const file = proc.fds.get(fd)!;
    proc.fds.delete(fd);
    fileRelease(s, file);
  }
  if (proc.state === 'running') s.running -= 1;
  proc.state = 'exited';
  for (const other of s.processes.values()) {
    if (other.ppid === proc.pid) other.ppid = 0;
  }
}

export function oomKill(s: ImplState, proc: ImplProcess): void {
  proc.oomReaped = true;
  for (const vma of proc.mm.vmas.all()) {
    if (vma.pfnmap) continue;
    if (vma.file === -1 || !vma.shared) zapRange(s, proc, vma.start, vma.end, 'oom');
  }
  exitProcess(s, proc);
}
