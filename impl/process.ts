/** Process lookup: the process table is a map keyed by pid, inserted in pid order. */
import type { ImplProcess, ImplState } from './types.ts';

/** A running process, or undefined (unknown pid or exited). */
export function runningProcess(s: ImplState, pid: number): ImplProcess | undefined {
  const proc = s.processes.get(pid);
  return proc !== undefined && proc.state === 'running' ? proc : undefined;
}

/** Processes in pid order (pids are allocated increasing, so insertion order is pid order). */
export function processesInOrder(s: ImplState): ImplProcess[] {
  const out = [...s.processes.values()];
  for (let i = 1; i < out.length; i++) {
    if (out[i - 1].pid > out[i].pid) return out.sort((a, b) => a.pid - b.pid);
  }
  return out;
}
