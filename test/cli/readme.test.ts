/** The README's command list is generated from cli/commands.ts (npx tsx cli/readme.ts). */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { BEGIN, END, README, withCommandList } from '../../cli/readme.ts';
import { COMMANDS } from '../../cli/commands.ts';

describe('README command list', () => {
  it('README.md is what `npx tsx cli/readme.ts` writes (run it after changing cli/commands.ts)', () => {
    const readme = readFileSync(README, 'utf8');
    expect(withCommandList(readme)).toBe(readme);
  });

  it('the generated list names every command, flag and default, between the markers only', () => {
    const readme = readFileSync(README, 'utf8');
    const section = readme.slice(readme.indexOf(BEGIN), readme.indexOf(END)).replace(/\s+/g, ' ');
    for (const c of COMMANDS) {
      expect(section).toContain(`mapfuzz ${c.name}`);
      for (const f of c.flags) {
        expect(section).toContain(`--${f.name} ${f.value}`);
        expect(section).toContain(`(default: ${f.default})`);
      }
    }
    // A stale list is caught: a changed flag, or text outside the markers left alone.
    const stale = readme.replace('--max-failures N', '--max-failure N');
    expect(stale).not.toBe(readme);
    expect(withCommandList(stale)).toBe(readme);
    const outside = `${readme}\nafter\n`;
    expect(withCommandList(outside)).toBe(outside);
  });

  it('refuses a README without both markers', () => {
    expect(() => withCommandList('# no markers\n')).toThrow(/needs one/);
    expect(() => withCommandList(`${END}\n${BEGIN}\n`)).toThrow(/needs one/);
  });
});
