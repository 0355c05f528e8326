/**
 * access-control: remote access needs the ptrace rights the kernel asks for. The rule is
 * written here again, apart from the kernels (kernel/ptrace.c __ptrace_may_access and
 * Yama's descendant rule for PTRACE_MODE_ATTACH), and every remote access is judged by it:
 * the core calls (/proc/<pid>/mem, process_vm_readv/writev) and every strategy call that
 * declares the check its design's C makes (StrategyCall.access).
 */
import type { ProcessView } from '../../kernel-api/state.ts';
import type { KernelConfig } from '../../kernel-api/config.ts';
import type { PtraceMode } from '../../kernel-api/driver.ts';
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import type { StrategyDefinition } from '../../kernel-api/strategy.ts';
import type { Invariant, Violation } from './types.ts';

export function mayAttach(procs: Map<number, ProcessView>, config: Readonly<KernelConfig>, caller: ProcessView, target: ProcessView): boolean {
  return mayAccess(procs, config, caller, target, 'attach');
}

/**
 * __ptrace_may_access: the same thread group, or CAP_SYS_PTRACE (uid 0 here), or the same
 * uid and a dumpable target; then Yama (security_ptrace_access_check), which asks only
 * PTRACE_MODE_ATTACH for a descendant at ptrace_scope 1.
 */
export function mayAccess(procs: Map<number, ProcessView>, config: Readonly<KernelConfig>, caller: ProcessView, target: ProcessView, mode: PtraceMode): boolean {
  if (caller.pid === target.pid || caller.uid === 0) return true;
  if (caller.uid !== target.uid || !target.dumpable) return false;
  if (config.yamaPtraceScope === 0 || mode === 'read') return true;
  for (let p = procs.get(target.ppid), hops = 0; p !== undefined && hops <= procs.size; p = procs.get(p.ppid), hops++) {
    if (p.pid === caller.pid) return true;
  }
  return false;
}

export const accessControl: Invariant = {
  id: 'access-control',
  holds: 'remote access (/proc/<pid>/mem, process_vm_readv/writev, and a strategy call that declares its ptrace check) succeeds exactly when the file mode and ptrace rights allow it',
  causes: [
    { id: 'refused', title: 'remote access refused although ptrace attach is allowed' },
    { id: 'bypassed', title: 'remote access without ptrace attach rights' },
  ],
  judges: 'outcome',
  check({ k, config, op, outcome, strategies }) {
    if (op.op === 'drv') return checkDriverCall(k.processes(), config, op, outcome, strategies);
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

/**
 * A strategy call that declares its ptrace check (StrategyCall.access): it must not succeed
 * without the rights, and, where the check alone gives its errno, must not be refused with it
 * while they are there. Another outcome (the target gone, a bad argument, ENOMEM) is not judged.
 */
function checkDriverCall(
  processes: Iterable<ProcessView>, config: Readonly<KernelConfig>, op: Extract<Op, { op: 'drv' }>, outcome: Outcome,
  strategies: readonly StrategyDefinition[] | undefined,
): Violation | null {
  const access = strategies?.find((s) => s.name === op.strategy)?.calls.find((c) => c.name === op.call)?.access;
  if (access === undefined) return null;
  const pid = op.args.pid;
  const targetPid = op.args[access.target];
  if (typeof pid !== 'number' || typeof targetPid !== 'number') return null;
  const procs = new Map<number, ProcessView>();
  for (const p of processes) procs.set(p.pid, p);
  const caller = procs.get(pid);
  const target = procs.get(targetPid);
  if (caller?.state !== 'running' || target?.state !== 'running') return null;
  const allowed = mayAccess(procs, config, caller, target, access.mode);
  const refused = outcome.kind === 'errno' && outcome.errno === access.denied;
  const what = `${op.strategy} ${op.call} by P${pid} (uid ${caller.uid}) of P${targetPid}`;
  const mode = access.mode === 'attach' ? 'PTRACE_MODE_ATTACH' : 'PTRACE_MODE_READ';
  if (!allowed && outcome.kind === 'ok') {
    return {
      invariant: 'access-control', cause: 'bypassed', pid,
      message: `${what} (uid ${target.uid}, ${target.dumpable ? 'dumpable' : 'not dumpable'}) succeeded without the ${mode} rights its design checks`,
    };
  }
  if (allowed && refused && access.deniedOnlyByAccess === true) {
    return {
      invariant: 'access-control', cause: 'refused', pid,
      message: `${what} was refused with ${access.denied} although ${mode} is allowed`,
    };
  }
  return null;
}
