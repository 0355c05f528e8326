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
import { fail } from './assert.ts';
import { hex } from '../kernel-api/format.ts';

/**
 * The reverse map lists exactly the normal PTEs of each frame; throws a KernelAssertionError
 * when not. Each normal PTE must be among its frame's entries, and there must be as many
 * entries as normal PTEs: the PTEs are distinct, so no entry is left over or doubled.
 */
export function checkRmap(s: ImplState): void {
  let normal = 0;
  // Running processes only: exit leaves an mm no PTE (exitProcess asserts it) and nothing maps into it after.
  for (const pid of s.running) {
    const proc = s.processes.get(pid)!;
    proc.mm.pt.forEach(0, s.config.taskSizePages, (addr, flags, pfn) => {
      if ((flags & PTE_PRESENT) === 0 || (flags & PTE_SPECIAL) !== 0) return;
      normal += 1;
      if (!s.rmap.has(pfn, proc.pid, addr)) fail(`rmap of pfn ${pfn} lacks P${proc.pid} at ${hex(addr)}, whose PTE maps it`, 'mapcount');
    });
  }
  if (s.rmap.entries !== normal) fail(`rmap holds ${s.rmap.entries} entries but ${normal} normal PTEs map frames`, 'mapcount');
}
