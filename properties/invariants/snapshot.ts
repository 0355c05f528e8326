/**
 * A read-through snapshot of a kernel's inspection interface for the checks of one step.
 * The invariants of a step ask the same questions many times (every process, every frame,
 * every PTE of each process); the kernel does not change between the step and its checks,
 * so each answer is fetched from the kernel once, on first use, and handed out again.
 * It adds no judgement of its own: every view is the kernel's, unchanged.
 */
import type {
  DriverHold, FileView, FrameView, KernelInspect, ProcessView, PteView, SwapSlotView, VmaView,
} from '../../kernel-api/state.ts';

export class InspectSnapshot implements KernelInspect {
  private framesList: FrameView[] | null = null;
  private readonly frameByPfn = new Map<number, FrameView | undefined>();
  private processesList: ProcessView[] | null = null;
  private readonly vmasByPid = new Map<number, VmaView[]>();
  private readonly ptesByPid = new Map<number, Array<[number, PteView]>>();
  private filesList: FileView[] | null = null;
  private readonly pagecacheByFile = new Map<number, Array<[number, number]>>();
  private readonly shmemSwapByFile = new Map<number, Array<[number, number]>>();
  private readonly backingByFile = new Map<number, Array<[number, number]>>();
  private swapSlotsList: SwapSlotView[] | null = null;
  private driverHoldsList: DriverHold[] | null = null;
  private slabList: Array<{ id: number; tag: string }> | null = null;
  private readonly fdsByPid = new Map<number, Array<{ fd: number; driver: string }>>();
  private openFds = -1;
  private notifiers = -1;

  constructor(private readonly k: KernelInspect) {}

  uffdWpMarkers(pid: number): Iterable<number> {
    return this.k.uffdWpMarkers(pid);
  }

  get zeroPfn(): number { return this.k.zeroPfn; }

  frames(): Iterable<FrameView> {
    return (this.framesList ??= [...this.k.frames()]);
  }

  frame(pfn: number): FrameView | undefined {
    if (this.frameByPfn.has(pfn)) return this.frameByPfn.get(pfn);
    const f = this.k.frame(pfn);
    this.frameByPfn.set(pfn, f);
    return f;
  }

  processes(): Iterable<ProcessView> {
    return (this.processesList ??= [...this.k.processes()]);
  }

  vmas(pid: number): Iterable<VmaView> {
    return memo(this.vmasByPid, pid, () => this.k.vmas(pid));
  }

  ptes(pid: number): Iterable<[number, PteView]> {
    return memo(this.ptesByPid, pid, () => this.k.ptes(pid));
  }

  files(): Iterable<FileView> {
    return (this.filesList ??= [...this.k.files()]);
  }

  pagecache(file: number): Iterable<[number, number]> {
    return memo(this.pagecacheByFile, file, () => this.k.pagecache(file));
  }

  shmemSwap(file: number): Iterable<[number, number]> {
    return memo(this.shmemSwapByFile, file, () => this.k.shmemSwap(file));
  }

  backing(file: number): Iterable<[number, number]> {
    return memo(this.backingByFile, file, () => this.k.backing(file));
  }

  swapSlots(): Iterable<SwapSlotView> {
    return (this.swapSlotsList ??= [...this.k.swapSlots()]);
  }

  driverHolds(): Iterable<DriverHold> {
    return (this.driverHoldsList ??= [...this.k.driverHolds()]);
  }

  openFdCount(): number {
    if (this.openFds === -1) this.openFds = this.k.openFdCount();
    return this.openFds;
  }

  fds(pid: number): Iterable<{ fd: number; driver: string }> {
    return memo(this.fdsByPid, pid, () => this.k.fds(pid));
  }

  slabObjects(): Iterable<{ id: number; tag: string }> {
    return (this.slabList ??= [...this.k.slabObjects()]);
  }

  notifierCount(): number {
    if (this.notifiers === -1) this.notifiers = this.k.notifierCount();
    return this.notifiers;
  }
}

function memo<T>(cache: Map<number, T[]>, key: number, fetch: () => Iterable<T>): T[] {
  let list = cache.get(key);
  if (list === undefined) cache.set(key, (list = [...fetch()]));
  return list;
}
