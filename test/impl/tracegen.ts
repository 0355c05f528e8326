/**
 * A seeded random trace generator for the model-vs-impl differential test: core
 * operations only, each drawn by per-trace swarm weights (some kinds off), with addresses
 * and ranges biased to existing VMAs, their edges and their neighbours, a few distinct
 * values so sharing shows, and small limits (map count, swap, processes) so error paths
 * are reached. Not covered: strategies (drv) and driver fds (close).
 */
import seedrandom from 'seedrandom';
import type { KernelConfig } from '../../kernel-api/config.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import type { Advice, Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import type { KernelInspect, VmaView } from '../../kernel-api/state.ts';

export const TRACE_KINDS = [
  'spawn', 'mmap', 'munmap', 'mprotect', 'mremap', 'madvise', 'read', 'write', 'fork', 'exit', 'reclaim_addr',
  'reclaim_count', 'oom', 'creat', 'pread', 'pwrite', 'truncate', 'proc_mem_read', 'proc_mem_write',
  'process_vm_readv', 'process_vm_writev', 'set_dumpable', 'fail_nth',
] as const;
export type TraceKind = (typeof TRACE_KINDS)[number];

const BASE_WEIGHT: Record<TraceKind, number> = {
  spawn: 1, mmap: 8, munmap: 3, mprotect: 4, mremap: 3, madvise: 3, read: 12, write: 16, fork: 3, exit: 1,
  reclaim_addr: 4, reclaim_count: 2, oom: 1, creat: 1, pread: 2, pwrite: 3, truncate: 1, proc_mem_read: 2,
  proc_mem_write: 2, process_vm_readv: 2, process_vm_writev: 2, set_dumpable: 1, fail_nth: 2,
};

const ADVICES: readonly Advice[] = [
  'DONTNEED', 'PAGEOUT', 'COLD', 'DONTFORK', 'DOFORK', 'WILLNEED', 'WIPEONFORK', 'KEEPONFORK', 'POPULATE_READ', 'POPULATE_WRITE', 'REMOVE',
];
const VALUES = [1, 2, 3, 0xdeadbeef, 42];

/** A small machine: low map count, few swap slots and processes, so limits are hit. */
export function traceConfig(rng: () => number): KernelConfig {
  const small = rng() < 0.5;
  return {
    ...DEFAULT_CONFIG,
    taskSizePages: small ? 1 << 12 : DEFAULT_CONFIG.taskSizePages,
    mmapBasePages: small ? 1 << 11 : DEFAULT_CONFIG.mmapBasePages,
    maxMapCount: small ? 12 : 64,
    processesMax: small ? 4 : 8,
    swapSlotsMax: small ? 6 : 256,
    yamaPtraceScope: rng() < 0.5 ? 1 : 0,
  };
}

export class TraceGen {
  private readonly rng: () => number;
  private readonly weights: number[];
  private readonly total: number;
  private readonly files: number[] = [];

  constructor(seed: string, private readonly config: KernelConfig) {
    this.rng = seedrandom(seed);
    this.weights = TRACE_KINDS.map((k) => BASE_WEIGHT[k] * [0, 1, 1, 2, 3][this.int(5)]);
    this.weights[TRACE_KINDS.indexOf('spawn')] += 1;
    this.weights[TRACE_KINDS.indexOf('write')] += 2;
    this.total = this.weights.reduce((a, b) => a + b, 0);
  }

  int(max: number): number {
    return Math.floor(this.rng() * max);
  }

  private chance(p: number): boolean {
    return this.rng() < p;
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  private kind(): TraceKind {
    let x = this.int(this.total);
    for (let i = 0; i < TRACE_KINDS.length; i++) {
      x -= this.weights[i];
      if (x < 0) return TRACE_KINDS[i];
    }
    return 'write';
  }

  /** Tell the generator what a step returned (file ids from creat). */
  learn(op: Op, outcome: Outcome): void {
    if (op.op === 'creat' && outcome.kind === 'ok') this.files.push(outcome.value);
  }

  private pids(k: KernelInspect): number[] {
    const out: number[] = [];
    for (const p of k.processes()) if (p.state === 'running') out.push(p.pid);
    return out;
  }

  private pid(k: KernelInspect): number {
    const pids = this.pids(k);
    if (pids.length === 0 || this.chance(0.02)) return 1 + this.int(4);
    return this.pick(pids);
  }

  /** An address biased to VMA starts, ends, interiors and the pages just outside. */
  private addr(k: KernelInspect, pid: number): number {
    const vmas: VmaView[] = [...k.vmas(pid)];
    if (vmas.length === 0 || this.chance(0.05)) return this.config.mmapMinAddrPages + this.int(64);
    const v = this.pick(vmas);
    switch (this.int(10)) {
      case 0: return v.start;
      case 1: return v.end - 1;
      case 2: return this.chance(0.5) ? v.end : Math.max(0, v.start - 1);
      default: return v.start + this.int(v.end - v.start);
    }
  }

  /** An address inside a writable VMA of `pid`, when it has one. */
  private writableAddr(k: KernelInspect, pid: number): number {
    const vmas = [...k.vmas(pid)].filter((v) => (v.prot & 2) !== 0);
    if (vmas.length === 0) return this.addr(k, pid);
    const v = this.pick(vmas);
    return v.start + this.int(v.end - v.start);
  }

  private range(k: KernelInspect, pid: number): { addr: number; lengthPages: number } {
    const addr = this.addr(k, pid);
    const lengthPages = this.chance(0.1) ? 0 : this.chance(0.15) ? 1 + this.int(40) : 1 + this.int(4);
    return { addr, lengthPages };
  }

  private value(): number {
    return this.chance(0.8) ? this.pick(VALUES) : this.int(2 ** 32);
  }

  private prot(): number {
    return this.pick([0, 1, 3, 3, 3, 3, 3, 5, 7, 2]);
  }

  next(k: KernelInspect): Op {
    const running = this.pids(k).length;
    const kind = running === 0 && this.chance(0.9) ? 'spawn' : running === 1 && this.chance(0.1) ? 'fork' : this.kind();
    switch (kind) {
      case 'spawn': return { op: 'spawn', uid: this.pick([1000, 1000, 1000, 0, 1001]) };
      case 'mmap': return this.mmap(k);
      case 'munmap': {
        const pid = this.pid(k);
        return { op: 'munmap', pid, ...this.range(k, pid) };
      }
      case 'mprotect': {
        const pid = this.pid(k);
        return { op: 'mprotect', pid, ...this.range(k, pid), prot: this.prot() };
      }
      case 'mremap': return this.mremap(k);
      case 'madvise': {
        const pid = this.pid(k);
        return { op: 'madvise', pid, ...this.range(k, pid), advice: this.pick(ADVICES) };
      }
      case 'read': {
        const pid = this.pid(k);
        return { op: 'read', pid, addr: this.addr(k, pid) };
      }
      case 'write': {
        const pid = this.pid(k);
        return { op: 'write', pid, addr: this.chance(0.8) ? this.writableAddr(k, pid) : this.addr(k, pid), value: this.value() };
      }
      case 'fork': return { op: 'fork', pid: this.pid(k) };
      case 'exit': return { op: 'exit', pid: this.pid(k) };
      case 'oom': return { op: 'oom', pid: this.pid(k) };
      case 'reclaim_addr': {
        const pid = this.pid(k);
        return { op: 'reclaim', pid, addr: this.addr(k, pid) };
      }
      case 'reclaim_count': return { op: 'reclaim', count: this.pick([1, 1, 2, 4, 16]) };
      case 'creat': return { op: 'creat', sizePages: this.pick([0, 1, 4, 8, 16]) };
      case 'pread': return { op: 'pread', file: this.file(), index: this.int(10) };
      case 'pwrite': return { op: 'pwrite', file: this.file(), index: this.int(10), value: this.value() };
      case 'truncate': return { op: 'truncate', file: this.file(), sizePages: this.int(10) };
      case 'proc_mem_read':
      case 'process_vm_readv': {
        const pid = this.pid(k);
        const target = this.pid(k);
        return { op: kind, pid, target, addr: this.addr(k, target) };
      }
      case 'proc_mem_write':
      case 'process_vm_writev': {
        const pid = this.pid(k);
        const target = this.pid(k);
        return { op: kind, pid, target, addr: this.addr(k, target), value: this.value() };
      }
      case 'set_dumpable': return { op: 'set_dumpable', pid: this.pid(k), dumpable: this.chance(0.5) };
      case 'fail_nth': return { op: 'fail_nth', nth: this.pick([1, 1, 2, 3, 5, 8]) };
    }
  }

  private file(): number {
    return this.files.length === 0 || this.chance(0.05) ? 1 + this.int(3) : this.pick(this.files);
  }

  private mmap(k: KernelInspect): Op {
    const pid = this.pid(k);
    const lengthPages = this.chance(0.1) ? 1 + this.int(64) : 1 + this.int(6);
    const placement = this.int(6);
    const addr = placement === 0 ? 0 : placement === 1 ? this.config.mmapMinAddrPages + this.int(100) : this.addr(k, pid);
    const op: Extract<Op, { op: 'mmap' }> = { op: 'mmap', pid, addr: placement === 0 ? 0 : addr, lengthPages, prot: this.prot(), shared: this.chance(0.3) };
    if (placement >= 2 && this.chance(0.6)) {
      if (this.chance(0.7)) op.fixed = true;
      else op.noreplace = true;
    }
    if (this.chance(0.35)) {
      op.file = this.file();
      op.pgoff = this.int(8);
      if (this.chance(0.3)) op.mode = 'r';
    }
    return op;
  }

  private mremap(k: KernelInspect): Op {
    const pid = this.pid(k);
    const { addr } = this.range(k, pid);
    const oldPages = 1 + this.int(5);
    const newPages = 1 + this.int(8);
    const op: Extract<Op, { op: 'mremap' }> = { op: 'mremap', pid, addr, oldPages, newPages, maymove: this.chance(0.6) };
    if (op.maymove && this.chance(0.3)) {
      op.fixed = true;
      op.newAddr = this.chance(0.5) ? this.addr(k, pid) : this.config.mmapMinAddrPages + this.int(200);
    }
    return op;
  }
}
