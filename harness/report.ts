/**
 * What a campaign reports at its end, for people and for CI: a summary table on the
 * terminal, JUnit XML (one testcase per strategy × invariant, failed when the campaign
 * found a new failure of it) and a Markdown summary for $GITHUB_STEP_SUMMARY.
 */
import type { InvariantId } from '../kernel-api/strategy.ts';
import { INVARIANT_IDS } from '../properties/invariants/index.ts';
import type { KernelChoice } from '../properties/kernels.ts';
import { campaignCause, type CampaignFailure } from './campaign.ts';
import { formatOp } from './story.ts';

/** A failure as the fuzz command decided it: known (the corpus records it) or new, and where its repro is. */
export type FailureReport = {
  failure: CampaignFailure; known: boolean;
  /** The repro: the one written, or the corpus's file that already replays this failure. */
  file: string;
  /** Why no repro was written: the corpus has one (not fixed yet, or a fix regressed), or it is held back. */
  note?: string;
  /** Held back: most likely the same bug as a failure reported beside it (harness/campaign.ts heldBack). */
  held?: boolean;
};

/** The status column: known flaw, new failure, or held back as most likely the same bug as another. */
export const statusOf = (f: FailureReport): string => (f.known ? 'known' : f.held === true ? 'held' : 'NEW');

export type CampaignReport = {
  seed: number; kernel: KernelChoice; strategies: string[]; shard: string | null; workers: number;
  runs: number; steps: number; elapsedMs: number; failures: FailureReport[];
};

/**
 * What a campaign found, counted once for every report (stdout, --json, --junit, the Markdown
 * summary): new failures (each fails the run; held-back ones not among them), known flaws met,
 * and failures held back as most likely the same bug as a new one.
 */
export type Account = { fresh: number; known: number; held: number };

export function accountOf(failures: readonly FailureReport[]): Account {
  const held = failures.filter((f) => !f.known && f.held === true).length;
  const known = failures.filter((f) => f.known).length;
  return { fresh: failures.length - known - held, known, held };
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** The account in one line, the same on stdout and in the Markdown summary. */
export function headline(a: Account): string {
  const main = a.fresh > 0 ? plural(a.fresh, 'new failure') : a.held > 0 ? 'no new failure' : a.known > 0 ? 'only known flaws broke' : 'no invariant broke';
  const extras = [
    ...(a.held > 0 ? [`${a.held} more held back`] : []),
    ...(a.known > 0 ? [`${plural(a.known, 'known flaw')} met`] : []),
  ];
  return extras.length === 0 ? main : `${main} (${extras.join(', ')})`;
}

const stepsPerSec = (r: CampaignReport) => Math.round(r.steps / Math.max(0.001, r.elapsedMs / 1000));

/** The invariants a campaign judges: `differential` only when model and impl run side by side. */
function judged(kernel: KernelChoice): InvariantId[] {
  return INVARIANT_IDS.filter((id) => id !== 'differential' || kernel === 'diff');
}

/** The end-of-campaign table: one row per failure. */
export function formatSummaryTable(r: CampaignReport): string {
  if (r.failures.length === 0) return 'no invariant broke';
  const rows = [['status', 'strategy', 'invariant', 'steps', 'repro'], ...r.failures.map((f) => [
    statusOf(f), f.failure.strategy, f.failure.invariant, String(f.failure.ops.length), f.file,
  ])];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const line = (row: string[]) => row.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd();
  return [line(rows[0]), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

/** XML 1.0 text: the five escapes, and no characters XML forbids. */
export function xmlEscape(s: string): string {
  return s
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/**
 * JUnit XML: a testsuite per strategy, a testcase per invariant — one per cause when it broke
 * in several ways (each distinct flaw its own testcase, `invariant (cause)`), named with the
 * shard (`… [shard 2/3]`) when sharded; a new failure fails its testcase, a held-back one is
 * skipped with a message naming what it is held behind, a known flaw passes.
 */
export function formatJunit(r: CampaignReport): string {
  const seconds = (ms: number) => (ms / 1000).toFixed(3);
  // Shards' files are merged by test reporters: each testcase's name carries its shard.
  const inShard = (name: string) => (r.shard === null ? name : `${name} [shard ${r.shard}]`);
  const byKey = new Map<string, FailureReport[]>();
  for (const f of r.failures) {
    const key = `${f.failure.strategy}/${f.failure.invariant}`;
    byKey.set(key, [...(byKey.get(key) ?? []), f]);
  }
  const suites: string[] = [];
  let tests = 0;
  let failures = 0;
  let skipped = 0;
  // A failure attributed to the core (or any strategy not named) still has its testsuite.
  const strategies = [...r.strategies, ...new Set(r.failures.map((f) => f.failure.strategy).filter((s) => !r.strategies.includes(s)))];
  for (const strategy of strategies) {
    const cases: string[] = [];
    let suiteFailures = 0;
    let suiteSkipped = 0;
    for (const invariant of judged(r.kernel)) for (const f of byKey.get(`${strategy}/${invariant}`) ?? [undefined]) {
      const several = (byKey.get(`${strategy}/${invariant}`)?.length ?? 0) > 1;
      const name = several && f !== undefined ? `${invariant} (${campaignCause(f.failure)})` : invariant;
      const open = `    <testcase classname="${xmlEscape(`mapfuzz.${strategy}`)}" name="${xmlEscape(inShard(name))}" time="${seconds(f?.failure.foundAfterMs ?? 0)}"`;
      if (f === undefined) {
        cases.push(`${open}/>`);
      } else if (f.known) {
        cases.push(`${open}>\n      <system-out>${xmlEscape(`known flaw, recorded in ${f.file}: ${f.failure.message}`)}</system-out>\n    </testcase>`);
      } else if (f.held === true) {
        // Held back: not a test failure of its own; skipped, naming the failure it is held behind.
        suiteSkipped += 1;
        cases.push(`${open}>\n      <skipped message="${xmlEscape(`held back, not written: ${f.note ?? 'most likely the same bug as a new failure'}`)}"/>\n` +
          `      <system-out>${xmlEscape(`${f.failure.ops.length} steps, BROKEN ${invariant}: ${f.failure.message}`)}</system-out>\n    </testcase>`);
      } else {
        suiteFailures += 1;
        const story = f.failure.ops.map((op, i) => `${String(i + 1).padStart(3)}. ${formatOp(op)}`).join('\n');
        const where = f.note !== undefined ? `in ${f.file} (${f.note})` : `written to ${f.file} (mapfuzz show ${f.file})`;
        cases.push(`${open}>\n      <failure message="${xmlEscape(f.failure.message)}" type="${xmlEscape(invariant)}">` +
          `${xmlEscape(`${f.failure.ops.length}-step repro ${where}\n${story}\nBROKEN ${invariant}: ${f.failure.message}`)}` +
          `</failure>\n    </testcase>`);
      }
    }
    tests += cases.length;
    failures += suiteFailures;
    skipped += suiteSkipped;
    suites.push(`  <testsuite name="${xmlEscape(`mapfuzz.${strategy}`)}" tests="${cases.length}" failures="${suiteFailures}" errors="0" skipped="${suiteSkipped}" time="${seconds(r.elapsedMs)}">\n${cases.join('\n')}\n  </testsuite>`);
  }
  const a = accountOf(r.failures);
  const props = [['seed', r.seed], ['kernel', r.kernel], ['shard', r.shard ?? '1/1'], ['workers', r.workers], ['runs', r.runs], ['steps', r.steps],
    ['new', a.fresh], ['known', a.known], ['held', a.held]]
    .map(([k, v]) => `    <property name="${k}" value="${xmlEscape(String(v))}"/>`).join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="mapfuzz fuzz" tests="${tests}" failures="${failures}" errors="0" skipped="${skipped}" time="${seconds(r.elapsedMs)}">\n` +
    `  <properties>\n${props}\n  </properties>\n${suites.join('\n')}\n</testsuites>\n`;
}

const mdCell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The Markdown summary GitHub Actions shows on the run's page. */
export function formatMarkdown(r: CampaignReport): string {
  const lines = [
    `### mapfuzz fuzz${r.shard === null ? '' : ` — shard ${r.shard}`}: ${headline(accountOf(r.failures))}`,
    '',
    `seed \`${r.seed}\`, kernel \`${r.kernel}\`, ${r.strategies.join(', ')}; ${r.runs} traces, ${r.steps} checked steps in ${(r.elapsedMs / 1000).toFixed(1)} s ` +
      `(${stepsPerSec(r)} steps/s, ${r.workers} worker${r.workers === 1 ? '' : 's'})`,
    '',
  ];
  if (r.failures.length > 0) {
    lines.push('| status | strategy | invariant | steps | repro | message |', '|---|---|---|---:|---|---|');
    for (const f of r.failures) {
      lines.push(`| ${statusOf(f) === 'NEW' ? '**new**' : statusOf(f)} | ${mdCell(f.failure.strategy)} | \`${f.failure.invariant}\` | ${f.failure.ops.length} | \`${mdCell(f.file)}\` | ${mdCell(f.failure.message.slice(0, 160))} |`);
    }
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}
