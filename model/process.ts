/** Process lookup helpers: the process table is a map keyed by pid, walked in pid order. */
import type { ModelState, Process } from './types.ts';

export function processesInOrder(s: ModelState): Process[] {
  return [...s.processes.values()].sort((a, b) => a.pid - b.pid);
}

/** A running process, or undefined (unknown pid or exited). */
export function runningProcess(s: ModelState, pid: number): Process | undefined {
  const proc = s.processes.get(pid);
  return proc !== undefined && proc.state === 'running' ? proc : undefined;
}

export function runningCount(s: ModelState): number {
  return s.running.size;
}

/** The running processes in pid order, without walking the exited ones. */
export function runningInOrder(s: ModelState): Process[] {
  return [...s.running].map((pid) => s.processes.get(pid)!);
}
