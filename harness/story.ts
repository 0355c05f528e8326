/**
 * A repro told as a story: each step numbered, written like a call (`P1: mmap(…) = 0x…`),
 * followed by what changed in the maps and pages of each process, ending at the broken
 * invariant with its message. Mappings are named `map#N` by first appearance.
 */
import type { Op } from '../kernel-api/op.ts';
import { formatOutcome, type Outcome } from '../kernel-api/outcome.ts';
import type { Observation, PageObservation, ProcessObservation } from '../kernel-api/observation.ts';
import { observe, observeLive, runningPids } from '../properties/observe.ts';
import { Session } from '../properties/session.ts';
import type { Repro } from './repro.ts';
import { judgeReplay, sessionFor } from './repro.ts';
import type { Violation } from '../properties/invariants/index.ts';
import { hex } from '../kernel-api/format.ts';
import { PAGE_BYTES, toBytes } from '../kernel-api/bytes.ts';

/** A page address that may be a byte address: `0x12+1B` is one byte past page 0x12. */
function at(addr: number): string {
  if (Number.isInteger(addr)) return hex(addr);
  const b = toBytes(addr), page = Math.floor(b / PAGE_BYTES);
  return `${hex(page)}+${b - page * PAGE_BYTES}B`;
}
/** A length in pages (`3p`), or in bytes when it is not whole pages (`4097B`). */
function flagsText(flags: number, names: readonly (readonly [number, string])[]): string {
  const known = names.reduce((m, [bit]) => m | bit, 0);
  const out: string[] = names.filter(([bit]) => (flags & bit) !== 0).map(([, n]) => n);
  if ((flags & ~known) !== 0) out.push(`0x${(flags & ~known).toString(16)}`);
  return out.join('|') || '0';
}
const mclText = (flags: number) => flagsText(flags, [[1, 'MCL_CURRENT'], [2, 'MCL_FUTURE'], [4, 'MCL_ONFAULT']]);
const msText = (flags: number) => flagsText(flags, [[1, 'MS_ASYNC'], [2, 'MS_INVALIDATE'], [4, 'MS_SYNC']]);
function len(pages: number): string {
  return Number.isInteger(pages) ? `${pages}p` : `${toBytes(pages)}B`;
}
import { taskOf } from '../kernel-api/op.ts';
import { NO_PENDING, TraceCursor, type Preemption } from '../properties/sched.ts';

const PROT = ['---', 'r--', '-w-', 'rw-', '--x', 'r-x', '-wx', 'rwx'];
/** A prot argument as rwx, with PROT_SEM and any other bit spelled out (`r--|PROT_SEM`, `r--|0x10`). */
function protArg(prot: number): string {
  const rest = prot & ~7 & ~8;
  return `${PROT[prot & 7]}${prot & 8 ? '|PROT_SEM' : ''}${rest !== 0 ? `|0x${(rest >>> 0).toString(16)}` : ''}`;
}

/** One operation as a line of a program. */
export function formatOp(op: Op): string {
  switch (op.op) {
    case 'spawn': return `spawn(${op.uid === undefined ? '' : `uid=${op.uid}`})`;
    case 'mmap': {
      const what = op.fd !== undefined ? `fd=${op.fd}` : op.file !== undefined ? `file=${op.file}${op.mode === 'r' ? ' O_RDONLY' : ''}` : 'anon';
      const where = op.fixed ? ` MAP_FIXED@${at(op.addr)}` : op.noreplace ? ` MAP_FIXED_NOREPLACE@${at(op.addr)}` : op.addr ? ` hint=${at(op.addr)}` : '';
      return `P${op.pid}: mmap(${len(op.lengthPages)}, ${protArg(op.prot)}, ${op.shared ? 'MAP_SHARED' : 'MAP_PRIVATE'}, ${what}${op.pgoff ? ` pgoff=${at(op.pgoff)}` : ''}${op.locked ? ' MAP_LOCKED' : ''}${where})`;
    }
    case 'munmap': return `P${op.pid}: munmap(${at(op.addr)}, ${len(op.lengthPages)})`;
    case 'mprotect': return `P${op.pid}: mprotect(${at(op.addr)}, ${len(op.lengthPages)}, ${protArg(op.prot)})`;
    case 'madvise': return `P${op.pid}: madvise(${at(op.addr)}, ${len(op.lengthPages)}, MADV_${op.advice})`;
    case 'mremap': return `P${op.pid}: mremap(${at(op.addr)}, ${len(op.oldPages)} → ${len(op.newPages)}${op.maymove ? ', MAYMOVE' : ''}${op.fixed ? `, FIXED@${at(op.newAddr ?? 0)}` : ''}${op.dontunmap ? ', DONTUNMAP' : ''})`;
    case 'mincore': return `P${op.pid}: mincore(${at(op.addr)}, ${len(op.lengthPages)})`;
    case 'mlock': return `P${op.pid}: ${op.onfault ? 'mlock2' : 'mlock'}(${at(op.addr)}, ${len(op.lengthPages)}${op.onfault ? ', MLOCK_ONFAULT' : ''})`;
    case 'munlock': return `P${op.pid}: munlock(${at(op.addr)}, ${len(op.lengthPages)})`;
    case 'mlockall': return `P${op.pid}: mlockall(${mclText(op.flags)})`;
    case 'munlockall': return `P${op.pid}: munlockall()`;
    case 'msync': return `P${op.pid}: msync(${at(op.addr)}, ${len(op.lengthPages)}, ${msText(op.flags)})`;
    case 'vmsplice': return `P${op.pid}: vmsplice(${op.pipe === undefined ? 'new pipe' : `pipe ${op.pipe}`}, ${at(op.addr)}, ${len(op.lengthPages)}, SPLICE_F_NONBLOCK)`;
    case 'pipe_read': return `P${op.pid}: read(pipe ${op.pipe}, ${len(op.pages)})`;
    case 'read': return `P${op.pid}: read ${hex(op.addr)}`;
    case 'write': return `P${op.pid}: write ${hex(op.addr)} ← ${op.value}`;
    case 'fork': return `P${op.pid}: fork()`;
    case 'exit': return `P${op.pid}: exit()`;
    case 'oom': return `OOM kill P${op.pid} (SIGKILL, then the oom_reaper tears down its private memory; it exits later)`;
    case 'reclaim': return 'count' in op ? `reclaim ${op.count} oldest frames` : `reclaim the page P${op.pid} maps at ${hex(op.addr)}`;
    case 'creat': return `creat(${op.sizePages}p)`;
    case 'pread': return `pread(file=${op.file}, page ${op.index})`;
    case 'pwrite': return `pwrite(file=${op.file}, page ${op.index}, ${op.value})`;
    case 'truncate': return `ftruncate(file=${op.file}, ${op.sizePages}p)`;
    case 'proc_mem_read': return `P${op.pid}: pread /proc/${op.target}/mem @${hex(op.addr)}`;
    case 'proc_mem_write': return `P${op.pid}: pwrite /proc/${op.target}/mem @${hex(op.addr)} ← ${op.value}`;
    case 'process_vm_readv': return `P${op.pid}: process_vm_readv(P${op.target}, ${hex(op.addr)})`;
    case 'process_vm_writev': return `P${op.pid}: process_vm_writev(P${op.target}, ${hex(op.addr)} ← ${op.value})`;
    case 'set_dumpable': return `P${op.pid}: prctl(PR_SET_DUMPABLE, ${op.dumpable ? 1 : 0})`;
    case 'fail_nth': return `fail-nth: allocation #${op.nth} from now fails`;
    case 'close': return `P${op.pid}: close(${op.fd})`;
    case 'pagemap_read': return `P${op.pid}: pread /proc/${op.target}/pagemap @${hex(op.addr)}${op.count === undefined ? '' : ` ×${op.count}`}`;
    case 'clear_refs': return `P${op.pid}: echo ${op.mode} > /proc/${op.target}/clear_refs`;
    case 'uffd_register_wp': return `P${op.pid}: UFFDIO_REGISTER(${at(op.addr)}, ${len(op.lengthPages)}, WP async)`;
    case 'pagemap_scan': return `P${op.pid}: PAGEMAP_SCAN(P${op.target ?? op.pid}, ${hex(op.start)}–${hex(op.end)}, flags=${op.flags})`;
    case 'map_files_readdir': return `P${op.pid}: readdir /proc/${op.target}/map_files`;
    case 'drv': {
      const args = Object.entries(op.args).map(([k, v]) => `${k}=${typeof v === 'number' && v > 0xffff ? hex(v) : v}`).join(', ');
      const pid = op.args.pid;
      return `${pid === undefined ? '' : `P${pid}: `}${op.strategy}.${op.call}(${args})`;
    }
    default: {
      const { op: name, pid, ...rest } = op as Op & { pid?: number };
      const args = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'number' && v > 0xffff ? hex(v) : JSON.stringify(v)}`).join(', ');
      return `${pid === undefined ? '' : `P${pid}: `}${name}(${args})`;
    }
  }
}

function formatResult(op: Op, o: Outcome): string {
  if (o.kind === 'ok' && (op.op === 'mmap' || op.op === 'mremap')) return `= ${hex(o.value)}`;
  return formatOutcome(o);
}

function pageText(p: PageObservation): string {
  if (p.swapped) return `swapped (value ${p.value})`;
  const bits = [p.file ? 'file' : 'anon', p.exclusive ? 'exclusive' : 'shared'].join(',');
  const frame = p.frame === 0 ? 'zero page' : `frame F${p.frame} ref=${p.refcount} map=${p.mapcount}`;
  return `${frame} value ${p.value} [${bits}]`;
}

function processDiff(before: ProcessObservation | undefined, after: ProcessObservation): string[] {
  const lines: string[] = [];
  const mapsBefore = JSON.stringify(before?.maps ?? []);
  if (mapsBefore !== JSON.stringify(after.maps)) {
    lines.push(`    P${after.pid} maps: ${after.maps.map((m) => `[${hex(m.start)}-${hex(m.end)}) ${m.perms} ${m.backing}`).join('; ') || '(none)'}`);
  }
  const old = new Map((before?.pages ?? []).map((p) => [p.addr, pageText(p)]));
  const now = new Map(after.pages.map((p) => [p.addr, pageText(p)]));
  for (const [addr, text] of now) if (old.get(addr) !== text) lines.push(`    P${after.pid} ${hex(addr)}: ${old.has(addr) ? `${old.get(addr)} → ` : ''}${text}`);
  for (const [addr, text] of old) if (!now.has(addr)) lines.push(`    P${after.pid} ${hex(addr)}: ${text} → unmapped`);
  return lines;
}

function observationDiff(before: Observation, after: Observation): string[] {
  const prior = new Map(before.processes.map((p) => [p.pid, p]));
  const lines = after.processes.flatMap((p) => processDiff(prior.get(p.pid), p));
  if (before.framesInUse !== after.framesInUse || before.swapSlotsInUse !== after.swapSlotsInUse) {
    lines.push(`    frames in use ${after.framesInUse}, swap slots ${after.swapSlotsInUse}`);
  }
  return lines;
}

/** One step of a story: the call, its outcome, what changed, and the machine after it. */
export type StoryStep = {
  /** 1-based. */
  index: number;
  call: string;
  result: string;
  changes: string[];
  after: Observation;
  violation: Violation | null;
  /** Set when the operation ran nested: the task it preempted, where, and the locks that task held. */
  preempted?: string;
};

export type Story = {
  header: string[]; before: Observation; steps: StoryStep[]; broken: Violation | null;
  /** The recorded schedule could not be replayed (an edited repro): nothing after it was judged. */
  infeasible?: string;
};

/** How a story ended: what `endsAsExpected` needs, without the steps (a streamed story keeps none). */
export type StoryEnd = { header: string[]; before: Observation; broken: Violation | null; length: number; infeasible?: string };

/** A step that ran past the step time limit: where the story stopped (harness/story-limited.ts). */
export type Hung = { step: number; message: string };

/**
 * Whether the story ends as the repro expects, judged as `replay` judges it (judgeReplay):
 * its invariant broken, or nothing broken; a step past the time limit is a `hang` there.
 */
export function endsAsExpected(r: Repro, story: Story | StoryEnd, hung: Hung | null = null): boolean {
  if (hung !== null) return judgeReplay(r, { invariant: 'hang', cause: 'step-timeout', message: hung.message, step: hung.step - 1 }).ok;
  if (story.infeasible !== undefined) return false;
  const length = 'length' in story ? story.length : story.steps.length;
  const broken = story.broken === null ? null : { ...story.broken, step: length - 1 };
  return judgeReplay(r, broken).ok;
}

/** What a story that does not end as expected says last. */
export function unexpectedEnding(r: Repro): string {
  return r.expect === 'reproduces'
    ? `this repro no longer reproduces: it expects ${r.invariant} to break (mapfuzz replay judges it the same way)`
    : 'this repro expects every invariant to hold: it has regressed';
}

/** Which task ran an operation: its thread when it names one, else its process. */
function taskName(op: Op): string {
  const t = taskOf(op);
  return op.tid !== undefined && op.tid !== (op as { pid?: number }).pid ? `T${t}` : `P${t}`;
}

function preemptionText(p: Preemption): string {
  const held = p.held.length === 0 ? 'holding no lock' : `holding ${p.held.join(', ')}`;
  return `runs while ${taskName(p.op)} is preempted in ${p.op.op} at ${p.where} (its scheduling point ${p.at}), ${held}`;
}

/**
 * Replay a repro step by step, as replay does (properties/trace.ts replayOps), handing each
 * step to `onStep` as it is told: nothing is kept here, so a long repro is told in memory
 * that does not grow with its length (the caller keeps what it needs: `storyOf` every step,
 * `tellStory` only the lines it prints). An operation a recorded switch starts nested runs
 * inside the one it preempted, and its step says so; the machine is observed once the
 * operations of a top-level step have all completed.
 */
export function walkStory(r: Repro, onStep: (step: StoryStep) => void): StoryEnd {
  // Its own invariant alone, as replay judges it (judgeReplay).
  const session = new Session(sessionFor(r, r.invariant));
  const header = storyHeader(r);
  const first = observe(session.primary.inspect);
  let before = first;
  let index = 0;
  const cursor = new TraceCursor(r.ops, 0);
  while (cursor.at < r.ops.length) {
    const op = cursor.take();
    const top = session.stepTop(op, op.switches === undefined ? NO_PENDING : cursor, null);
    // A process is shown while it runs and in the step it exits, as the differential compares it (observeLive).
    const after = observeLive(session.primary.inspect, runningPids(before));
    const outcomes = new Map(top.ran.map((c) => [c.op, c.outcome]));
    const concurrent = top.started.length > 1;
    top.started.forEach((o, i) => {
      const outcome = outcomes.get(o);
      const p = top.preemptions.get(o);
      const last = i === top.started.length - 1;
      onStep({
        index: ++index,
        call: concurrent ? `[${taskName(o)}] ${formatOp(o)}` : formatOp(o),
        result: outcome === undefined ? '(did not complete)' : formatResult(o, outcome),
        changes: last ? observationDiff(before, after) : [],
        after,
        violation: last ? top.violation : null,
        ...(p === undefined ? {} : { preempted: preemptionText(p) }),
      });
    });
    before = after;
    if (top.infeasible !== null) return { header, before: first, broken: null, length: index, infeasible: top.infeasible };
    if (top.violation !== null) return { header, before: first, broken: top.violation, length: index };
  }
  return { header, before: first, broken: null, length: index };
}

export function storyHeader(r: Repro): string[] {
  const header = [`# ${r.title}`, `${r.strategy} on ${r.kernel}; expects the trace to ${r.expect === 'reproduces' ? `break ${r.invariant}` : 'pass'}`];
  if (r.ops.some((op) => op.switches !== undefined)) header.push('concurrent: operations marked "runs while" start nested at a scheduling point of the operation they preempt');
  return header;
}

/** Replay a repro step by step, keeping each step's outcome, changes and observation (for a page). */
export function storyOf(r: Repro): Story {
  const steps: StoryStep[] = [];
  const end = walkStory(r, (step) => steps.push(step));
  return { header: end.header, before: end.before, steps, broken: end.broken, ...(end.infeasible === undefined ? {} : { infeasible: end.infeasible }) };
}

/** A step's lines: the call and its outcome, then what changed. */
export function stepLines(step: StoryStep): string[] {
  const first = `${String(step.index).padStart(3)}. ${step.call} ${step.result}`;
  return step.preempted === undefined ? [first, ...step.changes] : [first, `       ↳ ${step.preempted}`, ...step.changes];
}

/**
 * A verdict reached elsewhere than in the story: a divergence from Linux (`kernel: oracle`) is
 * judged by replaying it on the running kernel (harness/repro.ts reproVerdict), the story
 * being the model's side of it.
 */
export type OutsideVerdict = { ok: boolean; summary: string } | { unavailable: string };

/** What the end of a story says of an outside verdict, and whether it is as expected (not judged: as expected, as replay skips it). */
export function outsideEnding(v: OutsideVerdict): { line: string; asExpected: boolean } {
  if ('unavailable' in v) return { line: `not judged: the kernel oracle is unavailable here (${v.unavailable}); replay skips it too`, asExpected: true };
  return { line: `${v.summary}: the model replayed against the running kernel, as replay judges it`, asExpected: v.ok };
}

/** The lines after the last step: what broke (or that a step hung, or that nothing did), and the verdict. */
export function endingLines(r: Repro, end: StoryEnd, hung: Hung | null = null, outside?: OutsideVerdict): { lines: string[]; asExpected: boolean } {
  const lines: string[] = [];
  if (hung !== null) lines.push(`${String(hung.step).padStart(3)}. ${formatOp(r.ops[hung.step - 1])} … still running`);
  lines.push('');
  if (hung !== null) lines.push(`HANG at step ${hung.step}: ${hung.message}`);
  else if (end.infeasible !== undefined) lines.push(`the recorded schedule cannot be replayed, nothing after it was judged: ${end.infeasible}`);
  else if (outside !== undefined) lines.push(outsideEnding(outside).line);
  else lines.push(end.broken === null ? 'every invariant held' : `BROKEN ${end.broken.invariant}${end.broken.cause === undefined ? '' : ` (${end.broken.cause})`}: ${end.broken.message}`);
  const asExpected = hung === null && outside !== undefined ? outsideEnding(outside).asExpected : endsAsExpected(r, end, hung);
  if (!asExpected) lines.push(unexpectedEnding(r));
  return { lines, asExpected };
}

/**
 * The repro as text, step by step, and whether it ended as the repro expects. With `emit`,
 * each line goes out as soon as its step has run and `text` is empty: a long repro's story
 * is streamed, not held. In this thread, with no time limit (`show` tells it under one:
 * harness/story-limited.ts).
 */
export function tellStory(r: Repro, emit?: (line: string) => void): { text: string; asExpected: boolean } {
  const kept: string[] = [];
  const out = emit ?? ((line: string) => { kept.push(line); });
  for (const line of storyHeader(r)) out(line);
  out('');
  const end = walkStory(r, (step) => {
    for (const line of stepLines(step)) out(line);
  });
  const ending = endingLines(r, end);
  for (const line of ending.lines) out(line);
  return { text: kept.join('\n'), asExpected: ending.asExpected };
}
