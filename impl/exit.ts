/**
 * exit and the OOM killer (kernel/exit.c, mm/oom_kill.c). exit_mmap zaps every VMA,
 * running ->close on each, and the fd table is closed. The OOM reaper first tears down
 * the victim's private memory with MMU notifiers told, then the victim exits.
 */
import type { ImplProcess, ImplState } from './types.ts';
import { fail } from './assert.ts';
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
  // check_mm: nothing is left in a dead mm (PTEs exist only inside VMAs, and every VMA went).
  if (!(proc.mm.pt.entries === 0)) fail(`exit_mmap left ${proc.mm.pt.entries} PTEs in P${proc.pid}`, 'vma-wellformed');
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
}

export function oomKill(s: ImplState, proc: ImplProcess): void {
  proc.oomReaped = true;
  for (const vma of proc.mm.vmas.all()) {
    if (vma.pfnmap) continue;
    if (vma.file === -1 || !vma.shared) zapRange(s, proc, vma.start, vma.end, 'oom');
  }
  exitProcess(s, proc);
}
