/**
 * CONFIG_DEBUG_VM for the optimised kernel: what it keeps beside the page tables must agree
 * with them after every step. The inspection interface shows page tables, frames and
 * counters, never the reverse map, so a missed page_add_*_rmap or page_remove_rmap would
 * stay hidden until reclaim, OOM or a notifier walked the stale entry, many steps later or
 * never. The harness calls this after each step (properties/session.ts); the benchmarks,
 * which time the operations alone, do not.
 */
import type { ImplState } from './types.ts';
import { PTE_PRESENT, PTE_SPECIAL } from './pagetable.ts';
import { processesInOrder } from './process.ts';
import { fail } from './assert.ts';

const hex = (n: number) => `0x${n.toString(16)}`;

/** The reverse map lists exactly the normal PTEs of each frame; throws a KernelAssertionError when not. */
export function checkRmap(s: ImplState): void {
  // Every normal PTE by frame, in pid then address order: the order rmap.walk answers in.
  const mapped = new Map<number, Array<[number, number]>>();
  let normal = 0;
  for (const proc of processesInOrder(s)) {
    proc.mm.pt.forEach(0, s.config.taskSizePages, (addr, flags, pfn) => {
      if ((flags & PTE_PRESENT) === 0 || (flags & PTE_SPECIAL) !== 0) return;
      normal += 1;
      const at = mapped.get(pfn);
      if (at === undefined) mapped.set(pfn, [[proc.pid, addr]]);
      else at.push([proc.pid, addr]);
    });
  }
  for (const [pfn, ptes] of mapped) {
    const walked = s.rmap.walk(pfn);
    for (let i = 0; i < Math.max(ptes.length, walked.length); i++) {
      const [pid, addr] = ptes[i] ?? [-1, -1];
      const [rpid, raddr] = walked[i] ?? [-1, -1];
      if (pid === rpid && addr === raddr) continue;
      fail(pid !== -1 && (rpid === -1 || rpid > pid || (rpid === pid && raddr > addr))
        ? `rmap of pfn ${pfn} lacks P${pid} at ${hex(addr)}, whose PTE maps it`
        : `rmap of pfn ${pfn} names P${rpid} at ${hex(raddr)}, whose PTE does not map it`, 'mapcount');
    }
  }
  // Each frame's entries are its PTEs; any entry beyond them names a frame no PTE maps.
  if (s.rmap.entries !== normal) fail(`rmap holds ${s.rmap.entries} entries but ${normal} normal PTEs map frames`, 'mapcount');
}
