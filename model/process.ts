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
  let n = 0;
  for (const proc of s.processes.values()) if (proc.state === 'running') n += 1;
  return n;
}
