/**
 * Building operations from random choices, against the current state. A step is a short
 * list of integers (its choices); the builder reads them through `Choice` and picks an
 * operation kind by the run's swarm weights, then arguments biased to the interesting
 * cases: addresses at VMA edges and inside them, ranges that straddle edges, pages
 * already shared, a few distinct values. Zero always means the plainest option: a step
 * whose fast-check integer shrinks to zero has all-zero choices (properties/arbitrary.ts).
 */
import type { Op, Advice } from '../kernel-api/op.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import type { KernelInspect, VmaView } from '../kernel-api/state.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import type { Choice, DriverArgs, GenContext, StrategyDefinition } from '../kernel-api/strategy.ts';
import type { RemoteView } from '../kernel-api/driver.ts';
import { list } from './invariants/snapshot.ts';

/** Reads a step's integers in order; past the end every choice is 0. */
export class ChoiceStream implements Choice {
  private i = 0;
  constructor(private readonly xs: readonly number[]) {}
  int(max: number): number {
    const x = this.xs[this.i++] ?? 0;
    return max <= 1 ? 0 : x % max;
  }
  bool(): boolean {
    return this.int(2) === 1;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

/** Integers per step: enough for the largest argument list. */
export const CHOICES_PER_STEP = 24;

export const CORE_KINDS = [
  'spawn', 'mmap', 'munmap', 'mprotect', 'mremap', 'madvise', 'read', 'write', 'fork', 'exit', 'reclaim', 'oom',
  'creat', 'pread', 'pwrite', 'truncate', 'proc_mem_read', 'proc_mem_write', 'process_vm_readv', 'process_vm_writev',
  'set_dumpable', 'fail_nth', 'close',
  'pagemap_read', 'clear_refs', 'uffd_register_wp', 'pagemap_scan', 'map_files_readdir',
  'mincore', 'mlock', 'munlock', 'mlockall', 'munlockall', 'msync', 'vmsplice', 'pipe_read',
] as const;

/** Base weights before swarm testing rescales them. */
const CORE_WEIGHT: Record<(typeof CORE_KINDS)[number], number> = {
  spawn: 2, mmap: 8, munmap: 4, mprotect: 4, mremap: 3, madvise: 3, read: 12, write: 12, fork: 3, exit: 1, reclaim: 4,
  oom: 1, creat: 1, pread: 2, pwrite: 2, truncate: 1, proc_mem_read: 2, proc_mem_write: 2, process_vm_readv: 1,
  process_vm_writev: 1, set_dumpable: 1, fail_nth: 1, close: 1,
  pagemap_read: 2, clear_refs: 1, uffd_register_wp: 1, pagemap_scan: 3, map_files_readdir: 1,
  mincore: 2, mlock: 2, munlock: 1, mlockall: 1, munlockall: 1, msync: 2, vmsplice: 2, pipe_read: 2,
};

export type OpKind = { name: string; weight: number; strategy?: StrategyDefinition; call?: StrategyDefinition['calls'][number] };

/** Every kind a run may draw: the core ones and the loaded strategies' calls. */
export function opKinds(strategies: readonly StrategyDefinition[]): OpKind[] {
  const kinds: OpKind[] = CORE_KINDS.map((name) => ({ name, weight: CORE_WEIGHT[name] }));
  for (const s of strategies) {
    for (const call of s.calls) kinds.push({ name: `${s.name}.${call.name}`, weight: call.weight, strategy: s, call });
  }
  return kinds;
}

/**
 * Swarm testing: each run rescales every kind by a factor in 0..4 (0 switches it off).
 * `hot`: addresses from a small pool; `prelude`: the run starts with its strategies' prelude.
 */
export type Swarm = {
  factors: readonly number[]; hot: boolean; prelude?: boolean;
  /**
   * Concurrent runs: 0 (or absent) runs every operation alone; 1 runs some steps as
   * segments of two or three tasks interleaved by random switches, 2 by PCT
   * (harness/runner.ts, properties/sched.ts).
   */
  concurrency?: 0 | 1 | 2;
};

/**
 * MADV_DONTNEED three times in seven: it zaps like munmap but keeps the VMA, so every PTE
 * teardown path (rmap, RSS, swap counts, MMU notifiers) runs under a live mapping; drawn
 * one time in five it was too rare to meet a notifier's range within seconds.
 */
const ADVICES: readonly Advice[] = [
  'DONTNEED', 'PAGEOUT', 'DONTNEED', 'COLD', 'DONTNEED', 'DONTFORK', 'DOFORK',
  // issue 17
  'WILLNEED', 'WIPEONFORK', 'KEEPONFORK', 'POPULATE_READ', 'POPULATE_WRITE', 'REMOVE', 'FREE', 'FREE',
];
const LENGTHS = [1, 1, 2, 3, 4, 8, 16, 64];
/**
 * Protections drawn for mmap and mprotect: mostly read-write, and now and then PROT_SEM
 * (8, which mprotect accepts and neither call keeps) or a bit no call knows (0x10: mmap
 * ignores it, mprotect refuses it with EINVAL), so that both argument checks are exercised.
 */
const PROTS = [3, 3, 3, 1, 0, 2, 7, 5, 3 | 8, 1 | 0x10];

const NO_VIEWS: readonly RemoteView[] = [];

/** Core operations on an address or a range of the calling process (their pid is drawn by memPid). */
const ON_MEMORY: ReadonlySet<string> = new Set(['munmap', 'mprotect', 'madvise', 'mremap', 'read', 'write', 'reclaim', 'uffd_register_wp', 'mincore', 'mlock', 'munlock', 'msync', 'vmsplice']);

/** Values strategy calls returned, remembered under the key their call names. */
type Remembered = Map<string, number[]>;

export class TraceBuilder implements GenContext {
  private readonly kinds: OpKind[];
  private readonly weights: number[];
  private readonly totalWeight: number;
  /** The running pids of the last processes() answer seen, and that answer. */
  private running: readonly number[] = [];
  private pidsFrom: Iterable<unknown> | null = null;
  /** The running pids that map something, for the same answer; null until asked. */
  private mapping: readonly number[] | null = null;
  private readonly remember: Remembered = new Map();
  /** `pid:fd` → the arguments of the strategy call that returned that fd. */
  private readonly origins = new Map<string, DriverArgs>();
  private readonly strategies: readonly StrategyDefinition[];
  /** The strategies' prelude (when the swarm asks for it), handed out before any generated step. */
  private readonly prelude: readonly Op[];
  private preludeNext = 0;
  /** f_op names the loaded strategies say have no mmap. */
  private readonly unmappable: ReadonlySet<string>;
  /** The page of a remote view this step's pid was drawn for (viewParty), which addr() then favours. */
  private focus: { pid: number; addr: number } | null = null;
  /** The remote view the last operation's pid was drawn for, and on which side (viewParty). */
  private viewed: { view: RemoteView; viewer: boolean } | null = null;
  /**
   * While a concurrent segment is built (Segments in harness/runner.ts): the other side of
   * the view its first operation was drawn for, which its other operations favour — a race
   * between a fault on a view and a change to the page it shows needs both in one segment.
   */
  private counterpart: { pid: number; addr: number } | null = null;

  /**
   * `views`: the loaded strategies' remote views as the kernel stands, so that addresses are
   * drawn where a view shows a page (a change there must reach the view).
   */
  constructor(
    private readonly k: KernelInspect,
    private readonly config: Readonly<KernelConfig>,
    strategies: readonly StrategyDefinition[],
    private readonly swarm: Swarm,
    private readonly views: () => readonly RemoteView[] = () => NO_VIEWS,
  ) {
    this.strategies = strategies;
    this.unmappable = new Set(strategies.flatMap((s) => s.unmappable ?? []));
    this.prelude = swarm.prelude === true ? strategies.flatMap((s) => s.prelude?.(config) ?? []) : [];
    this.kinds = opKinds(strategies);
    this.weights = this.kinds.map((kind, i) => kind.weight * (swarm.factors[i % Math.max(1, swarm.factors.length)] ?? 1));
    // Without mmap a run has no memory to act on, and every other memory operation fails
    // (a fifth of runs were so): swarm testing never switches it off.
    const mmap = this.kinds.findIndex((kind) => kind.name === 'mmap');
    this.weights[mmap] = Math.max(this.weights[mmap], this.kinds[mmap].weight);
    // A run with strategies is there to call them: when the swarm switched every strategy
    // call off, they keep their base weights.
    const calls = this.kinds.flatMap((kind, i) => (kind.strategy === undefined ? [] : [i]));
    if (calls.length > 0 && calls.every((i) => this.weights[i] === 0)) for (const i of calls) this.weights[i] = this.kinds[i].weight;
    this.totalWeight = this.weights.reduce((a, b) => a + b, 0);
  }

  /**
   * The operation for one step's choices, or null when the drawn call has nothing to act on.
   * While a prelude lasts, its next operation (the step's choices unused).
   */
  next(choices: readonly number[]): Op | null {
    if (this.preludeNext < this.prelude.length) return this.prelude[this.preludeNext++];
    const c = new ChoiceStream(choices);
    this.focus = null;
    this.viewed = null;
    if (this.pids().length === 0) return { op: 'spawn' };
    const kind = this.pickKind(c);
    if (kind.strategy !== undefined) {
      const args = kind.call!.args(this, c);
      return args === null ? null : { op: 'drv', strategy: kind.strategy.name, call: kind.call!.name, args };
    }
    return this.core(kind.name as (typeof CORE_KINDS)[number], c);
  }

  /** Learn from an outcome what later steps may use: values a call says it returns. */
  learn(op: Op, outcome: Outcome): void {
    if (outcome.kind !== 'ok') return;
    if (op.op === 'fork') {
      for (const [key, args] of [...this.origins]) {
        if (key.startsWith(`${op.pid}:`)) this.origins.set(`${outcome.value}:${key.slice(key.indexOf(':') + 1)}`, args);
      }
    }
    if (op.op === 'close') this.origins.delete(`${op.pid}:${op.fd}`);
    if (op.op !== 'drv') return;
    const kind = this.kinds.find((x) => x.strategy?.name === op.strategy && x.call?.name === op.call);
    const returns = kind?.call?.returns;
    if (returns === 'fd') this.origins.set(`${Number(op.args.pid)}:${outcome.value}`, op.args);
    if (returns === undefined || returns === 'fd') return; // fds themselves are read from the fd table
    const key = `${op.strategy}:${returns}`;
    this.remember.set(key, [...(this.remember.get(key) ?? []), outcome.value]);
  }

  private pickKind(c: Choice): OpKind {
    if (this.totalWeight === 0) return this.kinds[0];
    let x = c.int(this.totalWeight);
    for (let i = 0; i < this.kinds.length; i++) {
      if (x < this.weights[i]) return this.kinds[i];
      x -= this.weights[i];
    }
    return this.kinds[0];
  }

  // ---- GenContext -------------------------------------------------------------------

  pids(): readonly number[] {
    // A snapshot hands out the same answer until the kernel moves: so are its running pids.
    const procs = this.k.processes();
    if (procs === this.pidsFrom) return this.running;
    const out: number[] = [];
    // An OOM victim can start nothing but its exit (`victim`), and gets no other operation.
    for (const p of procs) if (p.state === 'running' && !p.oomReaped) out.push(p.pid);
    this.pidsFrom = procs;
    this.running = out;
    this.mapping = null;
    return out;
  }

  /**
   * A pid for an operation on memory (an address or a range in it): a party to a remote
   * view now and then (viewParty), else seven times in eight one that maps something. Drawn
   * among all running pids, nearly half of all reads and writes went to a process that
   * mapped nothing yet (a fresh spawn) and only raised SIGSEGV.
   */
  private memPid(c: Choice): number {
    const party = this.viewParty(c);
    if (party !== null) return party;
    const mapping = this.mappingPids();
    return mapping.length === 0 || c.int(8) === 0 ? this.pid(c) : c.pick(mapping);
  }

  /**
   * A quarter of the time when a remote view exists, a running process on either side of
   * one: the process that maps the view (touching it faults the view in) or the one whose
   * pages it shows (a COW break, mprotect, DONTNEED or reclaim there must reach the view).
   * Drawn among all processes, each side was one of several. Null otherwise.
   */
  private viewParty(c: Choice): number | null {
    const other = this.counterpart;
    if (other !== null && c.int(4) !== 0 && this.pids().includes(other.pid)) {
      this.focus = other;
      return other.pid;
    }
    const views = this.views();
    if (views.length === 0 || c.int(4) !== 0) return null;
    const view = c.pick(views);
    const viewer = c.bool();
    const pid = viewer ? view.pid : view.target;
    if (!this.pids().includes(pid)) return null;
    this.focus = { pid, addr: viewer ? view.addr : view.targetAddr };
    this.viewed = { view, viewer };
    return pid;
  }

  /** A concurrent segment begins with the operation just built: its other operations favour the other side of its view. */
  beginSegment(): void {
    const v = this.viewed;
    this.counterpart = v === null ? null : v.viewer ? { pid: v.view.target, addr: v.view.targetAddr } : { pid: v.view.pid, addr: v.view.addr };
  }

  endSegment(): void {
    this.counterpart = null;
  }

  /** The running pids with at least one VMA, kept while the snapshot stands. */
  private mappingPids(): readonly number[] {
    const running = this.pids();
    return (this.mapping ??= running.filter((p) => this.vmasOf(p).length > 0));
  }

  pid(c: Choice): number {
    const pids = this.pids();
    return pids.length === 0 ? 1 : c.pick(pids);
  }

  private vmasOf(pid: number): readonly VmaView[] {
    return list(this.k.vmas(pid));
  }

  addr(pid: number, c: Choice): number {
    // The view page this step's pid was drawn for (viewParty), three times in four.
    if (this.focus?.pid === pid && c.int(4) !== 3) return this.focus.addr;
    // A page another mapping shows (a strategy's remote view of this process): whatever
    // changes it — a COW break, mprotect, DONTNEED, reclaim — must reach the view.
    const viewed = this.viewedAddrs(pid);
    if (viewed !== null && c.int(4) === 0) return c.pick(viewed);
    const vmas = this.vmasOf(pid);
    const base = this.config.mmapBasePages;
    if (vmas.length === 0 || (!this.swarm.hot && c.int(8) === 0)) return base - 1 - c.int(this.swarm.hot ? 16 : 4096);
    // A driver's mapping (a strategy's remote view) is where its flaws show: a quarter of
    // the addresses land in one when the process has any.
    // Counted, not collected: this runs for most steps, and most processes map no driver.
    let drivers = 0;
    for (const x of vmas) if (x.driver !== '') drivers++;
    const v = drivers > 0 && c.int(4) === 0 ? nthDriverVma(vmas, c.int(drivers)) : c.pick(vmas);
    const span = v.end - v.start;
    switch (c.int(8)) {
      case 0: case 1: return v.start;
      case 2: return v.end - 1;
      case 3: return v.end;
      case 4: return v.start - 1;
      default: return v.start + c.int(span);
    }
  }

  /**
   * The addresses of `pid` a remote view shows, and those where it maps a view of another
   * process (touching one fills it: a view faulted in is what a change must reach); null
   * when there are none (most steps).
   */
  private viewedAddrs(pid: number): number[] | null {
    let out: number[] | null = null;
    for (const v of this.views()) {
      if (v.target === pid) (out ??= []).push(v.targetAddr);
      if (v.pid === pid) (out ??= []).push(v.addr);
    }
    return out;
  }

  residentAddr(pid: number, c: Choice): number {
    const present: number[] = [];
    for (const [addr, pte] of this.k.ptes(pid)) if (pte.kind === 'present') present.push(addr);
    return present.length === 0 ? this.addr(pid, c) : c.pick(present);
  }

  range(pid: number, c: Choice): { addr: number; lengthPages: number } {
    const addr = this.addr(pid, c);
    const v = this.vmasOf(pid).find((x) => x.start <= addr && addr < x.end);
    const toEnd = v === undefined ? 1 : v.end - addr;
    const lengths = [1, 2, toEnd, toEnd + 1, 3, Math.max(1, toEnd - 1), 8, 0];
    return { addr, lengthPages: c.pick(lengths) };
  }

  /**
   * A range that is, rarely (1 in 32), given in bytes (kernel-api/bytes.ts): an unaligned
   * start (EINVAL) or a length of whole pages minus or plus some bytes (PAGE_ALIGN rounds it).
   */
  byteRange(pid: number, c: Choice): { addr: number; lengthPages: number } {
    const r = this.range(pid, c);
    if (c.int(32) !== 0) return r;
    const b = (1 + c.int(4095)) / 4096;
    const kind = c.int(3);
    if (kind === 0) return { addr: r.addr + b, lengthPages: r.lengthPages };
    return { addr: r.addr, lengthPages: kind === 1 ? Math.max(0, r.lengthPages - 1) + b : r.lengthPages + b };
  }

  value(c: Choice): number {
    return c.int(4) === 0 ? c.int(2 ** 31) : 1 + c.int(15);
  }

  fds(pid: number, strategy: string): readonly number[] {
    const out: number[] = [];
    for (const f of this.k.fds(pid)) if (f.driver === strategy || f.driver.startsWith(`${strategy}.`)) out.push(f.fd);
    return out;
  }

  fdOrigin(pid: number, fd: number): DriverArgs | undefined {
    return this.origins.get(`${pid}:${fd}`);
  }

  remembered(strategy: string, key: string): readonly number[] {
    return this.remember.get(`${strategy}:${key}`) ?? [];
  }

  // ---- core operations --------------------------------------------------------------

  private files(): number[] {
    const out: number[] = [];
    for (const f of this.k.files()) if (!f.shmem) out.push(f.id);
    return out;
  }

  private fileSize(id: number): number {
    for (const f of this.k.files()) if (f.id === id) return f.sizePages;
    return 0;
  }

  /**
   * PAGEMAP_SCAN biased to the edges: ranges that start or end inside a VMA, max_pages and
   * vec_len of 1, masks that select nothing or everything, a few bad arguments.
   */
  private pagemapScan(pid: number, c: Choice): Op {
    const target = this.otherPid(pid, c);
    const { addr, lengthPages } = this.range(target, c);
    const masks = [0, 0, 0x1ff, 2, 8, 0x10, 0x80, 1, 0xa, 0x200];
    const op: Extract<Op, { op: 'pagemap_scan' }> = {
      op: 'pagemap_scan', pid, target, start: addr, end: addr + lengthPages,
      flags: c.pick([0, 0, 0, 1, 2, 3, 4]), max_pages: c.pick([0, 0, 1, 2, 5]),
      category_inverted: c.int(3) === 0 ? c.pick(masks) : 0, category_mask: c.pick(masks),
      category_anyof_mask: c.int(3) === 0 ? c.pick(masks) : 0, return_mask: c.pick([0x1ff, 0x1ff, 2, 0xa, 0, 0x1ff]),
      vec_len: c.pick([16, 16, 1, 2, 0, 600]),
    };
    switch (c.int(12)) {
      case 0: op.vecNull = true; op.vec_len = c.pick([0, 1]); break;
      case 1: op.start += 0.5; break;
      case 2: op.end -= 0.5; break;
      case 3: op.end = op.start - 1; break;
      case 4: op.size = 88; break;
      default: break;
    }
    return op;
  }

  attachPair(c: Choice): { pid: number; target: number } {
    if (c.int(4) !== 3) {
      const mapping = this.mappingPids();
      const target = mapping.length > 0 ? c.pick(mapping) : this.pid(c);
      const ancestors = this.runningAncestors(target);
      if (ancestors.length > 0) return { pid: c.pick(ancestors), target };
    }
    const pid = this.pid(c);
    return { pid, target: this.otherPid(pid, c) };
  }

  /** The running ancestors of `pid`, its parent first (a parent's pid is always smaller). */
  private runningAncestors(pid: number): number[] {
    const byPid = new Map(list(this.k.processes()).map((p) => [p.pid, p]));
    const out: number[] = [];
    for (let p = byPid.get(byPid.get(pid)?.ppid ?? 0); p !== undefined && p.pid < pid; p = byPid.get(p.ppid)) {
      if (p.state === 'running') out.push(p.pid);
    }
    return out;
  }

  otherPid(pid: number, c: Choice): number {
    const mapping = this.mappingPids().filter((p) => p !== pid);
    const pids = mapping.length > 0 ? mapping : this.pids().filter((p) => p !== pid);
    return pids.length === 0 || c.int(8) === 0 ? pid : c.pick(pids);
  }

  private core(kind: (typeof CORE_KINDS)[number], c: Choice): Op | null {
    const pid = ON_MEMORY.has(kind) ? this.memPid(c) : this.pid(c);
    switch (kind) {
      case 'spawn': return c.int(8) === 0 ? { op: 'spawn', uid: c.pick([0, 1001]) } : { op: 'spawn' };
      case 'mmap': return this.mmap(c.int(4) === 0 ? this.fdHolder(c) ?? pid : pid, c);
      case 'munmap': return { op: 'munmap', pid, ...this.byteRange(pid, c) };
      case 'mprotect': return { op: 'mprotect', pid, ...this.byteRange(pid, c), prot: c.pick(PROTS) };
      case 'madvise': return { op: 'madvise', pid, ...this.byteRange(pid, c), advice: c.pick(ADVICES) };
      case 'mincore': return { op: 'mincore', pid, ...this.byteRange(pid, c) };
      case 'mlock': return c.int(4) === 0 ? { op: 'mlock', pid, ...this.byteRange(pid, c), onfault: true } : { op: 'mlock', pid, ...this.byteRange(pid, c) };
      case 'munlock': return { op: 'munlock', pid, ...this.byteRange(pid, c) };
      // MCL_CURRENT, MCL_FUTURE, both, with MCL_ONFAULT, and now and then a refused mix.
      case 'mlockall': return { op: 'mlockall', pid, flags: c.pick([1, 2, 3, 5, 6, 7, 4, 8]) };
      case 'munlockall': return { op: 'munlockall', pid };
      // MS_SYNC most, MS_ASYNC, MS_INVALIDATE alone or with either, none, and now and then a refused mix.
      case 'msync': return { op: 'msync', pid, ...this.byteRange(pid, c), flags: c.pick([4, 4, 1, 6, 2, 3, 0, 5, 8]) };
      case 'vmsplice': return this.vmsplice(pid, c);
      case 'pipe_read': return this.pipeRead(c);
      case 'mremap': return this.mremap(pid, c);
      case 'read': return { op: 'read', pid, addr: this.addr(pid, c) };
      case 'write': return { op: 'write', pid, addr: this.addr(pid, c), value: this.value(c) };
      case 'fork': return { op: 'fork', pid };
      case 'exit': return { op: 'exit', pid: this.victim(c) ?? pid };
      case 'oom': return { op: 'oom', pid };
      case 'reclaim': return c.bool() ? { op: 'reclaim', count: 1 + c.int(8) } : { op: 'reclaim', pid, addr: this.addr(pid, c) };
      case 'creat': return { op: 'creat', sizePages: 1 + c.int(8) };
      case 'set_dumpable': return { op: 'set_dumpable', pid, dumpable: c.int(3) !== 0 };
      case 'fail_nth': return { op: 'fail_nth', nth: 1 + c.int(6) };
      case 'close': {
        const fds = [...this.k.fds(pid)].map((f) => f.fd);
        return fds.length === 0 ? null : { op: 'close', pid, fd: c.pick(fds) };
      }
      case 'proc_mem_read':
      case 'process_vm_readv': {
        const target = this.otherPid(pid, c);
        return { op: kind, pid, target, addr: this.addr(target, c) };
      }
      case 'proc_mem_write':
      case 'process_vm_writev': {
        const target = this.otherPid(pid, c);
        return { op: kind, pid, target, addr: this.addr(target, c), value: this.value(c) };
      }
      case 'pread':
      case 'pwrite':
      case 'truncate': return this.fileOp(kind, c);
      case 'pagemap_read': {
        const target = this.otherPid(pid, c);
        return { op: 'pagemap_read', pid, target, addr: this.addr(target, c), count: c.pick([1, 1, 2, 4, 8, 0]) };
      }
      case 'clear_refs': return { op: 'clear_refs', pid, target: this.otherPid(pid, c), mode: c.pick([4, 4, 4, 1, 0, 6]) };
      case 'uffd_register_wp': return { op: 'uffd_register_wp', pid, ...this.byteRange(pid, c), async: true };
      case 'map_files_readdir': return { op: 'map_files_readdir', pid, target: this.otherPid(pid, c) };
      case 'pagemap_scan': return this.pagemapScan(pid, c);
    }
  }

  /**
   * vmsplice of a few pages, now and then more than a pipe holds (PIPE_DEF_BUFFERS 16), into
   * a pipe the caller holds (mostly) or a new one; now and then a pipe it does not hold.
   */
  private vmsplice(pid: number, c: Choice): Op {
    const lengthPages = c.pick([1, 1, 1, 2, 3, 4, 17]);
    const held = [...this.k.pipes()].filter((p) => p.holders.includes(pid)).map((p) => p.id);
    const all = [...this.k.pipes()].map((p) => p.id);
    const roll = c.int(8);
    const pipe = roll < 4 && held.length > 0 ? c.pick(held) : roll === 4 && all.length > 0 ? c.pick(all) : undefined;
    const op: Op = { op: 'vmsplice', pid, addr: this.addr(pid, c), lengthPages };
    return pipe === undefined ? op : { ...op, pipe };
  }

  /** read(2) of a pipe by one of its holders (now and then by another process), 1 page most often, now and then none. */
  private pipeRead(c: Choice): Op | null {
    const pipes = [...this.k.pipes()];
    if (pipes.length === 0) return null;
    // Mostly one that holds a page: an empty pipe is EAGAIN, read or not.
    const full = pipes.filter((x) => x.pfns.length > 0);
    const p = full.length > 0 && c.int(4) !== 0 ? c.pick(full) : c.pick(pipes);
    const running = p.holders.filter((h) => this.pids().includes(h));
    const pid = running.length > 0 && c.int(8) !== 0 ? c.pick(running) : this.pid(c);
    return { op: 'pipe_read', pid, pipe: p.id, pages: c.pick([1, 1, 1, 1, 2, 4, 16, 1, 2, 0]) };
  }

  /** Half the time, an OOM victim (killed and reaped, not yet exited) if there is one: its do_exit runs. */
  private victim(c: Choice): number | null {
    const victims: number[] = [];
    for (const p of this.k.processes()) if (p.state === 'running' && p.oomReaped) victims.push(p.pid);
    return victims.length === 0 || c.bool() ? null : c.pick(victims);
  }

  /** A running pid that holds an fd (so an mmap can map it), if any does. */
  private fdHolder(c: Choice): number | undefined {
    const holders = this.pids().filter((p) => !this.k.fds(p)[Symbol.iterator]().next().done);
    return holders.length === 0 ? undefined : c.pick(holders);
  }

  private fileOp(kind: 'pread' | 'pwrite' | 'truncate', c: Choice): Op | null {
    const files = this.files();
    if (files.length === 0) return null;
    const file = c.pick(files);
    const size = this.fileSize(file);
    if (kind === 'truncate') return { op: 'truncate', file, sizePages: c.int(size + 3) };
    const index = c.int(size + 2);
    return kind === 'pread' ? { op: 'pread', file, index } : { op: 'pwrite', file, index, value: this.value(c) };
  }

  private mmap(pid: number, c: Choice): Op {
    const lengthPages = c.pick(LENGTHS);
    const prot = c.pick(PROTS);
    const shared = c.int(4) === 0;
    const op: Extract<Op, { op: 'mmap' }> = { op: 'mmap', pid, addr: 0, lengthPages, prot, shared };
    const placement = c.int(8);
    if (placement >= 5) op.addr = this.addr(pid, c);
    if (placement === 6) op.fixed = true;
    if (placement === 7) op.noreplace = true;
    const files = this.files();
    const fds = [...this.k.fds(pid)];
    const backing = fds.length > 0 && c.bool() ? 3 : c.int(8);
    if (backing >= 5 && files.length > 0) {
      op.file = c.pick(files);
      op.pgoff = c.int(4);
      if (c.int(4) === 0) op.mode = 'r';
    } else if (backing >= 2 && backing <= 4 && fds.length > 0) {
      const mappable = fds.filter((x) => !this.unmappable.has(x.driver));
      const f = c.pick(mappable.length > 0 && c.int(8) !== 7 ? mappable : fds);
      op.fd = f.fd;
      const owner = this.strategies.find((s) => f.driver === s.name || f.driver.startsWith(`${s.name}.`));
      const hint = owner?.mmapArgs?.(this, c, pid, f.driver, f.fd) ?? null;
      op.pgoff = hint?.pgoff ?? c.int(4);
      if (hint !== null) {
        op.lengthPages = hint.lengthPages;
        if (hint.prot !== undefined) op.prot = hint.prot;
        if (hint.shared !== undefined) op.shared = hint.shared;
      }
    }
    if (c.int(16) === 0) op.locked = true; // MAP_LOCKED
    // One time in 32, a byte value in the address, the length or the file offset
    // (kernel-api/bytes.ts mmapPages).
    if (c.int(32) === 0) {
      const b = (1 + c.int(4095)) / 4096;
      const which = c.int(3);
      if (which === 0) op.addr += b;
      else if (which === 1) op.lengthPages = Math.max(0, op.lengthPages - 1) + b;
      else op.pgoff = (op.pgoff ?? 0) + b;
    }
    return op;
  }

  private mremap(pid: number, c: Choice): Op {
    const { addr, lengthPages } = this.range(pid, c);
    const oldPages = Math.max(1, lengthPages);
    const newPages = c.pick([oldPages + 1, Math.max(1, oldPages - 1), oldPages * 2, oldPages, 1]);
    const op: Extract<Op, { op: 'mremap' }> = { op: 'mremap', pid, addr, oldPages, newPages };
    if (c.bool()) op.maymove = true;
    if (op.maymove && c.int(4) === 0) {
      op.fixed = true;
      op.newAddr = this.addr(pid, c);
    }
    // MREMAP_DONTUNMAP, mostly as Linux accepts it (MAYMOVE, same length), sometimes not.
    if (c.int(6) === 0) {
      op.dontunmap = true;
      if (c.int(4) !== 0) {
        op.maymove = true;
        op.newPages = oldPages;
      }
    }
    // One time in 32, a byte value in one argument (kernel-api/bytes.ts mremapPages).
    if (c.int(32) === 0) {
      const b = (1 + c.int(4095)) / 4096;
      const which = c.int(4);
      if (which === 0) op.addr += b;
      else if (which === 1) op.oldPages = Math.max(0, op.oldPages - 1) + b;
      else if (which === 2) op.newPages = Math.max(0, op.newPages - 1) + b;
      else if (op.newAddr !== undefined) op.newAddr += b;
    }
    return op;
  }
}

/** The n-th VMA (from 0) that a driver mapped. */
function nthDriverVma(vmas: readonly VmaView[], n: number): VmaView {
  for (const v of vmas) if (v.driver !== '' && n-- === 0) return v;
  throw new Error(`no driver VMA number ${n}`);
}

export type { DriverArgs };
