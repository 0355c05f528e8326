/** The inspection interface over the model's plain state: copies, in arrays, in the defined orders. */
import type { StrategyInstance } from '../kernel-api/driver.ts';
import type { PipeView } from '../kernel-api/pipes.ts';
import type {
  DriverHold, FileView, FrameView, KernelInspect, ProcessView, PteView, SwapSlotView, VmaView,
} from '../kernel-api/state.ts';
import type { Frame, ModelState, Process, Vma } from './types.ts';
import { processesInOrder, runningInOrder } from './process.ts';
import { ptesIn } from './zap.ts';

const byKey = <T>(m: Map<number, T> | undefined): Array<[number, T]> => (m === undefined ? [] : [...m.entries()].sort((a, b) => a[0] - b[0]));

export function frameView(f: Frame): FrameView {
  return {
    pfn: f.pfn, kind: f.kind, refcount: f.refcount, mapcount: f.mapcount, pincount: f.pincount, dirty: f.dirty,
    reserved: f.reserved, anonExclusive: f.anonExclusive, lazyfree: f.lazyfree === true, swapSlot: f.swapSlot, file: f.file, index: f.index, value: f.value,
  };
}

export function vmaView(v: Vma): VmaView {
  return {
    start: v.start, end: v.end, prot: v.prot, shared: v.shared, mayWrite: v.mayWrite, file: v.file, pgoff: v.pgoff,
    pfnmap: v.pfnmap, mixedmap: v.mixedmap, io: v.io, dontcopy: v.dontcopy, dontexpand: v.dontexpand, wipeonfork: v.wipeonfork, locked: v.locked, lockonfault: v.lockonfault,
    driver: v.vmOps?.name ?? '', id: v.id, softDirty: v.softDirty, uffdWp: v.uffdCtx !== 0,
  };
}

const processView = (p: Process): ProcessView =>
  ({ pid: p.pid, ppid: p.ppid, uid: p.uid, dumpable: p.dumpable, state: p.state, oomReaped: p.oomReaped, rss: { ...p.mm.rss } });

export class ModelInspect implements KernelInspect {
  constructor(private readonly s: ModelState, private readonly strategies: Map<string, StrategyInstance>) {}

  get zeroPfn(): number { return this.s.zeroPfn; }

  frames(): Iterable<FrameView> {
    return byKey(this.s.frames).map(([, f]) => frameView(f));
  }

  frame(pfn: number): FrameView | undefined {
    const f = this.s.frames.get(pfn);
    return f === undefined ? undefined : frameView(f);
  }

  processes(): Iterable<ProcessView> {
    return processesInOrder(this.s).map(processView);
  }

  runningProcesses(): Iterable<ProcessView> {
    return runningInOrder(this.s).map(processView);
  }

  process(pid: number): ProcessView | undefined {
    const p = this.s.processes.get(pid);
    return p === undefined ? undefined : processView(p);
  }

  vmas(pid: number): Iterable<VmaView> {
    return (this.s.processes.get(pid)?.mm.vmas ?? []).map(vmaView);
  }

  ptes(pid: number): Iterable<[number, PteView]> {
    const proc = this.s.processes.get(pid);
    if (proc === undefined) return [];
    return ptesIn(proc, 0, Infinity).map((addr): [number, PteView] => [addr, { ...proc.mm.ptes.get(addr)! }]);
  }

  files(): Iterable<FileView> {
    return byKey(this.s.files).map(([, f]) => ({ id: f.id, sizePages: f.sizePages, shmem: f.shmem }));
  }

  pagecache(file: number): Iterable<[number, number]> {
    return byKey(this.s.files.get(file)?.pagecache);
  }

  shmemSwap(file: number): Iterable<[number, number]> {
    return byKey(this.s.files.get(file)?.swapped);
  }

  backing(file: number): Iterable<[number, number]> {
    return byKey(this.s.files.get(file)?.backing);
  }

  swapSlots(): Iterable<SwapSlotView> {
    return byKey(this.s.swap).map(([, e]) => ({ ...e }));
  }

  *driverHolds(): Iterable<DriverHold> {
    for (const name of [...this.strategies.keys()].sort()) yield* this.strategies.get(name)!.holds();
    for (const [pfn, holder] of byKey(this.s.strayHolds)) yield { pfn, holder, pins: 0, refs: 1 };
  }

  pipes(): Iterable<PipeView> {
    return this.s.pipes.views();
  }

  slabObjects(): Iterable<{ id: number; tag: string }> {
    return byKey(this.s.slab).map(([id, tag]) => ({ id, tag }));
  }

  uffdWpMarkers(pid: number): Iterable<number> {
    return [...(this.s.processes.get(pid)?.mm.uffdWpMarkers ?? [])].sort((a, b) => a - b);
  }

  notifierCount(): number {
    return this.s.notifiers.size;
  }

  fds(pid: number): Iterable<{ fd: number; driver: string }> {
    return byKey(this.s.processes.get(pid)?.fds).map(([fd, file]) => ({ fd, driver: file.fop.name }));
  }

  openFdCount(): number {
    let n = 0;
    for (const p of this.s.processes.values()) n += p.fds.size;
    return n;
  }
}
