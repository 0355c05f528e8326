/**
 * The Kernel interface both kernels implement: step an operation, expose state for the
 * invariants, and — for the tests that prove each invariant can fail — corrupt state on
 * purpose in named ways.
 */
import type { Op } from './op.ts';
import type { Outcome } from './outcome.ts';
import type { KernelInspect } from './state.ts';
import type { KernelConfig } from './config.ts';
import type { DriverKernel, StrategyInstance } from './driver.ts';
import type { LockTable } from './locks.ts';

export type KernelKind = 'model' | 'impl';

/**
 * Deliberate corruptions, one per invariant, each naming what it breaks. They exist so
 * that tests can show an invariant fails when its property is violated.
 */
export type Corruption =
  | { kind: 'leak-ref'; pfn: number }
  | { kind: 'skew-mapcount'; pfn: number }
  | { kind: 'free-under-pte'; pid: number; addr: number }
  | { kind: 'set-value'; pfn: number; value: number }
  | { kind: 'make-writable'; pid: number; addr: number }
  | { kind: 'skew-rss'; pid: number }
  | { kind: 'skew-swap-count'; slot: number }
  | { kind: 'pte-outside-vma'; pid: number; addr: number; to: number }
  | { kind: 'leak-frame' }
  | { kind: 'skip-ptrace-check' }
  /** fork shares a maybe-pinned anonymous page instead of copying it early (no page_needs_cow_for_dma). */
  | { kind: 'skip-fork-dma-copy' }
  /** The OOM reaper zaps the victim's private memory without telling the MMU notifiers. */
  | { kind: 'oom-reap-no-notifier' }
  /** vm_flags_reset of the VMA at `addr` to `prot` with no mprotect (the PTEs left as they are): what an mprotect that went too far leaves. */
  | { kind: 'set-vma-prot'; pid: number; addr: number; prot: number };

/** A strategy as a kernel needs it: its name and a factory run once per kernel instance. */
export type StrategyFactory = {
  readonly name: string;
  create(kernel: DriverKernel): StrategyInstance;
};

export interface Kernel {
  readonly kind: KernelKind;
  readonly config: Readonly<KernelConfig>;
  /**
   * Run `op` to completion as task `taskOf(op)` (the kernel sets `locks.current`). At each
   * scheduling point `locks.hooks` may run other operations nested (kernel-api/sched.ts).
   * The operation ends back in user space: a lock still held then is `lock-leak`.
   */
  step(op: Op): Outcome;
  /**
   * The kernel's lock table: mmap_lock, PTL, rmap locks, drivers' locks, and lockdep; and
   * `locks.coverage`, how often this kernel reached each coverage point (kernel-api/coverage.ts).
   */
  readonly locks: LockTable;
  readonly inspect: KernelInspect;
  /** The strategies loaded into this kernel, by name. */
  strategy(name: string): StrategyInstance | undefined;
  corrupt(c: Corruption): void;
  /**
   * CONFIG_DEBUG_VM: check the structures the kernel keeps beside what inspection shows
   * (the implementation's reverse map) against the page tables; throws an assertion error
   * naming the invariant when they disagree. The harness calls it after every step.
   */
  debugVm?(): void;
}
