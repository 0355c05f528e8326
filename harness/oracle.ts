/**
 * The kernel oracle's differential property: the reference model against the running Linux
 * kernel (kernel-oracle/oracle.c), over random traces of the subset of core operations that
 * user space can perform for real. Each trace runs through the model first (which also
 * chooses where non-fixed mmaps and moving mremaps land), then through the oracle; outcomes
 * and what /proc/<pid>/maps (one line per VMA: range, perms, backing, offset) and
 * /proc/<pid>/pagemap show are compared after every step.
 *
 * Covered: spawn, mmap (anon, shmem, file; hint, MAP_FIXED, MAP_FIXED_NOREPLACE), munmap,
 * mprotect, mremap, madvise (DONTNEED, PAGEOUT, COLD, DONTFORK, DOFORK, WILLNEED, WIPEONFORK, KEEPONFORK, POPULATE_READ, POPULATE_WRITE, REMOVE), read, write, fork,
 * exit, creat, pread, pwrite, truncate, /proc/<pid>/mem, process_vm_readv/writev,
 * set_dumpable, and the introspection calls: pagemap reads, PAGEMAP_SCAN (Linux 6.7),
 * clear_refs, userfaultfd write-protect registration in async mode, map_files readdir.
 * Where the running kernel lacks one of those calls, a trace using it is `skipped`, with the
 * reason, never counted as agreeing. Not covered: reclaim, oom and fail_nth (no faithful
 * user-space counterpart), driver calls and close (strategies), and what user space cannot see — frame identity,
 * refcounts, mapcounts beyond pagemap's exclusive bit, RSS. Divergences that are deliberate
 * simplifications of the model are listed in kernel-oracle/SIMPLIFICATIONS.md and counted
 * as `documented`, never dropped.
 */
import { allows, formatExpect, Predictor, reason, type Prediction } from '../properties/predict.ts';
import { bytesText } from '../kernel-api/bytes.ts';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import seedrandom from 'seedrandom';
import type { Op, OpName } from '../kernel-api/op.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import { err, formatOutcome } from '../kernel-api/outcome.ts';
import { MCL_CURRENT, PM_FILE, PM_MMAP_EXCLUSIVE, PM_PRESENT } from '../kernel-api/op.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import type { MapRange } from '../kernel-api/observation.ts';
import { ModelKernel } from '../model/kernel.ts';
import { pagemapScan } from '../model/pagemap.ts';
import { runningProcess } from '../model/process.ts';
import { observe } from '../properties/observe.ts';
import { CHOICES_PER_STEP, CORE_KINDS, TraceBuilder } from '../properties/gen.ts';
import { buildOracle } from '../kernel-oracle/build.mjs';
import { swapAreas } from '../kernel-oracle/swap.mjs';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The model configured as the oracle's machine: user space is the oracle's 4 GiB region
 * (model page a is 0x200000000000 + a * 4096), vm.mmap_min_addr is 4096 (1 page), no Yama,
 * no swap unless the machine has some, soft-dirty only if the machine's kernel has it.
 */
export function oracleConfig(swapSlotsMax = machineHasSwap() ? 1 << 16 : 0, softDirty = machineHasSoftDirty()): KernelConfig {
  return {
    taskSizePages: 1 << 20, mmapBasePages: 1 << 19, mmapMinAddrPages: 1, maxMapCount: 65530,
    yamaPtraceScope: 0, processesMax: 32, framesMax: 1 << 18, swapSlotsMax, softDirty,
  };
}

let softDirtyCached: boolean | undefined;

/**
 * CONFIG_MEM_SOFT_DIRTY of the running kernel: every VMA has VM_SOFTDIRTY until clear_refs,
 * so pagemap shows bit 55 on the first page of this process's first mapping exactly when
 * the kernel has soft-dirty. Elsewhere than on Linux the model's default (on).
 */
export function machineHasSoftDirty(): boolean {
  if (softDirtyCached !== undefined) return softDirtyCached;
  softDirtyCached = true;
  if (process.platform !== 'linux') return softDirtyCached;
  let fd = -1;
  try {
    const first = readFileSync('/proc/self/maps', 'utf8').split('\n')[0];
    const start = parseInt(first.split('-')[0], 16);
    fd = openSync('/proc/self/pagemap', 'r');
    const entry = Buffer.alloc(8);
    if (readSync(fd, entry, 0, 8, Math.floor(start / 4096) * 8) === 8) softDirtyCached = ((entry.readBigUInt64LE() >> 55n) & 1n) === 1n;
  } catch {
    // no pagemap to read: keep the default
  } finally {
    if (fd >= 0) closeSync(fd);
  }
  return softDirtyCached;
}

/** Whether the machine has swap now (kernel-oracle/swap.mjs turns a swap file on for `mapfuzz oracle`). */
function machineHasSwap(): boolean {
  return (swapAreas() ?? []).length > 0;
}

/** Operation kinds the oracle replays; the generator weights every other kind zero. */
export const ORACLE_OPS: readonly OpName[] = [
  'spawn', 'mmap', 'munmap', 'mprotect', 'mremap', 'madvise', 'read', 'write', 'fork', 'exit', 'creat', 'pread',
  'pwrite', 'truncate', 'proc_mem_read', 'proc_mem_write', 'process_vm_readv', 'process_vm_writev', 'set_dumpable',
  'pagemap_read', 'clear_refs', 'uffd_register_wp', 'pagemap_scan', 'map_files_readdir', 'mincore',
  'mlock', 'munlock', 'mlockall', 'munlockall', 'msync', 'vmsplice', 'pipe_read',
];

/** The calls of the subset that not every kernel has: the oracle's start-up probe for each (its header's "caps"). */
export const ORACLE_CAPS: Partial<Record<OpName, { cap: string; what: string }>> = {
  pagemap_scan: { cap: 'pagemapScan', what: 'ioctl(PAGEMAP_SCAN) on /proc/self/pagemap (Linux 6.7)' },
  uffd_register_wp: { cap: 'uffdWpAsync', what: 'userfaultfd + UFFDIO_API(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED) (Linux 6.7)' },
};

/** Steps per generated trace, at most. */
export const ORACLE_STEPS_MAX = 40;

// ---- the line format the oracle reads (kernel-oracle/oracle.c, run_line) -----------------

/**
 * One operation as an oracle line. `modelOutcome` decides placement: a non-fixed mmap is
 * replayed as MAP_FIXED_NOREPLACE (placement 3) at the model's address, and a moving
 * mremap as MREMAP_FIXED at the model's destination. Null for an operation the oracle
 * cannot perform.
 */
export function oracleLine(op: Op, modelOutcome: Outcome): string | null {
  const b = (x: boolean | undefined) => (x ? 1 : 0);
  switch (op.op) {
    case 'spawn': return `spawn ${op.uid ?? 1000}`;
    case 'creat': return `creat ${op.sizePages}`;
    case 'pread': return `pread ${op.file} ${op.index}`;
    case 'pwrite': return `pwrite ${op.file} ${op.index} ${op.value >>> 0}`;
    case 'truncate': return `truncate ${op.file} ${op.sizePages}`;
    case 'mmap': {
      if (op.fd !== undefined) return null;
      // MAP_FIXED_NOREPLACE implies MAP_FIXED (do_mmap), so with both it decides.
      let placement = op.noreplace ? 2 : op.fixed ? 1 : 0;
      let addr = op.addr;
      if (placement === 0 && modelOutcome.kind === 'ok') {
        placement = 3;
        addr = modelOutcome.value;
      }
      // Address, length and file offset in bytes, as for munmap.
      return `mmap ${op.pid} ${bytesText(addr)} ${bytesText(op.lengthPages)} ${op.prot} ${b(op.shared)} ${placement} ${op.file ?? -1} ${bytesText(op.pgoff ?? 0)} ${op.mode === 'r' ? 0 : 1} ${b(op.locked)}`;
    }
    // Address (from the region's base) and length in bytes: a fraction of a page is a byte value.
    case 'munmap': return `munmap ${op.pid} ${bytesText(op.addr)} ${bytesText(op.lengthPages)}`;
    case 'mprotect': return `mprotect ${op.pid} ${bytesText(op.addr)} ${bytesText(op.lengthPages)} ${op.prot}`;
    case 'madvise': return `madvise ${op.pid} ${bytesText(op.addr)} ${bytesText(op.lengthPages)} ${op.advice}`;
    case 'mincore': return `mincore ${op.pid} ${bytesText(op.addr)} ${bytesText(op.lengthPages)}`;
    case 'mlock': return `mlock ${op.pid} ${bytesText(op.addr)} ${bytesText(op.lengthPages)} ${b(op.onfault)}`;
    case 'munlock': return `munlock ${op.pid} ${bytesText(op.addr)} ${bytesText(op.lengthPages)}`;
    // MCL_CURRENT would lock and fault in the replayer's own mappings too (its code, stack,
    // libc): not the model's address space, so not replayed (SIMPLIFICATIONS.md).
    case 'mlockall': return (op.flags & MCL_CURRENT) !== 0 ? null : `mlockall ${op.pid} ${op.flags}`;
    case 'munlockall': return `munlockall ${op.pid}`;
    case 'msync': return `msync ${op.pid} ${bytesText(op.addr)} ${bytesText(op.lengthPages)} ${op.flags}`;
    // Pages, not bytes. A new pipe is kept under the id the model gave it (0 when it made none).
    case 'vmsplice': {
      const made = op.pipe === undefined && modelOutcome.kind === 'ok' ? modelOutcome.values?.[0] ?? 0 : 0;
      return `vmsplice ${op.pid} ${op.pipe ?? 0} ${op.addr} ${op.lengthPages} ${made}`;
    }
    case 'pipe_read': return `pipe_read ${op.pid} ${op.pipe} ${op.pages}`;
    case 'mremap': {
      let fixed = b(op.fixed);
      let newAddr = op.newAddr ?? 0;
      if (!op.fixed && op.maymove && modelOutcome.kind === 'ok' && modelOutcome.value !== op.addr) {
        fixed = 1;
        newAddr = modelOutcome.value;
      }
      // Addresses and lengths in bytes, as for munmap: a fraction of a page is a byte value.
      return `mremap ${op.pid} ${bytesText(op.addr)} ${bytesText(op.oldPages)} ${bytesText(op.newPages)} ${b(op.maymove)} ${fixed} ${bytesText(newAddr)} ${b(op.dontunmap)}`;
    }
    case 'read': return `read ${op.pid} ${op.addr}`;
    case 'write': return `write ${op.pid} ${op.addr} ${op.value >>> 0}`;
    case 'fork': return `fork ${op.pid}`;
    case 'exit': return `exit ${op.pid}`;
    case 'set_dumpable': return `set_dumpable ${op.pid} ${op.dumpable ? 1 : 0}`;
    case 'proc_mem_read':
    case 'process_vm_readv': return `${op.op} ${op.pid} ${op.target} ${op.addr}`;
    case 'proc_mem_write':
    case 'process_vm_writev': return `${op.op} ${op.pid} ${op.target} ${op.addr} ${op.value >>> 0}`;
    case 'pagemap_read': return `pagemap_read ${op.pid} ${op.target} ${op.addr} ${op.count ?? 1}`;
    case 'clear_refs': return `clear_refs ${op.pid} ${op.target} ${op.mode}`;
    case 'map_files_readdir': return `map_files_readdir ${op.pid} ${op.target}`;
    case 'uffd_register_wp': return op.async === true ? `uffd_register_wp ${op.pid} ${bytesText(op.addr)} ${bytesText(op.lengthPages)}` : null;
    case 'pagemap_scan': {
      // Start and end in bytes from the region's base: a fractional page is an unaligned address.
      const bytes = (pages: number) => Math.round(pages * 4096);
      return `pagemap_scan ${op.pid} ${op.target ?? op.pid} ${bytes(op.start)} ${bytes(op.end)} ${op.flags} ${op.max_pages} ` +
        `${op.category_inverted} ${op.category_mask} ${op.category_anyof_mask} ${op.return_mask} ${op.vec_len} ${b(op.vecNull)} ${op.size ?? 96}`;
    }
    default: return null;
  }
}

// ---- comparable observations ---------------------------------------------------------

/**
 * A page as pagemap shows it; `value` only where the page is present. A uffd-wp marker
 * (a non-present entry that only write-protects) is `marker`, not `swapped`.
 */
export type SeenPage = {
  value?: number; present: boolean; swapped: boolean; file: boolean; exclusive: boolean; softDirty: boolean; uffdWp: boolean; marker: boolean;
};
/** A line of /proc/<pid>/maps: the VMA's range, perms, backing and file offset in pages (0 for anonymous memory). */
export type SeenMap = MapRange & { offset: number };
export type SeenProcess = { pid: number; maps: SeenMap[]; pages: Map<number, SeenPage> };
/** `emptyPtes`: before a PAGEMAP_SCAN, the target's empty entries of existing page tables (kernel side only). */
export type SeenStep = { outcome: Outcome; processes: SeenProcess[]; emptyPtes?: number[] };

type KernelLine = {
  step: number;
  outcome: { kind: string; value?: number; values?: number[]; errno?: string; signal?: string };
  emptyPtes?: [number, number][];
  procs: { pid: number; vmas: [number, number, string, string, number][]; pages: [number, number, number][] }[];
};

/** Shmem objects have no common name: number them by first appearance, pid then address order. */
function canonicalizeShmem(processes: SeenProcess[]): void {
  const names = new Map<string, string>();
  for (const p of processes) {
    for (const m of p.maps) {
      if (!m.backing.startsWith('shmem:')) continue;
      if (!names.has(m.backing)) names.set(m.backing, `shmem#${names.size + 1}`);
      m.backing = names.get(m.backing)!;
    }
  }
}

/** One range per VMA, as the oracle read them from /proc/<pid>/maps: uncoalesced, like the model's observation. */
function kernelMaps(vmas: KernelLine['procs'][number]['vmas']): SeenMap[] {
  return vmas.map(([start, end, perms, backing, offset]) => ({ start, end, perms, backing, offset }));
}

function kernelStep(line: KernelLine): SeenStep {
  const o = line.outcome;
  const outcome = (o.kind === 'ok' ? (o.values === undefined ? { kind: 'ok', value: o.value } : { kind: 'ok', value: o.value, values: o.values })
    : o.kind === 'errno' ? { kind: 'errno', errno: o.errno } : { kind: 'signal', signal: o.signal }) as Outcome;
  const processes = line.procs.map((p): SeenProcess => {
    const pages = new Map<number, SeenPage>();
    for (const [addr, value, flags] of p.pages) {
      const marker = (flags & 64) !== 0;
      const page: SeenPage = {
        present: (flags & 1) !== 0, swapped: (flags & 2) !== 0 && !marker, file: (flags & 4) !== 0, exclusive: (flags & 8) !== 0,
        softDirty: (flags & 16) !== 0, uffdWp: (flags & 32) !== 0, marker,
      };
      if (page.present && value >= 0) page.value = value;
      pages.set(addr, page);
    }
    return { pid: p.pid, maps: kernelMaps(p.vmas), pages };
  });
  canonicalizeShmem(processes);
  const step: SeenStep = { outcome, processes };
  if (line.emptyPtes !== undefined) step.emptyPtes = line.emptyPtes.flatMap(([start, end]) => Array.from({ length: end - start }, (_, i) => start + i));
  return step;
}

function modelStep(k: ModelKernel, outcome: Outcome): SeenStep {
  const obs = observe(k.inspect);
  const processes = obs.processes.filter((p) => p.state === 'running').map((p): SeenProcess => {
    const pages = new Map<number, SeenPage>();
    const uffdWp = new Set<number>();
    for (const [addr, pte] of k.inspect.ptes(p.pid)) if (pte.uffdWp) uffdWp.add(addr);
    for (const pg of p.pages) {
      const page: SeenPage = {
        present: pg.present, swapped: pg.swapped, file: pg.file, exclusive: pg.exclusive, softDirty: pg.softDirty, uffdWp: uffdWp.has(pg.addr), marker: false,
      };
      if (pg.present && pg.value !== undefined) page.value = pg.value;
      pages.set(pg.addr, page);
    }
    for (const addr of k.inspect.uffdWpMarkers(p.pid)) {
      pages.set(addr, { present: false, swapped: false, file: false, exclusive: false, softDirty: false, uffdWp: true, marker: true });
    }
    // One range per VMA, in order: the offset column is the VMA's vm_pgoff for a file or shmem mapping (show_map_vma).
    const vmas = [...k.inspect.vmas(p.pid)];
    const maps = p.maps.map((m, i): SeenMap => ({ ...m, offset: vmas[i].file === -1 ? 0 : vmas[i].pgoff }));
    return { pid: p.pid, maps, pages: new Map([...pages].sort((a, b) => a[0] - b[0])) };
  });
  canonicalizeShmem(processes);
  return { outcome, processes };
}

// ---- running both sides ---------------------------------------------------------------

export type ModelRun = {
  steps: SeenStep[]; lines: string[];
  /** The outcome predictor's prediction of each step, made from the model's state before it (properties/predict.ts). */
  predictions: Prediction[];
  /** The model failed an assertion at this step (its own bug): the run ends there; `lines` has the step as written. */
  crash?: { step: number; message: string };
};

/**
 * Run `ops` on a fresh model; also the oracle lines, placed where the model placed things.
 * `emptyPtes`, per step: the kernel's empty page-table entries before each PAGEMAP_SCAN,
 * walked as the running kernel walks them (model/pagemap.ts, `pagemap-scan-empty-pte`).
 */
export function runModel(ops: readonly Op[], config: Readonly<KernelConfig> = oracleConfig(), emptyPtes?: readonly (readonly number[] | undefined)[]): ModelRun {
  const k = new ModelKernel(config);
  const run: ModelRun = { steps: [], lines: [], predictions: [] };
  const predictor = new Predictor(config);
  for (const [i, op] of ops.entries()) {
    const empty = emptyPtes?.[i];
    let outcome: Outcome;
    run.predictions.push(predictor.predict(op));
    try {
      outcome = op.op === 'pagemap_scan' && empty !== undefined ? scanWithEmptyPtes(k, op, new Set(empty)) : k.step(op);
    } catch (e) {
      // A model assertion: the kernel still runs the call, as written (no placement of the model's to follow).
      run.crash = { step: i, message: e instanceof Error ? e.message : String(e) };
      const line = oracleLine(op, err('EINVAL'));
      if (line !== null) run.lines.push(line);
      return run;
    }
    const line = oracleLine(op, outcome);
    if (line === null) throw new Error(`oracle: operation ${op.op} has no kernel counterpart (${JSON.stringify(op)})`);
    run.lines.push(line);
    run.steps.push(modelStep(k, outcome));
    predictor.sync(k.inspect, op, outcome);
  }
  return run;
}

/** ModelKernel.step for a PAGEMAP_SCAN, with the kernel's empty page-table entries. */
function scanWithEmptyPtes(k: ModelKernel, op: Extract<Op, { op: 'pagemap_scan' }>, emptyPtes: ReadonlySet<number>): Outcome {
  k.state.step += 1;
  const caller = runningProcess(k.state, op.pid);
  return caller === undefined ? err('ESRCH') : pagemapScan(k.state, caller, op, emptyPtes);
}

/** What the oracle's start-up probes found: "ok", or the errno the call failed with. */
export type OracleCaps = Record<string, string>;
export type KernelRun = { steps: SeenStep[]; softDirty: boolean; caps: OracleCaps };

type OracleHeader = { oracle: number; softDirty: number; caps?: OracleCaps };

/** Replay oracle lines on the running kernel. Throws when the oracle itself fails. */
export function runKernel(binary: string, lines: readonly string[]): KernelRun {
  const r = spawnSync(binary, [], { input: lines.join('\n') + '\n', encoding: 'utf8', timeout: 60_000, maxBuffer: 256 << 20 });
  if (r.error !== undefined) throw new Error(`oracle: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`oracle exited with ${r.status ?? r.signal}: ${r.stderr.trim()}`);
  const out = r.stdout.trim().split('\n');
  const header = JSON.parse(out[0]) as OracleHeader;
  const steps = out.slice(1).map((l) => kernelStep(JSON.parse(l) as KernelLine));
  if (steps.length !== lines.length) throw new Error(`oracle printed ${steps.length} steps for ${lines.length} operations: ${r.stderr.trim()}`);
  return { steps, softDirty: header.softDirty === 1, caps: header.caps ?? {} };
}

const capsCache = new Map<string, { softDirty: boolean; caps: OracleCaps }>();

/** The oracle's header alone (it replays nothing): soft-dirty and the probes of the calls in ORACLE_CAPS. */
export function kernelCapabilities(binary: string): { softDirty: boolean; caps: OracleCaps } {
  let c = capsCache.get(binary);
  if (c === undefined) {
    const run = runKernel(binary, []);
    c = { softDirty: run.softDirty, caps: run.caps };
    capsCache.set(binary, c);
  }
  return c;
}

/**
 * Why a trace is concurrent (threads, or a recorded interleaving), or undefined. The running
 * kernel will not follow a recorded interleaving (it schedules as it likes, and a nested
 * operation's scheduling point is no place user space can stop it), so such a trace is
 * skipped, never compared.
 */
export function concurrentReason(ops: readonly Op[]): string | undefined {
  const i = ops.findIndex((op) => op.op === 'clone' || op.tid !== undefined || op.switches !== undefined);
  if (i === -1) return undefined;
  const op = ops[i]!;
  const what = op.switches !== undefined ? 'a recorded interleaving' : op.op === 'clone' ? 'a thread (clone)' : `an operation of thread T${op.tid}`;
  return `concurrent trace (step ${i + 1}: ${what}): the running kernel will not follow the recorded interleaving`;
}

/** Why this kernel cannot replay `ops` (a concurrent trace, a call it lacks), or undefined when it can. */
export function unsupportedReason(binary: string, ops: readonly Op[]): string | undefined {
  const why = concurrentReason(ops);
  if (why !== undefined) return why;
  const { caps } = kernelCapabilities(binary);
  for (const op of ops) {
    const need = ORACLE_CAPS[op.op];
    if (need === undefined) continue;
    const got = caps[need.cap] ?? 'not probed by this oracle';
    if (got !== 'ok') return `${op.op}: ${need.what} failed here (${got})`;
  }
  return undefined;
}

// ---- comparison ---------------------------------------------------------------------

/** Ids of kernel-oracle/SIMPLIFICATIONS.md, each with its one-line reason. */
export const SIMPLIFICATIONS = {
  'fault-around': 'the kernel maps page-cache pages around a read fault (do_fault_around); the model maps only the faulting page',
  'mremap-move-multiple-vmas': 'the model emulates mremap as before Linux 6.17: an MREMAP_FIXED move without resize must lie in one VMA (EFAULT), where 6.17+ moves every VMA of the range',
  'tmpfs-read-hole': 'the oracle\'s files are on tmpfs, where a read of a hole copies the zero page and caches nothing (shmem_file_read_iter, SGP_READ); the model\'s pread caches a zero page, which mincore of a file mapping then reports resident',
  'pagemap-scan-empty-pte': 'the model has no page tables: PAGEMAP_SCAN walks every unpopulated page as a hole, where the kernel walks an empty entry of an existing page table in pagemap_scan_pmd_entry, and 6.18 reports it PAGE_IS_WRITTEN (and write-protects it when it matches)',
} as const;
export type SimplificationId = keyof typeof SIMPLIFICATIONS;

/**
 * Model bugs the oracle found that are not fixed yet (the model is not this module's to
 * change). A divergence that matches one still counts under `diverge`; it carries the
 * bug's id so a report and the tests can tell a known flaw from a new one. Remove an entry
 * once the model is fixed; its repro in corpus/kernel/ then turns to `expect: "passes"`.
 */
export const KNOWN_MODEL_BUGS: readonly { id: string; linux: string; matches: (op: Op, d: readonly Difference[]) => boolean }[] = [];

/**
 * Divergences documented at the level of a whole step: from that step on the two runs
 * legitimately part ways, so the comparison stops there and the trace counts as documented.
 */
const DOCUMENTED_STEPS: readonly { id: SimplificationId; matches: (op: Op, d: readonly Difference[]) => boolean }[] = [
  {
    id: 'mremap-move-multiple-vmas',
    matches: (op, d) => op.op === 'mremap' && op.fixed === true && op.oldPages === op.newPages &&
      d.some((x) => x.what === 'outcome' && (x.model as Outcome).kind === 'errno' && (x.kernel as Outcome).kind === 'ok'),
  },
];

export function knownModelBug(op: Op | undefined, differences: readonly Difference[]): string | undefined {
  if (op === undefined) return undefined;
  return KNOWN_MODEL_BUGS.find((b) => b.matches(op, differences))?.id;
}

export type Difference = { what: string; model: unknown; kernel: unknown; documented?: SimplificationId };

export type Verdict = {
  /** `skipped`: the kernel lacks a call of the trace (`skipped` says which and why); nothing was compared. */
  result: 'agree' | 'documented' | 'diverge' | 'skipped';
  /** The step of the first undocumented difference (diverge), else of the first documented one, else -1. */
  step: number;
  differences: Difference[];
  documented: SimplificationId[];
  skipped?: string;
};

const outcomeText = (o: Outcome) => formatOutcome(o);

/**
 * Differences between the model's and the kernel's view after one step. `op`, the step's
 * operation, lets a pagemap read or PAGEMAP_SCAN that sees a fault-around page differ as
 * documented.
 */
export function compareStep(model: SeenStep, kernel: SeenStep, softDirty: boolean, op?: Op): Difference[] {
  const diffs: Difference[] = [];
  if (outcomeText(model.outcome) !== outcomeText(kernel.outcome)) diffs.push({ what: 'outcome', model: model.outcome, kernel: kernel.outcome });
  const mp = model.processes.map((p) => p.pid).join(',');
  const kp = kernel.processes.map((p) => p.pid).join(',');
  if (mp !== kp) {
    diffs.push({ what: 'running processes', model: mp, kernel: kp });
    return diffs;
  }
  for (let i = 0; i < model.processes.length; i++) diffs.push(...compareProcess(model.processes[i], kernel.processes[i], softDirty));
  // Fault-around raises the mapcount of the page-cache pages it maps: file pages' exclusive bits follow.
  if (diffs.some((d) => d.documented === 'fault-around')) {
    for (const d of diffs) if (d.what.endsWith(' file-exclusive')) d.documented = 'fault-around';
    const outcome = diffs.find((d) => d.what === 'outcome');
    if (outcome !== undefined && op !== undefined && introspectionSeesFaultAround(op, model.outcome, kernel.outcome, diffs)) outcome.documented = 'fault-around';
  }
  const outcome = diffs.find((d) => d.what === 'outcome');
  if (outcome !== undefined && outcome.documented === undefined && op?.op === 'mincore' && mincoreSeesTmpfsHole(op, model, kernel)) {
    outcome.documented = 'tmpfs-read-hole';
  }
  return diffs;
}

/** The pages of `pid` that the kernel mapped by fault-around and the model did not map, in this step. */
function faultAroundPages(diffs: readonly Difference[], pid: number): Set<number> {
  const out = new Set<number>();
  for (const d of diffs) {
    const m = /^P(\d+) page (\d+)$/.exec(d.what);
    if (m !== null && d.documented === 'fault-around' && Number(m[1]) === pid) out.add(Number(m[2]));
  }
  return out;
}

/**
 * Whether a pagemap read or PAGEMAP_SCAN outcome differs only through fault-around: the read
 * differs only in entries of fault-around pages (present file pages where the model has
 * none) and in the exclusive bit of file pages; the scan's range holds a fault-around page.
 */
function introspectionSeesFaultAround(op: Op, model: Outcome, kernel: Outcome, diffs: readonly Difference[]): boolean {
  if (model.kind !== 'ok' || kernel.kind !== 'ok') return false;
  if (op.op === 'pagemap_scan') {
    const pages = faultAroundPages(diffs, op.target ?? op.pid);
    return [...pages].some((a) => a >= op.start && a < Math.ceil(op.end));
  }
  if (op.op !== 'pagemap_read') return false;
  const pages = faultAroundPages(diffs, op.target);
  const m = model.values ?? [];
  const k = kernel.values ?? [];
  if (m.length !== k.length || model.value !== kernel.value) return false;
  const fileBits = PM_PRESENT | PM_FILE;
  return m.every((mv, i) => {
    if (mv === k[i]) return true;
    if (pages.has(op.addr + i) && (mv & PM_PRESENT) === 0 && (k[i] & fileBits) === fileBits) return true;
    return (mv & fileBits) === fileBits && (k[i] & fileBits) === fileBits && (mv ^ k[i]) === PM_MMAP_EXCLUSIVE;
  });
}

/**
 * Whether a mincore outcome differs only at unmapped pages of regular-file mappings that the
 * model reports resident and the kernel not (`tmpfs-read-hole`): every other byte agrees.
 */
function mincoreSeesTmpfsHole(op: Extract<Op, { op: 'mincore' }>, model: SeenStep, kernel: SeenStep): boolean {
  const mo = model.outcome;
  const ko = kernel.outcome;
  if (mo.kind !== 'ok' || ko.kind !== 'ok' || mo.value !== ko.value) return false;
  const m = mo.values ?? [];
  const k = ko.values ?? [];
  const proc = kernel.processes.find((p) => p.pid === op.pid);
  if (proc === undefined || m.length !== k.length) return false;
  return m.every((mv, i) => {
    if (mv === k[i]) return true;
    const addr = op.addr + i;
    const map = proc.maps.find((x) => x.start <= addr && addr < x.end);
    return mv === 1 && k[i] === 0 && map !== undefined && map.backing.startsWith('file:') && !(proc.pages.get(addr)?.present ?? false);
  });
}

function compareProcess(m: SeenProcess, k: SeenProcess, softDirty: boolean): Difference[] {
  const diffs: Difference[] = [];
  const P = `P${m.pid}`;
  if (JSON.stringify(m.maps) !== JSON.stringify(k.maps)) diffs.push({ what: `${P} maps`, model: m.maps, kernel: k.maps });
  const addrs = [...new Set([...m.pages.keys(), ...k.pages.keys()])].sort((a, b) => a - b);
  for (const addr of addrs) {
    const mpg = m.pages.get(addr);
    const kpg = k.pages.get(addr);
    if (mpg === undefined || kpg === undefined) {
      const faultAround = mpg === undefined && kpg !== undefined && kpg.present && kpg.file;
      diffs.push({ what: `${P} page ${addr}`, model: mpg ?? null, kernel: kpg ?? null, documented: faultAround ? 'fault-around' : undefined });
      continue;
    }
    const fields: (keyof SeenPage)[] = ['present', 'swapped', 'file', 'exclusive', 'uffdWp', 'marker'];
    if (softDirty) fields.push('softDirty');
    if (mpg.present && kpg.present) fields.push('value');
    for (const f of fields) {
      if (mpg[f] === kpg[f]) continue;
      const what = f === 'exclusive' && mpg.file && kpg.file ? `${P} page ${addr} file-exclusive` : `${P} page ${addr} ${f}`;
      diffs.push({ what, model: mpg[f], kernel: kpg[f] });
    }
  }
  return diffs;
}

/** Compare whole runs: the first undocumented difference ends the comparison. */
export function compareRuns(model: ModelRun, kernel: KernelRun, ops?: readonly Op[]): Verdict {
  const documented = new Set<SimplificationId>();
  let firstDocumented = -1;
  for (let step = 0; step < model.steps.length; step++) {
    const diffs = compareStep(model.steps[step], kernel.steps[step], kernel.softDirty, ops?.[step]);
    const open = diffs.filter((d) => d.documented === undefined);
    if (open.length > 0) return { result: 'diverge', step, differences: diffs, documented: [...documented] };
    for (const d of diffs) {
      documented.add(d.documented!);
      if (firstDocumented < 0) firstDocumented = step;
    }
  }
  return { result: documented.size > 0 ? 'documented' : 'agree', step: firstDocumented, differences: [], documented: [...documented] };
}

export type CheckedTrace = Verdict & {
  /** The model run the verdict judged: with the kernel's empty page-table entries when `pagemap-scan-empty-pte` is among `documented`. */
  model: ModelRun;
  kernel: KernelRun;
  /** The plain model run, when the verdict judged the other one. */
  plainModel?: ModelRun;
};

/**
 * Run a trace through the model and the kernel and judge it. When the kernel lacks a call
 * of the trace, nothing runs and the result is `skipped` with the reason.
 *
 * `pagemap-scan-empty-pte` is recognised exactly: when the plain comparison diverges and
 * the kernel reported empty page-table entries before some PAGEMAP_SCAN, the model is run
 * again walking those entries as the kernel does (model/pagemap.ts). If that run places
 * everything where the plain one did and agrees with the kernel at (and past) the step where
 * the plain run diverged, the difference was that and nothing else.
 */
export function checkTrace(binary: string, ops: readonly Op[], config: Readonly<KernelConfig> = oracleConfig()): CheckedTrace {
  const skipped = unsupportedReason(binary, ops);
  if (skipped !== undefined) {
    const none: ModelRun = { steps: [], lines: [], predictions: [] };
    return { result: 'skipped', step: -1, differences: [], documented: [], skipped, model: none, kernel: { steps: [], softDirty: false, caps: kernelCapabilities(binary).caps } };
  }
  const plain = runModel(ops, config);
  const kernel = runKernel(binary, plain.lines);
  if (plain.crash !== undefined) {
    // The model's own assertion failed where the kernel carried on: a divergence at that step.
    const at = plain.crash.step;
    const differences = [{ what: 'model assertion', model: plain.crash.message, kernel: kernel.steps[at]?.outcome ?? null }];
    return { result: 'diverge', step: at, differences, documented: [], model: plain, kernel };
  }
  if ((config.softDirty !== false) !== kernel.softDirty) {
    throw new Error(`oracle: the model is configured ${config.softDirty !== false ? 'with' : 'without'} soft-dirty, the kernel ${kernel.softDirty ? 'has' : 'lacks'} it`);
  }
  let model = plain;
  let verdict = compareRuns(plain, kernel, ops);
  let plainModel: ModelRun | undefined;
  if (verdict.result === 'diverge' && kernel.steps.some((st) => st.emptyPtes !== undefined && st.emptyPtes.length > 0)) {
    const walked = runModel(ops, config, kernel.steps.map((st) => st.emptyPtes));
    const v = walked.lines.every((l, i) => l === plain.lines[i]) ? compareRuns(walked, kernel, ops) : undefined;
    if (v !== undefined && (v.result !== 'diverge' || v.step > verdict.step)) {
      const documented = [...new Set<SimplificationId>([...v.documented, 'pagemap-scan-empty-pte'])];
      verdict = v.result === 'diverge' ? { ...v, documented } : { ...v, result: 'documented', step: v.step >= 0 ? Math.min(v.step, verdict.step) : verdict.step, documented };
      model = walked;
      plainModel = plain;
    }
  }
  const op = ops[verdict.step];
  const stepDoc = verdict.result === 'diverge' && op !== undefined ? DOCUMENTED_STEPS.find((x) => x.matches(op, verdict.differences)) : undefined;
  if (stepDoc !== undefined) {
    return { ...verdict, result: 'documented', documented: [...new Set([...verdict.documented, stepDoc.id])], model, kernel, plainModel };
  }
  return { ...verdict, model, kernel, plainModel };
}

// ---- generation -------------------------------------------------------------------------

/**
 * The generator's PAGEMAP_SCAN arguments lean to the edges (bad arguments, masks that match
 * nothing); most scans of an oracle trace are made plainer here, so that the kernel's
 * answers carry regions: no mask or one category, the full return mask or PAGE_IS_WRITTEN
 * alone (the kernel's fast path), room for the regions, now and then a write-protect.
 */
function plainerScan(op: Extract<Op, { op: 'pagemap_scan' }>, k: ModelKernel, prng: () => number): Op {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(prng() * xs.length)];
  if (prng() < 0.3) return op;
  const WRITTEN = 2;
  const out: Extract<Op, { op: 'pagemap_scan' }> = {
    ...op, flags: pick([0, 0, 0, 1, 1, 3, 2]), max_pages: pick([0, 0, 0, 1, 3]), category_inverted: pick([0, 0, 0, 0, 8, 2]),
    category_mask: pick([0, 0, 0, WRITTEN, WRITTEN, 8, 1]), category_anyof_mask: pick([0, 0, 0, 0x18]), return_mask: pick([0x1ff, 0x1ff, WRITTEN, 0xe]),
    vec_len: pick([16, 16, 16, 2, 600]),
  };
  delete out.vecNull;
  delete out.size;
  if (prng() < 0.1) {
    out.vecNull = true;
    out.vec_len = 0;
  }
  // Whole-page bounds, mostly over one of the target's VMAs and what follows it.
  const vmas = [...k.inspect.vmas(op.target ?? op.pid)];
  if (vmas.length > 0 && prng() < 0.8) {
    const v = pick(vmas);
    out.start = prng() < 0.6 ? v.start : v.start + Math.floor(prng() * (v.end - v.start));
    out.end = pick([v.end, v.end, v.end + 8, out.start + 1, out.start + 512]);
  } else {
    out.start = Math.floor(op.start);
    out.end = Math.max(out.start + 1, Math.ceil(op.end));
  }
  return out;
}

/** Most userfaultfd registrations of an oracle trace cover a VMA of the process, or part of one, so that scans find write-protect allowed. */
function plainerRegister(op: Extract<Op, { op: 'uffd_register_wp' }>, k: ModelKernel, prng: () => number): Op {
  const vmas = [...k.inspect.vmas(op.pid)];
  if (vmas.length === 0 || prng() < 0.4) return op;
  const v = vmas[Math.floor(prng() * vmas.length)];
  const start = prng() < 0.7 ? v.start : v.start + Math.floor(prng() * (v.end - v.start));
  return { ...op, addr: start, lengthPages: Math.max(1, (prng() < 0.7 ? v.end : v.end + 4) - start) };
}

/** A random trace of the oracle's subset, from the generator of properties/gen.ts with swarm weights. */
export function generateOracleTrace(seed: string, config: Readonly<KernelConfig> = oracleConfig()): Op[] {
  const prng = seedrandom(seed);
  const factors = CORE_KINDS.map((kind) => (ORACLE_OPS.includes(kind) ? Math.floor(prng() * 5) : 0));
  for (const must of ['mmap', 'read', 'write'] as const) {
    const i = CORE_KINDS.indexOf(must);
    factors[i] = Math.max(1, factors[i]);
  }
  const k = new ModelKernel(config);
  const builder = new TraceBuilder(k.inspect, config, [], { factors, hot: prng() < 0.5 });
  const length = 5 + Math.floor(prng() * (ORACLE_STEPS_MAX - 4));
  const ops: Op[] = [];
  for (let attempt = 0; ops.length < length && attempt < length * 4; attempt++) {
    const choices = Array.from({ length: CHOICES_PER_STEP }, () => Math.floor(prng() * 2 ** 31));
    const drawn = builder.next(choices);
    // mlockall(MCL_CURRENT) would lock the replayer's own mappings (SIMPLIFICATIONS.md).
    if (drawn === null || !ORACLE_OPS.includes(drawn.op) || (drawn.op === 'mlockall' && (drawn.flags & MCL_CURRENT) !== 0)) continue;
    const op = drawn.op === 'pagemap_scan' ? plainerScan(drawn, k, prng) : drawn.op === 'uffd_register_wp' ? plainerRegister(drawn, k, prng) : drawn;
    ops.push(op);
    let outcome: Outcome;
    try {
      outcome = k.step(op);
    } catch {
      break; // a model assertion: the trace ends with the step, which checkTrace reports
    }
    builder.learn(op, outcome);
  }
  return ops;
}

// ---- shrinking and repro files -----------------------------------------------------------

/** Remove single operations while the trace still diverges the same way (undocumented, or with the same documented reason). */
export function shrinkDivergence(binary: string, ops: readonly Op[], keep: (v: Verdict) => boolean, replaysMax = 300): Op[] {
  let current = [...ops];
  let replays = 0;
  for (let changed = true; changed && replays < replaysMax; ) {
    changed = false;
    for (let i = current.length - 1; i >= 0 && replays < replaysMax; i--) {
      const candidate = [...current.slice(0, i), ...current.slice(i + 1)];
      if (candidate.length === 0) continue;
      replays += 1;
      const v = checkTrace(binary, candidate);
      if (keep(v)) {
        current = candidate.slice(0, v.step + 1);
        changed = true;
        i = Math.min(i, current.length);
      }
    }
  }
  return current;
}

export type OracleRepro = {
  format: 'mapfuzz-repro/1';
  kernel: 'oracle';
  strategy: 'core';
  invariant: 'differential';
  ops: Op[];
  expect: 'reproduces' | 'passes';
  seed: number;
  title: string;
  documented?: SimplificationId;
};

/** Write a repro to `dir`/<short hash>.json; returns its path. */
export function writeOracleRepro(dir: string, repro: OracleRepro): string {
  const hash = createHash('sha256').update(JSON.stringify(repro.ops)).digest('hex').slice(0, 12);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${hash}.json`);
  writeFileSync(path, JSON.stringify(repro, null, 2) + '\n');
  return path;
}

/**
 * The documented simplifications the corpus at `dir` already has a repro of, each with one
 * such file: an oracle repro's `documented` field, or the reason its title names
 * (`documented (a+b) at …`). A repro of several reasons counts for each.
 */
export function documentedRepros(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return found;
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.json')).sort();
  const byReason: [string, string][] = [];
  for (const f of files) {
    let r: { kernel?: unknown; documented?: unknown; title?: unknown };
    try {
      r = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    } catch {
      continue;
    }
    if (r === null || typeof r !== 'object' || r.kernel !== 'oracle') continue;
    const reason = typeof r.documented === 'string' ? r.documented : typeof r.title === 'string' ? /^documented \(([^)]+)\)/.exec(r.title)?.[1] : undefined;
    if (reason !== undefined) byReason.push([reason, join(dir, f)]);
  }
  // A repro of one simplification alone names it before one of several.
  byReason.sort((a, b) => a[0].split('+').length - b[0].split('+').length);
  for (const [reason, file] of byReason) for (const id of reason.split('+')) if (!found.has(id)) found.set(id, file);
  return found;
}

// ---- the outcome predictor against Linux -------------------------------------------------

/** One step where the predictor (properties/predict.ts) said Linux gives what it did not. */
export type PredictorDisagreement = { ops: Op[]; step: number; message: string };

/**
 * The predictor judged by Linux: each step's prediction (made from the model's state before
 * it) against the kernel's outcome, up to and including the first step where the model and
 * the kernel differ at all (`upTo`; past it the model's state is no longer the kernel's, so
 * neither is the predictor's). A task Linux killed (ESRCH) is not judged.
 */
export function judgePredictions(model: ModelRun, kernel: KernelRun, ops: readonly Op[], upTo: number): { known: number; unknown: number; disagree: PredictorDisagreement[] } {
  const out = { known: 0, unknown: 0, disagree: [] as PredictorDisagreement[] };
  const last = Math.min(upTo < 0 ? model.predictions.length - 1 : upTo, model.predictions.length - 1, kernel.steps.length - 1);
  for (let i = 0; i <= last; i++) {
    const p = model.predictions[i]!;
    if (!p.known) { out.unknown += 1; continue; }
    const o = kernel.steps[i]!.outcome;
    if ((o.kind === 'errno' && o.errno === 'ESRCH') || allows(p.allowed, o)) { out.known += 1; continue; }
    out.disagree.push({ ops: [...ops], step: i, message: `${ops[i]!.op} at step ${i + 1}: predicted ${p.allowed.map((e) => formatExpect(e, ops[i])).join(' or ')} (${reason(p)}), Linux ${formatOutcome(o)}` });
  }
  return out;
}

// ---- the campaign -------------------------------------------------------------------------

export type OracleDivergence = {
  ops: Op[];
  step: number;
  model: { outcome: Outcome | null; differences: Record<string, unknown> };
  kernel: { outcome: Outcome; differences: Record<string, unknown> };
  documented?: string;
  repro?: string;
  /** Documented, and `repro` is the corpus's file of that simplification already: nothing was written. */
  recordedBefore?: boolean;
  /** Replaying the shrunk trace did not diverge again: the kernel side varied between runs. */
  flaky?: boolean;
  /** The id of a KNOWN_MODEL_BUGS entry this divergence matches. */
  knownModelBug?: string;
};

export type OracleReport = {
  runs: number;
  agree: number;
  diverge: number;
  documented: number;
  /** Traces not replayed because the kernel lacks one of their calls (never counted as agreeing). */
  skipped: number;
  /** Skipped traces per reason. */
  skippedBy: Record<string, number>;
  /** Traces per documented simplification. */
  documentedBy: Record<string, number>;
  /** Diverging traces per known model bug id (or per divergence signature when new). */
  divergencesBy: Record<string, number>;
  opsCovered: Record<string, number>;
  divergences: OracleDivergence[];
  /** The outcome predictor's steps judged against Linux: known (and right), unknown, and those it got wrong. */
  predictor: { known: number; unknown: number; disagree: number };
  predictorDisagreements: PredictorDisagreement[];
  seed: number;
  elapsedMs: number;
  /** Why nothing ran: the oracle could not be built here. */
  unavailable?: string;
};

export type OracleOptions = {
  runs?: number;
  timeMs?: number;
  seed: number;
  /** Where shrunk divergences are written; null writes none. Default corpus/kernel. */
  corpusDir?: string | null;
  /**
   * Shrink and report a documented divergence too (one per reason), its repro written only
   * when the corpus has none of that simplification yet. Default true.
   */
  recordDocumented?: boolean;
  /** Run only the trace indexes r with r mod count = index − 1 (a campaign shard's share). */
  shard?: { index: number; count: number };
  onProgress?: (r: OracleReport) => void;
};

function describe(v: Verdict, ops: readonly Op[], model: ModelRun, kernel: KernelRun): OracleDivergence {
  const pick = (side: 'model' | 'kernel') => Object.fromEntries(v.differences.map((d) => [d.what, d[side]]));
  return {
    ops: [...ops], step: v.step,
    model: { outcome: model.steps[v.step]?.outcome ?? null, differences: pick('model') },
    kernel: { outcome: kernel.steps[v.step].outcome, differences: pick('kernel') },
  };
}

/**
 * Replay an oracle repro (corpus/kernel/) on the running kernel and judge it by what it
 * expects: 'reproduces' — the model and the kernel still differ; 'passes' — nothing but a
 * documented simplification separates them. Null when the oracle cannot be built here.
 */
export function replayOracleRepro(ops: readonly Op[], expect: 'reproduces' | 'passes'): { ok: boolean; summary: string } | { unavailable: string } {
  const built = buildOracle();
  if (!built.ok) return { unavailable: built.reason };
  const v = checkTrace(built.binary, ops);
  if (v.result === 'skipped') return { unavailable: v.skipped! };
  const ok = expect === 'passes' ? v.result !== 'diverge' : v.result !== 'agree';
  return { ok, summary: `${v.result}${v.documented.length > 0 ? ` (${v.documented.join(', ')})` : ''} on Linux` };
}

/** The differential property model ↔ kernel over `runs` random traces (or until `timeMs`). */
export function runOracle(opts: OracleOptions): OracleReport {
  const t0 = performance.now();
  const report: OracleReport = {
    runs: 0, agree: 0, diverge: 0, documented: 0, skipped: 0, skippedBy: {}, documentedBy: {}, divergencesBy: {}, opsCovered: {}, divergences: [],
    predictor: { known: 0, unknown: 0, disagree: 0 }, predictorDisagreements: [], seed: opts.seed, elapsedMs: 0,
  };
  const built = buildOracle();
  if (!built.ok) return { ...report, unavailable: built.reason };
  const runsMax = opts.runs ?? (opts.timeMs === undefined ? 100 : Number.MAX_SAFE_INTEGER);
  const corpusDir = opts.corpusDir === undefined ? join(REPO_ROOT, 'corpus', 'kernel') : opts.corpusDir;
  const recorded = new Set<string>();
  // A clean run (nothing undocumented) adds no file to a corpus that already shows each simplification it met.
  const documentedIn = corpusDir === null ? new Map<string, string>() : documentedRepros(corpusDir);
  const shard = opts.shard ?? { index: 1, count: 1 };
  for (let run = shard.index - 1; run < runsMax; run += shard.count) {
    if (opts.timeMs !== undefined && performance.now() - t0 >= opts.timeMs) break;
    const ops = generateOracleTrace(`mapfuzz-oracle:${opts.seed}:${run}`);
    for (const op of ops) report.opsCovered[op.op] = (report.opsCovered[op.op] ?? 0) + 1;
    const v = checkTrace(built.binary, ops);
    report.runs += 1;
    if (v.result !== 'skipped') {
      const j = judgePredictions(v.plainModel ?? v.model, v.kernel, ops, v.step);
      report.predictor.known += j.known;
      report.predictor.unknown += j.unknown;
      report.predictor.disagree += j.disagree.length;
      if (report.predictorDisagreements.length < 10) report.predictorDisagreements.push(...j.disagree.slice(0, 10 - report.predictorDisagreements.length));
    }
    if (v.result === 'skipped') {
      report.skipped += 1;
      report.skippedBy[v.skipped!] = (report.skippedBy[v.skipped!] ?? 0) + 1;
    } else if (v.result === 'agree') report.agree += 1;
    else if (v.result === 'documented') {
      report.documented += 1;
      for (const id of v.documented) report.documentedBy[id] = (report.documentedBy[id] ?? 0) + 1;
      const key = `documented:${v.documented.join('+')}`;
      if (opts.recordDocumented !== false && !recorded.has(key)) {
        recorded.add(key);
        const before = v.documented.map((id) => documentedIn.get(id));
        const shown = before.every((f) => f !== undefined);
        const d = record(built.binary, ops, v, opts.seed, shown ? null : corpusDir);
        if (shown) {
          d.repro = before[0];
          d.recordedBefore = true;
        } else if (d.repro !== undefined && d.flaky !== true) for (const id of v.documented) if (!documentedIn.has(id)) documentedIn.set(id, d.repro);
        report.divergences.push(d);
      }
    } else {
      report.diverge += 1;
      const bug = knownModelBug(ops[v.step], v.differences);
      const key = bug ?? signature(ops[v.step], v.differences);
      report.divergencesBy[key] = (report.divergencesBy[key] ?? 0) + 1;
      // One shrunk repro per kind of divergence: the same flaw found again adds only a count.
      if (!recorded.has(key)) {
        recorded.add(key);
        const d = record(built.binary, ops, v, opts.seed, corpusDir, bug);
        report.divergences.push(d);
      }
    }
    opts.onProgress?.(report);
  }
  report.elapsedMs = Math.round(performance.now() - t0);
  return report;
}

/** What kind of divergence this is, without addresses or values: the operation and what differed. */
function signature(op: Op | undefined, differences: readonly Difference[]): string {
  const what = [...new Set(differences.map((d) => d.what.replace(/P\d+ /, '').replace(/page \d+ ?/, 'page ')))].sort().join('|');
  const o = differences.find((d) => d.what === 'outcome');
  const outcomes = o === undefined ? '' : ` ${formatOutcome(o.model as Outcome)}/${formatOutcome(o.kernel as Outcome)}`;
  return `${op?.op ?? '?'}: ${what}${outcomes}`;
}

/** Shrink a divergent trace, describe it, and write its repro file. */
function record(binary: string, ops: readonly Op[], v: Verdict, seed: number, corpusDir: string | null, bug?: string): OracleDivergence {
  const reason = v.result === 'documented' ? v.documented.join('+') : undefined;
  const keep = (c: Verdict) => (reason === undefined ? c.result === 'diverge' : c.result === 'documented' && c.documented.join('+') === reason);
  let shrunk = shrinkDivergence(binary, ops, keep);
  let final = checkTrace(binary, shrunk);
  let flaky = false;
  if (!keep(final)) {
    // The shrunk trace did not diverge again: the kernel's behaviour varied between runs.
    flaky = true;
    shrunk = [...ops];
    final = checkTrace(binary, shrunk);
  }
  let step = final.step;
  let differences = final.differences;
  if (reason !== undefined) {
    // A documented difference does not stop the comparison: find it again for the report
    // (in the plain model run, when the verdict judged one walking the kernel's empty PTEs).
    const shown = final.plainModel ?? final.model;
    for (let i = 0; i < shown.steps.length; i++) {
      const d = compareStep(shown.steps[i], final.kernel.steps[i], final.kernel.softDirty, shrunk[i]);
      if (d.length > 0) { step = i; differences = d; break; }
    }
  }
  const out = describe({ ...final, step: Math.max(0, step), differences }, shrunk, reason !== undefined ? final.plainModel ?? final.model : final.model, final.kernel);
  if (reason !== undefined) out.documented = reason;
  if (flaky) out.flaky = true;
  if (bug !== undefined) out.knownModelBug = bug;
  if (corpusDir !== null) {
    const what = differences.map((d) => d.what).slice(0, 3).join(', ');
    out.repro = writeOracleRepro(corpusDir, {
      format: 'mapfuzz-repro/1', kernel: 'oracle', strategy: 'core', invariant: 'differential', ops: shrunk,
      expect: 'reproduces', seed,
      title: `${reason !== undefined ? `documented (${reason})` : bug !== undefined ? `model bug ${bug}` : 'model and kernel diverge'} at step ${step + 1} (${shrunk[step]?.op}): ${what}`,
      ...(reason !== undefined ? { documented: reason as SimplificationId } : {}),
    });
  }
  return out;
}
