/**
 * impl/locks.ts in bench/lockcost.ts's ablated tree: its helpers that run a function under a
 * lock call the function, nothing around it (see locks.ts here).
 */
import type { LockMode, LockRef } from '../../kernel-api/locks.ts';
import type { ImplMm, ImplState } from '../../impl/types.ts';

export * from '../../impl/locks.ts';

export function withLock<T>(_s: ImplState, _ref: LockRef, _mode: LockMode, _where: string, f: () => T, _subclass = 0): T {
  return f();
}

export function withMmapLock<T>(_s: ImplState, _mm: ImplMm, _mode: LockMode, _where: string, f: () => T): T {
  return f();
}

export function withPtl<T>(_s: ImplState, _mm: ImplMm, _where: string, f: () => T): T {
  return f();
}

export function releaseIfHeld(_s: ImplState, _ref: LockRef, _where: string): void {}
