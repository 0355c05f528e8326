/**
 * observationsEqual (properties/observe.ts) is how the differential property compares the
 * two kernels after every step: it must agree with comparing the observations as JSON.
 * Every field of a real observation (present, file, zero-page, swapped and COW-shared
 * pages; exited and running processes) is changed in turn, and each change must be seen,
 * so a field added to the observation and not to the comparison fails here.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import type { Observation } from '../../kernel-api/observation.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { ModelKernel } from '../../model/kernel.ts';
import { liveObservationsEqual, observationsEqual, observe, observeLive, runningPids } from '../../properties/observe.ts';
import { ImplKernel } from '../../impl/kernel.ts';
import { FUZZ_CONFIG, STEPS_MAX } from '../../harness/config.ts';
import { generatedRun, makePlan, sessionBase, traceOf } from '../../harness/runner.ts';

const A = 2 ** 35 - 4; // where the first 4-page mmap lands

function sample(): Observation {
  const k = new ModelKernel(DEFAULT_CONFIG);
  const ops: Op[] = [
    { op: 'spawn' },
    { op: 'mmap', pid: 1, addr: 0, lengthPages: 4, prot: 3, shared: false },
    { op: 'write', pid: 1, addr: A, value: 11 },
    { op: 'write', pid: 1, addr: A + 1, value: 12 },
    { op: 'read', pid: 1, addr: A + 2 },
    { op: 'creat', sizePages: 2 },
    { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 1, shared: true, file: 1 },
    { op: 'read', pid: 1, addr: A - 2 },
    { op: 'reclaim', pid: 1, addr: A + 1 },
    { op: 'fork', pid: 1 },
    { op: 'write', pid: 2, addr: A + 3, value: 13 },
    { op: 'spawn' },
    { op: 'exit', pid: 3 },
  ];
  for (const op of ops) k.step(op);
  return observe(k.inspect);
}

type Path = Array<string | number>;

/** Every leaf (a number, boolean or string) of a value, by path. */
function leaves(v: unknown, path: Path = []): Path[] {
  if (v !== null && typeof v === 'object') {
    return Object.entries(v).flatMap(([key, x]) => leaves(x, [...path, Array.isArray(v) ? Number(key) : key]));
  }
  return v === undefined ? [] : [path];
}

function changed(o: Observation, path: Path, to?: unknown): Observation {
  const copy = structuredClone(o);
  let at: Record<string | number, unknown> = copy as unknown as Record<string, unknown>;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
  const last = path.at(-1)!;
  const was = at[last];
  at[last] = to !== undefined ? to : typeof was === 'number' ? was + 1 : typeof was === 'boolean' ? !was : `${String(was)}x`;
  return copy;
}

describe('observationsEqual', () => {
  const o = sample();

  it('covers every kind of page and process', () => {
    const pages = o.processes.flatMap((p) => p.pages);
    expect(pages.some((p) => p.present && !p.file && p.exclusive)).toBe(true);
    expect(pages.some((p) => p.file)).toBe(true);
    expect(pages.some((p) => p.frame === 0)).toBe(true);
    expect(pages.some((p) => p.swapped)).toBe(true);
    expect(o.processes.map((p) => p.state)).toEqual(['running', 'running', 'exited']);
  });

  it('finds an observation equal to its copy and to its JSON round trip', () => {
    expect(observationsEqual(o, structuredClone(o))).toBe(true);
    expect(observationsEqual(o, JSON.parse(JSON.stringify(o)) as Observation)).toBe(true);
  });

  it('sees a change to any field, as JSON does', () => {
    const paths = leaves(o);
    expect(paths.length).toBeGreaterThan(50);
    for (const path of paths) {
      const m = changed(o, path);
      expect(JSON.stringify(m) === JSON.stringify(o), path.join('.')).toBe(false);
      expect(observationsEqual(o, m), path.join('.')).toBe(false);
      expect(observationsEqual(m, o), path.join('.')).toBe(false);
    }
  });

  it('sees an optional field set where it was absent, and an element more or less', () => {
    for (const [i, p] of o.processes.entries()) {
      for (const [j, page] of p.pages.entries()) {
        for (const key of ['value', 'frame', 'refcount', 'mapcount'] as const) {
          if (page[key] !== undefined) continue;
          expect(observationsEqual(o, changed(o, ['processes', i, 'pages', j, key], 1)), `${i}.${j}.${key}`).toBe(false);
        }
      }
      for (const list of ['pages', 'maps'] as const) {
        if (p[list].length === 0) continue;
        const shorter = structuredClone(o);
        shorter.processes[i][list].pop();
        expect(observationsEqual(o, shorter)).toBe(false);
        expect(observationsEqual(shorter, o)).toBe(false);
      }
    }
    const fewer = structuredClone(o);
    fewer.processes.pop();
    expect(observationsEqual(o, fewer)).toBe(false);
  });
});

describe('liveObservationsEqual', () => {
  // The diff campaign's comparison, made without building the two observations: it must
  // answer as observationsEqual of them does, on equal pairs (the model and the
  // implementation after the same operations) and on unequal ones (the model one operation
  // behind itself), over generated core traces.
  it('agrees with observationsEqual of the two observations, equal or not', () => {
    const plan = makePlan(3, 'model', FUZZ_CONFIG, [], STEPS_MAX);
    let compared = 0;
    let unequal = 0;
    for (let run = 0; run < 40; run++) {
      const trace = traceOf(plan, run);
      trace.swarm.concurrency = 0;
      const { ops } = generatedRun(sessionBase(plan, run), trace, run);
      const a = new ModelKernel(FUZZ_CONFIG);
      const b = new ImplKernel(FUZZ_CONFIG);
      const behind = new ModelKernel(FUZZ_CONFIG);
      let before: number[] = [];
      for (const [i, op] of ops.entries()) {
        a.step(op);
        b.step(op);
        for (const other of [b.inspect, behind.inspect]) {
          const full = observationsEqual(observeLive(a.inspect, before), observeLive(other, before));
          const live = liveObservationsEqual(a.inspect, other, before);
          expect(live !== null, `run ${run} op ${i}`).toBe(full);
          if (live !== null) expect(live).toEqual(runningPids(observeLive(a.inspect, before)));
          compared += 1;
          if (!full) unequal += 1;
        }
        before = runningPids(observeLive(a.inspect, before));
        behind.step(op);
      }
    }
    expect(compared).toBeGreaterThan(1000);
    expect(unequal).toBeGreaterThan(200);
  });
});
