import { describe, expect, it } from 'vitest';
import type { StrategyDefinition } from '../../kernel-api/strategy.ts';
import type { StrategyInstance } from '../../kernel-api/driver.ts';
import { heldBack, runCampaign, type CampaignFailure } from '../../harness/campaign.ts';
import { FUZZ_CONFIG } from '../../harness/config.ts';
import { replayOps } from '../../properties/trace.ts';
import { causeOf } from '../../properties/invariants/index.ts';
import type { Op } from '../../kernel-api/op.ts';
import { STRATEGIES } from '../../strategies/index.ts';

/**
 * A canary: a driver whose release forgets to free the page its open allocated. The
 * campaign must find it and shrink it to the three steps that show it.
 */
const leakyDriver: StrategyDefinition = {
  name: 'canary-leak', seed: 'new', title: 'open allocates a page; release forgets it', promises: ['no-leak'],
  calls: [{ name: 'open', weight: 1, returns: 'fd', args: (ctx, c) => ({ pid: ctx.pid(c) }) }],
  create(k): StrategyInstance {
    const held = new Map<number, number>();
    return {
      call(_call, args) {
        const pfn = k.alloc_page();
        if (pfn === null) return { kind: 'errno', errno: 'ENOMEM' };
        const fd = k.anon_inode_getfd(Number(args.pid), { name: 'canary-leak', release: () => {} }, null);
        if (typeof fd === 'string') {
          k.__free_page(pfn);
          return { kind: 'errno', errno: fd };
        }
        held.set(fd * 1000 + Number(args.pid), pfn);
        return { kind: 'ok', value: fd };
      },
      *holds() {
        for (const [key, pfn] of held) yield { pfn, holder: `canary#${key}`, pins: 0, refs: 1 };
      },
      remoteViews: () => [],
    };
  },
};

/** A canary whose call takes a page reference that nothing names: refcount-balance, then no-leak at exit. */
const unnamedRef: StrategyDefinition = {
  name: 'canary-unnamed-ref', seed: 'new', title: 'a call allocates a page and tells nobody', promises: ['refcount-balance', 'no-leak'],
  calls: [{ name: 'grab', weight: 1, args: (ctx, c) => ({ pid: ctx.pid(c) }) }],
  create(k): StrategyInstance {
    return {
      call() {
        const pfn = k.alloc_page();
        return pfn === null ? { kind: 'errno', errno: 'ENOMEM' } : { kind: 'ok', value: 0 };
      },
      holds: () => [],
      remoteViews: () => [],
    };
  },
};

describe('campaign', () => {
  it('reports one failure per bug: what breaks after a new failure in the same trace is not looked past', () => {
    const opts = { seed: 3, runs: 20, kernel: 'model' as const, strategies: [unnamedRef], config: FUZZ_CONFIG, stepsMax: 60 };
    const fuzz = runCampaign({ ...opts, lookPast: [] });
    expect(fuzz.failures.map((f) => f.invariant)).toEqual(['refcount-balance']);
    // Past a known flaw the chain goes on, to the next failure.
    const pastKnown = runCampaign({ ...opts, lookPast: ['canary-unnamed-ref/refcount-balance'] });
    expect(pastKnown.failures.map((f) => f.invariant).sort()).toEqual(['no-leak', 'refcount-balance']);
    // The scorecard looks past everything.
    expect(runCampaign(opts).failures.map((f) => f.invariant).sort()).toEqual(['no-leak', 'refcount-balance']);
  });

  it('holds back a strategy\'s failure of an invariant the core operations break too, and all divergences but one, unless known flaws', () => {
    const f = (strategy: string, invariant: CampaignFailure['invariant']) =>
      ({ strategy, invariant, kernel: 'diff', message: '', seed: 0, run: 0, foundAfterMs: 0, ops: [], originalLength: 0 }) as CampaignFailure;
    const core = f('core', 'differential');
    const sameRoute = f('kbuf-fault', 'differential');
    const flaw = f('proc-mem-mmap', 'differential');
    const other = f('kbuf-fault', 'no-leak');
    const held = heldBack([core, sameRoute, flaw, other], new Set(['proc-mem-mmap/differential']));
    expect([...held]).toEqual([sameRoute]);
    expect(heldBack([sameRoute, other], new Set()).size).toBe(0);
    // Divergences of the kernels under two strategies and none in core: the shorter is written.
    const longer = { ...f('pidfd-mem', 'differential'), ops: [{ op: 'spawn' }, { op: 'spawn' }] } as CampaignFailure;
    const shorter = { ...f('proc-mem-notify', 'differential'), ops: [{ op: 'spawn' }] } as CampaignFailure;
    expect([...heldBack([longer, shorter, other], new Set())]).toEqual([longer]);
  });

  it('finds a planted leak and shrinks it to spawn, open, exit', () => {
    const r = runCampaign({ seed: 3, runs: 40, kernel: 'model', strategies: [leakyDriver], config: FUZZ_CONFIG, stepsMax: 100 });
    const leak = r.failures.find((f) => f.invariant === 'no-leak');
    expect(leak).toBeDefined();
    expect(leak!.ops.map((op) => op.op)).toEqual(['spawn', 'drv', 'exit']);
  });

  it('is deterministic for a seed and a run budget', () => {
    const opts = { seed: 99, runs: 30, kernel: 'model' as const, strategies: STRATEGIES.filter((s) => s.name === 'proc-mem-mmap'), config: FUZZ_CONFIG, stepsMax: 150 };
    const strip = (r: ReturnType<typeof runCampaign>) => ({ ...r, elapsedMs: 0, failures: r.failures.map((f) => ({ ...f, foundAfterMs: 0 })) });
    expect(strip(runCampaign(opts))).toEqual(strip(runCampaign(opts)));
  });

  it('shrinks each failure to a trace that still breaks the same invariant with the same cause, and from which no single step can go', () => {
    const strategies = STRATEGIES.filter((s) => s.name === 'proc-mem-mmap');
    const r = runCampaign({ seed: 5, runs: 60, kernel: 'model', strategies, config: FUZZ_CONFIG, stepsMax: 150 });
    expect(r.failures.length).toBeGreaterThan(0);
    for (const f of r.failures) {
      const session = { kernel: 'model' as const, config: FUZZ_CONFIG, strategies, only: new Set([f.invariant]) };
      // The signature: the invariant and its cause (a removal that breaks it another way is another flaw).
      const signature = (ops: Op[]) => {
        const failure = replayOps(session, ops).failure;
        return failure === null ? null : `${failure.invariant}/${causeOf(failure, ops[failure.step])}`;
      };
      expect(f.cause).toBeDefined();
      expect(signature(f.ops)).toBe(`${f.invariant}/${f.cause}`);
      for (let i = 0; i < f.ops.length; i++) {
        const without = [...f.ops.slice(0, i), ...f.ops.slice(i + 1)];
        expect(signature(without), `step ${i} of ${f.invariant} (${f.cause}) is not needed`).not.toBe(`${f.invariant}/${f.cause}`);
      }
    }
  });
});
