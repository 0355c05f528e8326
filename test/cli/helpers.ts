/** What the CLI tests share: running `main` in-process, and listing what a run wrote or changed. */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { main } from '../../cli/main.ts';

/** `mapfuzz argv…` in this process: its exit status and what it printed on stdout and stderr. */
export async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { log: (s) => { out += `${s}\n`; }, err: (s) => { err += `${s}\n`; } });
  return { code, out, err };
}

/** Every file below `dir`, depth first, sorted by name at each level; none when it does not exist. */
export function filesBelow(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const files: string[] = [];
  const walk = (p: string) => {
    for (const name of readdirSync(p).sort()) {
      const q = join(p, name);
      if (statSync(q).isDirectory()) walk(q);
      else files.push(q);
    }
  };
  walk(dir);
  return files;
}

/**
 * Every file below `dir`, relative path → text; with `dirs`, each directory too (`sub/` → ''),
 * so that a directory created or removed shows as a change.
 */
export function tree(dir: string, dirs = false): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (p: string) => {
    for (const name of readdirSync(p).sort()) {
      const q = join(p, name);
      if (statSync(q).isDirectory()) {
        if (dirs) files[`${relative(dir, q)}/`] = '';
        walk(q);
      } else files[relative(dir, q)] = readFileSync(q, 'utf8');
    }
  };
  walk(dir);
  return files;
}
