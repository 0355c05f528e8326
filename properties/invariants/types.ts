/**
 * The shape of an invariant check. Each invariant has a stable id (kernel-api/strategy.ts
 * InvariantId) that repro files and reports use; a violation names the invariant, the
 * process, the address and the frame where it applies.
 */
import type { InvariantId, StrategyDefinition } from '../../kernel-api/strategy.ts';
import type { KernelConfig } from '../../kernel-api/config.ts';
import type { KernelInspect, VmaView } from '../../kernel-api/state.ts';
import type { RemoteView } from '../../kernel-api/driver.ts';
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import type { Census } from './census.ts';
import type { Ghost } from '../ghost.ts';
import type { Predictor } from '../predict.ts';

export type Violation = {
  invariant: InvariantId;
  /**
   * How it broke, one of its invariant's `causes` (ids): with the strategy and the invariant
   * it is the failure's signature, so two failures of one cause are one bug and two causes
   * are two, as syzkaller tells crashes apart by their titles.
   */
  cause?: string;
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
  /** The index of the step just taken in its trace (0-based; messages count from 1); absent outside a trace. */
  step?: number;
  /** The loaded strategies, whose declarations (a call's `access`) some checks judge by. */
  strategies?: readonly StrategyDefinition[];
  /** In a concurrent step: the VMA a store's address lay in when it completed (sched.ts Completed.vma). */
  opVma?: VmaView;
  /**
   * The outcome predictor as it stood before the step (properties/predict.ts); absent where
   * no prediction is made (a concurrent step, a check outside a session).
   */
  predictor?: Predictor;
};

/**
 * One way an invariant can break, named as syzkaller names a crash: a stable id (the part
 * of the signature) and a title with the variable parts left out ("remote view maps the
 * old frame after the target's COW break", as "KASAN: use-after-free Read in foo").
 * `match`, when given, recognises the cause in a violation message alone: for violations
 * raised elsewhere (a kernel assertion, a divergence) and repro files written before
 * causes were recorded, as syzkaller's report parser recognises titles in an oops.
 */
export type Cause = {
  readonly id: string; readonly title: string; readonly match?: RegExp;
  /**
   * The step's operation does not explain it (remote-coherence's `other:…`, a file page
   * changed by no known path): in a concurrent step, an operation of the step that names
   * an explained cause is preferred (properties/session.ts).
   */
  readonly unexplained?: true;
};

export type Invariant = {
  readonly id: InvariantId;
  /** One sentence: what must hold. */
  readonly holds: string;
  /** Every cause its violations may name (Violation.cause); a check names no other. */
  readonly causes: readonly Cause[];
  /**
   * 'outcome': it judges one operation's outcome (a read's value, an errno) against the
   * state that operation ran in. In a concurrent step that state is any instant of the
   * operation's interval: it is judged at each (properties/session.ts) and breaks only if
   * it breaks at every one. Absent: it judges the state, once the step is quiescent.
   */
  readonly judges?: 'outcome';
  check(ctx: CheckContext): Violation | null;
};
