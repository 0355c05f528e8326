/**
 * The invariants that are not checked between steps but raised where they break: a
 * driver's bad free (`slab`) or an impossible state (`kernel-assert`) thrown by a kernel at
 * the call, a divergence of the two kernels (`differential`), a step that never finishes
 * (`hang`). Their causes are named from the message alone, as syzkaller names a crash from
 * its oops: the first pattern that matches gives the cause; an assertion nobody listed is
 * named by its own words with the numbers left out (syzkaller's title with the variable
 * parts replaced), so two different assertions are two causes and one assertion at two
 * addresses is one.
 */
import type { InvariantId } from '../../kernel-api/strategy.ts';
import type { Cause } from './types.ts';

export type RaisedInvariant = {
  readonly id: InvariantId;
  readonly holds: string;
  /** Tried in order on the message; a message none matches is named by `fallback`. */
  readonly causes: readonly Cause[];
  /** The cause of a message no listed cause matches. */
  fallback(message: string): string;
};

/** A message with its variable parts (numbers, pids, addresses, map ids) left out, as a cause id. */
export function messageCause(message: string): string {
  return message
    .replace(/^(model|impl): /, '')
    .replace(/\(run \d+, [^)]*\)/g, '')
    .replace(/0x[0-9a-f]+/gi, 'N').replace(/\d+/g, 'N')
    .toLowerCase().replace(/[^a-z_/.N ]+/gi, ' ').trim().split(/\s+/).slice(0, 8).join('-');
}

export const slab: RaisedInvariant = {
  id: 'slab',
  holds: "no double kfree or use after free of a driver's objects",
  causes: [
    { id: 'double-free', title: 'KASAN: double-free in kfree', match: /double free|not allocated/ },
    { id: 'use-after-free', title: 'KASAN: slab-use-after-free', match: /use after free|use-after-free|freed object/ },
  ],
  fallback: messageCause,
};

export const kernelAssert: RaisedInvariant = {
  id: 'kernel-assert',
  holds: 'no impossible state: a NULL dereference in a driver, a fault that never resolves, notifier recursion',
  causes: [
    { id: 'null-deref', title: 'BUG: kernel NULL pointer dereference', match: /NULL/ },
    { id: 'fault-loop', title: 'a fault that never resolves', match: /refault forever|did not settle|failed twice/ },
    { id: 'notifier-recursion', title: 'MMU notifier recursion', match: /nested \d+ deep/ },
    { id: 'worker-crash', title: 'the fuzzing worker crashed', match: /the worker crashed/ },
  ],
  fallback: messageCause,
};

/** How the kernels differed (the words of properties/session.ts), then at which operation. */
export const differential: RaisedInvariant = {
  id: 'differential',
  holds: 'model and implementation give the same outcome and observation after every step',
  causes: [
    { id: 'threw', title: 'the implementation threw where the model did not', match: /^impl threw/ },
    { id: 'observation', title: 'the observations differ', match: /observations differ/ },
    { id: 'outcome', title: 'the outcomes differ', match: /./ },
  ],
  fallback: () => 'outcome',
};

export const hang: RaisedInvariant = {
  id: 'hang',
  holds: 'every step finishes within the step time limit',
  causes: [{ id: 'step-timeout', title: 'a step ran past the step time limit' }],
  fallback: () => 'step-timeout',
};

/**
 * The lock table's checks (kernel-api/locks.ts), raised where the lock is taken, as
 * lockdep reports: the cause is what lockdep's splat title says, with the lock class, so
 * that a wait on mmap_lock and one on a driver's mutex are two flaws.
 */
const lockClass = (message: string): string => /lock class (\S+)/.exec(message)?.[1] ?? /(mmap_lock|PTL|i_mmap_rwsem|anon_vma|MMU notifier invalidation|[a-z-]+:[\w>-]+)/.exec(message)?.[1]?.replace(/\s+/g, '-') ?? 'lock';

export const deadlock: RaisedInvariant = {
  id: 'deadlock',
  holds: 'no task waits for a lock it holds, and the waiting tasks never form a cycle',
  // The families; a cause's id adds the lock class (`self:mmap_lock`), from the fallback.
  causes: [
    { id: 'self', title: 'a task waits for a lock it already holds (self:<class>)' },
    { id: 'circular', title: 'tasks wait for each other round a cycle (circular:<classes>)' },
    { id: 'spin', title: 'a task spins on a spinlock whose holder sleeps (spin:<class>)' },
    { id: 'own-invalidation', title: 'a task waits for the MMU notifier invalidation it is running itself' },
  ],
  fallback: (m) => (/spins forever/.test(m) ? `spin:${lockClass(m)}`
    : /own invalidation/.test(m) ? 'own-invalidation'
    : /^(model: |impl: )?circular wait/.test(m) ? `circular:${/lock classes (\S+)\)/.exec(m)?.[1] ?? 'lock'}`
    : `self:${lockClass(m)}`),
};

export const lockOrder: RaisedInvariant = {
  id: 'lock-order',
  holds: "lockdep's class dependency graph has no cycle, and no class nests in itself unannotated",
  // The families; a cause's id adds the classes (`recursive:mmap_lock`), from the fallback.
  causes: [
    { id: 'recursive', title: 'WARNING: possible recursive locking detected (recursive:<class>)' },
    { id: 'circular', title: 'WARNING: possible circular locking dependency detected (circular:<classes>)' },
  ],
  fallback: (m) => (/recursive locking/.test(m) ? `recursive:${lockClass(m)}` : `circular:${messageCause(m.replace(/ closes .*/, ''))}`),
};

export const sleepInAtomic: RaisedInvariant = {
  id: 'sleep-in-atomic',
  holds: 'nothing that may sleep runs under a spinlock or in a non-blockable notifier range',
  causes: [
    { id: 'under-spinlock', title: 'BUG: sleeping function called from invalid context (spinlock held)', match: /holding spinlock/ },
    { id: 'nonblockable-notifier', title: 'BUG: sleeping function called from a non-blockable MMU notifier range', match: /non-blockable/ },
  ],
  fallback: messageCause,
};

export const lockLeak: RaisedInvariant = {
  id: 'lock-leak',
  holds: 'every lock is released before the call returns to user space, and only a holder releases',
  causes: [
    { id: 'held-on-return', title: 'WARNING: lock held when returning to user space', match: /returns to user space/ },
    { id: 'bad-unlock', title: 'WARNING: bad unlock balance detected', match: /without holding/ },
    { id: 'freed-held', title: 'held lock freed', match: /freed while/ },
  ],
  fallback: messageCause,
};

export const RAISED: readonly RaisedInvariant[] = [slab, kernelAssert, differential, hang, deadlock, lockOrder, sleepInAtomic, lockLeak];

/** The cause a raised invariant's message names. */
export function raisedCause(inv: RaisedInvariant, message: string): string {
  return inv.causes.find((c) => c.match?.test(message))?.id ?? inv.fallback(message);
}
