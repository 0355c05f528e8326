/**
 * The lock table both kernels take their locks through, with lockdep's checks.
 *
 * It holds every lock a kernel path or a driver takes: each mm's `mmap_lock` (an rwsem),
 * the page-table lock (a spinlock), the rmap locks (`i_mmap_rwsem`, `anon_vma->rwsem`), and
 * the mutexes and spinlocks drivers make. Each kernel owns one instance; it is the one
 * piece of logic kept here rather than written twice, because both kernels must take the
 * same interleaving, and two lock tables could differ in ways the differential would then
 * blame on the kernels.
 *
 * What is checked, each raised as an error naming its invariant:
 * - `deadlock`: a task waits for a lock it already holds (an rwsem held for write and asked
 *   for again, say: mmap of /proc/self/mem), or the tasks waiting form a cycle (`waitCycle`:
 *   each waits for a lock the next holds, the last for one the first holds);
 * - `lock-order`: lockdep's dependency graph over lock classes has a cycle (A taken under B
 *   here, B under A there), or a class is nested in itself without a nesting annotation
 *   ("possible recursive locking detected");
 * - `sleep-in-atomic`: a call that may sleep under a spinlock or in a non-blockable
 *   notifier range (might_sleep);
 * - `lock-leak`: a lock still held when the call returns to user space.
 *
 * Trylocks add no dependency (they cannot block), as in lockdep. A wait for another task
 * is `WouldBlock` (kernel-api/sched.ts: the nested scheduler cannot emulate it).
 *
 * The last three are lockdep's warnings: Linux prints them and goes on, the lock taken (or
 * left held) as asked. So they are raised only while `checks` holds them; otherwise the
 * table goes on as Linux would — the dependency is still recorded, a leaked lock stays
 * held (the next taker waits for it) — so a run can look past one to the next flaw. A
 * deadlock is always raised: the task cannot go on.
 */
import { WouldBlock, type SchedHooks, type Tid } from './sched.ts';
import type { Outcome } from './outcome.ts';
import { COVERAGE_POINTS_COUNT } from './coverage.ts';

export type LockKind = 'rwsem' | 'mutex' | 'spinlock' | 'srcu';
/** A mutex or spinlock is always taken for write. */
export type LockMode = 'read' | 'write';

/** A lock instance: `cls` is its lockdep class (`mmap_lock`, `ptl`, `proc-mem-notify:view->lock`). */
export type LockRef = { readonly id: number; readonly name: string; readonly cls: string; readonly kind: LockKind };

export type LockInvariant = 'deadlock' | 'lock-order' | 'sleep-in-atomic' | 'lock-leak';
/** The checks Linux only warns about (lockdep's splats): raised only while checked. */
export type LockWarning = Exclude<LockInvariant, 'deadlock'>;
export const LOCK_WARNINGS: readonly LockWarning[] = ['lock-order', 'sleep-in-atomic', 'lock-leak'];

export class LockViolation extends Error {
  override readonly name = 'LockViolation' as const;
  constructor(message: string, readonly invariant: LockInvariant) {
    super(message);
  }
}

type Held = { readonly lock: LockState; readonly mode: LockMode; readonly classKey: string; readonly where: string };

/** No task: a LockState's `writer` when nobody holds it for write (tid 0 is a task: the kernel's own). */
const NO_TASK = -1;

/**
 * A lock instance and who holds it. Holders are either one task for write or any number
 * for read, never both (tryTake / tryAcquire grant nothing else): a field and a small
 * array, not a map, so taking and releasing an uncontended lock allocates nothing.
 */
class LockState implements LockRef {
  /** The task holding it for write, or NO_TASK. */
  writer: Tid = NO_TASK;
  /** The tasks holding it for read, in the order they took it; each once. */
  readonly readers: Tid[] = [];
  /** Its class key under lockdep's nesting annotation 1 (the one subclass in use), made once. */
  nested1: string | null = null;
  constructor(readonly id: number, readonly name: string, readonly cls: string, readonly kind: LockKind) {}

  /** The mode `tid` holds it in, if it does. */
  modeOf(tid: Tid): LockMode | undefined {
    if (this.writer === tid) return 'write';
    return this.readers.length !== 0 && this.readers.includes(tid) ? 'read' : undefined;
  }

  isFree(): boolean {
    return this.writer === NO_TASK && this.readers.length === 0;
  }

  /** Some holder (the first to take it), for messages; it must be held. */
  firstHolder(): Tid {
    return this.writer !== NO_TASK ? this.writer : this.readers[0]!;
  }

  grant(tid: Tid, mode: LockMode): void {
    if (mode === 'write') this.writer = tid;
    else if (!this.readers.includes(tid)) this.readers.push(tid);
  }

  ungrant(tid: Tid): void {
    if (this.writer === tid) {
      this.writer = NO_TASK;
      return;
    }
    const at = this.readers.indexOf(tid);
    if (at === -1) return;
    if (at === this.readers.length - 1) this.readers.pop();
    else this.readers.splice(at, 1);
  }

  classKey(subclass: number): string {
    if (subclass === 0) return this.cls;
    if (subclass === 1) return (this.nested1 ??= `${this.cls}/1`);
    return `${this.cls}/${subclass}`;
  }
}

/**
 * The locks one task holds, oldest first, as parallel arrays with a length (the top entry
 * is the one released in the common case: a pop, no allocation), and its atomic depth.
 */
class TaskLocks {
  length = 0;
  readonly locks: LockState[] = [];
  readonly modes: LockMode[] = [];
  readonly classKeys: string[] = [];
  readonly wheres: string[] = [];
  /** Spinlocks among them (might_sleep asks only whether there is one). */
  spinning = 0;
  /** Nesting of non-blockable contexts; undefined until the task first entered one. */
  atomicDepth: number | undefined = undefined;

  push(lock: LockState, mode: LockMode, classKey: string, where: string): void {
    const n = this.length;
    this.locks[n] = lock;
    this.modes[n] = mode;
    this.classKeys[n] = classKey;
    this.wheres[n] = where;
    this.length = n + 1;
    if (lock.kind === 'spinlock') this.spinning += 1;
  }

  /** Forget entry `at`, the later ones moving down. */
  remove(at: number): void {
    if (this.locks[at]!.kind === 'spinlock') this.spinning -= 1;
    const last = this.length - 1;
    for (let i = at; i < last; i++) {
      this.locks[i] = this.locks[i + 1]!;
      this.modes[i] = this.modes[i + 1]!;
      this.classKeys[i] = this.classKeys[i + 1]!;
      this.wheres[i] = this.wheres[i + 1]!;
    }
    // The slots past the length stay as they are (overwritten by the next push): the arrays never shrink, so they stay packed.
    this.length = last;
  }

  /** The oldest spinlock held, by index, or -1. */
  firstSpinlock(): number {
    if (this.spinning === 0) return -1;
    for (let i = 0; i < this.length; i++) if (this.locks[i]!.kind === 'spinlock') return i;
    return -1;
  }
}

/** Where a dependency A → B was first seen: B taken while A was held. */
export type Dependency = { readonly from: string; readonly to: string; readonly where: string; readonly step: number };

/** How a task is named in messages: "P3" for a main thread, "P3/T5" for another thread. */
export type TaskNamer = (tid: Tid) => string;

export class LockTable {
  /** The task running now: the scheduler sets it before it resumes a task's kernel path. */
  current: Tid = 0;
  private readonly byKey = new Map<string, LockState>();
  private readonly heldBy = new Map<Tid, TaskLocks>();
  /** heldOf's memo: the task it last found (NO_TASK: none) and its entry of heldBy. */
  private lastTid: Tid = NO_TASK;
  private lastHeld: TaskLocks | undefined = undefined;
  /** lockdep's class graph: from → to → where the edge was first seen. */
  private readonly deps = new Map<string, Map<string, Dependency>>();
  private nextId = 1;
  /**
   * The lock each task is about to take, while it sits at the scheduling point before it
   * (only when a scheduler is attached): what a preempted task will wait for when it resumes.
   */
  private readonly acquiring = new Map<Tid, { readonly lock: LockState; readonly mode: LockMode; readonly where: string }>();
  /** Each task's last trylock that failed because another task held the lock. */
  private readonly failedTry = new Map<Tid, { readonly lock: LockState; readonly mode: LockMode }>();
  /** The warnings raised; the others are let pass as Linux lets them (see the header). */
  checks: ReadonlySet<LockWarning> = new Set(LOCK_WARNINGS);
  /**
   * How often this kernel reached each coverage point (kernel-api/coverage.ts), by index.
   * Kept here because the lock table is the one object both kernels carry everywhere.
   */
  readonly coverage = new Uint32Array(COVERAGE_POINTS_COUNT);

  constructor(private readonly stepNow: () => number, readonly taskName: TaskNamer = (t) => `P${t}`) {}

  /** Count one pass through coverage point `point` (COVER.x or DRIVER_POINT.fn: a constant index). */
  cover(point: number): void {
    this.coverage[point] += 1;
  }

  /** The lock instance named `key` (created on first use), of class `cls`. */
  lock(key: string, cls: string, kind: LockKind, name: string = key): LockRef {
    let l = this.byKey.get(key);
    if (l === undefined) {
      l = new LockState(this.nextId++, name, cls, kind);
      this.byKey.set(key, l);
    }
    return l;
  }

  /** A new, anonymous lock instance (a driver's mutex_init / spin_lock_init). */
  newLock(cls: string, kind: LockKind, name: string = cls): LockRef {
    return this.lock(`#${this.nextId}`, cls, kind, name);
  }

  /** Forget a lock (its object was freed); it must be free. */
  drop(key: string): void {
    const l = this.byKey.get(key);
    if (l === undefined) return;
    if (!l.isFree()) {
      const holder = l.firstHolder();
      this.warn(new LockViolation(`${l.name} freed while ${this.taskName(holder!)} holds it`, 'lock-leak'));
      for (const t of [l.writer, ...l.readers]) {
        if (t === NO_TASK) continue;
        const held = this.heldOf(t);
        for (let at = held === undefined ? -1 : held.length - 1; at >= 0; at--) if (held!.locks[at] === l) held!.remove(at);
        l.ungrant(t);
      }
    }
    this.byKey.delete(key);
  }

  /**
   * mutex_lock / down_read / down_write (mmap_read_lock, i_mmap_lock_write, …): a scheduling
   * point, then the lock. `subclass` is lockdep's nesting annotation
   * (mmap_write_lock_nested's SINGLE_DEPTH_NESTING).
   */
  acquire(ref: LockRef, mode: LockMode, where: string, subclass = 0): void {
    const l = ref as LockState;
    if (l.kind === 'spinlock') {
      this.spinLock(ref, where);
      return;
    }
    if (this.hooks !== null) {
      this.acquiring.set(this.current, { lock: l, mode, where });
      this.preemptPoint(where);
      this.acquiring.delete(this.current);
    } else {
      this.preemptPoint(where);
    }
    const tid = this.current;
    const classKey = l.classKey(subclass);
    const held = this.tasksLocks(tid);
    this.checkOrder(tid, held, l, classKey, where, mode);
    if (!this.tryTake(tid, l, mode)) this.wait(l, mode, l.firstHolder(), where);
    held.push(l, mode, classKey, where);
  }

  /**
   * The current task must wait for `holder` (which holds `ref`, or runs the invalidation
   * `ref` names): a deadlock when that closes a wait-for cycle (`waitCycle`), else
   * `WouldBlock` for the scheduler. Checked here, before an error path releases anything.
   */
  wait(ref: LockRef, mode: LockMode, holder: Tid, where: string): never {
    const tid = this.current;
    const cycle = this.waitCycle(tid, holder);
    if (cycle !== null) {
      throw new LockViolation(`circular wait: ${this.taskName(tid)} waits in ${where} for ${ref.name}, held by ${this.taskName(holder)}; ${cycle}: no task in the cycle can run again`, 'deadlock');
    }
    throw new WouldBlock(tid, ref, mode, holder, where);
  }

  /**
   * The current task keeps retrying (a fault that returns VM_FAULT_RETRY again and again)
   * because its last trylock failed on a lock another task still holds: that is a wait for
   * the holder (`wait`: a deadlock if it closes a cycle, else WouldBlock for the scheduler),
   * as a nested task can never see a preempted one let go. Nothing when there is none.
   */
  waitForFailedTrylock(where: string): void {
    const t = this.failedTry.get(this.current);
    if (t === undefined || t.lock.isFree() || t.lock.modeOf(this.current) !== undefined) return;
    this.wait(t.lock, t.mode, t.lock.firstHolder(), where);
  }

  /**
   * The wait-for cycle `waiter` closes by waiting for `holder` (a lock it holds, or an
   * invalidation it runs), or null: from `holder` on, each task is preempted at the point
   * before a lock (`acquiring`) that the next task holds in a conflicting mode, back to
   * `waiter`. Such tasks can never run again, whatever the schedule: a deadlock. A task
   * preempted anywhere else can still run and release: no cycle through it.
   */
  waitCycle(waiter: Tid, holder: Tid): string | null {
    const seen = new Set<Tid>();
    const visit = (t: Tid, path: string[], classes: string[]): { path: string[]; classes: string[] } | null => {
      if (t === waiter) return { path, classes };
      if (seen.has(t)) return null;
      seen.add(t);
      const a = this.acquiring.get(t);
      if (a === undefined) return null;
      // Those it would wait for: the writer, and the readers unless it wants to read an rwsem.
      const blockers = a.lock.kind === 'rwsem' && a.mode === 'read' ? [a.lock.writer] : [a.lock.writer, ...a.lock.readers];
      for (const h of blockers) {
        if (h === NO_TASK || h === t) continue;
        const found = visit(h, [...path, `${this.taskName(t)} waits in ${a.where} for ${a.lock.name}, held by ${this.taskName(h)}`], [...classes, a.lock.cls]);
        if (found !== null) return found;
      }
      return null;
    };
    const found = visit(holder, [], []);
    if (found === null) return null;
    return `${found.path.join('; ')} (lock classes ${[...new Set(found.classes)].sort().join('+')})`;
  }

  /** mutex_trylock / down_read_trylock: the lock if it is free now, never a wait, no dependency. */
  tryAcquire(ref: LockRef, mode: LockMode, where: string): boolean {
    const l = ref as LockState;
    const tid = this.current;
    const mine = l.modeOf(tid);
    if (mine !== undefined && (mode === 'write' || mine === 'write')) return false;
    if (!this.compatible(l, mode)) {
      this.failedTry.set(tid, { lock: l, mode });
      return false;
    }
    if (this.failedTry.size !== 0) this.failedTry.delete(tid);
    l.grant(tid, mode);
    this.tasksLocks(tid).push(l, mode, l.cls, where);
    return true;
  }

  /**
   * srcu_read_lock: enter a read-side section of an srcu_struct. It never sleeps and never
   * waits (a grace period in progress holds no new reader back) and it nests. lockdep tracks
   * it as a recursive read (srcu_lock_acquire), and no dependency into a recursive read can
   * make a deadlock, so none is recorded here; a lock taken inside the section depends on it
   * as on any held lock (checkOrder of that lock).
   */
  srcuReadLock(ref: LockRef, where: string): void {
    const l = ref as LockState;
    const tid = this.current;
    l.grant(tid, 'read');
    this.tasksLocks(tid).push(l, 'read', l.cls, where);
  }

  /** Some task is in a read-side section of this srcu_struct (srcu_readers_active). */
  srcuReadersActive(ref: LockRef): boolean {
    return (ref as LockState).readers.length !== 0;
  }

  /**
   * synchronize_srcu: may sleep, and waits until every task in a read-side section now has
   * left it. lockdep's srcu_lock_sync records a dependency from each lock held here to the
   * srcu class, so a reader that waits for one of them closes a cycle (lock-order), and a
   * reader preempted before a lock this task holds is a wait-for cycle (`wait`: deadlock).
   * Called inside its own read-side section, it waits for itself.
   */
  synchronizeSrcu(ref: LockRef, where: string): void {
    const l = ref as LockState;
    const tid = this.current;
    if (l.modeOf(tid) !== undefined) {
      throw new LockViolation(`${where}: synchronize_srcu(${l.name}) inside its own read-side section: ${this.taskName(tid)} waits for itself forever`, 'deadlock');
    }
    if (this.hooks !== null) {
      this.acquiring.set(tid, { lock: l, mode: 'write', where });
      this.preemptPoint(where);
      this.acquiring.delete(tid);
    } else {
      this.preemptPoint(where);
    }
    this.checkOrder(tid, this.tasksLocks(tid), l, l.cls, where, 'write');
    if (l.readers.length !== 0) this.wait(l, 'write', l.readers[0]!, where);
  }

  /** spin_lock: never sleeps, so never contended (a holder that slept under it was `sleep-in-atomic`). */
  spinLock(ref: LockRef, where: string): void {
    const l = ref as LockState;
    const tid = this.current;
    const held = this.tasksLocks(tid);
    this.checkOrder(tid, held, l, l.cls, where, 'write');
    if (!this.tryTake(tid, l, 'write')) {
      const holder = l.firstHolder();
      throw new LockViolation(`${this.taskName(tid)} spins forever on ${l.name} in ${where}: ${this.taskName(holder!)} holds it while it sleeps`, 'deadlock');
    }
    held.push(l, 'write', l.cls, where);
  }

  /** mutex_unlock / up_read / up_write / spin_unlock by the current task. */
  release(ref: LockRef, where: string): void {
    const l = ref as LockState;
    const tid = this.current;
    const held = this.heldOf(tid);
    let at = held === undefined ? -1 : held.length - 1;
    while (at >= 0 && held!.locks[at] !== l) at--;
    if (at === -1) {
      this.warn(new LockViolation(`${this.taskName(tid)} releases ${l.name} in ${where} without holding it`, 'lock-leak'));
      return;
    }
    held!.remove(at);
    // A read lock taken twice (a recursive read lockdep let pass) is held until both are released.
    for (let i = held!.length - 1; i >= 0; i--) if (held!.locks[i] === l) return;
    l.ungrant(tid);
  }

  /** A lockdep warning: raised while checked, else Linux's kernel goes on. */
  private warn(v: LockViolation): void {
    if (this.checks.has(v.invariant as LockWarning)) throw v;
  }

  /** True when the current task holds `ref` (lockdep_assert_held / mmap_assert_locked). */
  holds(ref: LockRef, mode?: LockMode): boolean {
    const m = (ref as LockState).modeOf(this.current);
    return m !== undefined && (mode === undefined || m === mode || m === 'write');
  }

  /** might_sleep(): a call that may sleep, under a spinlock or in an atomic (non-blockable) context. */
  mightSleep(where: string): void {
    const tid = this.current;
    const held = this.heldOf(tid);
    if (held === undefined) return;
    const at = held.firstSpinlock();
    const spin = at === -1 ? undefined : { lock: held.locks[at]!, where: held.wheres[at]! };
    if (spin !== undefined) this.warn(new LockViolation(`${where} may sleep, called by ${this.taskName(tid)} holding spinlock ${spin.lock.name} (taken in ${spin.where})`, 'sleep-in-atomic'));
    else if ((held.atomicDepth ?? 0) > 0) this.warn(new LockViolation(`${where} may sleep, called by ${this.taskName(tid)} in a non-blockable MMU notifier range`, 'sleep-in-atomic'));
  }

  /** Who decides at a scheduling point; none: the current task goes on (a single-threaded run). */
  hooks: SchedHooks | null = null;
  /** Scheduling points this kernel has passed (for tests and stories). */
  points = 0;

  /**
   * A scheduling point: might_sleep(), then another task may run (`hooks.preempt`).
   * Every call that may sleep passes one: locks that can block, kmalloc(GFP_KERNEL), GUP.
   */
  preemptPoint(where: string): void {
    this.mightSleep(where);
    this.points += 1;
    if (this.hooks === null || this.uninterruptedDepth > 0) return;
    const me = this.current;
    this.hooks.preempt(where);
    this.current = me;
  }

  private uninterruptedDepth = 0;

  /**
   * Run `f` with no operation of another task started at its scheduling points (they still
   * count, and might_sleep is still judged). For a populate (__mm_populate, and
   * populate_vma_page_range under mprotect): ghost memory cannot tell which of its COW copies
   * a racing store preceded, so that race is not explored (README: simplifications).
   */
  uninterrupted<T>(f: () => T): T {
    this.uninterruptedDepth += 1;
    try {
      return f();
    } finally {
      this.uninterruptedDepth -= 1;
    }
  }

  /** The current operation has taken effect (SchedHooks.linearized). */
  linearized(outcome: Outcome): void {
    this.hooks?.linearized?.(outcome);
  }

  /** Enter / leave a context that must not sleep (mmu_notifier_invalidate_range_start_nonblock). */
  enterAtomic(): void {
    const held = this.tasksLocks(this.current);
    held.atomicDepth = (held.atomicDepth ?? 0) + 1;
  }

  exitAtomic(): void {
    const held = this.tasksLocks(this.current);
    held.atomicDepth = (held.atomicDepth ?? 1) - 1;
  }

  /** The current task returns to user space: it must hold nothing. */
  returnToUser(what: string): void {
    const held = this.heldOf(this.current);
    if (held === undefined || held.length === 0) return;
    const names = this.heldEntries(held).map((h) => `${h.lock.name} (taken in ${h.where})`).join(', ');
    this.warn(new LockViolation(`${what} returns to user space in ${this.taskName(this.current)} still holding ${names}`, 'lock-leak'));
  }

  /** The locks a task holds, oldest first, as names (for stories). */
  heldNames(tid: Tid): string[] {
    const held = this.heldOf(tid);
    return (held === undefined ? [] : this.heldEntries(held)).map((h) => (h.lock.kind === 'srcu' ? `${h.lock.name} (srcu read side)` : h.mode === 'read' && h.lock.kind === 'rwsem' ? `${h.lock.name} (read)` : h.lock.name));
  }

  /** Every dependency lockdep recorded in this kernel, in the order first seen. */
  dependencies(): Dependency[] {
    const out: Dependency[] = [];
    for (const m of this.deps.values()) out.push(...m.values());
    return out.sort((a, b) => a.step - b.step);
  }

  private compatible(l: LockState, mode: LockMode): boolean {
    if (l.kind === 'rwsem' && mode === 'read') return l.writer === NO_TASK;
    return l.isFree();
  }

  /** True when the task holds anything: it has begun, so a wait can no longer be undone by not starting it. */
  holdsAny(tid: Tid): boolean {
    return (this.heldOf(tid)?.length ?? 0) > 0;
  }

  /** The task's held locks, if it ever took one; the last task asked for is remembered (entries are never replaced). */
  private heldOf(tid: Tid): TaskLocks | undefined {
    if (tid === this.lastTid) return this.lastHeld;
    const held = this.heldBy.get(tid);
    if (held !== undefined) {
      this.lastTid = tid;
      this.lastHeld = held;
    }
    return held;
  }

  /** The task's held locks (made on its first lock). */
  private tasksLocks(tid: Tid): TaskLocks {
    let held = this.heldOf(tid);
    if (held === undefined) {
      this.heldBy.set(tid, (held = new TaskLocks()));
      this.lastTid = tid;
      this.lastHeld = held;
    }
    return held;
  }

  /** A task's held locks as entries, oldest first (for messages; not on the hot path). */
  private heldEntries(held: TaskLocks): Held[] {
    const out: Held[] = [];
    for (let i = 0; i < held.length; i++) out.push({ lock: held.locks[i]!, mode: held.modes[i]!, classKey: held.classKeys[i]!, where: held.wheres[i]! });
    return out;
  }

  private tryTake(tid: Tid, l: LockState, mode: LockMode): boolean {
    const mine = l.modeOf(tid);
    if (mine !== undefined && (mode === 'write' || mine === 'write' || l.kind !== 'rwsem')) {
      throw new LockViolation(`${this.taskName(tid)} waits for ${l.name}${mode === 'read' ? ' (read)' : ''}, which it already holds${mine === 'read' ? ' for read' : ''}: it would sleep forever`, 'deadlock');
    }
    if (!this.compatible(l, mode)) return false;
    l.grant(tid, mode);
    return true;
  }

  /** lockdep's check_prevs_add: a dependency from every held class to this one, and no cycle. */
  private checkOrder(tid: Tid, held: TaskLocks, l: LockState, classKey: string, where: string, mode: LockMode): void {
    // The held stack read in place (no entry object per held lock: this runs at every lock taken).
    for (let i = 0; i < held.length; i++) {
      const hLock = held.locks[i]!;
      if (hLock === l) {
        // A write on either side waits for itself: tryTake calls that a deadlock. Two reads
        // deadlock as soon as a writer queues between them, which lockdep reports.
        if (held.modes[i] === 'read' && mode === 'read') {
          this.warn(new LockViolation(`possible recursive locking: ${this.taskName(tid)} takes ${l.name} for read in ${where} while holding it for read (taken in ${held.wheres[i]!}); a writer queued between the two deadlocks`, 'lock-order'));
        }
        continue;
      }
      const hKey = held.classKeys[i]!;
      if (hKey === classKey) {
        this.warn(new LockViolation(
          `possible recursive locking: ${this.taskName(tid)} takes ${l.name}${mode === 'read' ? ' (read)' : ''} in ${where} while holding ${hLock.name} (taken in ${held.wheres[i]!}), the same lock class ${l.cls} without a nesting annotation`,
          'lock-order',
        ));
        continue;
      }
      this.addDependency(hKey, classKey, held.wheres[i]!, where);
    }
  }

  /** The edge from → to, first seen where `fromWhere` held `from` and `toWhere` took `to`. */
  private addDependency(from: string, to: string, fromWhere: string, toWhere: string): void {
    let out = this.deps.get(from);
    if (out === undefined) this.deps.set(from, (out = new Map()));
    if (out.has(to)) return;
    const where = `${fromWhere} → ${toWhere}`;
    const back = this.path(to, from);
    out.set(to, { from, to, where, step: this.stepNow() });
    if (back === null) return;
    const cycle = back.map((d) => `${d.from} → ${d.to} (step ${d.step}: ${d.where})`).join(', ');
    this.warn(new LockViolation(`possible circular locking dependency: ${from} → ${to} (${where}) closes ${cycle}`, 'lock-order'));
  }

  /** The dependencies leading from class `a` to class `b`, or null. */
  private path(a: string, b: string): Dependency[] | null {
    const seen = new Set<string>([a]);
    const stack: Array<{ at: string; via: Dependency[] }> = [{ at: a, via: [] }];
    while (stack.length > 0) {
      const { at, via } = stack.pop()!;
      for (const d of this.deps.get(at)?.values() ?? []) {
        if (d.to === b) return [...via, d];
        if (!seen.has(d.to)) {
          seen.add(d.to);
          stack.push({ at: d.to, via: [...via, d] });
        }
      }
    }
    return null;
  }
}
