import { it } from 'vitest';
import { generatedRun, makePlan, sessionBase, traceOf } from '../harness/runner.ts';
import { replayOps } from '../properties/trace.ts';
import { FUZZ_CONFIG, STEPS_MAX } from '../harness/config.ts';
import { STRATEGIES } from '../strategies/index.ts';
it('dbg', () => {
  const plan = makePlan(9, 'model', FUZZ_CONFIG, STRATEGIES, STEPS_MAX, true);
  const run = 142;
  const trace = traceOf(plan, run);
  const base = { ...sessionBase(plan, run), only: new Set<never>() };
  const g = generatedRun(base, trace, run);
  const r = replayOps(base, g.ops);
  console.log('strategy', base.strategies.map(s => s.name), 'ops', g.ops.length, 'abandoned', g.abandoned, 'replay', r.infeasible, r.ops.length);
  const n = r.ops.length;
  for (let i = Math.max(0, n - 8); i < Math.min(g.ops.length, n + 3); i++) console.log(i, JSON.stringify(g.ops[i]), g.outcomes.has(g.ops[i]) ? JSON.stringify(g.outcomes.get(g.ops[i])) : 'NOT COMPLETED', '| replay', JSON.stringify(r.outcomes[i]));
});
