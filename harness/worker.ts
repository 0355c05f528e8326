/**
 * A campaign worker thread: receives batches of run indexes from its supervisor
 * (harness/pool.ts), runs each (harness/campaign.ts runOne) and posts the batch's
 * reports back. It keeps its own set of failures already shrunk, so a failure is shrunk
 * once per worker at most; the supervisor keeps the one of the lowest run index.
 * Progress goes through the shared heartbeat, so the supervisor can tell a hung step
 * from a long run.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import type { StrategyDefinition } from '../kernel-api/strategy.ts';
import { STRATEGIES } from '../strategies/index.ts';
import { runOne } from './campaign.ts';
import { thinEdges } from './lock-graph.ts';
import { makePlan, PHASE_BUILD, PHASE_IDLE, beat } from './runner.ts';
import type { WorkerInit, ToWorker, FromWorker } from './pool.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);

async function strategiesByName(): Promise<Map<string, StrategyDefinition>> {
  const byName = new Map(STRATEGIES.map((s) => [s.name, s]));
  for (const module of init.strategyModules) {
    const m = (await import(pathToFileURL(module).href)) as { strategies?: StrategyDefinition[] };
    for (const s of m.strategies ?? []) byName.set(s.name, s);
  }
  return byName;
}

const byName = await strategiesByName();
const strategies = init.strategies.map((name) => {
  const s = byName.get(name);
  if (s === undefined) throw new Error(`worker: unknown strategy ${name}`);
  return s;
});
const plan = makePlan(init.seed, init.kernel, init.config, strategies, init.stepsMax, init.withCore, init.lookPast);
const hb = new Int32Array(init.heartbeat);
const seen = new Set<string>();
/** The lock-order edges this worker has posted (lock-graph.ts thinEdges). */
const postedEdges = new Set<string>();

port.on('message', (m: ToWorker) => {
  if (m.type !== 'run') return;
  const reports = m.runs.map((run) => {
    beat(hb, run, 0, PHASE_BUILD); // from here on the heartbeat names this run
    const report = runOne(plan, run, seen, hb, (ops) => post({ type: 'shrinking', run, ops }));
    beat(hb, run, 0, PHASE_IDLE);
    const thin = thinEdges(report.lockEdges, postedEdges);
    return { ...report, lockEdges: thin.edges, lockBothWays: thin.bothWays };
  });
  post({ type: 'done', reports });
});
post({ type: 'ready' });
