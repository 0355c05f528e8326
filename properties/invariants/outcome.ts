/**
 * outcome: each core operation's outcome is the one the predictor (properties/predict.ts)
 * says Linux 6.18 gives, from the operation's arguments and the address space as it stood
 * before it — a third opinion beside the two kernels, so that a flaw both kernels share
 * (mprotect applied past a hole, MAP_FIXED_NOREPLACE over a mapping, process_vm_writev
 * ignoring protection, a wrong errno of an argument check) still shows. Where the
 * predictor cannot know the answer it says so and nothing is judged.
 */
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import { formatOutcome } from '../../kernel-api/outcome.ts';
import { allows, formatExpect, hex, reason, layoutDifference, overlapping, PREDICTED_OPS, type Area, type Prediction } from '../predict.ts';
import type { Cause, CheckContext, Invariant, Violation } from './types.ts';
import type { KernelInspect } from '../../kernel-api/state.ts';

const EXTENT_OPS = ['mmap', 'munmap', 'mprotect', 'madvise'] as const;

const CAUSES: readonly Cause[] = [
  ...PREDICTED_OPS.filter((o) => o !== 'read' && o !== 'write').map((o) => ({ id: `errno:${o}`, title: `${o} returned another errno (or success) than Linux does` })),
  { id: 'signal:read', title: 'a load gave another signal (or none) than Linux does' },
  { id: 'signal:write', title: 'a store gave another signal (or none) than Linux does' },
  ...EXTENT_OPS.map((o) => ({ id: `extent:${o}`, title: `${o} changed the address space otherwise than Linux does (how far it got)` })),
  { id: 'address:mmap', title: 'mmap did not honour MAP_FIXED or MAP_FIXED_NOREPLACE, or placed a mapping over another' },
];

/** The op's call as a kernel developer writes it. */
function callText(op: Op): string {
  const o = op as Op & { addr?: number; lengthPages?: number };
  switch (op.op) {
    case 'read': case 'write': return `${op.op === 'read' ? 'a load from' : 'a store to'} ${hex(op.addr)}`;
    case 'process_vm_readv': case 'process_vm_writev': return `${op.op}(P${op.target}, ${hex(op.addr)})`;
    case 'mmap': return `mmap(${hex(op.addr)}, ${op.lengthPages} pages${op.fixed === true ? ', MAP_FIXED' : ''}${op.noreplace === true ? ', MAP_FIXED_NOREPLACE' : ''})`;
    case 'madvise': return `madvise(${hex(op.addr)}, ${op.lengthPages} pages, MADV_${op.advice})`;
    case 'mlockall': return `mlockall(${op.flags})`;
    case 'munlockall': return 'munlockall()';
    default: return o.addr !== undefined && o.lengthPages !== undefined ? `${op.op}(${hex(o.addr)}, ${o.lengthPages} pages)` : op.op;
  }
}

/** An outcome as the call's caller reads it: mmap's address in hex. */
function returned(op: Op, o: Outcome): string {
  return op.op === 'mmap' && o.kind === 'ok' ? hex(o.value) : formatOutcome(o);
}

/** Judge `outcome` of `op` against `p`, made before it ran; `k` is the kernel after it. */
function judgeOutcome(p: Prediction, op: Op, outcome: Outcome, k: KernelInspect): Violation | null {
  if (!p.known) return null;
  const pid = (op as { pid: number }).pid;
  // A task killed meanwhile (another thread's exit_group, an OOM kill) returns ESRCH from any call.
  if (outcome.kind === 'errno' && outcome.errno === 'ESRCH') return null;
  if (!allows(p.allowed, outcome)) {
    const fixed = op.op === 'mmap' && (op.fixed === true || op.noreplace === true) && outcome.kind === 'ok';
    const cause = fixed ? 'address:mmap' : op.op === 'read' || op.op === 'write' ? `signal:${op.op}` : `errno:${op.op}`;
    const want = p.allowed.map((e) => formatExpect(e, op)).join(' or ');
    return { invariant: 'outcome', cause, pid, addr: (op as { addr?: number }).addr, message: `${callText(op)} returned ${returned(op, outcome)} (${reason(p)}): Linux returns ${want}` };
  }
  if (op.op === 'mmap' && outcome.kind === 'ok' && p.place !== undefined) {
    const len = Math.ceil(op.lengthPages);
    const over = overlapping(p.place.free, outcome.value, outcome.value + len);
    if (over.length > 0) {
      return { invariant: 'outcome', cause: 'address:mmap', pid, addr: outcome.value, message: `${callText(op)} returned ${hex(outcome.value)}, over the mapping at ${hex(over[0]!.start)}: without MAP_FIXED Linux never replaces one` };
    }
  }
  const after = p.after?.(outcome);
  if (after === undefined || !(EXTENT_OPS as readonly string[]).includes(op.op)) return null;
  const got: Area[] = [...k.vmas(pid)];
  const d = layoutDifference(after, got);
  if (d === null) return null;
  return {
    invariant: 'outcome', cause: `extent:${op.op}`, pid, addr: d.addr,
    message: `${callText(op)} returned ${returned(op, outcome)} (${reason(p)}), and at ${hex(d.addr)} P${pid} has ${d.got}: Linux leaves ${d.want}`,
  };
}

export const outcomeInvariant: Invariant = {
  id: 'outcome',
  holds: "each core operation's outcome (its errno, signal, placement and how far it got) is the one the predictor, apart from both kernels, says Linux gives",
  causes: CAUSES,
  judges: 'outcome',
  check(ctx: CheckContext): Violation | null {
    const predictor = ctx.predictor;
    if (predictor === undefined) return null;
    return judgeOutcome(predictor.predict(ctx.op), ctx.op, ctx.outcome, ctx.k);
  },
};
