/** Every invariant, in the order they are checked after each step. */
import type { InvariantId } from '../../kernel-api/strategy.ts';
import type { CheckContext, Invariant, Violation } from './types.ts';
import { exclusiveAnon, mapcount, noStalePte, pinCoherence, refcountBalance, zeroPage } from './frames.ts';
import { noLeak, rssCounters, swapAccounting, vmaWellformed } from './accounting.ts';
import { cowIsolation, fileIntegrity, remoteCoherence } from './content.ts';
import { accessControl } from './access.ts';
import { driverMmap } from './driver.ts';
import { pagemapScan } from './pagemap.ts';
import { outcomeInvariant } from './outcome.ts';
import { messageCause, RAISED, raisedCause } from './raised.ts';
import type { Op } from '../../kernel-api/op.ts';

export type { Cause, CheckContext, Invariant, Violation } from './types.ts';
export { RAISED, type RaisedInvariant } from './raised.ts';
export { takeCensus } from './census.ts';

export const INVARIANTS: readonly Invariant[] = [
  noStalePte, refcountBalance, mapcount, exclusiveAnon, pinCoherence, zeroPage, rssCounters, swapAccounting,
  vmaWellformed, cowIsolation, fileIntegrity, remoteCoherence, accessControl, driverMmap, noLeak, pagemapScan, outcomeInvariant,
];

/** Ids checked by the step checker, plus those reported from elsewhere (assertions, differential). */
export const INVARIANT_IDS: readonly InvariantId[] = [...INVARIANTS.map((i) => i.id), 'slab', 'kernel-assert', 'differential', 'hang', 'deadlock', 'lock-order', 'sleep-in-atomic', 'lock-leak'];

/** The invariants to check: `only` those (all when absent), less the `exclude`d ones, in order. */
export function selectInvariants(only?: ReadonlySet<InvariantId>, exclude?: ReadonlySet<InvariantId>): readonly Invariant[] {
  return INVARIANTS.filter((inv) => (only === undefined || only.has(inv.id)) && (exclude === undefined || !exclude.has(inv.id)));
}

/** Run the given invariants (every one by default) in order; the first violation, or null. */
export function checkAll(ctx: CheckContext, invariants: readonly Invariant[] = INVARIANTS): Violation | null {
  for (const inv of invariants) {
    const v = inv.check(ctx);
    if (v !== null) return v;
  }
  return null;
}

/** An operation's shape for a cause: its name, or the driver call. */
export function opShape(op: Op | undefined): string {
  return op === undefined ? 'none' : op.op === 'drv' ? `drv:${op.strategy}.${op.call}` : op.op;
}

/**
 * The cause of a failure: the one its check named, else the one its message names (a
 * raised invariant's patterns; a `differential` divergence also names the operation it
 * diverged at, `last`), else the invariant's causes whose `match` recognises the message,
 * else 'unnamed'.
 */
export function causeOf(f: { invariant: InvariantId; cause?: string; message: string }, last?: Op): string {
  if (f.cause !== undefined && f.cause !== '') return f.cause;
  const raised = RAISED.find((r) => r.id === f.invariant);
  if (raised !== undefined) {
    const c = raisedCause(raised, f.message);
    return f.invariant === 'differential' ? `${c}:${opShape(last)}` : c;
  }
  const inv = INVARIANTS.find((i) => i.id === f.invariant);
  // A checked invariant a kernel asserted at the call (put_page of a freed page) names it by its words.
  return inv?.causes.find((c) => c.match?.test(f.message))?.id ?? messageCause(f.message);
}

/** A cause's title, as its invariant declares it ('' when it declares none by that id). */
export function causeTitle(invariant: InvariantId, cause: string): string {
  const causes = INVARIANTS.find((i) => i.id === invariant)?.causes ?? RAISED.find((r) => r.id === invariant)?.causes ?? [];
  const exact = causes.find((c) => c.id === cause);
  if (exact !== undefined) return exact.title;
  // A differential cause is its class and the operation.
  const [head, ...rest] = cause.split(':');
  const cls = causes.find((c) => c.id === head);
  return cls === undefined ? '' : `${cls.title}${rest.length > 0 ? ` at ${rest.join(':')}` : ''}`;
}
