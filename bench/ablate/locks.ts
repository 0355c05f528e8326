/**
 * The lock table of bench/lockcost.ts's ablated tree: kernel-api/locks.ts with a LockTable
 * that takes, checks and records nothing. Taking a lock, releasing it, a trylock, a
 * spinlock, might_sleep and the scheduling point, the held-lock stacks, lockdep's
 * dependency graph, the leak check at the return to user space and the atomic sections all
 * do nothing: a task holds nothing (holdsAny false, so an fput is never deferred) and every
 * assertion that a lock is held passes. What stays: the lock instances (their refs, cached
 * by the kernels) and coverage counting, srcu (rare: pidfd-mem only), and every call site in
 * the kernels (their try/finally, the re-checks after a scheduling point, the task
 * bookkeeping of a step). Used for cost only, on sequential runs of the core operations,
 * where nothing but the lock invariants depends on what is skipped.
 */
import { LockTable as CheckedLockTable, type LockMode, type LockRef } from '../../kernel-api/locks.ts';

export * from '../../kernel-api/locks.ts';

export class LockTable extends CheckedLockTable {
  override acquire(_ref: LockRef, _mode: LockMode, _where: string, _subclass = 0): void {}
  override tryAcquire(_ref: LockRef, _mode: LockMode, _where: string): boolean {
    return true;
  }
  override spinLock(_ref: LockRef, _where: string): void {}
  override release(_ref: LockRef, _where: string): void {}
  override holds(_ref: LockRef, _mode?: LockMode): boolean {
    return true;
  }
  override holdsAny(): boolean {
    return false;
  }
  override mightSleep(_where: string): void {}
  override preemptPoint(_where: string): void {}
  override waitForFailedTrylock(_where: string): void {}
  override enterAtomic(): void {}
  override exitAtomic(): void {}
  override returnToUser(_what: string): void {}
}
