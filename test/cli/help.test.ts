import { describe, expect, it } from 'vitest';
import { run } from './helpers.ts';
import { COMMANDS } from '../../cli/commands.ts';

describe('mapfuzz COMMAND --help', () => {
  it.each(COMMANDS.map((c) => [c.name]))('%s --help lists every flag with its default and exits 0', async (name) => {
    const r = await run([...name.split(' '), '--help']);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toContain(`mapfuzz ${name}`);
    for (const f of COMMANDS.find((c) => c.name === name)!.flags) {
      expect(r.out).toContain(`--${f.name} ${f.value}`);
      expect(r.out.replace(/\s+/g, ' ')).toContain(`(default: ${f.default})`);
    }
  });

  it('the top-level help names every command', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.out).toContain(`mapfuzz ${c.name}`);
  });
});

describe('the command definitions match what main.ts reads', () => {
  it('every flag main.ts reads (flags.x, flags[...] and the positiveInt/outputPath names) is defined for some command', async () => {
    const { readFileSync } = await import('node:fs');
    const src = readFileSync(new URL('../../cli/main.ts', import.meta.url), 'utf8');
    const read = new Set<string>();
    for (const m of src.matchAll(/flags\.([a-z]+)/g)) read.add(m[1]);
    for (const m of src.matchAll(/flags\['([a-z-]+)'\]/g)) read.add(m[1]);
    for (const m of src.matchAll(/(?:positiveInt|nonNegativeInt|outputPath)\(flags, '([a-z-]+)'/g)) read.add(m[1]);
    const defined = new Set(COMMANDS.flatMap((c) => c.flags.map((f) => f.name)));
    expect(read.size).toBeGreaterThan(5);
    expect([...read].filter((f) => !defined.has(f))).toEqual([]);
  });
});
