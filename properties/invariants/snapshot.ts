/**
 * A read-through snapshot of a kernel's inspection interface, valid while the kernel
 * stands still. The checks of a step, and the generation of the next operation, ask the
 * same questions many times (every process, every frame, every PTE of each process); each
 * answer is fetched from the kernel once, on first use, and handed out again until the
 * kernel moves and `invalidate()` drops them all. It adds no judgement of its own: every
 * view is the kernel's, unchanged.
 */
import type {
  DriverHold, FileView, FrameView, KernelInspect, ProcessView, PteView, SwapSlotView, VmaView,
} from '../../kernel-api/state.ts';
import type { PipeView } from '../../kernel-api/pipes.ts';

/** Per-key answers (by file id), created on first use: most steps ask few kinds. */
type Memo<T> = Map<number, T[]> | null;

/** What is asked per process (pids are small and dense: an array indexed by pid). */
type PerProcess = { vmas?: VmaView[]; ptes?: Array<[number, PteView]>; fds?: Array<{ fd: number; driver: string }> };

export class InspectSnapshot implements KernelInspect {
  private framesList: FrameView[] | null = null;
  private frameByPfn: Map<number, FrameView | undefined> | null = null;
  private processesList: ProcessView[] | null = null;
  private runningList: ProcessView[] | null = null;
  private byPid: PerProcess[] = [];
  private filesList: FileView[] | null = null;
  private pagecacheByFile: Memo<[number, number]> = null;
  private shmemSwapByFile: Memo<[number, number]> = null;
  private backingByFile: Memo<[number, number]> = null;
  private swapSlotsList: SwapSlotView[] | null = null;
  private driverHoldsList: DriverHold[] | null = null;
  private pipesList: PipeView[] | null = null;
  private slabList: Array<{ id: number; tag: string }> | null = null;
  private openFds = -1;
  private notifiers = -1;

  constructor(private readonly k: KernelInspect) {}

  /** The kernel moved: every answer fetched so far is dropped. */
  invalidate(): void {
    this.framesList = null;
    this.frameByPfn = null;
    this.processesList = null;
    this.runningList = null;
    if (this.byPid.length > 0) this.byPid = [];
    this.filesList = null;
    this.pagecacheByFile = null;
    this.shmemSwapByFile = null;
    this.backingByFile = null;
    this.swapSlotsList = null;
    this.driverHoldsList = null;
    this.pipesList = null;
    this.slabList = null;
    this.openFds = -1;
    this.notifiers = -1;
  }

  uffdWpMarkers(pid: number): Iterable<number> {
    return this.k.uffdWpMarkers(pid);
  }

  get zeroPfn(): number { return this.k.zeroPfn; }

  frames(): Iterable<FrameView> {
    return (this.framesList ??= list(this.k.frames()));
  }

  frame(pfn: number): FrameView | undefined {
    const cache = (this.frameByPfn ??= new Map());
    if (cache.has(pfn)) return cache.get(pfn);
    const f = this.k.frame(pfn);
    cache.set(pfn, f);
    return f;
  }

  processes(): Iterable<ProcessView> {
    return (this.processesList ??= list(this.k.processes()));
  }

  runningProcesses(): Iterable<ProcessView> {
    return (this.runningList ??= list(this.k.runningProcesses()));
  }

  process(pid: number): ProcessView | undefined {
    return this.k.process(pid);
  }

  vmas(pid: number): Iterable<VmaView> {
    const p = this.perProcess(pid);
    return (p.vmas ??= list(this.k.vmas(pid)));
  }

  ptes(pid: number): Iterable<[number, PteView]> {
    const p = this.perProcess(pid);
    return (p.ptes ??= list(this.k.ptes(pid)));
  }

  files(): Iterable<FileView> {
    return (this.filesList ??= list(this.k.files()));
  }

  pagecache(file: number): Iterable<[number, number]> {
    return memo((this.pagecacheByFile ??= new Map()), file, () => this.k.pagecache(file));
  }

  shmemSwap(file: number): Iterable<[number, number]> {
    return memo((this.shmemSwapByFile ??= new Map()), file, () => this.k.shmemSwap(file));
  }

  backing(file: number): Iterable<[number, number]> {
    return memo((this.backingByFile ??= new Map()), file, () => this.k.backing(file));
  }

  swapSlots(): Iterable<SwapSlotView> {
    return (this.swapSlotsList ??= list(this.k.swapSlots()));
  }

  driverHolds(): Iterable<DriverHold> {
    return (this.driverHoldsList ??= list(this.k.driverHolds()));
  }

  pipes(): Iterable<PipeView> {
    return (this.pipesList ??= list(this.k.pipes()));
  }

  openFdCount(): number {
    if (this.openFds === -1) this.openFds = this.k.openFdCount();
    return this.openFds;
  }

  fds(pid: number): Iterable<{ fd: number; driver: string }> {
    const p = this.perProcess(pid);
    return (p.fds ??= list(this.k.fds(pid)));
  }

  slabObjects(): Iterable<{ id: number; tag: string }> {
    return (this.slabList ??= list(this.k.slabObjects()));
  }

  notifierCount(): number {
    if (this.notifiers === -1) this.notifiers = this.k.notifierCount();
    return this.notifiers;
  }

  private perProcess(pid: number): PerProcess {
    // Anything but a small pid (a bad one a test asks about) is fetched, not kept.
    if (!(Number.isSafeInteger(pid) && pid >= 0 && pid < 1 << 16)) return {};
    return (this.byPid[pid] ??= {});
  }
}

/** An answer as an array: the kernels hand out fresh arrays, kept as they are; anything else is copied. */
export function list<T>(fetched: Iterable<T>): T[] {
  return Array.isArray(fetched) ? fetched : [...fetched];
}

function memo<T>(cache: Map<number, T[]>, key: number, fetch: () => Iterable<T>): T[] {
  let kept = cache.get(key);
  if (kept === undefined) cache.set(key, (kept = list(fetch())));
  return kept;
}
