/**
 * lockdep's graph across traces (harness/lock-graph.ts): two traces that each take two
 * driver mutexes in one order, opposite to the other's, close a cycle only together; the
 * repro plays both in one kernel, the second's ids moved past the first's.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import type { StrategyDefinition } from '../../kernel-api/strategy.ts';
import { FUZZ_CONFIG } from '../../harness/config.ts';
import { CampaignLockGraph, playBoth, shiftIds, thinEdges } from '../../harness/lock-graph.ts';
import type { LockEdge } from '../../harness/runner.ts';
import { replayOps } from '../../properties/trace.ts';
import { runCampaign } from '../../harness/campaign.ts';

/** Two mutexes, taken A then B by `ab` and B then A by `ba`. */
const abba: StrategyDefinition = {
  name: 'abba', seed: 'new', title: 'two mutexes taken in either order', promises: [],
  calls: [
    { name: 'ab', weight: 1, args: (ctx, c) => ({ pid: ctx.pid(c) }) },
    { name: 'ba', weight: 1, args: (ctx, c) => ({ pid: ctx.pid(c) }) },
  ],
  create: (k) => {
    const a = k.mutex_init('abba:a');
    const b = k.mutex_init('abba:b');
    return {
      call(name) {
        const [x, y] = name === 'ab' ? [a, b] : [b, a];
        k.mutex_lock(x);
        k.mutex_lock(y);
        k.mutex_unlock(y);
        k.mutex_unlock(x);
        return { kind: 'ok', value: 0 };
      },
      holds: () => [],
      remoteViews: () => [],
    };
  },
};

const session = { kernel: 'model' as const, config: FUZZ_CONFIG, strategies: [abba], only: new Set(['lock-order'] as const) };
const trace = (order: 'ab' | 'ba'): Op[] => [
  { op: 'creat', sizePages: 1 }, { op: 'spawn' }, { op: 'clone', pid: 1 },
  { op: 'drv', strategy: 'abba', call: order, args: { pid: 1 }, tid: 2 },
  { op: 'pwrite', file: 1, index: 0, value: 7 }, { op: 'exit', pid: 1 },
];

function outcomesOf(ops: readonly Op[]): Map<Op, Outcome> {
  const r = replayOps({ ...session, only: new Set() }, ops);
  return new Map(ops.map((op, i) => [op, r.outcomes[i]!]));
}

describe('lock-order across traces', () => {
  it('each order alone holds; both in one kernel close the cycle', () => {
    expect(replayOps(session, trace('ab')).failure).toBeNull();
    expect(replayOps(session, trace('ba')).failure).toBeNull();
    const a = trace('ab');
    const both = playBoth(a, outcomesOf(a), trace('ba'));
    const r = replayOps(session, both);
    expect(r.failure).toMatchObject({ invariant: 'lock-order' });
    expect(r.failure!.message).toMatch(/possible circular locking dependency: abba:b → abba:a/);
    // Every operation of the second trace did what it did alone: its ids were moved, not its meaning.
    const alone = replayOps({ ...session, only: new Set() }, trace('ba')).outcomes;
    const together = replayOps({ ...session, only: new Set() }, both).outcomes.slice(a.length);
    expect(together.map((o) => o.kind)).toEqual(alone.map((o) => o.kind));
  });

  it('moves pids, tids, a driver call\'s pid and target, switches and file ids; task 0 stays', () => {
    expect(shiftIds({ op: 'drv', strategy: 's', call: 'c', args: { pid: 1, target: 2, fd: 3 }, tid: 4, switches: [{ at: 0, to: 5 }, { at: 1, to: 0 }] }, 10, 3))
      .toEqual({ op: 'drv', strategy: 's', call: 'c', args: { pid: 11, target: 12, fd: 3 }, tid: 14, switches: [{ at: 0, to: 15 }, { at: 1, to: 0 }] });
    expect(shiftIds({ op: 'mmap', pid: 1, addr: 5, lengthPages: 1, prot: 1, shared: true, file: 2 }, 10, 3))
      .toEqual({ op: 'mmap', pid: 11, addr: 5, lengthPages: 1, prot: 1, shared: true, file: 5 });
    expect(shiftIds({ op: 'reclaim', count: 3 }, 10, 3)).toEqual({ op: 'reclaim', count: 3 });
    expect(shiftIds({ op: 'pread', file: 1, index: 0 }, 10, 3)).toEqual({ op: 'pread', file: 4, index: 0 });
  });
});

/**
 * Two mutexes, taken in the order the call names; the generator gives every call of a trace
 * the order its first call drew (each call returns it, remembered under `order`), so a
 * trace takes one order only and the campaign's traces take both.
 */
const fixedOrder: StrategyDefinition = {
  name: 'fixed-order', seed: 'new', title: 'two mutexes, one order a trace', promises: [],
  calls: [{
    name: 'lock', weight: 4, returns: 'order',
    args: (ctx, c) => {
      if (ctx.pids().length === 0) return null;
      const drawn = ctx.remembered('fixed-order', 'order');
      return { pid: ctx.pid(c), ab: drawn.length > 0 ? drawn[0] === 1 : c.bool() };
    },
  }],
  create: (k) => {
    const a = k.mutex_init('fixed-order:a');
    const b = k.mutex_init('fixed-order:b');
    return {
      call(_name, args) {
        const [x, y] = args.ab === true ? [a, b] : [b, a];
        k.mutex_lock(x);
        k.mutex_lock(y);
        k.mutex_unlock(y);
        k.mutex_unlock(x);
        return { kind: 'ok', value: args.ab === true ? 1 : 2 };
      },
      holds: () => [],
      remoteViews: () => [],
    };
  },
};

describe('lock-order across a campaign', () => {
  it('a campaign whose traces each take one order finds the cycle their orders close, with both traces as the repro', () => {
    const opts = { seed: 4, runs: 40, kernel: 'model' as const, strategies: [fixedOrder], config: FUZZ_CONFIG, stepsMax: 30 };
    const result = runCampaign(opts);
    const found = result.failures.filter((f) => f.invariant === 'lock-order');
    expect(found).toHaveLength(1);
    expect(found[0].message).toMatch(/possible circular locking dependency: fixed-order:[ab] → fixed-order:[ab]/);
    expect(found[0].message).toMatch(/\(the orders of runs \d+ and \d+, played in one kernel\)/);
    expect(replayOps({ kernel: 'model', config: FUZZ_CONFIG, strategies: [fixedOrder], only: new Set(['lock-order'] as const) }, found[0].ops).failure?.invariant).toBe('lock-order');
    // Deterministic: the same seed gives the same repro.
    expect(runCampaign(opts).failures.find((f) => f.invariant === 'lock-order')?.ops).toEqual(found[0].ops);
  });

  it('a worker that posts each edge once gives the supervisor the graph it would build from every edge of every run', () => {
    const e = (from: string, to: string): LockEdge => ({ from, to, where: `${from}>${to}` });
    // Runs 0..5 of a campaign, as two workers would take them in turn (each its own runs in increasing order).
    const runs: LockEdge[][] = [
      [e('a', 'b'), e('b', 'c')], [e('a', 'b')], [e('b', 'a'), e('a', 'b')], [e('c', 'b')], [e('b', 'c'), e('c', 'a')], [e('a', 'c'), e('a', 'a')],
    ];
    const full = new CampaignLockGraph();
    runs.forEach((edges, run) => full.add(run, edges));
    for (const workers of [1, 2, 3]) {
      const thin = new CampaignLockGraph();
      const posted = Array.from({ length: workers }, () => new Set<string>());
      runs.forEach((edges, run) => {
        const t = thinEdges(edges, posted[run % workers]);
        thin.add(run, t.edges, t.bothWays);
      });
      expect(thin, `${workers} workers`).toEqual(full);
    }
    // Run 2 takes a and b both ways though a→b was posted before it: its pair is still its own.
    const posted = new Set<string>();
    thinEdges(runs[0], posted);
    expect(thinEdges(runs[2], posted)).toEqual({ edges: [e('b', 'a')], bothWays: ['a\u0000b'] });
  });
});
