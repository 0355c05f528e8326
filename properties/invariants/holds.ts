/**
 * The references to frames that kernel structures other than PTEs and the page and swap
 * caches name: a driver's own (its holds), and each pipe buffer's (vmsplice took it with
 * FOLL_GET; its holder is named `pipe N`). refcount-balance counts them, no-leak names them.
 */
import type { DriverHold, KernelInspect } from '../../kernel-api/state.ts';

export function referenceHolds(k: KernelInspect): Iterable<DriverHold> {
  let out: DriverHold[] | null = null;
  for (const p of k.pipes()) {
    for (const pfn of p.pfns) if (pfn !== k.zeroPfn) (out ??= [...k.driverHolds()]).push({ pfn, holder: `pipe ${p.id}`, pins: 0, refs: 1 });
  }
  // Without a pipe buffer (most steps), the driver holds as they are.
  return out ?? k.driverHolds();
}
