/**
 * The shape of an invariant check. Each invariant has a stable id (kernel-api/strategy.ts
 * InvariantId) that repro files and reports use; a violation names the invariant, the
 * process, the address and the frame where it applies.
 */
import type { InvariantId } from '../../kernel-api/strategy.ts';
import type { KernelConfig } from '../../kernel-api/config.ts';
import type { KernelInspect } from '../../kernel-api/state.ts';
import type { RemoteView } from '../../kernel-api/driver.ts';
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import type { Census } from './census.ts';
import type { Ghost } from '../ghost.ts';

export type Violation = {
  invariant: InvariantId;
  message: string;
  pid?: number;
  addr?: number;
  pfn?: number;
};

export type CheckContext = {
  k: KernelInspect;
  config: Readonly<KernelConfig>;
  census: Census;
  ghost: Ghost;
  /** The step just taken and what it returned. */
  op: Op;
  outcome: Outcome;
  /** Remote views of every loaded strategy. */
  remoteViews: readonly RemoteView[];
};

export type Invariant = {
  readonly id: InvariantId;
  /** One sentence: what must hold. */
  readonly holds: string;
  check(ctx: CheckContext): Violation | null;
};
