/**
 * Rewrites the README's command list from cli/commands.ts: the text between
 * `<!-- commands:begin -->` and `<!-- commands:end -->` becomes every command's synopsis,
 * what it does, and each flag with its default (what `mapfuzz COMMAND --help` prints).
 * Run it with `npx tsx cli/readme.ts` after changing a command; test/cli/readme.test.ts
 * fails while README.md is not what this would write.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { commandList } from './commands.ts';

export const BEGIN = '<!-- commands:begin -->';
export const END = '<!-- commands:end -->';
export const README = join(import.meta.dirname, '..', 'README.md');

/** The README with its command list generated; an error when the markers are missing or out of order. */
export function withCommandList(readme: string): string {
  const b = readme.indexOf(BEGIN);
  const e = readme.indexOf(END);
  if (b < 0 || e < 0 || e < b || readme.indexOf(BEGIN, b + 1) >= 0 || readme.indexOf(END, e + 1) >= 0) {
    throw new Error(`README.md needs one ${BEGIN} followed by one ${END}`);
  }
  const generated = `${BEGIN}\n<!-- generated from cli/commands.ts by \`npx tsx cli/readme.ts\`: edit those, not this -->\n\`\`\`\n${commandList()}\n\`\`\`\n`;
  return readme.slice(0, b) + generated + readme.slice(e);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const before = readFileSync(README, 'utf8');
  const after = withCommandList(before);
  if (after !== before) writeFileSync(README, after);
  process.stdout.write(after === before ? 'README.md: the command list is up to date\n' : 'README.md: the command list rewritten\n');
}
