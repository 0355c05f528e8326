/**
 * Repro files: a shrunk trace with what it must do on replay, in a versioned JSON format
 * (`mapfuzz-repro/1`). Files are validated on load, every operation against the schema of
 * kernel-api/op-schema.ts — a malformed one is rejected with the file and the field named —
 * and written atomically (a temporary file, then rename).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Op } from '../kernel-api/op.ts';
import { validateOp } from '../kernel-api/op-schema.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import { DEFAULT_CONFIG } from '../kernel-api/config.ts';
import type { InvariantId } from '../kernel-api/strategy.ts';
import { causeOf, INVARIANT_IDS } from '../properties/invariants/index.ts';
import { replayOps, type TraceResult } from '../properties/trace.ts';
import { replayWithTimeLimit } from './replay-limited.ts';
import type { LimitedReplayer } from './limited-replayer.ts';
import { oracleConfig, replayOracleRepro } from './oracle.ts';
import { KERNEL_CHOICES, type KernelChoice } from '../properties/kernels.ts';
import { STRATEGIES, strategyByName } from '../strategies/index.ts';

export const REPRO_FORMAT = 'mapfuzz-repro/1';

export type Expect = 'reproduces' | 'passes';

export type Repro = {
  format: typeof REPRO_FORMAT;
  title: string;
  /** The emulated kernels, or 'oracle' for a divergence from the running Linux kernel (corpus/kernel/). */
  kernel: KernelChoice | 'oracle';
  /** A strategy name, or 'core' for the core operations alone. */
  strategy: string;
  invariant: InvariantId;
  /**
   * How it broke: one of the invariant's causes (properties/invariants), part of the
   * signature. A repro that reproduces must break its invariant with this cause. Files
   * written before causes were recorded have none: it is named from their message.
   */
  cause?: string;
  /** 'reproduces': a known flaw of a design under test; 'passes': a fixed bug that must stay fixed. */
  expect: Expect;
  /** The seed of the trace it was shrunk from. */
  seed: number;
  /** The violation message when it was found ('' when none was recorded). */
  message: string;
  config: KernelConfig;
  ops: Op[];
};

/** A repro file that failed validation: names the file and the field. */
export class ReproFormatError extends Error {
  override name = 'ReproFormatError' as const;
  constructor(readonly file: string, readonly field: string, reason: string) {
    super(`${file}: ${field}: ${reason}`);
  }
}

type Signed = Pick<Repro, 'strategy' | 'invariant' | 'ops'> & { message?: string; expect?: Expect; cause?: string };

/** A failure's cause as recorded, or else as its message and last step name it (properties/invariants causeOf). */
export function signedCause(r: Signed): string {
  return causeOf({ invariant: r.invariant, cause: r.cause, message: r.message ?? '' }, r.ops.at(-1));
}

/**
 * What makes two failures the same: the strategy, the invariant and its cause — what the
 * invariant can say about how it broke (which side of a remote view changed and how the
 * view is wrong, which holder leaked, how the kernels differed and at which operation),
 * each invariant's causes declared beside it in properties/invariants, as syzkaller tells
 * two crashes apart by their titles.
 */
export function failureSignature(r: Signed): string {
  return `${r.strategy}/${r.invariant}/${signedCause(r)}`;
}

/**
 * A repro file's signature: its failure's, and whether the bug is fixed. One file is kept
 * per signature; a fixed bug's repro (`passes`) and a new failure of the same shape found
 * later are two files, for the new one is another bug until the old repro fails again. A
 * fixed bug's repro is a regression test of its own, so its operations are part of its
 * signature: two fixed bugs of the same shape keep two files.
 */
export function reproSignature(r: Signed): string {
  if (r.expect !== 'passes') return failureSignature(r);
  return `${failureSignature(r)}/fixed/${createHash('sha256').update(JSON.stringify(r.ops)).digest('hex').slice(0, 16)}`;
}

/** A short hash of the signature: the same failure always lands in the same file. */
export function reproHash(r: Signed): string {
  return createHash('sha256').update(reproSignature(r)).digest('hex').slice(0, 8);
}

/** `corpus/<strategy>/<invariant>-<hash of the signature>.json` */
export function reproPath(corpusDir: string, r: Signed): string {
  return join(corpusDir, r.strategy, `${r.invariant}-${reproHash(r)}.json`);
}

/** The order of a repro file's head fields (others, if any, follow). */
const HEAD_ORDER = ['format', 'title', 'kernel', 'strategy', 'invariant', 'cause', 'expect', 'seed', 'message'];

/** The file's text: stable key order, one operation per line, so diffs read well. */
export function formatRepro(r: Repro): string {
  const { ops, config, ...rest } = r;
  const head = Object.fromEntries([...HEAD_ORDER.filter((k) => k in rest && (rest as Record<string, unknown>)[k] !== undefined).map((k) => [k, (rest as Record<string, unknown>)[k]]),
    ...Object.entries(rest).filter(([k]) => !HEAD_ORDER.includes(k))]);
  const lines = Object.entries(head).map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)},`);
  lines.push(`  "config": ${JSON.stringify(config)},`);
  lines.push(`  "ops": [\n${ops.map((op) => `    ${JSON.stringify(op)}`).join(',\n')}\n  ]`);
  return `{\n${lines.join('\n')}\n}\n`;
}

/** Write atomically: a half-written file never appears under the final name. */
export function writeReproFile(path: string, r: Repro): void {
  writeAtomically(path, formatRepro(r));
}

/** A file's text written to a temporary name beside it, then renamed into place. */
export function writeAtomically(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}${TEMP_MARK}${process.pid}`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (e) {
    // A failed write leaves no temporary file behind (a killed process can: corpus check lists those).
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** What a temporary file's name carries after the final name: `<file>.tmp-<pid>`. */
export const TEMP_MARK = '.tmp-';

/** Parse and validate a repro file's text. Throws ReproFormatError naming the field. */
export function parseRepro(file: string, text: string): Repro {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ReproFormatError(file, '(file)', `not JSON: ${(e as Error).message}`);
  }
  const fail = (field: string, reason: string): never => { throw new ReproFormatError(file, field, reason); };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('(file)', 'not a JSON object');
  const o = json as Record<string, unknown>;
  if (o.format !== REPRO_FORMAT) fail('format', `expected "${REPRO_FORMAT}", found ${JSON.stringify(o.format)}`);
  if (typeof o.title !== 'string') fail('title', 'must be a string');
  if (!KERNEL_CHOICES.includes(o.kernel as KernelChoice) && o.kernel !== 'oracle') fail('kernel', `must be one of ${KERNEL_CHOICES.join(', ')}, oracle`);
  if (typeof o.strategy !== 'string' || (o.strategy !== 'core' && strategyByName(o.strategy) === undefined)) {
    fail('strategy', `unknown strategy ${JSON.stringify(o.strategy)} (known: core, ${STRATEGIES.map((s) => s.name).join(', ')})`);
  }
  if (!INVARIANT_IDS.includes(o.invariant as InvariantId)) fail('invariant', `unknown invariant ${JSON.stringify(o.invariant)}`);
  if (o.expect !== 'reproduces' && o.expect !== 'passes') fail('expect', 'must be "reproduces" or "passes"');
  if (!Number.isSafeInteger(o.seed)) fail('seed', 'must be an integer');
  if (o.message !== undefined && typeof o.message !== 'string') fail('message', 'must be a string when present');
  if (o.cause !== undefined && (typeof o.cause !== 'string' || o.cause === '')) fail('cause', 'must be a non-empty string when present');
  const config = { ...DEFAULT_CONFIG, ...(typeof o.config === 'object' && o.config !== null ? o.config : {}) } as KernelConfig;
  for (const [k, v] of Object.entries(config)) if (!Number.isSafeInteger(v)) fail(`config.${k}`, 'must be an integer');
  if (!Array.isArray(o.ops) || o.ops.length === 0) fail('ops', 'must be a non-empty array');
  // Each op against the schema, with the strategies a replay of this file loads.
  const loaded = o.strategy === 'core' ? [] : [strategyByName(o.strategy as string)!];
  (o.ops as unknown[]).forEach((op, i) => {
    const e = validateOp(op, loaded);
    if (e !== null) fail(e.field === '' ? `ops[${i}]` : `ops[${i}].${e.field}`, e.reason);
  });
  return { ...(o as unknown as Repro), message: (o.message as string | undefined) ?? '', config };
}

export function loadRepro(file: string): Repro {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ReproFormatError(file, '(file)', `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseRepro(file, text);
}

/**
 * The machine a repro replays on: its own configuration, or for a divergence from Linux
 * (`kernel: oracle`, corpus/kernel/) the oracle's machine — its address layout, limits, swap
 * and soft-dirty as harness/oracle.ts replays it against the running kernel (oracleConfig);
 * those files record no configuration of their own.
 */
export function replayConfig(r: Pick<Repro, 'kernel' | 'config'>): KernelConfig {
  return r.kernel === 'oracle' ? oracleConfig() : r.config;
}

/** The session a repro replays in (`replay`, `show`, `shrink`): its kernel, strategy and replayConfig. */
export function sessionFor(r: Pick<Repro, 'kernel' | 'strategy' | 'config'>, only?: InvariantId) {
  const strategy = r.strategy === 'core' ? undefined : strategyByName(r.strategy);
  return {
    kernel: r.kernel === 'oracle' ? 'model' as const : r.kernel, config: replayConfig(r), strategies: strategy === undefined ? [] : [strategy],
    ...(only === undefined ? {} : { only: new Set([only]) }),
  };
}

export type ReplayVerdict = { ok: boolean; reproduced: boolean; result: TraceResult; summary: string };

/**
 * How a repro's replay ends, judged against what it expects — the one judgement `replay`,
 * `show` (harness/story.ts) and the corpus tests share. The replay checks the repro's own
 * invariant alone (sessionFor(r, r.invariant)), so that another flaw on the way (a known
 * flaw of the design under test, say) neither masks nor fakes it. 'reproduces': its
 * invariant breaks, with its recorded cause when it has one (a shorter route to another
 * flaw is not this repro). 'passes': it does not, and no kernel assertion or bad free is thrown.
 */
export function judgeReplay(r: Repro, failure: { invariant: InvariantId; cause?: string; message: string; step: number } | null): Omit<ReplayVerdict, 'result'> {
  if (r.expect === 'reproduces') {
    const sameInvariant = failure?.invariant === r.invariant;
    const cause = failure === null ? '' : causeOf(failure, r.ops[failure.step]);
    const reproduced = sameInvariant && (r.cause === undefined || cause === r.cause);
    return {
      ok: reproduced, reproduced,
      summary: reproduced ? `reproduces ${r.invariant} (${cause}) at step ${failure!.step + 1}`
        : sameInvariant ? `breaks ${r.invariant} another way (${cause}), not as recorded (${r.cause})` : `no longer reproduces ${r.invariant}`,
    };
  }
  const ok = failure === null;
  return { ok, reproduced: !ok, summary: ok ? 'passes' : `fails: ${failure!.invariant}: ${failure!.message}` };
}

/**
 * What a repro's replay says: whether it behaves as it expects, and how — the one verdict
 * `replay` prints and `show` ends with. A divergence from Linux (`kernel: oracle`) is
 * replayed on the running kernel against the model (replayOracleRepro), unavailable where
 * the oracle cannot be built; every other repro on its emulated kernel — with `limited`, on
 * its worker thread under the step time limit (a step past it is a `hang` at that step),
 * else in this thread (replayRepro) — and judged by judgeReplay.
 */
export function reproVerdict(r: Repro, limited?: LimitedReplayer): { ok: boolean; summary: string } | { unavailable: string } {
  if (r.kernel === 'oracle') return replayOracleRepro(r.ops, r.expect);
  if (limited === undefined) return replayRepro(r);
  return judgeReplay(r, limited.replay(sessionFor(r, r.invariant), r.ops, { ...r, config: replayConfig(r) }, false).failure);
}

/** Replay a repro and judge it (judgeReplay). */
export function replayRepro(r: Repro): ReplayVerdict {
  if (r.invariant === 'hang') return replayHang(r);
  const result = replayOps(sessionFor(r, r.invariant), r.ops);
  return { ...judgeReplay(r, result.failure), result };
}

/** How long a step of a `hang` repro may run on replay before it counts as hung. */
export const HANG_REPLAY_MS = 10_000;

/** A `hang` repro replays on a worker thread with a time limit: it reproduces when it does not finish. */
function replayHang(r: Repro): ReplayVerdict {
  const limited = replayWithTimeLimit(r, HANG_REPLAY_MS);
  const result: TraceResult = { ops: r.ops, outcomes: [], failure: null };
  if (!limited.finished) {
    return { ok: r.expect === 'reproduces', reproduced: true, result: { ...result, failure: { invariant: 'hang', message: `did not finish within ${HANG_REPLAY_MS} ms`, step: r.ops.length - 1 } }, summary: `reproduces hang (still running after ${HANG_REPLAY_MS} ms)` };
  }
  return { ok: r.expect === 'passes' && limited.failure === null, reproduced: false, result, summary: `finished within ${HANG_REPLAY_MS} ms${limited.failure === null ? '' : ' (with a failure)'}: no longer hangs` };
}
