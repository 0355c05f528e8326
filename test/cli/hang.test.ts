/**
 * `show`, `show --html`, `replay` and `shrink` under the step time limit (issue 19): a planted hang —
 * a model PAGEMAP_SCAN walking a 2^34-page mapping page by page, minutes of work — is told up
 * to the step that runs past `--step-timeout` and reported as `hang`, never waited on, and a
 * `hang` repro shrinks with "still hangs" as its predicate.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Op } from '../../kernel-api/op.ts';
import { FUZZ_CONFIG } from '../../harness/config.ts';
import { formatRepro, loadRepro, REPRO_FORMAT, type Repro } from '../../harness/repro.ts';
import { run } from './helpers.ts';

const HUGE = 2 ** 34;
const START = 2 ** 32;
const SCAN: Op = {
  op: 'pagemap_scan', pid: 1, target: 1, start: START, end: START + HUGE, flags: 0, max_pages: 0,
  category_inverted: 0, category_mask: 8, category_anyof_mask: 0, return_mask: 8, vec_len: 1,
};
const OPS: Op[] = [
  { op: 'spawn' },
  { op: 'mmap', pid: 1, addr: 1 << 20, lengthPages: 2, prot: 3, shared: false, fixed: true },
  { op: 'write', pid: 1, addr: 1 << 20, value: 7 },
  { op: 'mmap', pid: 1, addr: START, lengthPages: HUGE, prot: 3, shared: false, fixed: true },
  SCAN,
  { op: 'write', pid: 1, addr: (1 << 20) + 1, value: 8 },
];

function reproFile(over: Partial<Repro> = {}): string {
  const r: Repro = {
    format: REPRO_FORMAT, title: 'core: hang: a step ran past the step time limit', kernel: 'model', strategy: 'core',
    invariant: 'hang', cause: 'step-timeout', expect: 'reproduces', seed: 1, message: '', config: { ...FUZZ_CONFIG }, ops: OPS, ...over,
  };
  const file = join(mkdtempSync(join(tmpdir(), 'mapfuzz-hang-')), 'hang.json');
  writeFileSync(file, formatRepro(r));
  return file;
}

describe('a step past the step time limit', () => {
  it('show tells the steps before it, names it, and ends with the hang verdict', async () => {
    const r = await run(['show', reproFile(), '--step-timeout', '1']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/ {2}4\. P1: mmap\(17179869184p.*= 0x100000000\n/);
    expect(r.out).toMatch(/ {2}5\. P1: PAGEMAP_SCAN\(P1, .*\) … still running\n\nHANG at step 5: step 5 \(.*\) ran longer than the step time limit of 1000 ms\n$/);
    expect(r.out).not.toMatch(/ {2}6\. /);
  });

  it('show of a repro that expects to pass, and hangs, says so and exits 1', async () => {
    const r = await run(['show', reproFile({ invariant: 'no-leak', cause: undefined, expect: 'passes' }), '--step-timeout', '1']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/HANG at step 5/);
    expect(r.out).toMatch(/it has regressed/);
  });

  it('show --html writes the page up to the step, ending in hang', async () => {
    const file = reproFile();
    const page = join(file, '..', 'story.html');
    const r = await run(['show', file, '--html', page, '--step-timeout', '1']);
    expect(r.code).toBe(0);
    const html = readFileSync(page, 'utf8');
    expect(html.match(/<section class="step/g)?.length).toBe(4);
    expect(html).toMatch(/<div id="broken" data-invariant="hang">HANG at step 5: /);
  });

  it('replay judges a hang at the step past the limit: as expected for a hang repro, a failure for another', async () => {
    const hang = await run(['replay', reproFile(), '--step-timeout', '1']);
    expect(hang.code).toBe(0);
    expect(hang.out).toMatch(/^ok {3}.*hang\.json: reproduces hang \(step-timeout\) at step 5\n/);
    const passes = await run(['replay', reproFile({ invariant: 'no-leak', cause: undefined, expect: 'passes' }), '--step-timeout', '1']);
    expect(passes.code).toBe(1);
    expect(passes.out).toMatch(/^FAIL .*hang\.json: fails: hang: step 5 \(pagemap_scan\) ran longer than the step time limit of 1000 ms\n/);
  });

  it('shrink keeps what still hangs: the mapping and the scan', async () => {
    const file = reproFile();
    const r = await run(['shrink', file, '--step-timeout', '1']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/6 → 3 steps \(\d+ replays, \d+ ran past 2 s\)/);
    expect(loadRepro(file).ops).toEqual([OPS[0], OPS[3], SCAN]);
    const shown = await run(['show', file, '--step-timeout', '1']);
    expect(shown.code).toBe(0);
    expect(shown.out).toMatch(/HANG at step 3/);
  });
});
