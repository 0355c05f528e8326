/** Process lookup helpers: the process table is a map keyed by pid, walked in pid order. */
import type { ModelState, Process } from './types.ts';

export function processesInOrder(s: ModelState): Process[] {
  return [...s.processes.values()].sort((a, b) => a.pid - b.pid);
}

/**
 * A running process, or undefined (unknown pid, exited, or a child fork is still building:
 * its main thread joins `threads` only when fork completes, as its pid is hashed only then).
 */
export function runningProcess(s: ModelState, pid: number): Process | undefined {
  const proc = s.processes.get(pid);
  return proc !== undefined && proc.state === 'running' && s.threads.get(pid) === pid ? proc : undefined;
}

/**
 * The running task (locks.current) is a live thread of `proc` with no fatal signal pending:
 * no exit_group or OOM kill ran while it slept (mmap_read_lock_killable and the like fail
 * then, and the task dies).
 */
export function taskAlive(s: ModelState, proc: Process): boolean {
  return taskExists(s, proc) && !proc.killed;
}

/** The running task is a live thread of `proc`, killed or not: an OOM victim's own exit runs on one. */
export function taskExists(s: ModelState, proc: Process): boolean {
  return runningProcess(s, proc.pid) === proc && s.threads.get(s.locks.current) === proc.pid;
}

/** The tids of `pid`'s live threads, main thread first. */
export function threadsOf(s: ModelState, pid: number): number[] {
  const tids: number[] = [];
  for (const [tid, p] of s.threads) if (p === pid) tids.push(tid);
  return tids.sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
}

export function runningCount(s: ModelState): number {
  return s.running.size;
}

/** The running processes in pid order, without walking the exited ones. */
export function runningInOrder(s: ModelState): Process[] {
  return [...s.running].map((pid) => s.processes.get(pid)!);
}
