/**
 * .github/workflows/fuzz.yml: each shard uploads only the repros it newly wrote (its --json's
 * `written`, else what corpus/ lacks), also when the shard failed, was cancelled or timed out.
 * The collect step's script is run here as CI runs it.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const WORKFLOW = readFileSync(join(ROOT, '.github', 'workflows', 'fuzz.yml'), 'utf8');

/** A step of the workflow: its lines, from `- name: NAME` to the next step. */
function step(name: string): string[] {
  const lines = WORKFLOW.split('\n');
  const at = lines.findIndex((l) => l.trim() === `- name: ${name}`);
  expect(at, `no step named ${name}`).toBeGreaterThanOrEqual(0);
  const indent = lines[at].indexOf('-');
  const end = lines.findIndex((l, i) => i > at && l.trim() !== '' && l.search(/\S/) <= indent);
  return lines.slice(at, end < 0 ? undefined : end);
}

/** A step's `run: |` block, its indentation removed. */
function script(name: string): string {
  const lines = step(name);
  const at = lines.findIndex((l) => /^\s*run: \|$/.test(l));
  const body = lines.slice(at + 1);
  const indent = Math.min(...body.filter((l) => l.trim() !== '').map((l) => l.search(/\S/)));
  return body.map((l) => l.slice(indent)).join('\n');
}

function filesBelow(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.json')).sort();
  } catch {
    return [];
  }
}

describe('the fuzz workflow', () => {
  it('collects, uploads and merges only new repros, on failure, cancel and timeout too', () => {
    for (const name of ['collect the repros this shard newly wrote', 'upload the new repros']) expect(step(name).join('\n')).toMatch(/\n\s*if: always\(\)/);
    expect(step('upload the new repros').join('\n')).toMatch(/path: new\//);
    expect(step('fuzz shard ${{ matrix.shard }}/4').join('\n')).toMatch(/--json fuzz\.json/);
    expect(WORKFLOW).toMatch(/pattern: new-repros-shard-\*/);
    expect(WORKFLOW).not.toMatch(/path: out\//);
    expect(WORKFLOW).not.toMatch(/\t/);
  });

  it("the collect step copies exactly the shard's new repros: from --json, or from what corpus/ lacks when the report is missing or torn", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-wf-'));
    // The repository's corpus without proc-mem-mmap, so that the shard finds new failures beside known ones.
    cpSync(join(ROOT, 'corpus'), join(dir, 'corpus'), { recursive: true });
    rmSync(join(dir, 'corpus', 'proc-mem-mmap'), { recursive: true });
    cpSync(join(dir, 'corpus'), join(dir, 'out'), { recursive: true });
    const quiet = { log: () => {}, err: () => {} };
    const code = await main(['fuzz', '--seed', '3', '--runs', '60', '--kernel', 'model', '--strategy', 'proc-mem-mmap', '--workers', '1',
      '--corpus', join(dir, 'out'), '--json', join(dir, 'fuzz.json')], quiet);
    expect(code).toBe(1);
    const written: string[] = JSON.parse(readFileSync(join(dir, 'fuzz.json'), 'utf8')).written;
    expect(written.length).toBeGreaterThan(1);
    expect(filesBelow(join(dir, 'out')).length).toBeGreaterThan(written.length);
    const collect = script('collect the repros this shard newly wrote');
    const runCollect = () => {
      rmSync(join(dir, 'new'), { recursive: true, force: true });
      const r = spawnSync('bash', ['-e', '-c', collect], { cwd: dir, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return filesBelow(join(dir, 'new'));
    };
    expect(runCollect()).toEqual([...written].sort());
    for (const f of written) expect(readFileSync(join(dir, 'new', f), 'utf8')).toBe(readFileSync(join(dir, 'out', f), 'utf8'));
    writeFileSync(join(dir, 'fuzz.json'), '{"seed": 3, "wri');
    expect(runCollect()).toEqual([...written].sort());
    rmSync(join(dir, 'fuzz.json'));
    expect(runCollect()).toEqual([...written].sort());
  });
});
