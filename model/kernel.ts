/**
 * The reference kernel: dispatches each operation to the file that emulates it and
 * exposes its state through the inspection interface. Every step runs to completion or
 * throws a KernelAssertionError (a bug); errnos and signals are outcomes.
 */
import { mlockPages, mmapPages, mprotectArgs, mremapPages, msyncPages, withPageRange } from '../kernel-api/bytes.ts';
import { mlockallFlags, mlockPopulate, mlockRange, mmPopulate } from './mlock.ts';
import type { MmapOp, Op } from '../kernel-api/op.ts';
import { callerPid, madviseLockMode, MCL_CURRENT, taskOf } from '../kernel-api/op.ts';
import { LockTable } from '../kernel-api/locks.ts';
import type { LockMode } from '../kernel-api/locks.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import { DEFAULT_CONFIG } from '../kernel-api/config.ts';
import type { Corruption, Kernel, StrategyFactory } from '../kernel-api/kernel.ts';
import type { StrategyInstance } from '../kernel-api/driver.ts';
import type { KernelInspect } from '../kernel-api/state.ts';
import type { ModelState, Process } from './types.ts';
import { allocFrame } from './frames.ts';
import { runningCount, runningProcess, taskAlive, threadsOf } from './process.ts';
import { fdputAll, mmapLock, releaseIfHeld, runDeferredFput, taskName } from './locks.ts';
import { mmap, mprotect, munmap } from './mmap.ts';
import { mremap } from './mremap.ts';
import { mincore } from './mincore.ts';
import { msync } from './msync.ts';
import { exitPipes, pipeRead, vmsplice } from './vmsplice.ts';
import { PipeTable } from '../kernel-api/pipes.ts';
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

export function newModelState(config: KernelConfig, locks?: LockTable): ModelState {
  const s: ModelState = {
    config, step: 0, frames: new Map(), freed: new Map(), nextPfn: 1, zeroPfn: 0, processes: new Map(), running: new Set(), nextPid: 1,
    files: new Map(), nextFileId: 1, nextShmemId: 1, swap: new Map(), nextSlot: 1, nextVmaId: 1, nextAnonVma: 1,
    failNth: 0, slab: new Map(), slabPage: new Map(), slabPfns: new Set(), nextSlabId: 1, nextDriverFileId: 1, notifiers: new Map(), nextNotifierId: 1,
    skipPtraceCheck: false, skipForkDmaCopy: false, strayHolds: new Map(), nextUffdCtx: 1,
    locks: locks ?? new LockTable(() => s.step, (tid) => taskName(s, tid)),
    lockRefs: { mmap: new Map(), ptl: new Map(), iMmap: new Map(), anonVma: new Map(), invalidate: new Map() },
    threads: new Map(), invalidations: [], notifierNesting: new Map(), deferredFput: new Map(), fdgetHeld: new Map(), anonVmaRoot: new Map(),
    pipes: new PipeTable(),
  };
  const zero = allocFrame(s, 'zero', 0)!;
  s.zeroPfn = zero.pfn;
  return s;
}

export class ModelKernel implements Kernel {
  readonly kind = 'model' as const;
  readonly state: ModelState;
  readonly inspect: KernelInspect;
  /** mmap_lock, PTL, rmap locks, drivers' locks, lockdep; `current` is the running task. */
  readonly locks: LockTable;
  /** The driver API the strategies of this kernel were created with. */
  readonly driverKernel: ModelDriverKernel;
  private readonly strategies = new Map<string, StrategyInstance>();

  constructor(readonly config: Readonly<KernelConfig> = DEFAULT_CONFIG, strategies: readonly StrategyFactory[] = []) {
    this.locks = new LockTable(() => this.state?.step ?? 0, (tid) => taskName(this.state, tid));
    this.state = newModelState({ ...config }, this.locks);
    const driverKernel = new ModelDriverKernel(this.state);
    this.driverKernel = driverKernel;
    for (const factory of strategies) this.strategies.set(factory.name, factory.create(driverKernel));
    this.inspect = new ModelInspect(this.state, this.strategies);
  }

  strategy(name: string): StrategyInstance | undefined {
    return this.strategies.get(name);
  }

  corrupt(c: Corruption): void {
    corruptModel(this.state, c);
  }

  /** The tids of `pid`'s live threads, main thread first (empty once it exited). */
  threadsOf(pid: number): number[] {
    return threadsOf(this.state, pid);
  }

  /**
   * Run `op` as task taskOf(op). Re-entrant: at a scheduling point `locks.hooks` may step
   * another operation nested, so the running task is saved and restored around it. The
   * fput()s the task deferred run, then it returns to user space holding nothing.
   */
  step(op: Op): Outcome {
    const locks = this.locks;
    const previous = locks.current;
    const tid = op.tid;
    locks.current = taskOf(op);
    try {
      const outcome = this.run(op, tid);
      fdputAll(this.state);
      runDeferredFput(this.state);
      // returnToUser's own test first: the operation's name (a load over many shapes) is read only for its message.
      if (locks.holdsAny(locks.current)) locks.returnToUser(op.op);
      return outcome;
    } finally {
      locks.current = previous;
    }
  }

  /** ESRCH for a `tid` that is not a live thread of the process the operation names. */
  /**
   * The operation's process is being killed (an operation nested while its exit_group or
   * OOM kill runs): SIGKILL went to every thread first (zap_other_threads; the OOM killer
   * before the reaper), so none of them starts another system call or fault — it is gone,
   * as after the kill.
   */
  private callerKilled(op: Op): boolean {
    const named = callerPid(op);
    if (named === undefined) return false;
    const p = this.state.processes.get(named);
    // An OOM victim's exit is its own do_exit, which the pending SIGKILL leads to.
    return p !== undefined && p.state === 'running' && p.killed && !(op.op === 'exit' && p.oomReaped);
  }

  private badTask(op: Op): boolean {
    if (op.tid === undefined) return false;
    const named = callerPid(op);
    if (named !== undefined) return this.state.threads.get(op.tid) !== named;
    return op.tid !== 0 && !this.state.threads.has(op.tid);
  }

  private run(op: Op, tid: number | undefined): Outcome {
    const s = this.state;
    s.step += 1;
    if ((tid !== undefined && this.badTask(op)) || this.callerKilled(op)) return err('ESRCH');
    switch (op.op) {
      case 'spawn': return this.spawn(op.uid ?? 1000);
      case 'clone': return this.withProcess(op.pid, (p) => this.clone(p));
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
    const proc: Process = { pid: s.nextPid++, ppid: 0, uid, dumpable: true, state: 'running', oomReaped: false, killed: false, mm: newMm(), fds: new Map(), children: [] };
    s.processes.set(proc.pid, proc);
    s.threads.set(proc.pid, proc.pid);
    s.running.add(proc.pid);
    return ok(proc.pid);
  }

  /** clone(CLONE_VM | CLONE_THREAD): a new thread sharing the mm; its tid comes from the pid counter. */
  private clone(proc: Process): Outcome {
    const s = this.state;
    const tid = s.nextPid++;
    s.threads.set(tid, proc.pid);
    return ok(tid);
  }

  /**
   * An operation on the caller's own mm: its mmap_lock in `mode`, taken first. Another
   * thread's exit_group may have run at the lock's scheduling point: the task is dead then
   * (mmap_write_lock_killable fails on the fatal signal), and nothing is done: ESRCH.
   */
  private locked(proc: Process, mode: LockMode, where: string, f: () => Outcome): Outcome {
    const s = this.state;
    // withMmapLock written out: no closure around `f` per operation.
    const lock = mmapLock(s, proc.pid);
    s.locks.acquire(lock, mode, where);
    let r: Outcome;
    try {
      r = taskAlive(s, proc) ? f() : err('ESRCH');
    } catch (e) {
      releaseIfHeld(s, lock, where);
      throw e;
    }
    s.locks.release(lock, where);
    runDeferredFput(s);
    return r;
  }

  /** The VMA at `addr` is VM_LOCKED and not VM_LOCKONFAULT. */
  private lockedAt(proc: Process, addr: number): boolean {
    const v = proc.mm.vmas.find((x) => x.start <= addr && addr < x.end);
    return v !== undefined && v.locked && !v.lockonfault;
  }

  /** vm_mmap_pgoff: do_mmap under mmap_lock for write, then mm_populate of a VM_LOCKED mapping (errors ignored). */
  private mmap(proc: Process, op: MmapOp): Outcome {
    const s = this.state;
    let len = 0;
    const r = this.locked(proc, 'write', 'vm_mmap_pgoff', () => {
      const o = mmapPages(op);
      if ('errno' in o) return err(o.errno);
      len = o.lengthPages;
      return mmap(s, proc, o);
    });
    if (r.kind === 'ok' && (op.locked === true || proc.mm.defLocked) && !proc.mm.defLockOnFault) {
      // The mapping is there for every thread once mmap_lock is dropped, before mm_populate.
      s.locks.linearized(r);
      const e = mmPopulate(s, proc, r.value, r.value + len, true);
      if (e === 'ESRCH') return err(e);
    }
    return r;
  }

  private withProcess(pid: number, f: (p: Process) => Outcome): Outcome {
    const proc = runningProcess(this.state, pid);
    return proc === undefined ? err('ESRCH') : f(proc);
  }

  private processOp(proc: Process, op: Op): Outcome {
    const s = this.state;
    switch (op.op) {
      case 'mmap':
        // Its byte arguments: the offset checked at the syscall, before mmap_lock; the length
        // and a hint rounded by do_mmap, under it (mmapPages).
        if (op.pgoff !== undefined && !Number.isInteger(op.pgoff)) return err('EINVAL');
        return this.mmap(proc, op);
      // do_vmi_munmap checks (start, len) under the mmap lock __vm_munmap took.
      case 'munmap': return this.locked(proc, 'write', 'vm_munmap', () => withPageRange('munmap', op, (o) => munmap(s, proc, o)));
      // do_mprotect_pkey and is_valid_madvise check (start, len) before they lock.
      case 'mprotect': return withPageRange('mprotect', op, (o) => {
        const e = mprotectArgs(o.addr, o.lengthPages, o.prot);
        if (e !== null) return e === 0 ? ok(0) : err(e);
        return this.locked(proc, 'write', 'do_mprotect_pkey', () => mprotect(s, proc, o));
      });
      case 'mremap': {
        // Its byte arguments are checked and rounded before mmap_lock (check_mremap_params).
        const o = mremapPages(op);
        if ('errno' in o) return err(o.errno);
        const r = this.locked(proc, 'write', 'do_mremap', () => mremap(s, proc, o));
        // do_mremap: a VM_LOCKED VMA that grew has its new part faulted in (mm_populate).
        if (r.kind === 'ok' && o.newPages > o.oldPages && this.lockedAt(proc, r.value)) {
          s.locks.linearized(r);
          const e = mmPopulate(s, proc, r.value + o.oldPages, r.value + o.newPages, true);
          if (e === 'ESRCH') return err(e);
        }
        return r;
      }
      case 'madvise': {
        // get_lock_mode: the advices that change vm_flags take the mmap_lock for write (kernel-api/op.ts).
        const mode = madviseLockMode(op.advice);
        if (mode === null) return err('EINVAL');
        return withPageRange('madvise', op, (o) => this.locked(proc, mode, 'do_madvise', () => madvise(s, proc, o)));
      }
      case 'read': return userRead(s, proc, op.addr);
      case 'write': return userWrite(s, proc, op.addr, op.value);
      case 'fork': {
        const r = this.locked(proc, 'write', 'dup_mmap', () => fork(s, proc));
        if (r.kind === 'ok') s.pipes.fork(proc.pid, r.value); // copy_files: the child's fd table holds the pipes too
        return r;
      }
      case 'exit':
        if (!exitProcess(s, proc)) return err('ESRCH');
        exitPipes(s, proc.pid);
        return ok(0);
      case 'oom': return oomKill(s, proc) ? ok(0) : err('ESRCH');
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
      case 'mincore': return withPageRange('mincore', op, (o) => mincore(s, proc, o));
      case 'mlock':
      case 'munlock': {
        const o = mlockPages(op);
        const r = this.locked(proc, 'write', op.op === 'mlock' ? 'do_mlock' : 'do_munlock', () => mlockRange(s, proc, o));
        return r.kind !== 'ok' || o === null || o.op !== 'mlock' || o.onfault === true ? r : mlockPopulate(s, proc, o);
      }
      case 'mlockall':
      case 'munlockall': {
        const flags = op.op === 'mlockall' ? op.flags : 0;
        const r = this.locked(proc, 'write', op.op, () => mlockallFlags(s, proc, flags, op.op === 'munlockall'));
        // mm_populate(0, TASK_SIZE): errors ignored.
        if (r.kind === 'ok' && (flags & MCL_CURRENT) !== 0) {
          const e = mmPopulate(s, proc, 0, s.config.taskSizePages, true);
          if (e === 'ESRCH') return err(e);
        }
        return r;
      }
      case 'msync': {
        const o = msyncPages(op);
        if ('errno' in o) return o.errno === 0 ? ok(0) : err(o.errno);
        return msync(s, proc, o.addr, o.addr + o.lengthPages, o.flags);
      }
      case 'vmsplice': return vmsplice(s, proc, op);
      case 'pipe_read': return pipeRead(s, proc, op);
      case 'pagemap_scan': return pagemapScan(s, proc, op);
      case 'clear_refs': return clearRefs(s, proc, op);
      // validate_range before mmap_lock.
      case 'uffd_register_wp': return withPageRange('uffd', op, (o) => this.locked(proc, 'write', 'userfaultfd_register', () => uffdRegisterWp(s, proc, o)));
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
