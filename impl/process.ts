/** Process lookup: the process table is a map keyed by pid, inserted in pid order. */
import type { ImplProcess, ImplState } from './types.ts';

/**
 * A running process, or undefined (unknown pid, exited, or a child fork is still building:
 * its main thread joins `threads` only when fork completes, as its pid is hashed only then).
 */
export function runningProcess(s: ImplState, pid: number): ImplProcess | undefined {
  const proc = s.processes.get(pid);
  return proc !== undefined && proc.state === 'running' && s.threads.get(pid) === pid ? proc : undefined;
}

/**
 * The running task (locks.current) is a live thread of `proc` with no fatal signal pending:
 * no exit_group or OOM kill ran while it slept (mmap_read_lock_killable and the like fail
 * then, and the task dies).
 */
export function taskAlive(s: ImplState, proc: ImplProcess): boolean {
  return taskExists(s, proc) && !proc.killed;
}

/** The running task is a live thread of `proc`, killed or not: an OOM victim's own exit runs on one. */
export function taskExists(s: ImplState, proc: ImplProcess): boolean {
  return runningProcess(s, proc.pid) === proc && s.threads.get(s.locks.current) === proc.pid;
}

/** The tids of `pid`'s live threads, main thread first. */
export function threadsOf(s: ImplState, pid: number): number[] {
  const tids: number[] = [];
  for (const [tid, p] of s.threads) if (p === pid) tids.push(tid);
  return tids.sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
}

/** Processes in pid order (pids are allocated increasing, so insertion order is pid order). */
export function processesInOrder(s: ImplState): ImplProcess[] {
  const out = [...s.processes.values()];
  for (let i = 1; i < out.length; i++) {
    if (out[i - 1].pid > out[i].pid) return out.sort((a, b) => a.pid - b.pid);
  }
  return out;
}
