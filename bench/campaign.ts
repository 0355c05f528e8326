/**
 * Checked steps per second of a default campaign (generation + step + every invariant) on
 * one core, and of the baseline a user would otherwise write: the same core operations as
 * fast-check commands run by fc.modelRun, with fc.commands at size 'max' so traces are as
 * long as the campaign's. Both check through the same Session (ghost memory, census, every
 * invariant after every step) over the same kernel; only the driving differs.
 */
import fc from 'fast-check';
import type { KernelConfig } from '../kernel-api/config.ts';
import { DEFAULT_CONFIG } from '../kernel-api/config.ts';
import { runCampaign } from '../harness/campaign.ts';
import { makePlan, runChain, sessionBase, traceOf } from '../harness/runner.ts';
import { INVARIANT_IDS } from '../properties/invariants/index.ts';
import { CHOICES_PER_STEP, TraceBuilder, opKinds } from '../properties/gen.ts';
import { Session } from '../properties/session.ts';
import type { KernelChoice } from '../properties/kernels.ts';
import { STRATEGIES } from '../strategies/index.ts';

export const CAMPAIGN_CONFIG: Readonly<KernelConfig> = { ...DEFAULT_CONFIG, processesMax: 8 };
export const STEPS_MAX = 300;

export type StepsRate = { stepsPerSec: number; steps: number; runs: number; elapsedMs: number; failures: number };

/** Rates of one thing measured in parts (rounds taken in turn) counted as one: steps, runs, time and failures summed. */
export function pooledRate(rs: readonly StepsRate[]): StepsRate {
  const sum = (f: (r: StepsRate) => number) => rs.reduce((x, r) => x + f(r), 0);
  const steps = sum((r) => r.steps);
  const elapsedMs = sum((r) => r.elapsedMs);
  return { stepsPerSec: steps / (elapsedMs / 1000), steps, runs: sum((r) => r.runs), elapsedMs, failures: sum((r) => r.failures) };
}

/**
 * The default campaign (harness/campaign.ts) for `timeMs`: core operations only, or with
 * `allStrategies` the mix `mapfuzz fuzz` runs (core, then each strategy in turn), whose
 * time also goes to re-running and shrinking the strategies' known flaws.
 */
export function campaignRate(kernel: KernelChoice, timeMs: number, seed = 1, allStrategies = false): StepsRate {
  const strategies = allStrategies ? STRATEGIES : [];
  const r = runCampaign({ seed, timeMs, kernel, strategies, withCore: allStrategies, config: CAMPAIGN_CONFIG, stepsMax: STEPS_MAX });
  return { stepsPerSec: r.steps / (r.elapsedMs / 1000), steps: r.steps, runs: r.runs, elapsedMs: r.elapsedMs, failures: r.failures.length };
}

/**
 * The default campaign's traces with no invariant checked (ghost memory still kept): what
 * generation and stepping alone cost, the ceiling the checks leave room under.
 */
export function uncheckedRate(kernel: KernelChoice, timeMs: number, seed = 1): StepsRate {
  const plan = makePlan(seed, kernel, CAMPAIGN_CONFIG, [], STEPS_MAX);
  const exclude = new Set(INVARIANT_IDS);
  let steps = 0;
  let runs = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < timeMs) {
    steps += runChain({ ...sessionBase(plan, runs), exclude }, traceOf(plan, runs), runs).steps;
    runs += 1;
  }
  const elapsedMs = performance.now() - t0;
  return { stepsPerSec: steps / (elapsedMs / 1000), steps, runs, elapsedMs: Math.round(elapsedMs), failures: 0 };
}

type Real = { session: Session; builders: Map<string, TraceBuilder>; steps: number };

/**
 * One command per core operation kind; its arguments are the same choices the campaign's
 * generator reads (a builder that can draw only this kind turns them into an op).
 */
class CoreCommand implements fc.Command<object, Real> {
  constructor(readonly kind: string, readonly choices: readonly number[]) {}
  check(): boolean { return true; }
  run(_m: object, r: Real): void {
    const op = builderFor(r, this.kind).next(this.choices);
    if (op === null) return;
    const { violation } = r.session.step(op);
    r.steps += 1;
    if (violation !== null) throw new Error(`${violation.invariant}: ${violation.message}`);
  }
  toString(): string { return `${this.kind}(${this.choices.join(',')})`; }
}

const KINDS = opKinds([]);

function builderFor(r: Real, kind: string): TraceBuilder {
  let b = r.builders.get(kind);
  if (b === undefined) {
    const factors = KINDS.map((x) => (x.name === kind ? 1 : 0));
    b = new TraceBuilder(r.session.view, CAMPAIGN_CONFIG, [], { factors, hot: false });
    r.builders.set(kind, b);
  }
  return b;
}

function commandArbitraries(): fc.Arbitrary<fc.Command<object, Real>>[] {
  const choices = fc.array(fc.nat({ max: 0x7fffffff }), { minLength: CHOICES_PER_STEP, maxLength: CHOICES_PER_STEP });
  // Weights as the generator's base weights: fc.oneof draws each kind as often.
  return KINDS.map((kind) => fc.oneof({ arbitrary: choices.map((c) => new CoreCommand(kind.name, c)), weight: kind.weight }));
}

/** The fc.commands + fc.modelRun baseline for `timeMs`: checked steps per second. */
export function fcCommandsRate(kernel: KernelChoice, timeMs: number, seed = 1): StepsRate {
  const cmds = fc.commands(commandArbitraries(), { maxCommands: STEPS_MAX, size: 'max' });
  let steps = 0;
  let runs = 0;
  const t0 = performance.now();
  const result = fc.check(fc.property(cmds, (commands) => {
    const real: Real = { session: new Session({ kernel, config: CAMPAIGN_CONFIG, strategies: [] }), builders: new Map(), steps: 0 };
    try {
      fc.modelRun(() => ({ model: {}, real }), commands);
      // Teardown as the campaign does: every running process exits, so no-leak is judged.
      for (const p of [...real.session.primary.inspect.processes()]) {
        if (p.state !== 'running') continue;
        const { violation } = real.session.step({ op: 'exit', pid: p.pid });
        real.steps += 1;
        if (violation !== null) throw new Error(`${violation.invariant}: ${violation.message}`);
      }
    } finally {
      steps += real.steps;
      runs += 1;
    }
  }), { seed, numRuns: 2 ** 31 - 1, interruptAfterTimeLimit: timeMs, markInterruptAsFailure: false });
  const elapsedMs = performance.now() - t0;
  return { stepsPerSec: steps / (elapsedMs / 1000), steps, runs, elapsedMs: Math.round(elapsedMs), failures: result.failed ? 1 : 0 };
}
