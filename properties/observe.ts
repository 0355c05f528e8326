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
  const running = [...k.runningProcesses()];
  const still = new Set(running.map((p) => p.pid));
  const exited: ProcessView[] = [];
  for (const pid of runningBefore) {
    if (still.has(pid)) continue;
    const p = k.process(pid);
    if (p !== undefined) exited.push(p);
  }
  if (exited.length === 0) return observeProcesses(k, running);
  return observeProcesses(k, [...running, ...exited].sort((x, y) => x.pid - y.pid));
}

/** The pids of an observation's running processes: what observeLive takes as `runningBefore` next. */
export function runningPids(o: Observation): number[] {
  return o.processes.filter((p) => p.state === 'running').map((p) => p.pid);
}

function observeProcesses(k: KernelInspect, procs: Iterable<ProcessView>): Observation {
  const canonical = new Map<number, number>([[k.zeroPfn, 0]]);
  const swapByslot = new Map<number, { cachePfn: number; value: number }>();
  for (const slot of k.swapSlots()) swapByslot.set(slot.slot, slot);
  const processes: ProcessObservation[] = [];
  for (const p of procs) {
    const pages: PageObservation[] = [];
    for (const [addr, pte] of k.ptes(p.pid)) pages.push(pageObservation(k, canonical, swapByslot, addr, pte));
    processes.push({
      pid: p.pid, state: p.state, maps: vmaMaps(k.vmas(p.pid)), pages,
      rss: [p.rss.anon, p.rss.file, p.rss.shmem, p.rss.swap],
    });
  }
  let framesInUse = 0;
  for (const f of k.frames()) if (f.kind !== 'zero') framesInUse += 1;
  return { processes, framesInUse, swapSlotsInUse: swapByslot.size };
}

function pageObservation(
  k: KernelInspect, canonical: Map<number, number>, swap: Map<number, { cachePfn: number; value: number }>,
  addr: number, pte: PteView,
): PageObservation {
  if (pte.kind === 'swap') {
    const slot = swap.get(pte.slot);
    const cached = slot !== undefined && slot.cachePfn !== -1 ? k.frame(slot.cachePfn) : undefined;
    return { addr, value: cached?.value ?? slot?.value, present: false, swapped: true, file: false, exclusive: false, softDirty: pte.softDirty };
  }
  if (!canonical.has(pte.pfn)) canonical.set(pte.pfn, canonical.size);
  const frame = k.frame(pte.pfn);
  const obs: PageObservation = { addr, value: frame?.value, present: true, swapped: false, file: false, exclusive: false, softDirty: pte.softDirty, frame: canonical.get(pte.pfn) };
  if (frame === undefined || pte.pfn === k.zeroPfn) return obs;
  obs.refcount = frame.refcount;
  obs.mapcount = frame.mapcount;
  if (pte.special) return obs; // vm_normal_page() is NULL: no FILE, no EXCLUSIVE bit
  obs.file = frame.kind !== 'anon';
  obs.exclusive = frame.mapcount === 1;
  return obs;
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
