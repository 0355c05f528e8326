/**
 * access-control: remote access needs the ptrace rights the kernel asks for. The rule is
 * written here again, apart from the kernels (kernel/ptrace.c __ptrace_may_access and
 * Yama's descendant rule for PTRACE_MODE_ATTACH), and every remote access is judged by it.
 */
import type { ProcessView } from '../../kernel-api/state.ts';
import type { KernelConfig } from '../../kernel-api/config.ts';
import type { Invariant } from './types.ts';

export function mayAttach(procs: Map<number, ProcessView>, config: Readonly<KernelConfig>, caller: ProcessView, target: ProcessView): boolean {
  if (caller.pid === target.pid || caller.uid === 0) return true;
  if (caller.uid !== target.uid || !target.dumpable) return false;
  if (config.yamaPtraceScope === 0) return true;
  for (let p = procs.get(target.ppid), hops = 0; p !== undefined && hops <= procs.size; p = procs.get(p.ppid), hops++) {
    if (p.pid === caller.pid) return true;
  }
  return false;
}

export const accessControl: Invariant = {
  id: 'access-control',
  holds: 'remote access (/proc/<pid>/mem, process_vm_readv/writev) succeeds exactly when the file mode and ptrace attach rights allow it',
  causes: [
    { id: 'refused', title: 'remote access refused although ptrace attach is allowed' },
    { id: 'bypassed', title: 'remote access without ptrace attach rights' },
  ],
  judges: 'outcome',
  check({ k, config, op, outcome }) {
    if (op.op !== 'proc_mem_read' && op.op !== 'proc_mem_write' && op.op !== 'process_vm_readv' && op.op !== 'process_vm_writev') return null;
    const procs = new Map<number, ProcessView>();
    for (const p of k.processes()) procs.set(p.pid, p);
    const caller = procs.get(op.pid);
    const target = procs.get(op.target);
    if (caller?.state !== 'running' || target?.state !== 'running') return null;
    // ESRCH: the calling thread is not there (gone, or killed meanwhile): nothing was accessed.
    if (outcome.kind === 'errno' && outcome.errno === 'ESRCH') return null;
    const procMem = op.op.startsWith('proc_mem');
    const denied = procMem ? 'EACCES' : 'EPERM';
    // /proc/<pid>/mem is 0600, owned by the task's uid while it is dumpable and by root otherwise.
    const fileAccess = !procMem || caller.uid === 0 || (target.dumpable && caller.uid === target.uid);
    const allowed = fileAccess && mayAttach(procs, config, caller, target);
    const refused = outcome.kind === 'errno' && outcome.errno === denied;
    if (allowed === !refused) return null;
    return {
      invariant: 'access-control', cause: allowed ? 'refused' : 'bypassed', pid: op.pid, addr: op.addr,
      message: allowed
        ? `${op.op} by P${op.pid} (uid ${caller.uid}) of P${op.target} was refused with ${denied} although ptrace attach is allowed`
        : `${op.op} by P${op.pid} (uid ${caller.uid}) of P${op.target} (uid ${target.uid}, ${target.dumpable ? 'dumpable' : 'not dumpable'}) succeeded without ptrace attach rights`,
    };
  },
};
