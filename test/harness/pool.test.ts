import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mergeFailure, runCampaign, shardRuns, sortedFailures, type CampaignFailure, type CampaignResult } from '../../harness/campaign.ts';
import { runCampaignParallel } from '../../harness/pool.ts';
import { FUZZ_CONFIG } from '../../harness/config.ts';
import { STRATEGIES } from '../../strategies/index.ts';
import { crashCanary, hangCanary } from './fixtures/canaries.ts';

const procMem = STRATEGIES.filter((s) => s.name === 'proc-mem-mmap');
const base = { seed: 11, runs: 24, kernel: 'model' as const, strategies: procMem, config: FUZZ_CONFIG, stepsMax: 200 };
const strip = (fs: CampaignFailure[]) => fs.map((f) => ({ ...f, foundAfterMs: 0 }));

describe('campaign on worker threads', () => {
  it('finds the same failures, shrunk to the same traces, with 1 or 2 workers as in one thread', async () => {
    const one = runCampaign(base);
    expect(one.failures.length).toBeGreaterThan(1);
    const [w1, w2] = [await runCampaignParallel({ ...base, workers: 1, stepTimeoutMs: 20_000 }), await runCampaignParallel({ ...base, workers: 2, stepTimeoutMs: 20_000 })];
    for (const r of [w1, w2]) {
      expect(r.runs).toBe(24);
      expect(r.steps).toBe(one.steps);
      expect(strip(r.failures)).toEqual(strip(one.failures));
    }
  });

  it('turns a hung step and a crashed worker into failures with their repros, and goes on', async () => {
    const r = await runCampaignParallel({
      seed: 1, runs: 4, kernel: 'model', strategies: [hangCanary, crashCanary], config: FUZZ_CONFIG, stepsMax: 50,
      workers: 1, stepTimeoutMs: 600, strategyModules: [join(import.meta.dirname, 'fixtures', 'canaries.ts')],
    });
    expect(r.runs).toBe(4);
    expect(r.hangs).toBe(2);
    expect(r.crashes).toBe(2);
    const hang = r.failures.find((f) => f.invariant === 'hang')!;
    expect(hang.strategy).toBe('canary-hang');
    expect(hang.run).toBe(0);
    expect(hang.ops.at(-1)).toMatchObject({ op: 'drv', strategy: 'canary-hang', call: 'spin' });
    expect(hang.message).toMatch(/step time limit of 600 ms/);
    const crash = r.failures.find((f) => f.invariant === 'kernel-assert')!;
    expect(crash.strategy).toBe('canary-crash');
    expect(crash.message).toMatch(/worker crashed.*canary crash/);
    // It crashed building a step: the repro is what ran before it.
    expect(crash.message).toMatch(/building step \d+/);
    expect(crash.ops[0]).toEqual({ op: 'spawn' });
    expect(crash.ops.some((op) => op.op === 'drv')).toBe(false);
  });
});

describe('shards', () => {
  it('split run indexes into disjoint parts that together cover every index', () => {
    const all = [...shardRuns(50)];
    const parts = [1, 2, 3].map((index) => [...shardRuns(50, { index, count: 3 })]);
    expect(parts.flat().sort((a, b) => a - b)).toEqual(all);
    expect(new Set(parts.flat()).size).toBe(50);
  });

  it('together find what one campaign finds', () => {
    const whole = runCampaign(base);
    const merged = new Map<string, CampaignFailure>();
    const halves: CampaignResult[] = [1, 2].map((index) => runCampaign({ ...base, shard: { index, count: 2 } }));
    for (const h of halves) for (const f of h.failures) mergeFailure(merged, f);
    expect(halves[0].runs + halves[1].runs).toBe(whole.runs);
    expect(halves[0].steps + halves[1].steps).toBe(whole.steps);
    expect(strip(sortedFailures(merged.values()))).toEqual(strip(whole.failures));
  });
});

describe('replaying a trace that may hang', () => {
  it('reports a hung replay as unfinished after its time limit, and a finished one as finished', async () => {
    const { replayWithTimeLimit } = await import('../../harness/replay-limited.ts');
    const modules = [join(import.meta.dirname, 'fixtures', 'canaries.ts')];
    const spin = { op: 'drv' as const, strategy: 'canary-hang', call: 'spin', args: { pid: 1 } };
    const base = { kernel: 'model', strategy: 'canary-hang', config: FUZZ_CONFIG };
    const t0 = performance.now();
    expect(replayWithTimeLimit({ ...base, ops: [{ op: 'spawn' }, spin] }, 300, modules)).toEqual({ finished: false, failure: null });
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(replayWithTimeLimit({ ...base, ops: [{ op: 'spawn' }] }, 5000, modules)).toEqual({ finished: true, failure: null });
  });
});
