/**
 * The mapfuzz command line: argument checking and printing only; the work is in harness/.
 * Exit status: 0 nothing broke (or every repro behaved as it expects), 1 an invariant
 * broke (or a repro misbehaved), 2 a usage error or a malformed file, with one line.
 */
import { randomInt } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { appendFileSync, existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { StrategyDefinition } from '../kernel-api/strategy.ts';
import { KERNEL_CHOICES, type KernelChoice } from '../properties/kernels.ts';
import { STRATEGIES, strategyByName } from '../strategies/index.ts';
import { attributeCore, campaignCause, campaignSignature, failureKey, heldBack, type CampaignFailure, type Shard } from '../harness/campaign.ts';
import { causeTitle } from '../properties/invariants/index.ts';
import { runCampaignParallel, type ParallelProgress, type ParallelResult } from '../harness/pool.ts';
import { accountOf, formatJunit, formatMarkdown, formatSummaryTable, headline, statusOf, type CampaignReport, type FailureReport } from '../harness/report.ts';
import { jsonFilesBelow, mergeCorpora } from '../harness/merge.ts';
import { FUZZ_CONFIG, STEPS_MAX } from '../harness/config.ts';
import {
  failureSignature, judgeReplay, loadRepro, replayConfig, replayRepro, reproPath, reproVerdict, ReproFormatError, writeReproFile, REPRO_FORMAT, TEMP_MARK, type Repro,
} from '../harness/repro.ts';
import { endingLines, stepLines, storyHeader, unexpectedEnding, type OutsideVerdict, type StoryStep } from '../harness/story.ts';
import { walkStoryLimited } from '../harness/story-limited.ts';
import { shrinkLimited } from '../harness/shrink-limited.ts';
import { LimitedReplayer } from '../harness/limited-replayer.ts';
import { storyPage } from '../harness/html.ts';
import { formatScorecard, runScorecard } from '../harness/scorecard.ts';
import { concurrentReason, ORACLE_OPS, runOracle } from '../harness/oracle.ts';
import { enableSwap, SWAP_MIB, swapAreas } from '../kernel-oracle/swap.mjs';
import { buildOracle } from '../kernel-oracle/build.mjs';
import { RACE_ATTEMPTS_DEFAULT, reproToC } from '../harness/oracle-c.ts';
import { InfeasibleSchedule } from '../properties/sched.ts';
import { LockViolation } from '../kernel-api/locks.ts';
import { commandDef, commandHelp, COMMANDS, flagSpec } from './commands.ts';
import { nonNegativeInt, outputPath, parseArgs, type Parsed, positiveInt, probeFile, UsageError, writableDir } from './args.ts';
import { coverageJson, coverageLine } from '../kernel-api/coverage.ts';

const HELP = `mapfuzz — property-based fuzzing of memory-mapping semantics

usage:
${COMMANDS.map((c) => `  mapfuzz ${c.name.padEnd(13)} ${c.brief}`).join('\n')}

mapfuzz COMMAND --help shows a command's options and their defaults.
strategies: ${STRATEGIES.map((s) => s.name).join(', ')}
exit status: 0 nothing broke, 1 an invariant broke, 2 usage error, malformed file or an output that could not be written;
130, 143 stopped by SIGINT, SIGTERM`;

/**
 * A command's flags parsed against its definition (cli/commands.ts), exclusive ones refused.
 * `--help` anywhere among them is answered with the command's help instead (null).
 */
function commandArgs(name: string, argv: readonly string[], out: Out): Parsed | null {
  if (argv.includes('--help') || argv.includes('-h')) {
    out.log(commandHelp(commandDef(name)));
    return null;
  }
  const parsed = parseArgs(argv, flagSpec(name));
  for (const [x, y] of commandDef(name).exclusive ?? []) {
    if (parsed.flags[x] !== undefined && parsed.flags[y] !== undefined) throw new UsageError(`give --${x} or --${y}, not both`);
  }
  return parsed;
}

type Out = { log: (s: string) => void; err: (s: string) => void };
const defaultOut: Out = { log: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) };

export async function main(argv: readonly string[], out: Out = defaultOut): Promise<number> {
  try {
    const [command, ...rest] = argv;
    switch (command) {
      case undefined:
      case '--help':
      case '-h':
      case 'help': out.log(HELP); return 0;
      case 'fuzz': return await fuzz(rest, out);
      case 'scorecard': return await scorecard(rest, out);
      case 'replay': return replay(rest, out);
      case 'shrink': return shrink(rest, out);
      case 'show': return await show(rest, out);
      case 'corpus': return corpus(rest, out);
      case 'oracle': return oracle(rest, out);
      default: throw new UsageError(`unknown command ${JSON.stringify(command)} (try mapfuzz --help)`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      out.err(`mapfuzz: ${e.message}`);
      return 2;
    }
    if (e instanceof ReproFormatError) {
      out.err(`mapfuzz: malformed repro ${e.message}`);
      return 2;
    }
    // No stack trace, ever: an I/O error names its code and path; anything else its message.
    if (process.env.MAPFUZZ_DEBUG === '1') throw e;
    const n = e as NodeJS.ErrnoException;
    out.err(`mapfuzz: ${n.code !== undefined ? `${n.syscall ?? 'i/o'} failed: ${ioError(e)}` : `internal error: ${String(n.message ?? e).split('\n')[0]}`} (MAPFUZZ_DEBUG=1 shows the stack)`);
    return 2;
  }
}

function kernelFlag(v: unknown, fallback: KernelChoice): KernelChoice {
  if (v === undefined) return fallback;
  if (!KERNEL_CHOICES.includes(v as KernelChoice)) throw new UsageError(`--kernel must be one of ${KERNEL_CHOICES.join(', ')}`);
  return v as KernelChoice;
}

function strategiesFlag(v: unknown): StrategyDefinition[] {
  if (v === undefined || v === 'core') return [];
  if (v === 'all') return [...STRATEGIES];
  const s = strategyByName(String(v));
  if (s === undefined) throw new UsageError(`unknown strategy ${JSON.stringify(v)} (known: ${STRATEGIES.map((x) => x.name).join(', ')}, all)`);
  return [s];
}

/** Every .json file below the given files or directories, sorted; a missing one is a usage error. */
function reproFiles(paths: readonly string[]): string[] {
  for (const p of paths) if (!existsSync(p)) throw new UsageError(`no such file or directory: ${p}`);
  return jsonFilesBelow(paths);
}

/** Every file below the given files or directories, sorted (a file given is taken as it is). */
function filesBelow(paths: readonly string[]): string[] {
  const files: string[] = [];
  const walk = (p: string) => {
    if (statSync(p).isDirectory()) for (const name of readdirSync(p).sort()) walk(join(p, name));
    else files.push(p);
  };
  for (const p of paths) walk(p);
  return files;
}

/** Why a file below a corpus is not a repro file by its name: a temporary file an interrupted write left, or not .json. */
function misnamed(file: string): string | null {
  const tmp = new RegExp(`\\.json${TEMP_MARK.replace('.', '\\.')}(\\d+)$`).exec(file);
  if (tmp !== null) return `a temporary file left by an interrupted write (process ${tmp[1]}); the repro it was writing is not in the corpus`;
  if (!file.endsWith('.json')) return 'not a repro file (repro files end in .json)';
  return null;
}

/**
 * The repro files `replay` and `corpus check` take: every file below the paths must be a
 * well-named, well-formed repro, and there must be at least one. The bad ones are listed
 * (`list`), each with its reason; any bad or none is a usage error (exit 2).
 */
function checkedRepros(paths: readonly string[], out: Out, list: boolean): [string, Repro][] {
  for (const p of paths) if (!existsSync(p)) throw new UsageError(`no such file or directory: ${p}`);
  const files = filesBelow(paths);
  if (files.length === 0) throw new UsageError(`no repro files below ${paths.join(', ')}`);
  const good: [string, Repro][] = [];
  const bad: string[] = [];
  for (const file of files) {
    const why = misnamed(file);
    if (why !== null) {
      bad.push(`${file}: ${why}`);
      continue;
    }
    try {
      good.push([file, loadRepro(file)]);
    } catch (e) {
      if (!(e instanceof ReproFormatError)) throw e;
      bad.push(`malformed repro ${e.message}`);
    }
  }
  if (bad.length === 0) return good;
  if (list) for (const b of bad) out.log(`bad  ${b}`);
  throw new UsageError(bad.length === 1 ? bad[0] : `${bad.length} of ${files.length} files are bad (listed above); the first: ${bad[0]}`);
}

/** The corpus's emulated-kernel repros (the oracle's, under kernel/, replay on Linux instead). */
function loadCorpus(dir: string): Repro[] {
  if (!existsSync(dir)) return [];
  if (!statSync(dir).isDirectory()) throw new UsageError(`--corpus ${dir} is not a directory`);
  return reproFiles([dir]).map((file) => {
    const r = loadRepro(file);
    knownFiles.set(r, file);
    return r;
  }).filter((r) => r.kernel !== 'oracle');
}

/** A path as the user can follow it: relative to here when below here, else absolute. */
function shown(path: string): string {
  const r = relative('.', path);
  return r.startsWith('..') || isAbsolute(r) ? resolve(path) : r;
}

/** Where each loaded repro came from. */
const knownFiles = new WeakMap<Repro, string>();

/** The progress line: new failures apart from known flaws, the rate measured from the first step (start-up excluded). */
export function progressLine(label: string, p: ParallelProgress, c: { fresh: number; known: number }): string {
  const rate = Math.round(p.steps / Math.max(0.001, p.steppingMs / 1000));
  return `${label} ${(p.elapsedMs / 1000).toFixed(0)}s  ${rate} steps/s  ${p.runs} traces  ${c.fresh} new failure${c.fresh === 1 ? '' : 's'}, ${c.known} known`;
}

function progressPrinter(out: Out, label: string, counts: () => { fresh: number; known: number }) {
  const tty = process.stderr.isTTY === true;
  let lastLine = 0;
  return (p: ParallelProgress) => {
    const line = progressLine(label, p, counts());
    if (tty) process.stderr.write(`\r${line}\x1b[K`);
    else if (p.elapsedMs - lastLine >= 5000) {
      lastLine = p.elapsedMs;
      out.err(line);
    }
  };
}

/** Exit status after a signal: 128 + its number. */
const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

/**
 * SIGINT and SIGTERM, and the parent's death (npx runs mapfuzz under `sh -c`, which a
 * SIGTERM to npx kills, leaving mapfuzz an orphan), call `stop` once; a second signal exits
 * at once. Only the main thread receives signals.
 */
function watchSignals(out: Out, stop: () => void): { received: () => string | undefined; dispose: () => void } {
  let received: string | undefined;
  const onSignal = (sig: string) => {
    if (received !== undefined) process.exit(SIGNAL_EXIT[received]);
    received = sig;
    out.err(`mapfuzz: ${sig}: stopping the workers and writing what was found (again to quit at once)`);
    stop();
  };
  const onInt = () => onSignal('SIGINT');
  const onTerm = () => onSignal('SIGTERM');
  const ppid = process.ppid;
  const parentWatch = setInterval(() => { if (process.ppid !== ppid && received === undefined) onSignal('SIGTERM'); }, 250);
  parentWatch.unref();
  if (isMainThread) {
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  }
  return {
    received: () => received,
    dispose: () => {
      clearInterval(parentWatch);
      process.removeListener('SIGINT', onInt);
      process.removeListener('SIGTERM', onTerm);
    },
  };
}

/**
 * Repro files written as the campaign finds them: each failure as soon as it is shrunk and
 * kept (the lowest run of its signature so far), so a campaign that is
 * stopped loses nothing it found. At the end `settle` writes the campaign's final
 * decisions, the same files a campaign that wrote only at its end would write, and removes
 * the files it created that those decisions superseded (a lower run of the same failure,
 * one held back); the same seed so leaves byte-identical files.
 */
class LiveCorpus {
  private readonly created = new Set<string>();
  private readonly freshKeys = new Set<string>();
  private readonly knownKeys = new Set<string>();
  readonly errors: string[] = [];

  constructor(private readonly known: readonly Repro[], private readonly corpusDir: string, private readonly knownFlaws: ReadonlySet<string>) {}

  counts(): { fresh: number; known: number } {
    return { fresh: this.freshKeys.size, known: this.knownKeys.size };
  }

  /** A failure just kept by the campaign (harness/pool.ts onFailure). */
  found(f: CampaignFailure): void {
    let g = f;
    try {
      [g] = attributeCore([f], FUZZ_CONFIG);
    } catch {
      // Attributed again at the end; written under its strategy meanwhile.
    }
    // Known flaws are signatures (strategy, invariant, cause), as recordFailure names them.
    const key = campaignSignature(g);
    if (this.knownFlaws.has(key)) {
      this.knownKeys.add(key);
      return;
    }
    this.freshKeys.add(key);
    this.record(g);
  }

  /** recordFailure, a failed write reported as one line and the report saying so. */
  record(f: CampaignFailure): FailureReport {
    try {
      return recordFailure(f, this.known, this.corpusDir, (file) => {
        if (!existsSync(file)) this.created.add(resolve(file));
      });
    } catch (e) {
      const line = `cannot write the repro of ${failureKey(f)}: ${ioError(e)}`;
      if (!this.errors.includes(line)) this.errors.push(line);
      return { failure: f, known: false, file: '(not written)', note: 'the repro could not be written' };
    }
  }

  /** The final reports' files kept; the files this campaign created and no report names removed. */
  settle(reports: readonly FailureReport[]): void {
    const kept = new Set(reports.map((r) => resolve(r.file)));
    for (const file of this.created) {
      if (!kept.has(file)) {
        rmSync(file, { force: true });
        this.created.delete(file);
      }
    }
  }

  /** The repro files this campaign newly wrote and kept, relative to the corpus directory, sorted (after settle). */
  written(): string[] {
    return [...this.created].filter((f) => existsSync(f)).map((f) => relative(this.corpusDir, f).split('\\').join('/')).sort();
  }
}

/** An I/O error as a few words: its code and path, no stack. */
function ioError(e: unknown): string {
  const n = e as NodeJS.ErrnoException;
  return n.code !== undefined ? `${n.code}${n.path === undefined ? '' : ` (${n.path})`}` : String(n.message ?? e);
}

/** Write an output file; a failure is one line in `errors`, and the other outputs are still written. */
function writeOutput(errors: string[], what: string, file: string, text: string, append = false): void {
  try {
    if (append) appendFileSync(file, text);
    else writeFileSync(file, text);
  } catch (e) {
    errors.push(`cannot write ${what} ${file}: ${ioError(e)}`);
  }
}

function shardFlag(v: unknown): Shard | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+)\/(\d+)$/.exec(String(v));
  const shard = m === null ? null : { index: Number(m[1]), count: Number(m[2]) };
  if (shard === null || shard.count < 1 || shard.index < 1 || shard.index > shard.count) {
    throw new UsageError(`--shard takes I/N with 1 <= I <= N, not ${JSON.stringify(v)}`);
  }
  return shard;
}

/** Workers at most: more than the machine's cores only slows a campaign down. */
const WORKERS_MAX = 64;

async function fuzz(argv: readonly string[], out: Out): Promise<number> {
  const parsed = commandArgs('fuzz', argv, out);
  if (parsed === null) return 0;
  const { flags, positional } = parsed;
  if (positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positional[0])}`);
  const { kernel, linux } = fuzzKernelFlag(flags.kernel);
  // Without --strategy: the core operations alone and every strategy, in turn.
  const withCore = flags.strategy === undefined;
  const strategies = withCore ? [...STRATEGIES] : strategiesFlag(flags.strategy);
  // --run N: that run index alone, as the campaign runs it — the last index of N + 1 shards of N + 1 runs.
  const one = flags.run === undefined ? undefined : nonNegativeInt(flags, 'run');
  const runs = one === undefined ? positiveInt(flags, 'runs') : one + 1;
  const timeS = positiveInt(flags, 'time', runs === undefined ? 35 : undefined);
  const workers = positiveInt(flags, 'workers', Math.min(2, availableParallelism()))!;
  if (workers > WORKERS_MAX) throw new UsageError(`--workers must be at most ${WORKERS_MAX}`);
  const stepTimeoutS = positiveInt(flags, 'step-timeout', 10)!;
  const maxFailures = positiveInt(flags, 'max-failures');
  const shard = one === undefined ? shardFlag(flags.shard) : { index: one + 1, count: one + 1 };
  const seed = typeof flags.seed === 'number' ? flags.seed : randomInt(1, 2 ** 31);
  // Every output is checked before any work, so a campaign never dies writing what it found.
  const corpusDir = writableDir(String(flags.corpus ?? 'corpus'), '--corpus');
  const known = loadCorpus(corpusDir);
  // Known flaws by signature: one cause of an invariant, not every way it can break.
  const knownFlaws = known.filter(isKnownFlaw).map((r) => failureSignature(r));
  const jsonFile = outputPath(flags, 'json');
  const junitFile = outputPath(flags, 'junit');
  const stepSummary = process.env.GITHUB_STEP_SUMMARY === '' ? undefined : process.env.GITHUB_STEP_SUMMARY;
  if (stepSummary !== undefined && probeFile(stepSummary) !== null) throw new UsageError(`$GITHUB_STEP_SUMMARY ${stepSummary}: cannot write: ${probeFile(stepSummary)}`);
  // The running kernel's share (--kernel …+linux, the default where the oracle builds): run after the emulated campaign.
  const linuxPlan = one !== undefined || !linux.on ? null : { runs: runs === undefined ? undefined : Math.ceil(runs / LINUX_SHARE_RUNS), timeMs: timeS === undefined ? undefined : timeS * 1000 * LINUX_SHARE_TIME };
  if (linux.on && linux.explicit && linux.unavailable !== undefined) throw new UsageError(`--kernel ${kernel}+linux: the kernel oracle cannot run here: ${linux.unavailable}`);
  out.err(`mapfuzz fuzz: seed ${seed}${flags.seed === undefined ? ' (pass --seed to repeat)' : ''}, kernel ${kernel}${linuxPlan !== null && linux.unavailable === undefined ? '+linux' : ''}, ` +
    `${strategies.length === 0 ? 'core operations' : `${withCore ? 'core operations and ' : ''}strategies ${strategies.map((s) => s.name).join(', ')}`}, ` +
    `${one !== undefined ? `run ${one} alone` : runs !== undefined ? `${runs} traces` : `${timeS} s`}${shard === undefined || one !== undefined ? '' : `, shard ${shard.index}/${shard.count}`}, ` +
    `${workers} worker${workers === 1 ? '' : 's'}`);
  const live = new LiveCorpus(known, corpusDir, new Set(knownFlaws));
  const stop = new AbortController();
  let stoppedAtMax = false;
  const signals = watchSignals(out, () => stop.abort());
  let result: ParallelResult;
  try {
    result = await runCampaignParallel({
      seed, runs, timeMs: timeS === undefined ? undefined : timeS * 1000 * (linuxPlan === null ? 1 : 1 - LINUX_SHARE_TIME), kernel, strategies, withCore, config: FUZZ_CONFIG, stepsMax: STEPS_MAX,
      shard, workers, stepTimeoutMs: stepTimeoutS * 1000, onProgress: progressPrinter(out, 'fuzz', () => live.counts()),
      lookPast: knownFlaws, signal: stop.signal,
      onFailure: (f) => {
        live.found(f);
        if (maxFailures !== undefined && live.counts().fresh >= maxFailures && !stop.signal.aborted) {
          stoppedAtMax = true;
          stop.abort();
        }
      },
    });
  } finally {
    signals.dispose();
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
  // A hang was cut at the step its worker was abandoned on, not shrunk: shrunk here, under the step time limit (not after a signal: the user asked to stop).
  if (signals.received() === undefined) result.failures = result.failures.map((f) => f.invariant === 'hang' ? shrunkHang(f, stepTimeoutS * 1000, out) : f);
  const held = heldBack(result.failures, new Set(knownFlaws));
  const reports = result.failures.map((f) => held.has(f) ? heldReport(f, result.failures, held) : live.record(f));
  live.settle(reports);
  const signal = signals.received();
  const linuxRun = linuxPlan === null ? null
    : linux.unavailable !== undefined ? { skipped: linux.unavailable }
    : signal !== undefined || stoppedAtMax ? { skipped: signal !== undefined ? `interrupted by ${signal}` : '--max-failures reached' }
    : runLinuxShare(seed, linuxPlan, shard, join(corpusDir, 'kernel'), out);
  const report: CampaignReport = {
    seed, kernel, strategies: [...(strategies.length === 0 || withCore ? ['core'] : []), ...strategies.map((s) => s.name)],
    shard: shard === undefined || one !== undefined ? null : `${shard.index}/${shard.count}`,
    workers, runs: result.runs, steps: result.steps, elapsedMs: result.elapsedMs, failures: reports,
  };
  if (signal !== undefined) out.log(`interrupted by ${signal}: what the finished traces found`);
  else if (stoppedAtMax) out.log(`stopped after ${maxFailures} new failure${maxFailures === 1 ? '' : 's'} (--max-failures)`);
  out.log(`${result.runs} traces, ${result.steps} checked steps in ${(result.elapsedMs / 1000).toFixed(1)} s ` +
    `(${Math.round(result.steps / Math.max(0.001, result.elapsedMs / 1000))} steps/s, ${workers} worker${workers === 1 ? '' : 's'})`);
  out.log(coverageLine(result.coverage));
  for (const r of reports) {
    const note = r.note === undefined ? '' : r.held === true ? ` (held back: ${r.note})` : ` (${r.note}: ${r.file})`;
    out.log(`${statusOf(r).padEnd(5)} ${r.failure.strategy} ${r.failure.invariant}: ${campaignCause(r.failure)}, ${r.failure.ops.length} steps — ${r.failure.message}${note}`);
  }
  if (reports.length > 0) out.log(`\n${formatSummaryTable(report)}`);
  if (linuxRun !== null) for (const line of linuxLines(linuxRun)) out.log(line);
  // One account for stdout, --json, --junit and the Markdown summary.
  const account = accountOf(reports);
  // A divergence from Linux is a bug of the model (the core has no known flaws): it fails the campaign.
  const linuxNew = linuxRun === null || 'skipped' in linuxRun ? 0 : linuxRun.report.divergences.filter((d) => d.documented === undefined).length;
  const fresh = account.fresh + linuxNew;
  out.log(headline(account));
  const errors = [...live.errors];
  if (jsonFile !== undefined) {
    writeOutput(errors, '--json', jsonFile, `${JSON.stringify({
      seed: result.seed, runs: result.runs, steps: result.steps, elapsedMs: result.elapsedMs, workers, shard: report.shard,
      ...(signal === undefined ? {} : { interrupted: signal }),
      ...(stoppedAtMax ? { stopped: `--max-failures ${maxFailures}` } : {}),
      new: account.fresh, known: account.known, held: account.held, written: live.written(),
      ...(linuxRun === null ? {} : { linux: linuxJson(linuxRun) }),
      failures: reports.map((r) => ({
        invariant: r.failure.invariant, cause: campaignCause(r.failure), kernel: r.failure.kernel, strategy: r.failure.strategy, ops: r.failure.ops,
        message: r.failure.message, known: r.known, held: r.held === true, file: r.file, ...(r.note === undefined ? {} : { note: r.note }), run: r.failure.run, foundAfterMs: r.failure.foundAfterMs,
      })),
      // How often each driver-API call and kernel path ran, zeros included (kernel-api/coverage.ts).
      coverage: coverageJson(result.coverage),
    }, null, 2)}\n`);
  }
  if (junitFile !== undefined) writeOutput(errors, '--junit', junitFile, formatJunit(report));
  if (stepSummary !== undefined) writeOutput(errors, '$GITHUB_STEP_SUMMARY', stepSummary, formatMarkdown(report), true);
  for (const e of errors) out.err(`mapfuzz: ${e}`);
  if (signal !== undefined) return SIGNAL_EXIT[signal];
  if (errors.length > 0) return 2;
  return fresh === 0 ? 0 : 1;
}

/** The running kernel's share of a `+linux` campaign: one trace in LINUX_SHARE_RUNS of a run budget, or this fraction of a time budget. */
const LINUX_SHARE_RUNS = 16;
const LINUX_SHARE_TIME = 0.1;

type LinuxRun = { skipped: string } | { report: ReturnType<typeof runOracle>; swap: string };

/** --kernel of `fuzz`: the emulated kernel and whether Linux takes a share (the default where the oracle builds). */
function fuzzKernelFlag(v: unknown): { kernel: KernelChoice; linux: { on: boolean; explicit: boolean; unavailable?: string } } {
  const text = v === undefined ? undefined : String(v);
  const plus = text?.endsWith('+linux') === true;
  const kernel = kernelFlag(plus ? text!.slice(0, -'+linux'.length) : text, 'diff');
  if (text !== undefined && !plus) return { kernel, linux: { on: false, explicit: true } };
  const built = buildOracle();
  return { kernel, linux: { on: true, explicit: plus, ...(built.ok ? {} : { unavailable: built.reason }) } };
}

/** The traces of the core operations user space can make, on the model and the running kernel (harness/oracle.ts runOracle). */
function runLinuxShare(seed: number, plan: { runs?: number; timeMs?: number }, shard: Shard | undefined, corpusDir: string, out: Out): LinuxRun {
  out.err(`mapfuzz fuzz: linux: ${plan.runs !== undefined ? `${plan.runs} traces` : `${((plan.timeMs ?? 0) / 1000).toFixed(1)} s`} of the core operations on the running kernel`);
  const swap = oracleSwap('auto');
  let report: ReturnType<typeof runOracle>;
  try {
    report = runOracle({ seed, runs: plan.runs, timeMs: plan.runs === undefined ? plan.timeMs : undefined, corpusDir: writableDir(corpusDir, '--corpus'), shard });
  } finally {
    const left = swap.teardown();
    if (left !== null) out.err(`mapfuzz fuzz: the swap file could not be turned off (${left}); \`node kernel-oracle/swap.mjs cleanup\` removes it`);
  }
  return report.unavailable !== undefined ? { skipped: report.unavailable } : { report, swap: swap.line };
}

function linuxLines(run: LinuxRun): string[] {
  if ('skipped' in run) return [`linux: skipped: ${run.skipped}`];
  const r = run.report;
  const lines = [`linux: ${r.runs} traces on the running kernel in ${(r.elapsedMs / 1000).toFixed(1)} s (swap: ${run.swap}): ${r.agree} agree, ` +
    `${r.documented} differ only as documented${r.documented > 0 ? ` (${Object.entries(r.documentedBy).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}, ${r.diverge} diverge` +
    (r.skipped > 0 ? `, ${r.skipped} skipped (${Object.entries(r.skippedBy).map(([k, v]) => `${k}: ${v}`).join('; ')})` : '')];
  for (const d of r.divergences) {
    if (d.documented !== undefined) continue;
    lines.push(`NEW   linux differential: model and kernel diverge at step ${d.step + 1} (${d.ops[d.step]?.op}), ${d.ops.length} steps${d.knownModelBug ? ` (known: ${d.knownModelBug})` : ''}${d.repro ? ` → ${d.repro}` : ''}`);
  }
  return lines;
}

function linuxJson(run: LinuxRun): unknown {
  if ('skipped' in run) return { skipped: run.skipped };
  const r = run.report;
  return {
    runs: r.runs, agree: r.agree, documented: r.documented, diverge: r.diverge, skipped: r.skipped, documentedBy: r.documentedBy, skippedBy: r.skippedBy,
    elapsedMs: r.elapsedMs, swap: run.swap, divergences: r.divergences.filter((d) => d.documented === undefined).map((d) => ({ step: d.step, ops: d.ops, file: d.repro })),
  };
}

/** A campaign's hang, its operations shrunk under the step time limit (left as found when they no longer hang). */
function shrunkHang(f: CampaignFailure, stepTimeoutMs: number, out: Out): CampaignFailure {
  if (f.ops.length === 0) return f;
  out.err(`mapfuzz: shrinking the hang of run ${f.run} (${f.ops.length} steps) under the step time limit`);
  const s = shrinkLimited({ kernel: f.kernel, strategy: f.strategy, config: FUZZ_CONFIG }, f.ops, 'hang', 'step-timeout', stepTimeoutMs);
  return s.after?.invariant === 'hang' ? { ...f, ops: s.ops } : f;
}

/**
 * A known flaw: a repro that must reproduce, of a design under test. The core kernel has no
 * known flaws: a failure of the core operations is a bug until it is fixed, whatever the
 * corpus says, and fails every campaign that meets it.
 */
function isKnownFlaw(r: Repro): boolean {
  return r.expect === 'reproduces' && r.kernel !== 'oracle' && r.strategy !== 'core';
}

/** A failure held back (harness/campaign.ts heldBack): which reported failure is most likely the same bug. */
function heldReport(f: CampaignFailure, all: readonly CampaignFailure[], held: ReadonlySet<CampaignFailure>): FailureReport {
  const kept = all.find((g) => g.invariant === f.invariant && !held.has(g) && (g.strategy === 'core' || f.invariant === 'differential'));
  const who = kept?.strategy === 'core' ? 'the core operations break' : `${kept?.strategy ?? 'another strategy'}'s run breaks`;
  return { failure: f, known: false, held: true, file: '(held back)', note: `${who} ${f.invariant} too, most likely the same bug: fix that one and fuzz again` };
}

/** A violation message cut for a title: at a word, at most `max` characters. */
function titleOf(message: string, max = 100): string {
  if (message.length <= max) return message;
  const cut = message.lastIndexOf(' ', max - 1);
  return `${message.slice(0, cut > max / 2 ? cut : max - 1)}…`;
}

/** A repro's title: strategy, invariant and the cause's title, as syzkaller titles a crash. */
export function reproTitle(f: Pick<CampaignFailure, 'strategy' | 'invariant' | 'cause' | 'message' | 'ops'>): string {
  const cause = campaignCause(f);
  const title = causeTitle(f.invariant, cause);
  return `${f.strategy}: ${f.invariant}: ${title === '' ? titleOf(f.message) : title}`;
}

/**
 * A failure is known when the corpus records its signature — strategy, invariant and cause —
 * as a known flaw (isKnownFlaw: a design under test broken the same way). Else, when
 * the corpus has a repro of the same failure signature that must reproduce, that bug is not
 * fixed yet; when it has one that must pass and that repro now fails, the fix regressed —
 * both are reported with that file, which replays the failure. Otherwise (a fixed bug's repro
 * that still passes is another bug of the same shape) the new repro is written.
 */
function recordFailure(f: CampaignFailure, known: readonly Repro[], corpusDir: string, beforeWrite: (file: string) => void = () => {}): FailureReport {
  const repro: Repro = {
    format: REPRO_FORMAT, title: reproTitle(f), kernel: f.kernel, strategy: f.strategy,
    invariant: f.invariant, cause: campaignCause(f), expect: 'reproduces', seed: f.seed, message: f.message, config: { ...FUZZ_CONFIG }, ops: f.ops,
  };
  const flaw = known.find((k) => isKnownFlaw(k) && failureSignature(k) === failureSignature(repro));
  if (flaw !== undefined) return { failure: f, known: true, file: shown(knownFiles.get(flaw) ?? reproPath(corpusDir, flaw)) };
  const same = known.filter((k) => failureSignature(k) === failureSignature(repro));
  const open = same.find((k) => k.expect === 'reproduces');
  if (open !== undefined) return { failure: f, known: false, file: shown(knownFiles.get(open)!), note: 'recorded before, not fixed yet' };
  const regressed = same.find((k) => k.expect === 'passes' && !replayRepro(k).ok);
  if (regressed !== undefined) return { failure: f, known: false, file: shown(knownFiles.get(regressed)!), note: 'expects to pass: regressed' };
  if (f.ops.length === 0) return { failure: f, known: false, file: '(no repro: the trace could not be rebuilt)' };
  const file = reproPath(corpusDir, repro);
  beforeWrite(file);
  writeReproFile(file, repro);
  return { failure: f, known: false, file: shown(file) };
}

async function scorecard(argv: readonly string[], out: Out): Promise<number> {
  const parsed = commandArgs('scorecard', argv, out);
  if (parsed === null) return 0;
  const { flags, positional } = parsed;
  if (positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positional[0])}`);
  const timeS = positiveInt(flags, 'time', 60)!;
  const kernel = kernelFlag(flags.kernel, 'model');
  const strategies = flags.strategy === undefined ? [...STRATEGIES] : strategiesFlag(flags.strategy);
  const seed = typeof flags.seed === 'number' ? flags.seed : 1;
  const workers = positiveInt(flags, 'workers', Math.min(2, availableParallelism()))!;
  if (workers > WORKERS_MAX) throw new UsageError(`--workers must be at most ${WORKERS_MAX}`);
  const stepTimeoutS = positiveInt(flags, 'step-timeout', 10)!;
  const jsonFile = outputPath(flags, 'json');
  out.err(`mapfuzz scorecard: seed ${seed}, kernel ${kernel}, ${timeS} s, ${workers} worker${workers === 1 ? '' : 's'}`);
  const card = await runScorecard({
    strategies, timeMs: timeS * 1000, seed, kernel, corpus: loadCorpus(String(flags.corpus ?? 'corpus')), workers, stepTimeoutMs: stepTimeoutS * 1000,
    onStrategy: (name, runs, broken) => out.err(`scorecard: ${name}: ${runs} traces, ${broken} invariants broken`),
  });
  out.log(formatScorecard(card));
  const errors: string[] = [];
  if (jsonFile !== undefined) writeOutput(errors, '--json', jsonFile, `${JSON.stringify(card, null, 2)}\n`);
  for (const e of errors) out.err(`mapfuzz: ${e}`);
  if (errors.length > 0) return 2;
  return card.flaws.every((f) => f.expected) ? 0 : 1;
}

function replay(argv: readonly string[], out: Out): number {
  const parsed = commandArgs('replay', argv, out);
  if (parsed === null) return 0;
  const { flags, positional } = parsed;
  if (positional.length === 0) throw new UsageError('replay needs repro files or directories');
  const stepTimeoutMs = positiveInt(flags, 'step-timeout', 10)! * 1000;
  const repros = checkedRepros(positional, out, true);
  // One worker thread for every file, each step under the time limit: a repro that hangs is reported, not waited on.
  const limited = new LimitedReplayer({ kernel: 'model', strategy: 'core', config: FUZZ_CONFIG }, stepTimeoutMs);
  try {
    return replayAll(repros, limited, out);
  } finally {
    limited.close();
  }
}

function replayAll(repros: readonly [string, Repro][], limited: LimitedReplayer, out: Out): number {
  let bad = 0;
  for (const [file, r] of repros) {
    // An oracle repro replays on the running kernel; where there is none it is skipped, and says so.
    const v = reproVerdict(r, limited);
    if ('unavailable' in v) {
      out.log(`skip ${file}: the kernel oracle is unavailable here (${v.unavailable})`);
      continue;
    }
    if (!v.ok) bad += 1;
    out.log(`${v.ok ? 'ok  ' : 'FAIL'} ${file}: ${v.summary}`);
  }
  out.log(`${repros.length - bad} behaved as expected, ${bad} did not`);
  return bad === 0 ? 0 : 1;
}

/**
 * Shrink a repro in place, every replay on a worker thread under the step time limit
 * (harness/shrink-limited.ts): a `hang` repro keeps the candidates that still hang, any
 * other repro drops a candidate that hangs, and neither can hang the command.
 */
function shrink(argv: readonly string[], out: Out): number {
  const parsed = commandArgs('shrink', argv, out);
  if (parsed === null) return 0;
  const { flags, positional } = parsed;
  if (positional.length !== 1) throw new UsageError('shrink takes one repro file');
  const stepTimeoutS = positiveInt(flags, 'step-timeout', 10)!;
  const file = positional[0];
  const r = loadRepro(file);
  if (r.expect !== 'reproduces') throw new UsageError(`${file} expects to pass; only a reproducing repro can be shrunk`);
  const s = shrinkLimited({ ...r, config: replayConfig(r) }, r.ops, r.invariant, r.cause, stepTimeoutS * 1000);
  if (!judgeReplay(r, s.before).ok) {
    out.log(`${file} does not reproduce ${r.invariant}; left as it is`);
    return 1;
  }
  if (!judgeReplay({ ...r, ops: s.ops }, s.after).ok) {
    out.log(`${file}: the shrunk trace does not reproduce ${r.invariant}; left as it is`);
    return 1;
  }
  if (JSON.stringify(s.ops) !== JSON.stringify(r.ops)) writeReproFile(file, { ...r, ops: s.ops });
  const hung = s.hangs === 0 ? '' : `, ${s.hangs} ran past ${s.limitMs / 1000} s`;
  out.log(`${file}: ${r.ops.length} → ${s.ops.length} steps (${s.stats.replays} replays${hung})`);
  return 0;
}

async function show(argv: readonly string[], out: Out): Promise<number> {
  const parsed = commandArgs('show', argv, out);
  if (parsed === null) return 0;
  const { flags, positional } = parsed;
  if (positional.length !== 1) throw new UsageError('show takes one repro file');
  const stepTimeoutMs = positiveInt(flags, 'step-timeout', 10)! * 1000;
  const repro = loadRepro(positional[0]);
  const html = outputPath(flags, 'html');
  const c = outputPath(flags, 'c');
  if (html !== undefined) {
    // Under the step time limit, on a worker thread: a step past it ends the page there, as `hang`.
    const steps: StoryStep[] = [];
    const end = await walkStoryLimited(repro, stepTimeoutMs, (step) => steps.push(step));
    const page = storyPage(repro, steps, end, end.hung, outsideVerdict(repro, end.hung));
    const errors: string[] = [];
    writeOutput(errors, '--html', html, page.html);
    if (errors.length > 0) throw new UsageError(errors[0]);
    out.log(`wrote ${html}: the story of ${repro.ops.length} steps as one page`);
    if (!page.asExpected) out.log(`${positional[0]}: ${unexpectedEnding(repro)}`);
    return page.asExpected ? 0 : 1;
  }
  if (c !== undefined) {
    const unsupported = repro.ops.find((op) => op.op !== 'clone' && !ORACLE_OPS.includes(op.op));
    if (unsupported !== undefined) throw new UsageError(`${positional[0]} uses ${unsupported.op}, which has no plain-syscall counterpart; no C program written`);
    const concurrent = concurrentReason(repro.ops) !== undefined;
    let program: string;
    try {
      program = reproToC(repro.ops);
    } catch (e) {
      if (!(e instanceof InfeasibleSchedule) && !(e instanceof LockViolation)) throw e;
      throw new UsageError(`${positional[0]}: the model cannot replay its recorded schedule (${e.message}); no C program written`);
    }
    const errors: string[] = [];
    writeOutput(errors, '--c', c, program);
    if (errors.length > 0) throw new UsageError(errors[0]);
    out.log(`wrote ${flags.c}: build it with \`cc ${concurrent ? '-pthread ' : ''}-O2 -o repro ${flags.c}\` and run ./repro`);
    if (concurrent) {
      out.log('this repro is concurrent: the real kernel will not follow the recorded interleaving; the program runs each emulated thread as a pthread, ' +
        `releases each concurrent segment's operations together to make the race likely, and prints the outcomes of each of its attempts (./repro N for N, default ${RACE_ATTEMPTS_DEFAULT})`);
    }
    return 0;
  }
  // Streamed: each step is printed as soon as it has run, on a worker thread under the step time limit.
  for (const line of storyHeader(repro)) out.log(line);
  out.log('');
  const end = await walkStoryLimited(repro, stepTimeoutMs, (step) => { for (const line of stepLines(step)) out.log(line); }, false);
  const ending = endingLines(repro, end, end.hung, outsideVerdict(repro, end.hung));
  for (const line of ending.lines) out.log(line);
  return ending.asExpected ? 0 : 1;
}

/** A divergence from Linux is judged as `replay` judges it, on the running kernel (reproVerdict); every other repro by its own story. */
function outsideVerdict(r: Repro, hung: unknown): OutsideVerdict | undefined {
  return r.kernel === 'oracle' && hung === null ? reproVerdict(r) : undefined;
}

function oracle(argv: readonly string[], out: Out): number {
  const parsed = commandArgs('oracle', argv, out);
  if (parsed === null) return 0;
  const { flags, positional } = parsed;
  if (positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positional[0])}`);
  const runs = positiveInt(flags, 'runs');
  const timeS = positiveInt(flags, 'time', runs === undefined ? 30 : undefined);
  const seed = typeof flags.seed === 'number' ? flags.seed : 1;
  const jsonFile = outputPath(flags, 'json');
  const corpusDir = writableDir(String(flags.corpus ?? 'corpus/kernel'), '--corpus');
  const swapMode = String(flags.swap ?? 'auto');
  if (!['auto', 'require', 'none'].includes(swapMode)) throw new UsageError('--swap must be one of auto, require, none');
  const swap = oracleSwap(swapMode as 'auto' | 'require' | 'none');
  if (swap.error !== undefined) {
    out.err(`mapfuzz oracle: --swap require: ${swap.error}`);
    return 2;
  }
  let report: ReturnType<typeof runOracle>;
  try {
    report = runOracle({ seed, runs, timeMs: timeS === undefined ? undefined : timeS * 1000, corpusDir });
  } finally {
    const left = swap.teardown();
    if (left !== null) out.err(`mapfuzz oracle: the swap file could not be turned off (${left}); \`node kernel-oracle/swap.mjs cleanup\` removes it`);
  }
  if (report.unavailable !== undefined) {
    out.err(`mapfuzz oracle: skipped: ${report.unavailable}`);
    return 2;
  }
  out.log(`swap: ${swap.line}`);
  out.log(`${report.runs} traces on Linux: ${report.agree} agree, ${report.documented} differ only as documented ` +
    `(${Object.entries(report.documentedBy).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}), ${report.diverge} diverge` +
    (report.skipped > 0 ? `, ${report.skipped} skipped` : ''));
  // A trace the kernel cannot replay is never counted as agreeing: say why it was skipped.
  for (const [reason, n] of Object.entries(report.skippedBy)) out.log(`  skipped ${n}: ${reason}`);
  const pr = report.predictor;
  out.log(`outcome predictor against Linux: ${pr.known} steps known and right, ${pr.unknown} unknown, ${pr.disagree} disagree`);
  for (const d of report.predictorDisagreements) out.log(`  predictor disagrees: ${d.message}`);
  for (const d of report.divergences) {
    const what = d.documented !== undefined ? `documented (${d.documented})` : 'diverge';
    out.log(`  ${what} at step ${d.step + 1}${d.knownModelBug ? ` (known: ${d.knownModelBug})` : ''}${d.flaky ? ' (flaky)' : ''}${d.repro ? ` → ${d.repro}${d.recordedBefore === true ? ' (recorded before, nothing written)' : ''}` : ''}`);
  }
  const errors: string[] = [];
  if (jsonFile !== undefined) {
    writeOutput(errors, '--json', jsonFile, `${JSON.stringify({
      runs: report.runs, agree: report.agree, diverge: report.diverge, documented: report.documented, skipped: report.skipped,
      documentedBy: report.documentedBy, divergencesBy: report.divergencesBy, skippedBy: report.skippedBy,
      opsCovered: report.opsCovered, seed: report.seed, elapsedMs: report.elapsedMs, swap: swap.line,
      divergences: report.divergences, predictor: report.predictor, predictorDisagreements: report.predictorDisagreements,
    }, null, 2)}\n`);
  }
  for (const e of errors) out.err(`mapfuzz: ${e}`);
  if (errors.length > 0) return 2;
  return report.diverge === 0 && report.predictor.disagree === 0 ? 0 : 1;
}

/**
 * Swap for an oracle run (kernel-oracle/swap.mjs): the machine's own, or a swap file turned on
 * for the run; `line` says which, or why there is none. `error` only for `require` without swap.
 */
function oracleSwap(mode: 'auto' | 'require' | 'none'): { line: string; error?: string; teardown: () => string | null } {
  const none = () => null;
  if (mode === 'none') {
    const areas = swapAreas() ?? [];
    return { line: areas.length > 0 ? `the machine's own (${areas.join(', ')}); --swap none turns nothing on` : 'none (--swap none): MADV_PAGEOUT of anonymous memory is compared without swap', teardown: none };
  }
  const s = enableSwap();
  if (!s.ok) return mode === 'require' ? { line: '', error: s.reason, teardown: none } : { line: `none: ${s.reason}; MADV_PAGEOUT of anonymous memory is compared without swap`, teardown: none };
  return { line: s.made === null ? `the machine's own (${s.areas.join(', ')})` : `a swap file turned on for this run (${s.made}, ${SWAP_MIB} MiB), torn down after it`, teardown: s.teardown };
}

function corpus(argv: readonly string[], out: Out): number {
  const [sub, ...rest] = argv;
  if (sub === 'merge') return corpusMerge(rest, out);
  if (sub === '--help' || sub === '-h') {
    out.log(`${commandHelp(commandDef('corpus check'))}\n${commandHelp(commandDef('corpus merge'))}`);
    return 0;
  }
  if (sub !== 'check') throw new UsageError('corpus takes a subcommand: check DIR... or merge OUT DIR...');
  const parsed = commandArgs('corpus check', rest, out);
  if (parsed === null) return 0;
  const { positional } = parsed;
  if (positional.length === 0) throw new UsageError('corpus check needs directories');
  const files = checkedRepros(positional, out, true);
  out.log(`${files.length} repro files are well formed`);
  return 0;
}

function corpusMerge(argv: readonly string[], out: Out): number {
  const parsed = commandArgs('corpus merge', argv, out);
  if (parsed === null) return 0;
  const { positional } = parsed;
  if (positional.length < 2) throw new UsageError('corpus merge needs OUT and at least one directory');
  const [target, ...dirs] = positional;
  for (const d of dirs) if (!existsSync(d)) throw new UsageError(`no such file or directory: ${d}`);
  writableDir(target, 'corpus merge: OUT');
  const r = mergeCorpora(target, dirs);
  out.log(`merged ${r.files} repro files into ${target}: ${r.kept} distinct, ${r.written} written, ${r.dropped} duplicates dropped`);
  return 0;
}
