/**
 * Argument parsing for the mapfuzz command: `--name value` and `--flag`, checked against
 * what each command accepts. A mistake is a UsageError: one line, exit status 2.
 */
import { closeSync, existsSync, openSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export class UsageError extends Error {
  override name = 'UsageError' as const;
}

export type FlagSpec = Record<string, 'string' | 'int' | 'bool'>;
export type Parsed = { flags: Record<string, string | number | boolean>; positional: string[] };

export function parseArgs(argv: readonly string[], spec: FlagSpec): Parsed {
  const out: Parsed = { flags: {}, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) {
      out.positional.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split('=', 2);
    const kind = spec[name];
    if (kind === undefined) throw new UsageError(`unknown option --${name}`);
    if (kind === 'bool') {
      out.flags[name] = true;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined || value.startsWith('--')) throw new UsageError(`--${name} needs a value`);
    if (kind === 'int') {
      if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new UsageError(`--${name} takes an integer, not ${JSON.stringify(value)}`);
      out.flags[name] = Number(value);
    } else {
      out.flags[name] = value;
    }
  }
  return out;
}

/**
 * The path an output flag names, checked before any work is done (a campaign that ran for
 * minutes must not die writing its report): its directory exists and it is not a directory.
 */
export function outputPath(flags: Parsed['flags'], name: string): string | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const path = String(v);
  const dir = dirname(resolve(path));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--${name} ${path}: no such directory ${dir}`);
  if (existsSync(path) && statSync(path).isDirectory()) throw new UsageError(`--${name} ${path} is a directory`);
  const cannot = probeFile(path);
  if (cannot !== null) throw new UsageError(`--${name} ${path}: cannot write: ${cannot}`);
  return path;
}

const errnoOf = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/**
 * Whether a file can be written, trying it (permissions alone do not say: root passes every
 * check and a read-only mount fails them all), and leaving nothing changed: an existing file
 * is opened for writing without truncating it; a new one is created and removed again.
 * Null when it can, else the error code.
 */
export function probeFile(path: string): string | null {
  try {
    if (existsSync(path)) {
      closeSync(openSync(path, 'r+'));
    } else {
      closeSync(openSync(path, 'wx'));
      unlinkSync(path);
    }
    return null;
  } catch (e) {
    return errnoOf(e);
  }
}

/**
 * A directory the command will write files below (a corpus), checked before any work: it is
 * a directory, or does not exist yet and its nearest existing ancestor is one; and a file can
 * be created in that directory (tried with a probe file, removed again).
 */
export function writableDir(dir: string, what: string): string {
  let d = resolve(dir);
  if (existsSync(d) && !statSync(d).isDirectory()) throw new UsageError(`${what} ${dir} is not a directory`);
  while (!existsSync(d)) d = dirname(d);
  if (!statSync(d).isDirectory()) throw new UsageError(`${what} ${dir}: ${d} is not a directory`);
  const cannot = probeFile(join(d, `.mapfuzz-probe-${process.pid}`));
  if (cannot !== null) throw new UsageError(`${what} ${dir}: cannot write in ${d}: ${cannot}`);
  return dir;
}

export function positiveInt(flags: Parsed['flags'], name: string, fallback?: number): number | undefined {
  const v = flags[name] ?? fallback;
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || v <= 0) throw new UsageError(`--${name} must be a positive integer`);
  return v;
}

export function nonNegativeInt(flags: Parsed['flags'], name: string): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || v < 0) throw new UsageError(`--${name} must be a non-negative integer`);
  return v;
}
