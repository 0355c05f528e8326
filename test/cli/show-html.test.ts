/**
 * `mapfuzz show --html` opened in a real headless browser (Debian's chromium): the page
 * must render every step, draw every VMA with a size, and end at the broken invariant.
 * The set-up installs chromium when it is missing and we are root with apt-get; the test
 * skips, saying why, only when that is impossible.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../cli/main.ts';
import { loadRepro, replayRepro } from '../../harness/repro.ts';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

function findChromium(): { path: string } | { skip: string } {
  const names = ['chromium', 'chromium-browser'];
  const found = () => names.find(has);
  if (found() === undefined) {
    if (process.getuid?.() !== 0) return { skip: 'chromium is not installed and we are not root to install it' };
    if (!has('apt-get')) return { skip: 'chromium is not installed and there is no apt-get to install it' };
    const r = spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium'], { encoding: 'utf8', timeout: 300_000 });
    if (found() === undefined) return { skip: `installing chromium failed: ${(r.stderr || r.stdout || '').trim().split('\n').at(-1)}` };
  }
  return { path: found()! };
}

const browser = findChromium();
if ('skip' in browser) console.log(`show --html browser test skipped: ${browser.skip}`);

describe('mapfuzz show --html', () => {
  it.skipIf('skip' in browser)('renders the story in headless chromium: every step, every VMA drawn, the broken invariant', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-html-'));
    const page = join(dir, 'story.html');
    const corpus = join(import.meta.dirname, '..', '..', 'corpus', 'proc-mem-mmap');
    const repro = join(corpus, readdirSync(corpus).sort().find((f) => f.startsWith('no-stale-pte-'))!);
    const verdict = replayRepro(loadRepro(repro));
    expect(verdict.reproduced).toBe(true);
    const failure = verdict.result.failure!;
    const lines: string[] = [];
    const code = await main(['show', repro, '--html', page], { log: (s) => lines.push(s), err: (s) => lines.push(s) });
    expect(code).toBe(0);
    const html = readFileSync(page, 'utf8');
    // Self-contained: nothing fetched from elsewhere.
    expect(html).not.toMatch(/<(link|img|script)[^>]+(src|href)=/i);
    const steps = failure.step + 1;
    const r = spawnSync((browser as { path: string }).path, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', '--dump-dom', `file://${page}`,
    ], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const dom = r.stdout;
    const rendered = /<p id="rendered"[^>]*data-steps="(\d+)"[^>]*data-vmas="(\d+)"[^>]*data-drawn="(\w+)"[^>]*>([^<]*)</.exec(dom);
    expect(rendered, 'the page script ran and reported what it drew').not.toBeNull();
    expect(Number(rendered![1])).toBe(steps);
    expect(Number(rendered![2])).toBeGreaterThan(0);
    expect(rendered![3]).toBe('yes');
    expect(dom.match(/<section class="step[^"]*" data-step=/g)).toHaveLength(steps);
    const escaped = failure.message.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    expect(dom).toContain(`<div id="broken" data-invariant="no-stale-pte">BROKEN no-stale-pte: ${escaped}</div>`);
    expect(dom).toContain(`<section class="step broken" data-step="${steps}">`);
  });
});
