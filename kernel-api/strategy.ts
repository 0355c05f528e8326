/**
 * What a strategy (a remote-mapping design) declares: its calls, how to generate their
 * arguments, the invariants it promises to keep, and a factory for its per-kernel instance.
 * A strategy is one file in strategies/ plus a line in strategies/index.ts.
 */
import type { DriverKernel, PtraceMode, StrategyInstance } from './driver.ts';
import type { Errno } from './outcome.ts';
import type { KernelConfig } from './config.ts';
import type { Op } from './op.ts';

export type InvariantId =
  | 'refcount-balance' | 'mapcount' | 'no-stale-pte' | 'remote-coherence' | 'cow-isolation'
  | 'exclusive-anon' | 'zero-page' | 'file-integrity' | 'rss-counters' | 'swap-accounting'
  | 'vma-wellformed' | 'no-leak' | 'access-control' | 'slab' | 'differential' | 'kernel-assert'
  | 'pagemap-scan' | 'hang' | 'deadlock' | 'lock-order' | 'sleep-in-atomic' | 'lock-leak' | 'pin-coherence' | 'driver-mmap' | 'outcome';

export type DriverArgs = Record<string, number | boolean | string>;

/** Random choices for argument generation; every value comes from the run's one seed. */
export interface Choice {
  /** An integer in [0, max). */
  int(max: number): number;
  bool(): boolean;
  pick<T>(xs: readonly T[]): T;
}

/** What the generator knows of the machine while it builds the next operation. */
export interface GenContext {
  /** Running pids, in order (empty before the first spawn). */
  pids(): readonly number[];
  /** A running pid (or 1 when none runs, which yields ESRCH). */
  pid(c: Choice): number;
  /**
   * Another process to act on (a target): a running pid other than `pid` that maps
   * something when any does, `pid` itself now and then.
   */
  otherPid(pid: number, c: Choice): number;
  /**
   * A caller and a target for a call that attaches to another process (PTRACE_MODE_ATTACH):
   * three times in four a target that maps something and its parent or another running
   * ancestor as the caller, which Yama's ptrace_scope 1 allows; else any pid and otherPid.
   */
  attachPair(c: Choice): { pid: number; target: number };
  /** An address of `pid` biased to VMA starts, ends, interiors and a few free pages. */
  addr(pid: number, c: Choice): number;
  /**
   * An address where `pid` has a page in memory (a present PTE), or `addr(pid, c)` when it
   * has none: what a remote mapping of resident memory (GUP with FOLL_NOFAULT) needs.
   */
  residentAddr(pid: number, c: Choice): number;
  /** A range of `pid` biased to straddle VMA edges. */
  range(pid: number, c: Choice): { addr: number; lengthPages: number };
  /** A 32-bit value biased to a few distinct ones, so sharing shows. */
  value(c: Choice): number;
  /** The fds `pid` holds whose f_op belongs to this strategy (named `strategy` or `strategy.*`). */
  fds(pid: number, strategy: string): readonly number[];
  /** The arguments of the call that returned fd `fd` of `pid` (inherited across fork), if a call did. */
  fdOrigin(pid: number, fd: number): DriverArgs | undefined;
  /** Any value a previous call of this strategy returned under `key` (e.g. a control fd). */
  remembered(strategy: string, key: string): readonly number[];
}

export type StrategyCall = {
  readonly name: string;
  /** Relative weight in a campaign before swarm testing rescales it. */
  readonly weight: number;
  /** Arguments for one call, or null when the state offers nothing sensible (the step is skipped). */
  args(ctx: GenContext, c: Choice): DriverArgs | null;
  /**
   * What a successful outcome value is, so the generator can use it later:
   * 'fd' — an fd of args.pid; a string — remembered under that key.
   */
  readonly returns?: 'fd' | string;
  /**
   * The call changes nothing before its first scheduling point (it waits there first, as
   * pidfd-mem's unmap for the faults in progress): started nested and made to wait there,
   * it is not started, like a core operation waiting at its entry lock (properties/sched.ts).
   */
  readonly waitsFirst?: boolean;
  /**
   * The ptrace check the design's C makes before the call reaches another process
   * (ptrace_may_access in mem_open, pidfd_getfd, proc_map_files_readdir…), declared so that
   * access-control judges the call by its own rule, apart from the driver and the kernel's
   * ptrace_may_access: a call that succeeds without those rights is a flaw.
   */
  readonly access?: CallAccess;
};

export type CallAccess = {
  /** PTRACE_MODE_ATTACH or PTRACE_MODE_READ (the _REALCREDS/_FSCREDS half is the same here: one uid a process). */
  readonly mode: PtraceMode;
  /** The argument naming the target process; the caller is the call's `pid`. */
  readonly target: string;
  /** The errno the call gives when the check refuses. */
  readonly denied: Errno;
  /**
   * The call gives `denied` for nothing but the check, so a refusal while the rights are
   * there is a flaw too. Leave it out where another path gives the same errno.
   */
  readonly deniedOnlyByAccess?: boolean;
};

export type StrategyDefinition = {
  readonly name: string;
  /** Which seed document it emulates ('000' … '004'), or 'new' for one written here. */
  readonly seed: string;
  readonly title: string;
  /** The invariants the design promises to keep; the scorecard judges these. */
  readonly promises: readonly InvariantId[];
  readonly calls: readonly StrategyCall[];
  /**
   * How user space maps one of this strategy's fds (f_op name `driver`): the offset and
   * length an mmap should use. Absent: small offsets and lengths.
   */
  /**
   * The errnos the design's ->mmap gives (its own range check's, say) when the mapping
   * request itself is bad: declared, `driver-mmap` judges every mmap of the design's fds
   * that its ->mmap refused with another errno a flaw — a request the design says it maps
   * (a failed allocation, ENOMEM, and the core's own checks before ->mmap are not judged).
   */
  readonly mmapRefusesOnly?: readonly Errno[];
  mmapArgs?(ctx: GenContext, c: Choice, pid: number, driver: string, fd: number): { pgoff: number; lengthPages: number; prot?: number; shared?: boolean } | null;
  /**
   * The design's basic use, as operations from an empty machine (with `config`'s address
   * layout): half of a campaign's runs of this strategy start with it, so that their random
   * steps begin with the design's objects in place (a remote view already shown, say) rather
   * than each run having to build them by chance first.
   */
  prelude?(config: Readonly<KernelConfig>): Op[];
  /** f_op names of this strategy's fds that have no mmap (ENODEV): the generator maps them only now and then. */
  readonly unmappable?: readonly string[];
  create(kernel: DriverKernel): StrategyInstance;
};
