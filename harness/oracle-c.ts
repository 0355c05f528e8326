/**
 * C reproducers, as syzkaller gives kernel developers: `reproToC(ops)` turns a trace's
 * kernel subset into one standalone C11 file that performs it with plain syscalls on the
 * running kernel and prints, after every step, the outcome and what /proc/<pid>/maps and
 * /proc/<pid>/pagemap show. The program is the oracle's replayer (kernel-oracle/oracle.c)
 * with the trace compiled in, preceded by the trace as a numbered story of syscalls, so a
 * reader sees what happens and a compiler needs nothing but libc and Linux headers:
 *
 *   cc -std=c11 -o repro repro.c && ./repro
 *
 * A concurrent trace (threads from `clone`, operations of a `tid`, recorded interleavings)
 * becomes a threaded program instead (kernel-oracle/threads.c after the replayer): each
 * emulated thread is a pthread of its process, and the operations of each concurrent
 * segment are released together, in a loop of attempts, since the real kernel will not
 * follow the recorded interleaving (`cc -std=c11 -pthread`).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Op } from '../kernel-api/op.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import { formatOutcome } from '../kernel-api/outcome.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import { ModelKernel } from '../model/kernel.ts';
import { NO_PENDING, NestedScheduler, TraceCursor } from '../properties/sched.ts';
import { concurrentReason, oracleConfig, oracleLine, runModel } from './oracle.ts';

const ORACLE_C = join(dirname(fileURLToPath(import.meta.url)), '..', 'kernel-oracle', 'oracle.c');
const THREADS_C = join(dirname(fileURLToPath(import.meta.url)), '..', 'kernel-oracle', 'threads.c');
/** How many times a concurrent program runs its trace unless its command line says otherwise. */
export const RACE_ATTEMPTS_DEFAULT = 10;
const REGION_BASE = 0x2000_0000_0000;
const PAGE_BYTES = 4096;

const REGION_PAGES = 1 << 20;
/** x86-64's TASK_SIZE with 4-level page tables; the replayer probes the machine's own (real_at in oracle.c). */
const TASK_SIZE = 0x7fff_ffff_f000;

/**
 * A model byte address as the replayer's real one (oracle.c real_at): the model's edges on
 * the kernel's — below mmap_min_addr the real low addresses, from its TASK_SIZE up the
 * kernel's, a negative one at the top of the address space.
 */
const hexBytes = (offset: number) => {
  const real = offset < PAGE_BYTES ? (offset < 0 ? 2 ** 64 + offset : offset)
    : offset < REGION_PAGES * PAGE_BYTES ? REGION_BASE + offset : TASK_SIZE + (offset - REGION_PAGES * PAGE_BYTES);
  return `0x${BigInt(real).toString(16)}`;
};
const hex = (page: number) => hexBytes(page * PAGE_BYTES);

function protText(prot: number): string {
  const bits = [[1, 'PROT_READ'], [2, 'PROT_WRITE'], [4, 'PROT_EXEC'], [8, 'PROT_SEM']] as const;
  const names: string[] = bits.filter(([b]) => (prot & b) !== 0).map(([, n]) => n);
  const rest = prot & ~15;
  if (rest !== 0) names.push(`0x${(rest >>> 0).toString(16)}`);
  return names.length === 0 ? 'PROT_NONE' : names.join('|');
}

/** The syscall one oracle line performs, as a reader would write it. */
function syscallText(line: string): string {
  const [name, ...w] = line.split(' ');
  const n = w.map(Number);
  switch (name) {
    case 'spawn': return `P = fork() of the replayer, setresuid(${n[0]}), prctl(PR_SET_DUMPABLE, 1)`;
    case 'creat': return `f${'#'} = open(O_CREAT|O_RDWR), ftruncate(${n[0]} pages)`;
    case 'pread': return `pread(file ${n[0]}, 4 bytes, page ${n[1]})`;
    case 'pwrite': return `pwrite(file ${n[0]}, ${n[2]}, page ${n[1]})`;
    case 'truncate': return `ftruncate(file ${n[0]}, ${n[1]} pages)`;
    case 'mmap': {
      const flags = [n[4] ? 'MAP_SHARED' : 'MAP_PRIVATE', n[6] < 0 ? 'MAP_ANONYMOUS' : '', ['', 'MAP_FIXED', 'MAP_FIXED_NOREPLACE', 'MAP_FIXED_NOREPLACE'][n[5]], n[9] ? 'MAP_LOCKED' : ''].filter((x) => x !== '');
      const fd = n[6] < 0 ? '-1' : `open(file ${n[6]}, ${n[8] ? 'O_RDWR' : 'O_RDONLY'})`;
      return `P${n[0]}: mmap(${hexBytes(n[1])}, ${n[2]} bytes, ${protText(n[3])}, ${flags.join('|')}, ${fd}, offset ${n[7]})`;
    }
    case 'munmap': return `P${n[0]}: munmap(${hexBytes(n[1])}, ${n[2]} bytes)`;
    case 'mprotect': return `P${n[0]}: mprotect(${hexBytes(n[1])}, ${n[2]} bytes, ${protText(n[3])})`;
    case 'madvise': return `P${n[0]}: madvise(${hexBytes(n[1])}, ${n[2]} bytes, MADV_${w[3]})`;
    case 'mincore': return `P${n[0]}: mincore(${hexBytes(n[1])}, ${n[2]} bytes, vec)`;
    case 'mlock': return `P${n[0]}: ${n[3] ? 'mlock2' : 'mlock'}(${hexBytes(n[1])}, ${n[2]} bytes${n[3] ? ', MLOCK_ONFAULT' : ''})`;
    case 'munlock': return `P${n[0]}: munlock(${hexBytes(n[1])}, ${n[2]} bytes)`;
    case 'mlockall': return `P${n[0]}: mlockall(${n[1]})`;
    case 'munlockall': return `P${n[0]}: munlockall()`;
    case 'msync': return `P${n[0]}: msync(${hexBytes(n[1])}, ${n[2]} bytes, ${n[3]})`;
    case 'vmsplice': return `P${n[0]}: vmsplice(${n[1] === 0 ? `new pipe ${n[4]}` : `pipe ${n[1]}`}, page ${n[2]}, ${n[3]} pages, SPLICE_F_NONBLOCK)`;
    case 'pipe_read': return `P${n[0]}: read(pipe ${n[1]}, ${n[2]} pages)`;
    case 'mremap': {
      const flags = [n[4] ? 'MREMAP_MAYMOVE' : '', n[5] ? 'MREMAP_FIXED' : '', n[7] ? 'MREMAP_DONTUNMAP' : ''].filter((x) => x !== '').join('|') || '0';
      return `P${n[0]}: mremap(${hexBytes(n[1])}, ${n[2]} bytes, ${n[3]} bytes, ${flags}${n[5] ? `, ${hexBytes(n[6])}` : ''})`;
    }
    case 'read': return `P${n[0]}: *(uint32_t *)${hex(n[1])}`;
    case 'write': return `P${n[0]}: *(uint32_t *)${hex(n[1])} = ${n[2]}`;
    case 'fork': return `P${n[0]}: fork()`;
    case 'clone': return `P${n[0]}: T = pthread_create() (clone(CLONE_VM|CLONE_THREAD|…))`;
    case 'exit': return `P${n[0]}: _exit(0)`;
    case 'set_dumpable': return `P${n[0]}: prctl(PR_SET_DUMPABLE, ${n[1]})`;
    case 'proc_mem_read': return `P${n[0]}: pread(open("/proc/<P${n[1]}>/mem"), 4 bytes, ${hex(n[2])})`;
    case 'proc_mem_write': return `P${n[0]}: pwrite(open("/proc/<P${n[1]}>/mem"), ${n[3]}, ${hex(n[2])})`;
    case 'process_vm_readv': return `P${n[0]}: process_vm_readv(<P${n[1]}>, 4 bytes at ${hex(n[2])})`;
    case 'process_vm_writev': return `P${n[0]}: process_vm_writev(<P${n[1]}>, ${n[3]} at ${hex(n[2])})`;
    case 'pagemap_read': return `P${n[0]}: pread(open("/proc/<P${n[1]}>/pagemap"), ${n[3]} entries, from ${hex(n[2])})`;
    case 'clear_refs': return `P${n[0]}: write(open("/proc/<P${n[1]}>/clear_refs", O_WRONLY), "${n[2]}")`;
    case 'map_files_readdir': return `P${n[0]}: readdir(opendir("/proc/<P${n[1]}>/map_files"))`;
    case 'uffd_register_wp':
      return `P${n[0]}: userfaultfd(O_CLOEXEC|UFFD_USER_MODE_ONLY), UFFDIO_API(WP_ASYNC|WP_UNPOPULATED), UFFDIO_REGISTER(${hexBytes(n[1])}, ${n[2]} bytes, MODE_WP)`;
    case 'pagemap_scan': {
      // START and END are bytes from the region's base.
      const at = (bytes: number) => `0x${(REGION_BASE + bytes).toString(16)}`;
      const flags = [n[4] & 1 ? 'PM_SCAN_WP_MATCHING' : '', n[4] & 2 ? 'PM_SCAN_CHECK_WPASYNC' : '', n[4] & ~3 ? `0x${(n[4] & ~3).toString(16)}` : '']
        .filter((x) => x !== '').join('|') || '0';
      const cat = (x: number) => `0x${x.toString(16)}`;
      return `P${n[0]}: ioctl(open("/proc/<P${n[1]}>/pagemap"), PAGEMAP_SCAN, {size ${n[12]}, start ${at(n[2])}, end ${at(n[3])}, flags ${flags}, ` +
        `vec ${n[11] ? 'NULL' : 'buf'}, vec_len ${n[10]}, max_pages ${n[5]}, inverted ${cat(n[6])}, mask ${cat(n[7])}, anyof ${cat(n[8])}, return ${cat(n[9])}})`;
    }
    default: return line;
  }
}

const cString = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/**
 * A standalone C program performing `ops` (every operation must be in the oracle's subset).
 * Non-fixed placements are resolved by the model first, so the program maps exactly where
 * the model did; the story shows the model's outcome beside each step. A concurrent trace
 * gives the threaded program (threadedReproToC).
 */
export function reproToC(ops: readonly Op[], config: Readonly<KernelConfig> = oracleConfig()): string {
  if (concurrentReason(ops) !== undefined) return threadedReproToC(ops, config);
  const model = runModel(ops, config);
  const story = model.lines.map((line, i) =>
    ` *  ${String(i + 1).padStart(3)}. ${syscallText(line).padEnd(90)} model: ${formatOutcome(model.steps[i].outcome)}`);
  const lines = model.lines.map((line, i) => `  ${cString(line)}, /* ${i + 1} */`);
  return [
    '/*',
    ' * mapfuzz C reproducer: replays a trace on the running Linux kernel with plain syscalls and',
    ' * prints, per step, the outcome and the observation (maps and pagemap inside the region).',
    ` * Emulated page a is address ${hex(0)} + a * 4096. Build: cc -std=c11 -o repro repro.c`,
    ' *',
    ' * The trace:',
    ...story,
    ' */',
    '#define ORACLE_TRACE 1',
    'static const char *const trace_lines[] = {',
    ...lines,
    '  0,',
    '};',
    '',
    readFileSync(ORACLE_C, 'utf8'),
  ].join('\n');
}

/** One operation of a concurrent trace as the threaded program performs it. */
export type ThreadedStep = {
  op: Op;
  /** The oracle line (a `clone PID` line for a clone). */
  line: string;
  /** The thread that performs it (0: its process's main thread, or task 0). */
  tid: number;
  /** Its concurrent segment (1-based), 0 when it ran alone in its top-level step. */
  race: number;
  outcome: Outcome;
};

/**
 * Replay `ops` on the model as a repro replays (the nested scheduler follows each op's
 * switches), and group them by top-level step: the operations the model ran in one
 * top-level step form a concurrent segment. Throws when the recorded schedule cannot be
 * replayed, or an operation has no plain-syscall counterpart.
 */
export function threadedSteps(ops: readonly Op[], config: Readonly<KernelConfig> = oracleConfig()): ThreadedStep[] {
  const kernel = new ModelKernel(config);
  const cursor = new TraceCursor(ops, 0);
  const steps: ThreadedStep[] = [];
  let races = 0;
  while (cursor.at < ops.length) {
    const top = cursor.take();
    const sched = new NestedScheduler(kernel, top.switches === undefined ? NO_PENDING : cursor, null);
    sched.run(top);
    const outcomes = new Map(sched.ran.map((c) => [c.op, c.outcome]));
    const race = sched.started.length > 1 ? ++races : 0;
    for (const op of sched.started) {
      const outcome = outcomes.get(op);
      if (outcome === undefined) throw new Error(`C reproducer: ${op.op} (step ${steps.length + 1}) did not complete in the model`);
      const line = op.op === 'clone' ? `clone ${op.pid}` : oracleLine(op, outcome);
      if (line === null) throw new Error(`C reproducer: operation ${op.op} has no kernel counterpart (${JSON.stringify(op)})`);
      steps.push({ op, line, tid: op.tid ?? 0, race, outcome });
    }
  }
  return steps;
}

/** The threaded C program of a concurrent trace: kernel-oracle/threads.c drives the replayer. */
export function threadedReproToC(ops: readonly Op[], config: Readonly<KernelConfig> = oracleConfig()): string {
  const steps = threadedSteps(ops, config);
  // A thread's step names its thread beside its process: `P1 T2: munmap(…)`.
  const call = (s: ThreadedStep) => (s.tid === 0 ? syscallText(s.line) : syscallText(s.line).replace(/^P(\d+): /, `P$1 T${s.tid}: `));
  const story = steps.map((s, i) =>
    ` *  ${String(i + 1).padStart(3)}. ${s.race === 0 ? '        ' : `race ${String(s.race).padEnd(3)}`} ${call(s).padEnd(90)} model: ${formatOutcome(s.outcome)}`);
  const table = steps.map((s, i) => `  { ${cString(s.line)}, ${s.tid}, ${s.race} }, /* ${i + 1} */`);
  const races = Math.max(0, ...steps.map((s) => s.race));
  return [
    '/*',
    ' * CONCURRENT REPRO. The real kernel will not follow the recorded interleaving: mapfuzz ran',
    ' * some operations nested at a scheduling point of another (`show` tells where), and no user',
    ' * program can stop a system call there. This program only tries to make the race likely: each',
    ' * emulated thread is a pthread of its process, and the operations of each concurrent segment',
    ` * (marked "race N" below; this trace has ${races}) are handed to their threads, which wait on a`,
    ' * shared flag and are released together, each on a CPU of its own. The whole trace runs',
    ` * ATTEMPTS times (./repro ATTEMPTS; default ${RACE_ATTEMPTS_DEFAULT}), each in fresh processes, and each attempt`,
    " * prints its outcomes, which may differ from the model's and from one attempt to the next.",
    ' * Sequential steps run one at a time, as in a sequential reproducer.',
    ' *',
    ' * mapfuzz C reproducer: replays a trace on the running Linux kernel with plain syscalls and',
    ' * prints, per step, the outcome and the observation (maps and pagemap inside the region).',
    ` * Emulated page a is address ${hex(0)} + a * 4096. Build: cc -std=c11 -pthread -o repro repro.c`,
    ' *',
    ' * The trace (Pn Tm: thread m of process n; race N: released with the others of segment N):',
    ...story,
    ' */',
    `#define RACE_ATTEMPTS ${RACE_ATTEMPTS_DEFAULT}`,
    '/* Per step: the oracle line, the thread that performs it (0: the main thread), its segment (0: none). */',
    'struct trace_step { const char *line; int tid; int race; };',
    'static const struct trace_step trace_steps[] = {',
    ...table,
    '  { 0, 0, 0 },',
    '};',
    '',
    '/* The replayer, its main renamed: threads.c below drives it. */',
    '#define main oracle_main',
    readFileSync(ORACLE_C, 'utf8'),
    '#undef main',
    '',
    readFileSync(THREADS_C, 'utf8'),
  ].join('\n');
}
