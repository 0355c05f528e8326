/** The implementation's CONFIG_DEBUG_VM check: its reverse map against its page tables, after every step. */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { ImplKernel } from '../../impl/kernel.ts';
import { Session } from '../../properties/session.ts';

const SETUP: Op[] = [
  { op: 'spawn' },
  { op: 'mmap', pid: 1, addr: 100, lengthPages: 4, prot: 3, shared: false, fixed: true },
  { op: 'write', pid: 1, addr: 100, value: 7 },
  { op: 'fork', pid: 1 },
];

function setUp(): ImplKernel {
  const k = new ImplKernel(DEFAULT_CONFIG);
  for (const op of SETUP) k.step(op);
  k.debugVm();
  return k;
}

describe('impl debugVm', () => {
  it('passes a consistent kernel, and the session runs it after each step', () => {
    const s = new Session({ kernel: 'impl', config: DEFAULT_CONFIG, strategies: [] });
    for (const op of SETUP) expect(s.step(op).violation).toBeNull();
  });

  it('finds a PTE its frame\'s reverse map lacks (a missed page_add_anon_rmap)', () => {
    const k = setUp();
    const pfn = k.state.processes.get(1)!.mm.pt.idx(100);
    k.state.rmap.remove(pfn, 2, 100);
    expect(() => k.debugVm()).toThrow(/rmap of pfn \d+ lacks P2 at 0x64, whose PTE maps it/);
  });

  it('finds an entry no PTE backs (a missed page_remove_rmap)', () => {
    const k = setUp();
    const pfn = k.state.processes.get(1)!.mm.pt.idx(100);
    k.state.rmap.add(pfn, 1, 101);
    expect(() => k.debugVm()).toThrow(/rmap holds 3 entries but 2 normal PTEs map frames/);
  });

  it('reports through the session as the invariant the kernel names, or as differential beside the model', () => {
    for (const kernel of ['impl', 'diff'] as const) {
      const s = new Session({ kernel, config: DEFAULT_CONFIG, strategies: [] });
      for (const op of SETUP) s.step(op);
      const impl = (kernel === 'impl' ? s.primary : s.shadow!) as ImplKernel;
      impl.state.rmap.add(impl.state.processes.get(1)!.mm.pt.idx(100), 1, 101);
      const { violation } = s.step({ op: 'read', pid: 1, addr: 100 });
      expect(violation?.invariant).toBe(kernel === 'impl' ? 'mapcount' : 'differential');
      expect(violation?.message).toMatch(/rmap holds 3 entries but 2 normal PTEs/);
    }
  });
});
