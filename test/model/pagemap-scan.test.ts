/**
 * PAGEMAP_SCAN, /proc/<pid>/pagemap, clear_refs, userfaultfd async write-protect and
 * map_files readdir as merged upstream, pinned on the model; and the pagemap-scan invariant
 * failing on an outcome that disagrees with the page tables.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { ModelKernel } from '../../model/kernel.ts';
import { pagemapScan as pagemapScanInvariant } from '../../properties/invariants/pagemap.ts';
import { pagemapScenarios, scan, setUp } from './pagemap-scenarios.ts';

pagemapScenarios('model', (config) => new ModelKernel({ ...DEFAULT_CONFIG, ...config }));

describe('pagemap-scan invariant', () => {
  it('fails when a scan outcome disagrees with the page tables', () => {
    const k = new ModelKernel();
    setUp(k);
    const op = scan({});
    const outcome = k.step(op);
    const ctx = { k: k.inspect, config: DEFAULT_CONFIG, op, outcome } as unknown as Parameters<typeof pagemapScanInvariant.check>[0];
    expect(pagemapScanInvariant.check(ctx)).toBeNull();
    const wrong = { ...ctx, outcome: { kind: 'ok', value: 1, values: [108, 100, 108, 0x8a] } } as typeof ctx;
    expect(pagemapScanInvariant.check(wrong)?.invariant).toBe('pagemap-scan');
    const readOp: Op = { op: 'pagemap_read', pid: 1, target: 1, addr: 100 };
    const read = k.step(readOp);
    expect(pagemapScanInvariant.check({ ...ctx, op: readOp, outcome: read })).toBeNull();
    const bad = { kind: 'ok', value: 1, values: [0x103], frames: [0] } as Outcome;
    expect(pagemapScanInvariant.check({ ...ctx, op: readOp, outcome: { ...bad, values: [0x101] } as Outcome })?.invariant).toBe('pagemap-scan');
  });

  it('judges a scan of the whole address space by the pages inside VMAs (it built a state for each of 2^31 pages)', () => {
    const k = new ModelKernel();
    setUp(k);
    const op = scan({ start: 0, end: 2 ** 31 });
    const outcome = k.step(op);
    expect(outcome.kind).toBe('ok');
    const ctx = { k: k.inspect, config: DEFAULT_CONFIG, op, outcome } as unknown as Parameters<typeof pagemapScanInvariant.check>[0];
    expect(pagemapScanInvariant.check(ctx)).toBeNull();
    const values = (outcome as { values: number[] }).values;
    expect(values.length, 'the scan found the mapped pages').toBeGreaterThan(1);
    expect(pagemapScanInvariant.check({ ...ctx, outcome: { ...outcome, values: [...values.slice(0, -1), values.at(-1)! ^ 1] } as Outcome })?.invariant).toBe('pagemap-scan');
  });
});
