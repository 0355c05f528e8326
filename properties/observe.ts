/**
 * observe(): what user space could see of the machine, independent of how a kernel is
 * built (DESIGN.md, "Observation"). Maps are one range per VMA, as /proc/<pid>/maps
 * lists them (a split or a merge shows), pagemap bits follow
 * fs/proc/task_mmu.c pte_to_pagemap_entry, and frames are renamed canonically by first
 * appearance in pid-then-address order (the zero page is frame 0).
 */
import type { KernelInspect, ProcessView, PteView, VmaView } from '../kernel-api/state.ts';
import type { MapRange, Observation, PageObservation, ProcessObservation } from '../kernel-api/observation.ts';
import { PROT_EXEC, PROT_READ, PROT_WRITE } from '../kernel-api/op.ts';
import { SHMEM_ID_BASE } from '../kernel-api/state.ts';

export function permsOf(v: VmaView): string {
  return `${v.prot & PROT_READ ? 'r' : '-'}${v.prot & PROT_WRITE ? 'w' : '-'}${v.prot & PROT_EXEC ? 'x' : '-'}${v.shared ? 's' : 'p'}`;
}

export function backingOf(v: VmaView): string {
  if (v.driver !== '') return `drv:${v.driver}`;
  if (v.file === -1) return 'anon';
  return v.file >= SHMEM_ID_BASE ? `shmem:${v.file - SHMEM_ID_BASE}` : `file:${v.file}`;
}

/** One range per VMA, uncoalesced, as /proc/<pid>/maps shows them (a split shows as two lines). */
export function vmaMaps(vmas: Iterable<VmaView>): MapRange[] {
  const out: MapRange[] = [];
  for (const v of vmas) out.push({ start: v.start, end: v.end, perms: permsOf(v), backing: backingOf(v) });
  return out;
}

export function observe(k: KernelInspect): Observation {
  return observeProcesses(k, k.processes());
}

/**
 * What can still change: every running process, and each of `runningBefore` (the pids
 * running before the step) that exited in it — the one step in which an exited process is
 * observed. After exit_mmap an exited process has no VMA, no PTE and no fd left, and
 * nothing can reach its mm again: every system call and get_task_mm take running processes
 * only, rmap and the file mappings list only live mappings, and a driver mapping into a
 * VMA of an exited process is a kernel assertion in both kernels (vmaToFill). So what it
 * showed when it exited it shows for ever; observing it again each step would make a step
 * cost as much as the processes ever created (a long trace of fork and exit, quadratic).
 * Frames are named by first appearance over the processes observed.
 */
export function observeLive(k: KernelInspect, runningBefore: readonly number[]): Observation {
  return observeProcesses(k, liveProcesses(k, runningBefore));
}

/** The processes observeLive observes: the running ones, and those of `runningBefore` that exited since, by pid. */
function liveProcesses(k: KernelInspect, runningBefore: readonly number[]): ProcessView[] {
  const running = [...k.runningProcesses()];
  const still = new Set(running.map((p) => p.pid));
  const exited: ProcessView[] = [];
  for (const pid of runningBefore) {
    if (still.has(pid)) continue;
    const p = k.process(pid);
    if (p !== undefined) exited.push(p);
  }
  if (exited.length === 0) return running;
  return [...running, ...exited].sort((x, y) => x.pid - y.pid);
}

/** The pids of an observation's running processes: what observeLive takes as `runningBefore` next. */
export function runningPids(o: Observation): number[] {
  return o.processes.filter((p) => p.state === 'running').map((p) => p.pid);
}

type SwapByslot = Map<number, { cachePfn: number; value: number }>;

function swapSlotsOf(k: KernelInspect): SwapByslot {
  const swapByslot: SwapByslot = new Map();
  for (const slot of k.swapSlots()) swapByslot.set(slot.slot, slot);
  return swapByslot;
}

function framesInUseOf(k: KernelInspect): number {
  let framesInUse = 0;
  for (const f of k.frames()) if (f.kind !== 'zero') framesInUse += 1;
  return framesInUse;
}

function observeProcesses(k: KernelInspect, procs: Iterable<ProcessView>): Observation {
  const canonical = new Map<number, number>([[k.zeroPfn, 0]]);
  const swapByslot = swapSlotsOf(k);
  const processes: ProcessObservation[] = [];
  for (const p of procs) {
    const pages: PageObservation[] = [];
    for (const [addr, pte] of k.ptes(p.pid)) pages.push(fillPage(emptyPage(), k, canonical, swapByslot, addr, pte));
    processes.push({
      pid: p.pid, state: p.state, maps: vmaMaps(k.vmas(p.pid)), pages,
      rss: [p.rss.anon, p.rss.file, p.rss.shmem, p.rss.swap],
    });
  }
  return { processes, framesInUse: framesInUseOf(k), swapSlotsInUse: swapByslot.size };
}

const emptyPage = (): PageObservation => ({ addr: 0, present: false, swapped: false, file: false, exclusive: false, softDirty: false });

/** `obs`, every field written (a reused one keeps nothing of its last page), as pagemap shows the PTE at `addr`. */
function fillPage(obs: PageObservation, k: KernelInspect, canonical: Map<number, number>, swap: SwapByslot, addr: number, pte: PteView): PageObservation {
  obs.addr = addr;
  obs.softDirty = pte.softDirty;
  obs.file = false;
  obs.exclusive = false;
  obs.frame = undefined;
  obs.refcount = undefined;
  obs.mapcount = undefined;
  if (pte.kind === 'swap') {
    const slot = swap.get(pte.slot);
    const cached = slot !== undefined && slot.cachePfn !== -1 ? k.frame(slot.cachePfn) : undefined;
    obs.value = cached?.value ?? slot?.value;
    obs.present = false;
    obs.swapped = true;
    return obs;
  }
  let frameNo = canonical.get(pte.pfn);
  if (frameNo === undefined) canonical.set(pte.pfn, (frameNo = canonical.size));
  const frame = k.frame(pte.pfn);
  obs.value = frame?.value;
  obs.present = true;
  obs.swapped = false;
  obs.frame = frameNo;
  if (frame === undefined || pte.pfn === k.zeroPfn) return obs;
  obs.refcount = frame.refcount;
  obs.mapcount = frame.mapcount;
  if (pte.special) return obs; // vm_normal_page() is NULL: no FILE, no EXCLUSIVE bit
  obs.file = frame.kind !== 'anon';
  obs.exclusive = frame.mapcount === 1;
  return obs;
}

/**
 * observationsEqual(observeLive(a, before), observeLive(b, before)) without building either
 * observation: both kernels walked side by side, each page written into one reused object per
 * side. The running pids of `a` when they are equal (runningPids of its observation), else
 * null. A diff campaign compares after every step, and building the two observations (an
 * object per page, two strings per VMA) cost it about a tenth of its time.
 * test/properties/observe-equal.test.ts checks it agrees with observationsEqual.
 */
export function liveObservationsEqual(a: KernelInspect, b: KernelInspect, runningBefore: readonly number[]): number[] | null {
  const pa = liveProcesses(a, runningBefore);
  const pb = liveProcesses(b, runningBefore);
  if (pa.length !== pb.length) return null;
  const swapA = swapSlotsOf(a);
  const swapB = swapSlotsOf(b);
  if (swapA.size !== swapB.size || framesInUseOf(a) !== framesInUseOf(b)) return null;
  const canonA = new Map<number, number>([[a.zeroPfn, 0]]);
  const canonB = new Map<number, number>([[b.zeroPfn, 0]]);
  const x = emptyPage();
  const y = emptyPage();
  const running: number[] = [];
  for (let i = 0; i < pa.length; i++) {
    const p = pa[i]!;
    const q = pb[i]!;
    if (p.pid !== q.pid || p.state !== q.state) return null;
    if (p.rss.anon !== q.rss.anon || p.rss.file !== q.rss.file || p.rss.shmem !== q.rss.shmem || p.rss.swap !== q.rss.swap) return null;
    if (!sameInStep(a.vmas(p.pid), b.vmas(q.pid), sameMapLine)) return null;
    // The comparison passed inline: an anonymous closure (one bound to a name would be an
    // Object.defineProperty per process and step, tsx's keepNames naming it).
    if (!sameInStep(a.ptes(p.pid), b.ptes(q.pid), (m, n) => pageEqual(fillPage(x, a, canonA, swapA, m[0], m[1]), fillPage(y, b, canonB, swapB, n[0], n[1])))) return null;
    if (p.state === 'running') running.push(p.pid);
  }
  return running;
}

/** Two sequences of the same length, equal element by element (`same`), walked side by side. */
function sameInStep<T>(xs: Iterable<T>, ys: Iterable<T>, same: (x: T, y: T) => boolean): boolean {
  const a = xs[Symbol.iterator]();
  const b = ys[Symbol.iterator]();
  for (;;) {
    const m = a.next();
    const n = b.next();
    if (m.done === true || n.done === true) return m.done === n.done;
    if (!same(m.value, n.value)) return false;
  }
}

/** The same /proc/<pid>/maps line (mapEqual of vmaMaps' ranges), with no string built. */
const PERMS = PROT_READ | PROT_WRITE | PROT_EXEC;
function sameMapLine(v: VmaView, w: VmaView): boolean {
  if (v.start !== w.start || v.end !== w.end || (v.prot & PERMS) !== (w.prot & PERMS) || v.shared !== w.shared) return false;
  if (v.driver !== w.driver) return false;
  return v.driver !== '' || v.file === w.file; // backingOf: drv:<name>, else anon / file:<id> / shmem:<id>
}

/**
 * Two observations equal as JSON (how DESIGN.md compares them), field by field: serialising
 * both at every step cost a diff campaign more than its two kernel steps. An optional field
 * left undefined equals one left out, as in JSON. test/properties/observe-equal.test.ts
 * changes every field of a real observation and expects each change to be seen.
 */
export function observationsEqual(a: Observation, b: Observation): boolean {
  if (a.framesInUse !== b.framesInUse || a.swapSlotsInUse !== b.swapSlotsInUse || a.processes.length !== b.processes.length) return false;
  for (let i = 0; i < a.processes.length; i++) if (!processEqual(a.processes[i], b.processes[i])) return false;
  return true;
}

function processEqual(p: ProcessObservation, q: ProcessObservation): boolean {
  if (p.pid !== q.pid || p.state !== q.state || p.maps.length !== q.maps.length || p.pages.length !== q.pages.length) return false;
  for (let i = 0; i < p.rss.length; i++) if (p.rss[i] !== q.rss[i]) return false;
  for (let i = 0; i < p.maps.length; i++) if (!mapEqual(p.maps[i], q.maps[i])) return false;
  for (let i = 0; i < p.pages.length; i++) if (!pageEqual(p.pages[i], q.pages[i])) return false;
  return true;
}

const mapEqual = (m: MapRange, n: MapRange): boolean =>
  m.start === n.start && m.end === n.end && m.perms === n.perms && m.backing === n.backing;

const pageEqual = (x: PageObservation, y: PageObservation): boolean =>
  x.addr === y.addr && x.value === y.value && x.present === y.present && x.swapped === y.swapped && x.file === y.file &&
  x.exclusive === y.exclusive && x.softDirty === y.softDirty && x.frame === y.frame && x.refcount === y.refcount && x.mapcount === y.mapcount;
