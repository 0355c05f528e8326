/**
 * Merging corpora, as CI does with the outputs of its shards: every repro file is
 * validated first (a malformed one stops the merge before anything is written), then one
 * file is kept per signature — the shortest, ties broken by the file's text so the result
 * does not depend on the order of the inputs — under OUT/<strategy>/<invariant>-<hash>.json.
 * The oracle's repros (kernel 'oracle') are kept per exact content, under their own names.
 * A kept file is copied byte for byte, never rewritten.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { loadRepro, reproPath, reproSignature, writeAtomically, type Repro } from './repro.ts';

export type MergeResult = { files: number; kept: number; written: number; dropped: number };

/** Every .json file below the given files or directories, sorted. */
export function jsonFilesBelow(paths: readonly string[]): string[] {
  const files: string[] = [];
  const walk = (p: string) => {
    if (statSync(p).isDirectory()) {
      for (const name of readdirSync(p).sort()) walk(join(p, name));
    } else if (p.endsWith('.json')) {
      files.push(p);
    }
  };
  for (const p of paths) walk(p);
  return files;
}

type Entry = { file: string; repro: Repro; text: string; inOut: boolean };

function better(a: Entry, b: Entry): Entry {
  if (a.repro.ops.length !== b.repro.ops.length) return a.repro.ops.length < b.repro.ops.length ? a : b;
  if (a.text !== b.text) return a.text < b.text ? a : b;
  return a.inOut ? a : b;
}

function mergeKey(r: Repro, text: string): string {
  return r.kernel === 'oracle' ? `oracle/${createHash('sha256').update(text).digest('hex')}` : reproSignature(r);
}

/** Merge the repro files below `dirs` (and those already in `out`) into `out`. */
export function mergeCorpora(out: string, dirs: readonly string[]): MergeResult {
  const outAbs = resolve(out);
  const sources = [...new Set([...(existsSync(out) ? [out] : []), ...dirs])];
  const seenFiles = new Set<string>();
  const entries: Entry[] = [];
  for (const file of jsonFilesBelow(sources)) {
    const abs = resolve(file);
    if (seenFiles.has(abs)) continue;
    seenFiles.add(abs);
    const repro = loadRepro(file);
    entries.push({ file: abs, repro, text: readFileSync(file, 'utf8'), inOut: !relative(outAbs, abs).startsWith('..') });
  }
  const best = new Map<string, Entry>();
  for (const e of entries) {
    const key = mergeKey(e.repro, e.text);
    const b = best.get(key);
    best.set(key, b === undefined ? e : better(b, e));
  }
  let written = 0;
  const keptInOut = new Set<string>();
  for (const e of [...best.values()].sort((a, b) => a.file.localeCompare(b.file))) {
    if (e.inOut) {
      keptInOut.add(e.file);
      continue;
    }
    const target = e.repro.kernel === 'oracle' ? join(outAbs, e.repro.strategy === 'core' ? 'kernel' : e.repro.strategy, basename(e.file)) : reproPath(outAbs, e.repro);
    writeAtomically(target, e.text);
    keptInOut.add(resolve(target));
    written += 1;
  }
  // Files of OUT that lost to a shorter repro of the same signature go.
  for (const e of entries) if (e.inOut && !keptInOut.has(e.file)) rmSync(e.file);
  return { files: entries.length, kept: best.size, written, dropped: entries.length - best.size };
}
