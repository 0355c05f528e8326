/**
 * The differential observes a process while it runs and in the step it exits, never after
 * (properties/observe.ts observeLive): what makes a step's cost independent of the processes
 * ever created. Pinned here: observeLive is observe() less the processes that exited before
 * the step, on both kernels; a divergence an exiting process shows is still reported in that
 * step; nothing can map into a dead mm afterwards (a driver trying is a kernel assertion in
 * both kernels); exit reparents children as before.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import type { DriverKernel, DriverVma } from '../../kernel-api/driver.ts';
import type { StrategyDefinition } from '../../kernel-api/strategy.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { ok, err } from '../../kernel-api/outcome.ts';
import { observe, observeLive, runningPids } from '../../properties/observe.ts';
import { createKernel } from '../../properties/kernels.ts';
import { Session } from '../../properties/session.ts';

const ADDR = 100;

/** P1 maps and writes a page, then forks children that write and exit; P3 outlives P1. */
const TRACE: Op[] = [
  { op: 'spawn' },
  { op: 'mmap', pid: 1, addr: ADDR, lengthPages: 2, prot: 3, shared: false, fixed: true },
  { op: 'write', pid: 1, addr: ADDR, value: 1 },
  { op: 'fork', pid: 1 },
  { op: 'write', pid: 2, addr: ADDR, value: 2 },
  { op: 'exit', pid: 2 },
  { op: 'fork', pid: 1 },
  { op: 'oom', pid: 1 },
  { op: 'write', pid: 3, addr: ADDR + 1, value: 3 },
  { op: 'exit', pid: 1 }, // the OOM victim's own exit
  { op: 'exit', pid: 3 },
];

describe('observeLive', () => {
  for (const kind of ['model', 'impl'] as const) {
    it(`is observe() less the processes exited before the step (${kind})`, () => {
      const k = createKernel(kind, DEFAULT_CONFIG, []);
      let before: number[] = [];
      for (const op of TRACE) {
        k.step(op);
        const whole = observe(k.inspect);
        const live = observeLive(k.inspect, before);
        const expected = { ...whole, processes: whole.processes.filter((p) => p.state === 'running' || before.includes(p.pid)) };
        expect(live).toEqual(expected);
        before = runningPids(live);
      }
      // Each exited process was observed in the step it exited: exited, nothing mapped.
      expect(observe(k.inspect).processes.map((p) => [p.pid, p.state, p.maps.length, p.pages.length])).toEqual([
        [1, 'exited', 0, 0], [2, 'exited', 0, 0], [3, 'exited', 0, 0],
      ]);
    });
  }

  it('reports a divergence an exiting process shows, in the step it exits', () => {
    const s = new Session({ kernel: 'diff', config: DEFAULT_CONFIG, strategies: [] });
    for (const op of TRACE.slice(0, 5)) expect(s.step(op).violation).toBeNull();
    // The implementation's P2 counts a page more than it maps: exit leaves it a counter of 1.
    s.shadow!.corrupt({ kind: 'skew-rss', pid: 2 });
    const { violation } = s.step({ op: 'exit', pid: 2 });
    expect(violation?.invariant).toBe('differential');
    expect(violation?.message).toMatch(/after exit the observations differ/);
  });

  it('reparents the children of an exiting process to init, exited ones too', () => {
    for (const kind of ['model', 'impl'] as const) {
      const k = createKernel(kind, DEFAULT_CONFIG, []);
      for (const op of TRACE.slice(0, 7)) k.step(op);
      expect([...k.inspect.processes()].map((p) => p.ppid)).toEqual([0, 1, 1]);
      k.step({ op: 'exit', pid: 1 });
      expect([...k.inspect.processes()].map((p) => p.ppid)).toEqual([0, 0, 0]);
    }
  });
});

/** A driver that keeps the VMA its fd was mapped into and maps a page into it on request, even after the VMA is gone. */
const staleVma: StrategyDefinition = {
  name: 'test-stale-vma', seed: 'new', title: 'a driver that keeps a VMA past its life', promises: [],
  calls: [],
  create: (k: DriverKernel) => {
    let kept: DriverVma | null = null;
    const fops = { name: 'test-stale-vma', mmap: (_f: unknown, vma: DriverVma) => { kept = vma; vma.mixedmap = true; return 0 as const; } };
    return {
      call(call: string, args: Record<string, number | boolean | string>) {
        if (call === 'open') {
          const fd = k.anon_inode_getfd(Number(args.pid), fops, null);
          return typeof fd === 'number' ? ok(fd) : err(fd);
        }
        const pfn = k.alloc_page()!;
        const r = k.vm_insert_page(kept!, kept!.start, pfn);
        return r === 0 ? ok(0) : err(r);
      },
      holds: () => [],
      remoteViews: () => [],
    };
  },
};

describe('a dead mm', () => {
  for (const kind of ['model', 'impl'] as const) {
    it(`takes no new mapping: a driver mapping into a VMA of an exited process is a kernel assertion (${kind})`, () => {
      const s = new Session({ kernel: kind, config: DEFAULT_CONFIG, strategies: [staleVma], only: new Set() });
      const steps: Op[] = [
        { op: 'spawn' },
        { op: 'drv', strategy: 'test-stale-vma', call: 'open', args: { pid: 1 } },
        { op: 'mmap', pid: 1, addr: ADDR, lengthPages: 1, prot: 3, shared: true, fixed: true, fd: 3 },
        { op: 'exit', pid: 1 },
      ];
      for (const op of steps) expect(s.step(op)).toMatchObject({ outcome: { kind: 'ok' }, violation: null });
      const { violation } = s.step({ op: 'drv', strategy: 'test-stale-vma', call: 'insert', args: {} });
      expect(violation?.invariant).toBe('kernel-assert');
      expect(violation?.message).toMatch(/driver maps into map#\d+ of P1, which has exited: exit_mmap freed that VMA/);
    });
  }
});
