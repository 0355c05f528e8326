/** Every invariant, in the order they are checked after each step. */
import type { InvariantId } from '../../kernel-api/strategy.ts';
import type { CheckContext, Invariant, Violation } from './types.ts';
import { exclusiveAnon, mapcount, noStalePte, refcountBalance, zeroPage } from './frames.ts';
import { noLeak, rssCounters, swapAccounting, vmaWellformed } from './accounting.ts';
import { cowIsolation, fileIntegrity, remoteCoherence } from './content.ts';
import { accessControl } from './access.ts';
import { pagemapScan } from './pagemap.ts';

export type { CheckContext, Invariant, Violation } from './types.ts';
export { takeCensus } from './census.ts';

export const INVARIANTS: readonly Invariant[] = [
  noStalePte, refcountBalance, mapcount, exclusiveAnon, zeroPage, rssCounters, swapAccounting,
  vmaWellformed, cowIsolation, fileIntegrity, remoteCoherence, accessControl, noLeak, pagemapScan,
];

/** Ids checked by the step checker, plus those reported from elsewhere (assertions, differential). */
export const INVARIANT_IDS: readonly InvariantId[] = [...INVARIANTS.map((i) => i.id), 'slab', 'kernel-assert', 'differential', 'hang'];

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
