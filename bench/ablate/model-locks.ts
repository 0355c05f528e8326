/**
 * model/locks.ts in bench/lockcost.ts's ablated tree: its helpers that run a function under a
 * lock call the function, nothing around it (see locks.ts here).
 */
import type { LockMode, LockRef } from '../../kernel-api/locks.ts';
import type { ModelState } from '../../model/types.ts';

export * from '../../model/locks.ts';

export function withLock<T>(_s: ModelState, _ref: LockRef, _mode: LockMode, _where: string, f: () => T, _subclass = 0): T {
  return f();
}

export function withMmapLock<T>(_s: ModelState, _pid: number, _mode: LockMode, _where: string, f: () => T): T {
  return f();
}

export function withPtl<T>(_s: ModelState, _pid: number, _where: string, f: () => T): T {
  return f();
}

export function releaseIfHeld(_s: ModelState, _ref: LockRef, _where: string): void {}
