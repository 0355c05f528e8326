/**
 * A repro told as a story: each step numbered, written like a call (`P1: mmap(…) = 0x…`),
 * followed by what changed in the maps and pages of each process, ending at the broken
 * invariant with its message. Mappings are named `map#N` by first appearance.
 */
import type { Op } from '../kernel-api/op.ts';
import { formatOutcome, type Outcome } from '../kernel-api/outcome.ts';
import type { Observation, PageObservation, ProcessObservation } from '../kernel-api/observation.ts';
import { observe } from '../properties/observe.ts';
import { Session } from '../properties/session.ts';
import type { Repro } from './repro.ts';
import { judgeReplay, sessionFor } from './repro.ts';
import type { Violation } from '../properties/invariants/index.ts';
import { hex } from '../kernel-api/format.ts';
import { taskOf } from '../kernel-api/op.ts';
import { NO_PENDING, TraceCursor, type Preemption } from '../properties/sched.ts';

const PROT = ['---', 'r--', '-w-', 'rw-', '--x', 'r-x', '-wx', 'rwx'];

/** One operation as a line of a program. */
export function formatOp(op: Op): string {
  switch (op.op) {
    case 'spawn': return `spawn(${op.uid === undefined ? '' : `uid=${op.uid}`})`;
    case 'mmap': {
      const what = op.fd !== undefined ? `fd=${op.fd}` : op.file !== undefined ? `file=${op.file}${op.mode === 'r' ? ' O_RDONLY' : ''}` : 'anon';
      const where = op.fixed ? ` MAP_FIXED@${hex(op.addr)}` : op.noreplace ? ` MAP_FIXED_NOREPLACE@${hex(op.addr)}` : op.addr ? ` hint=${hex(op.addr)}` : '';
      return `P${op.pid}: mmap(${op.lengthPages}p, ${PROT[op.prot] ?? op.prot}, ${op.shared ? 'MAP_SHARED' : 'MAP_PRIVATE'}, ${what}${op.pgoff ? ` pgoff=${hex(op.pgoff)}` : ''}${where})`;
    }
    case 'munmap': return `P${op.pid}: munmap(${hex(op.addr)}, ${op.lengthPages}p)`;
    case 'mprotect': return `P${op.pid}: mprotect(${hex(op.addr)}, ${op.lengthPages}p, ${PROT[op.prot] ?? op.prot})`;
    case 'madvise': return `P${op.pid}: madvise(${hex(op.addr)}, ${op.lengthPages}p, MADV_${op.advice})`;
    case 'mremap': return `P${op.pid}: mremap(${hex(op.addr)}, ${op.oldPages}p → ${op.newPages}p${op.maymove ? ', MAYMOVE' : ''}${op.fixed ? `, FIXED@${hex(op.newAddr ?? 0)}` : ''})`;
    case 'read': return `P${op.pid}: read ${hex(op.addr)}`;
    case 'write': return `P${op.pid}: write ${hex(op.addr)} ← ${op.value}`;
    case 'fork': return `P${op.pid}: fork()`;
    case 'exit': return `P${op.pid}: exit()`;
    case 'oom': return `OOM kill P${op.pid}`;
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
    case 'uffd_register_wp': return `P${op.pid}: UFFDIO_REGISTER(${hex(op.addr)}, ${op.lengthPages}p, WP async)`;
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

/**
 * Whether the story ends as the repro expects: its invariant broken, or nothing broken.
 * A `hang` repro is judged on a worker thread with a time limit (replayRepro), not here.
 */
export function endsAsExpected(r: Repro, story: Story): boolean {
  if (r.invariant === 'hang') return true;
  if (story.infeasible !== undefined) return false;
  const broken = story.broken === null ? null : { ...story.broken, step: story.steps.length - 1 };
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
 * Replay a repro step by step, as replay does (properties/trace.ts replayOps): an operation
 * a recorded switch starts nested runs inside the one it preempted, and its step says so.
 * The machine is observed once the operations of a top-level step have all completed.
 */
export function storyOf(r: Repro): Story {
  // Its own invariant alone, as replay judges it (judgeReplay).
  const session = new Session(sessionFor(r, r.invariant));
  const header = [`# ${r.title}`, `${r.strategy} on ${r.kernel}; expects the trace to ${r.expect === 'reproduces' ? `break ${r.invariant}` : 'pass'}`];
  if (r.ops.some((op) => op.switches !== undefined)) header.push('concurrent: operations marked "runs while" start nested at a scheduling point of the operation they preempt');
  const first = observe(session.primary.inspect);
  let before = first;
  const steps: StoryStep[] = [];
  const cursor = new TraceCursor(r.ops, 0);
  while (cursor.at < r.ops.length) {
    const op = cursor.take();
    const top = session.stepTop(op, op.switches === undefined ? NO_PENDING : cursor, null);
    const after = observe(session.primary.inspect);
    const outcomes = new Map(top.ran.map((c) => [c.op, c.outcome]));
    top.started.forEach((o, i) => {
      const outcome = outcomes.get(o);
      const p = top.preemptions.get(o);
      const concurrent = top.started.length > 1;
      steps.push({
        index: steps.length + 1,
        call: concurrent ? `[${taskName(o)}] ${formatOp(o)}` : formatOp(o),
        result: outcome === undefined ? '(did not complete)' : formatResult(o, outcome),
        changes: i === top.started.length - 1 ? observationDiff(before, after) : [],
        after,
        violation: i === top.started.length - 1 ? top.violation : null,
        ...(p === undefined ? {} : { preempted: preemptionText(p) }),
      });
    });
    before = after;
    if (top.infeasible !== null) {
      return { header, before: first, steps, broken: null, infeasible: top.infeasible };
    }
    if (top.violation !== null) return { header, before: first, steps, broken: top.violation };
  }
  return { header, before: first, steps, broken: null };
}

/** The repro as text, step by step, and whether it ended as the repro expects. */
export function tellStory(r: Repro): { text: string; asExpected: boolean } {
  const story = storyOf(r);
  const out = [...story.header, ''];
  for (const step of story.steps) {
    out.push(`${String(step.index).padStart(3)}. ${step.call} ${step.result}`);
    if (step.preempted !== undefined) out.push(`       ↳ ${step.preempted}`);
    out.push(...step.changes);
  }
  if (story.infeasible !== undefined) out.push('', `the recorded schedule cannot be replayed, nothing after it was judged: ${story.infeasible}`);
  else out.push('', story.broken === null ? 'every invariant held' : `BROKEN ${story.broken.invariant}${story.broken.cause === undefined ? '' : ` (${story.broken.cause})`}: ${story.broken.message}`);
  const asExpected = endsAsExpected(r, story);
  if (!asExpected) out.push(unexpectedEnding(r));
  return { text: out.join('\n'), asExpected };
}
