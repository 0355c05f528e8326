/**
 * The inspection interface over the optimised kernel: views decoded from the packed
 * structures, in the defined orders (processes by pid, VMAs and PTEs by address, frames
 * by pfn, files by id, swap slots by number). A freed pfn is no frame.
 */
import type { StrategyInstance } from '../kernel-api/driver.ts';
import type { PipeView } from '../kernel-api/pipes.ts';
import type {
  DriverHold, FileView, FrameView, KernelInspect, ProcessView, PteView, SwapSlotView, VmaView,
} from '../kernel-api/state.ts';
import type { ImplProcess, ImplState, ImplVma } from './types.ts';
import { F_ANON_EXCLUSIVE, F_DIRTY, F_FREED, F_KIND, F_LAZYFREE, F_RESERVED, KIND_FILE, KIND_NAMES, KIND_SHMEM } from './framepool.ts';
import {
  PTE_DIRTY, PTE_EXCLUSIVE, PTE_PRESENT, PTE_SOFT_DIRTY, PTE_SPECIAL, PTE_UFFD_WP, PTE_WRITE,
} from './pagetable.ts';
import { processesInOrder } from './process.ts';

/** A map's entries in key order; most maps are filled in key order, and are not sorted again. */
function byKey<T>(m: Map<number, T> | undefined): Array<[number, T]> {
  if (m === undefined || m.size === 0) return [];
  const out: Array<[number, T]> = [];
  let sorted = true;
  for (const e of m) {
    if (out.length > 0 && out[out.length - 1][0] > e[0]) sorted = false;
    out.push(e);
  }
  return sorted ? out : out.sort((a, b) => a[0] - b[0]);
}

export function frameView(s: ImplState, pfn: number): FrameView {
  const p = s.pool;
  const f = p.flags[pfn];
  const kind = f & F_KIND;
  const paged = kind === KIND_FILE || kind === KIND_SHMEM;
  return {
    pfn, kind: KIND_NAMES[kind], refcount: p.refcount[pfn], mapcount: p.mapcount[pfn], pincount: p.pins(pfn),
    dirty: (f & F_DIRTY) !== 0, reserved: (f & F_RESERVED) !== 0, anonExclusive: (f & F_ANON_EXCLUSIVE) !== 0,
    lazyfree: (f & F_LAZYFREE) !== 0,
    swapSlot: p.swapSlot(pfn), file: p.file(pfn), index: paged ? p.index[pfn] : -1, value: p.value[pfn],
  };
}

export function vmaView(v: ImplVma): VmaView {
  return {
    start: v.start, end: v.end, prot: v.prot, shared: v.shared, mayWrite: v.mayWrite, file: v.file, pgoff: v.pgoff,
    pfnmap: v.pfnmap, mixedmap: v.mixedmap, io: v.io, dontcopy: v.dontcopy, dontexpand: v.dontexpand, wipeonfork: v.wipeonfork, locked: v.locked, lockonfault: v.lockonfault,
    driver: v.vmOps?.name ?? '', id: v.id, softDirty: v.softDirty, uffdWp: v.uffdCtx !== 0,
  };
}

export function pteView(flags: number, idx: number): PteView {
  if ((flags & PTE_PRESENT) !== 0) {
    return {
      kind: 'present', pfn: idx, write: (flags & PTE_WRITE) !== 0, dirty: (flags & PTE_DIRTY) !== 0,
      softDirty: (flags & PTE_SOFT_DIRTY) !== 0, special: (flags & PTE_SPECIAL) !== 0, uffdWp: (flags & PTE_UFFD_WP) !== 0,
    };
  }
  return { kind: 'swap', slot: idx, exclusive: (flags & PTE_EXCLUSIVE) !== 0, softDirty: (flags & PTE_SOFT_DIRTY) !== 0, uffdWp: (flags & PTE_UFFD_WP) !== 0 };
}

const processView = (p: ImplProcess): ProcessView => ({
  pid: p.pid, ppid: p.ppid, uid: p.uid, dumpable: p.dumpable, state: p.state, oomReaped: p.oomReaped,
  rss: { anon: p.mm.rss.anon, file: p.mm.rss.file, shmem: p.mm.rss.shmem, swap: p.mm.rss.swap },
});

export class ImplInspect implements KernelInspect {
  constructor(private readonly s: ImplState, private readonly strategies: Map<string, StrategyInstance>) {}

  get zeroPfn(): number { return this.s.zeroPfn; }

  frames(): Iterable<FrameView> {
    const pool = this.s.pool;
    const out: FrameView[] = [];
    for (let pfn = 0; pfn < pool.nextPfn; pfn++) if ((pool.flags[pfn] & F_FREED) === 0) out.push(frameView(this.s, pfn));
    return out;
  }

  frame(pfn: number): FrameView | undefined {
    return this.s.pool.isLive(pfn) ? frameView(this.s, pfn) : undefined;
  }

  processes(): Iterable<ProcessView> {
    return processesInOrder(this.s).map(processView);
  }

  runningProcesses(): Iterable<ProcessView> {
    return [...this.s.running].map((pid) => processView(this.s.processes.get(pid)!));
  }

  process(pid: number): ProcessView | undefined {
    const p = this.s.processes.get(pid);
    return p === undefined ? undefined : processView(p);
  }

  vmas(pid: number): Iterable<VmaView> {
    const proc = this.s.processes.get(pid);
    return proc === undefined ? [] : proc.mm.vmas.all().map(vmaView);
  }

  ptes(pid: number): Iterable<[number, PteView]> {
    const proc = this.s.processes.get(pid);
    const out: Array<[number, PteView]> = [];
    if (proc !== undefined) proc.mm.pt.forEach(0, this.s.config.taskSizePages, (addr, flags, idx) => { out.push([addr, pteView(flags, idx)]); });
    return out;
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
    const sw = this.s.swap;
    const out: SwapSlotView[] = [];
    for (let slot = 1; slot < sw.highWater; slot++) {
      if (sw.live[slot] === 1) out.push({ slot, count: sw.count[slot], cachePfn: sw.cachePfn[slot], value: sw.value[slot] });
    }
    return out;
  }

  driverHolds(): Iterable<DriverHold> {
    const out: DriverHold[] = [];
    for (const name of [...this.strategies.keys()].sort()) out.push(...this.strategies.get(name)!.holds());
    for (const [pfn, holder] of byKey(this.s.strayHolds)) out.push({ pfn, holder, pins: 0, refs: 1 });
    return out;
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
