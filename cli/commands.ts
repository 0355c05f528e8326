/**
 * The commands of mapfuzz and their flags, each with its default: one definition that the
 * argument parser, `mapfuzz --help`, `mapfuzz <command> --help` and the README's command
 * list (`npx tsx cli/readme.ts` rewrites it; test/cli/readme.test.ts fails when it is stale) all read.
 */
import type { FlagSpec } from './args.ts';

export type FlagDef = {
  name: string;
  kind: 'string' | 'int';
  /** The value's placeholder in a synopsis: `N`, `FILE`, `model|impl|diff`. */
  value: string;
  /** What it does when not given. */
  default: string;
  help: string;
};

export type CommandDef = {
  /** `fuzz`, or `corpus check` for a subcommand. */
  name: string;
  /** Positional arguments, as in a synopsis: `FILE`, `OUT DIR...`. */
  args: string;
  /** One line for `mapfuzz --help`. */
  brief: string;
  summary: string;
  flags: FlagDef[];
  /** Flags of which at most one may be given. */
  exclusive?: [string, string][];
};

const TIMEOUT: FlagDef = {
  name: 'step-timeout', kind: 'int', value: 'SECONDS', default: '10',
  help: 'a step (or a shrink replay) running longer is reported as `hang`',
};
const workers = (what: string): FlagDef => ({ name: 'workers', kind: 'int', value: 'N', default: 'min(2, cores)', help: `worker threads ${what}` });
const json = (what: string): FlagDef => ({ name: 'json', kind: 'string', value: 'FILE', default: 'none', help: `write ${what} as JSON` });

export const COMMANDS: readonly CommandDef[] = [
  {
    name: 'fuzz', args: '', brief: 'run a campaign; new failures shrunk into the corpus',
    summary: 'Run a campaign. Each new failure is shrunk to a 1-minimal trace and written to the corpus as soon as it is; ' +
      'a known flaw (a corpus repro expected to reproduce) is reported, not written. SIGINT or SIGTERM stops the workers and ' +
      'writes what was found (exit 130, 143). With $GITHUB_STEP_SUMMARY set, a Markdown summary is appended to it.',
    flags: [
      { name: 'kernel', kind: 'string', value: 'model|impl|diff[+linux]', default: 'diff+linux where the kernel oracle builds (Linux, cc), else diff', help: 'the emulated kernel, or both side by side; +linux: a tenth of the budget (time, or one trace in 16) also goes to traces of the core operations user space can make, compared with the running kernel as `oracle` does, divergences shrunk into DIR/kernel' },
      { name: 'strategy', kind: 'string', value: 'NAME|core|all', default: 'core and every strategy in turn', help: 'core: the core operations only; all: every strategy' },
      { name: 'seed', kind: 'int', value: 'N', default: 'random, printed', help: 'the campaign seed: the same seed and --runs give the same traces and repro files' },
      { name: 'time', kind: 'int', value: 'SECONDS', default: '35 without --runs', help: 'time budget, start-up included' },
      { name: 'runs', kind: 'int', value: 'N', default: 'none', help: 'run budget: run indexes 0 to N-1' },
      { name: 'run', kind: 'int', value: 'N', default: 'none', help: 'run index N of the seed alone, exactly as a campaign runs it' },
      workers('(a hung step is reported, the worker replaced)'),
      { name: 'shard', kind: 'string', value: 'I/N', default: '1/1', help: 'the I-th of N disjoint parts of the run indexes' },
      TIMEOUT,
      { name: 'max-failures', kind: 'int', value: 'N', default: 'no limit', help: 'stop after N new failures' },
      { name: 'corpus', kind: 'string', value: 'DIR', default: 'corpus', help: 'the known repros, and where new ones are written' },
      json('the report'),
      { name: 'junit', kind: 'string', value: 'FILE', default: 'none', help: 'write JUnit XML: a testcase per strategy and invariant, named with the shard' },
    ],
    exclusive: [['time', 'runs'], ['run', 'runs'], ['run', 'time'], ['run', 'shard']],
  },
  {
    name: 'scorecard', args: '', brief: 'fuzz every strategy; print strategy × invariant',
    summary: 'Fuzz every strategy in turn (the seed-000 design gets half the budget) and print strategy × invariant: ' +
      'holds, or broken with its shortest repro and when it was found, marked when the corpus expects it.',
    flags: [
      { name: 'time', kind: 'int', value: 'SECONDS', default: '60', help: 'the budget for all strategies' },
      { name: 'seed', kind: 'int', value: 'N', default: '1', help: 'the campaign seed' },
      { name: 'kernel', kind: 'string', value: 'model|impl|diff', default: 'model', help: 'the emulated kernel' },
      { name: 'strategy', kind: 'string', value: 'NAME', default: 'every strategy', help: 'one strategy only' },
      workers('for each campaign'),
      TIMEOUT,
      { name: 'corpus', kind: 'string', value: 'DIR', default: 'corpus', help: 'the expected flaws (read only)' },
      json('the scorecard'),
    ],
  },
  {
    name: 'replay', args: 'FILE|DIR...', brief: 'replay repro files; exit 0 when each behaves as it expects',
    summary: 'Replay repro files (every file below a directory must be one); exit 0 when each behaves as it expects.',
    flags: [{ ...TIMEOUT, help: 'a step running longer ends that replay as `hang` (what a `hang` repro expects)' }],
  },
  {
    name: 'shrink', args: 'FILE', brief: 'shrink a repro further, in place',
    summary: 'Shrink a reproducing repro further, in place; each candidate is replayed on a worker thread under the step time limit, so a `hang` repro shrinks (still hanging is what it keeps).',
    flags: [{ ...TIMEOUT, help: 'a candidate\'s step running longer hangs (a `hang` repro\'s candidate must, any other\'s must not)' }],
  },
  {
    name: 'show', args: 'FILE', brief: 'the story of a repro, a C program for Linux, or a page',
    summary: 'Tell a repro step by step, replayed as `replay` judges it; exit 1 when it does not end as it expects.',
    flags: [
      { name: 'c', kind: 'string', value: 'OUT.c', default: 'none', help: 'write a standalone C program replaying its kernel subset on Linux; a concurrent repro runs as pthreads released together, in attempts' },
      { name: 'html', kind: 'string', value: 'OUT.html', default: 'none', help: 'write the story as one self-contained page, the address spaces drawn after each step' },
      { ...TIMEOUT, help: 'a step running longer ends the story there, reported as `hang`' },
    ],
    exclusive: [['c', 'html']],
  },
  {
    name: 'oracle', args: '', brief: 'the model against the running Linux kernel',
    summary: 'Compare the model with the running Linux kernel over random traces; each undocumented divergence is shrunk into the corpus, a documented one only when the corpus has no repro of that simplification yet.',
    flags: [
      { name: 'time', kind: 'int', value: 'SECONDS', default: '30 without --runs', help: 'time budget' },
      { name: 'runs', kind: 'int', value: 'N', default: 'none', help: 'run budget' },
      { name: 'seed', kind: 'int', value: 'N', default: '1', help: 'the seed of the traces' },
      { name: 'corpus', kind: 'string', value: 'DIR', default: 'corpus/kernel', help: 'where divergences are written' },
      { name: 'swap', kind: 'string', value: 'auto|require|none', default: 'auto', help: 'swap, so that MADV_PAGEOUT and swap-in are compared: the machine\'s own if it has some, else (auto, require) a swap file turned on for the run as root and torn down after it; auto says why it runs without, require stops (exit 2), none turns nothing on' },
      json('the report'),
    ],
    exclusive: [['time', 'runs']],
  },
  { name: 'corpus check', args: 'DIR...', brief: 'validate repro files', summary: 'Validate every file below DIR as a repro; list each bad one (malformed, not .json, a temporary file an interrupted write left).', flags: [] },
  { name: 'corpus merge', args: 'OUT DIR...', brief: 'merge shard corpora, one repro per signature', summary: 'Merge corpora (shard outputs) into OUT: one repro per signature, the shortest.', flags: [] },
];

export function commandDef(name: string): CommandDef {
  const c = COMMANDS.find((x) => x.name === name);
  if (c === undefined) throw new Error(`no command ${name}`);
  return c;
}

/** The parser's spec of a command's flags. */
export function flagSpec(name: string): FlagSpec {
  return Object.fromEntries(commandDef(name).flags.map((f) => [f.name, f.kind]));
}

/** `mapfuzz fuzz [--kernel model|impl|diff] …`, wrapped at `width` columns. */
export function synopsis(c: CommandDef, width = 100): string {
  const words = [`mapfuzz ${c.name}`, ...(c.args === '' ? [] : [c.args]), ...c.flags.map((f) => `[--${f.name} ${f.value}]`)];
  const indent = ' '.repeat(`mapfuzz ${c.name} `.length);
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line !== '' && line.length + 1 + w.length > width) {
      lines.push(line);
      line = indent + w;
    } else line = line === '' ? w : `${line} ${w}`;
  }
  lines.push(line);
  return lines.join('\n');
}

function wrap(text: string, indent: string, width = 100): string[] {
  const lines: string[] = [];
  let line = indent;
  for (const w of text.split(' ')) {
    if (line.trim() !== '' && line.length + 1 + w.length > width) {
      lines.push(line);
      line = indent + w;
    } else line = line.trim() === '' ? indent + w : `${line} ${w}`;
  }
  lines.push(line);
  return lines;
}

/** A command's help: synopsis, what it does, every flag with its default. */
export function commandHelp(c: CommandDef): string {
  const lines = [synopsis(c), ...wrap(c.summary, '    ')];
  const col = Math.max(0, ...c.flags.map((f) => `--${f.name} ${f.value}`.length)) + 2;
  for (const f of c.flags) {
    const head = `  --${f.name} ${f.value}`.padEnd(col + 2);
    const text = wrap(`${f.help} (default: ${f.default})`, ' '.repeat(col + 2), 100);
    lines.push(head + text[0].trimStart(), ...text.slice(1));
  }
  for (const [a, b] of c.exclusive ?? []) lines.push(`  --${a} and --${b} exclude each other`);
  return lines.join('\n');
}

/** The README's command list: every command's help, a blank line between commands. */
export function commandList(): string {
  return COMMANDS.map(commandHelp).join('\n\n');
}
