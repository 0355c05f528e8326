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

/** Run every invariant (or `only` those, less `exclude`d ones); the first violation, or null. */
export function checkAll(ctx: CheckContext, only?: ReadonlySet<InvariantId>, exclude?: ReadonlySet<InvariantId>): Violation | null {
  for (const inv of INVARIANTS) {
    if (only !== undefined && !only.has(inv.id)) continue;
    if (exclude !== undefined && exclude.has(inv.id)) continue;
    const v = inv.check(ctx);
    if (v !== null) return v;
  }
  return null;
}
