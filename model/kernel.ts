/**
 * The reference kernel: dispatches each operation to the file that emulates it and
 * exposes its state through the inspection interface. Every step runs to completion or
 * throws a KernelAssertionError (a bug); errnos and signals are outcomes.
 */
import type { Op } from '../kernel-api/op.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import { DEFAULT_CONFIG } from '../kernel-api/config.ts';
import type { Corruption, Kernel, StrategyFactory } from '../kernel-api/kernel.ts';
import type { StrategyInstance } from '../kernel-api/driver.ts';
import type { KernelInspect } from '../kernel-api/state.ts';
import type { ModelState, Process } from './types.ts';
import { allocFrame } from './frames.ts';
import { runningCount, runningProcess } from './process.ts';
import { mmap, mprotect, munmap } from './mmap.ts';
import { mremap } from './mremap.ts';
import { madvise } from './madvise.ts';
import { fork, newMm } from './fork.ts';
import { exitProcess, oomKill } from './exit.ts';
import { reclaimAt, reclaimOldest } from './reclaim.ts';
import { creat, pread, pwrite, truncate } from './fileops.ts';
import { procMemAccess, processVmAccess, userRead, userWrite } from './access.ts';
import { ModelInspect } from './inspect.ts';
import { corruptModel } from './corrupt.ts';
import { ModelDriverKernel } from './driverapi.ts';
import { fileRelease } from './driverfile.ts';
import { clearRefs, mapFilesReaddir, pagemapRead, pagemapScan, uffdRegisterWp } from './pagemap.ts';

export function newModelState(config: KernelConfig): ModelState {
  const s: ModelState = {
    config, step: 0, frames: new Map(), freed: new Map(), nextPfn: 1, zeroPfn: 0, processes: new Map(), running: new Set(), nextPid: 1,
    files: new Map(), nextFileId: 1, nextShmemId: 1, swap: new Map(), nextSlot: 1, nextVmaId: 1, nextAnonVma: 1,
    failNth: 0, slab: new Map(), nextSlabId: 1, nextDriverFileId: 1, notifiers: new Map(), nextNotifierId: 1,
    skipPtraceCheck: false, strayHolds: new Map(), nextUffdCtx: 1,
  };
  const zero = allocFrame(s, 'zero', 0)!;
  s.zeroPfn = zero.pfn;
  return s;
}

export class ModelKernel implements Kernel {
  readonly kind = 'model' as const;
  readonly state: ModelState;
  readonly inspect: KernelInspect;
  private readonly strategies = new Map<string, StrategyInstance>();

  constructor(readonly config: Readonly<KernelConfig> = DEFAULT_CONFIG, strategies: readonly StrategyFactory[] = []) {
    this.state = newModelState({ ...config });
    const driverKernel = new ModelDriverKernel(this.state);
    for (const factory of strategies) this.strategies.set(factory.name, factory.create(driverKernel));
    this.inspect = new ModelInspect(this.state, this.strategies);
  }

  strategy(name: string): StrategyInstance | undefined {
    return this.strategies.get(name);
  }

  corrupt(c: Corruption): void {
    corruptModel(this.state, c);
  }

  step(op: Op): Outcome {
    const s = this.state;
    s.step += 1;
    switch (op.op) {
      case 'spawn': return this.spawn(op.uid ?? 1000);
      case 'creat': return creat(s, op);
      case 'pread': return pread(s, op);
      case 'pwrite': return pwrite(s, op);
      case 'truncate': return truncate(s, op);
      case 'fail_nth':
        if (!Number.isSafeInteger(op.nth) || op.nth < 0) return err('EINVAL');
        s.failNth = op.nth;
        return ok(0);
      case 'reclaim':
        if ('count' in op) return Number.isSafeInteger(op.count) && op.count >= 0 ? ok(reclaimOldest(s, op.count)) : err('EINVAL');
        return this.withProcess(op.pid, (p) => ok(reclaimAt(s, p, op.addr)));
      case 'drv': {
        const instance = this.strategies.get(op.strategy);
        return instance === undefined ? err('ENODEV') : instance.call(op.call, op.args);
      }
      default: return this.withProcess(op.pid, (p) => this.processOp(p, op));
    }
  }

  private spawn(uid: number): Outcome {
    const s = this.state;
    if (!Number.isSafeInteger(uid) || uid < 0) return err('EINVAL');
    if (runningCount(s) >= s.config.processesMax) return err('EAGAIN');
    const proc: Process = { pid: s.nextPid++, ppid: 0, uid, dumpable: true, state: 'running', oomReaped: false, mm: newMm(), fds: new Map(), children: [] };
    s.processes.set(proc.pid, proc);
    s.running.add(proc.pid);
    return ok(proc.pid);
  }

  private withProcess(pid: number, f: (p: Process) => Outcome): Outcome {
    const proc = runningProcess(this.state, pid);
    return proc === undefined ? err('ESRCH') : f(proc);
  }

  private processOp(proc: Process, op: Op): Outcome {
    const s = this.state;
    switch (op.op) {
      case 'mmap': return mmap(s, proc, op);
      case 'munmap': return munmap(s, proc, op);
      case 'mprotect': return mprotect(s, proc, op);
      case 'mremap': return mremap(s, proc, op);
      case 'madvise': return madvise(s, proc, op);
      case 'read': return userRead(s, proc, op.addr);
      case 'write': return userWrite(s, proc, op.addr, op.value);
      case 'fork': return fork(s, proc);
      case 'exit': exitProcess(s, proc); return ok(0);
      case 'oom': oomKill(s, proc); return ok(0);
      case 'set_dumpable': proc.dumpable = op.dumpable; return ok(0);
      case 'close': {
        const file = proc.fds.get(op.fd);
        if (file === undefined) return err('EBADF');
        proc.fds.delete(op.fd);
        fileRelease(s, file);
        return ok(0);
      }
      case 'proc_mem_read':
      case 'proc_mem_write':
      case 'process_vm_readv':
      case 'process_vm_writev': return this.remoteAccess(proc, op);
      case 'pagemap_read': return pagemapRead(s, proc, op);
      case 'pagemap_scan': return pagemapScan(s, proc, op);
      case 'clear_refs': return clearRefs(s, proc, op);
      case 'uffd_register_wp': return uffdRegisterWp(s, proc, op);
      case 'map_files_readdir': return mapFilesReaddir(s, proc, op);
      default: return err('EINVAL');
    }
  }

  private remoteAccess(caller: Process, op: Extract<Op, { op: 'proc_mem_read' | 'proc_mem_write' | 'process_vm_readv' | 'process_vm_writev' }>): Outcome {
    const s = this.state;
    const target = runningProcess(s, op.target);
    if (target === undefined) return err('ESRCH');
    const value = 'value' in op ? op.value : undefined;
    if (op.op === 'proc_mem_read' || op.op === 'proc_mem_write') return procMemAccess(s, caller, target, op.addr, value);
    return processVmAccess(s, caller, target, op.addr, value);
  }
}
