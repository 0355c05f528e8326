/**
 * The frame pool: struct page as a struct of typed arrays indexed by pfn, as the kernel's
 * mem_map is an array of struct page (50 bytes a frame). Past its first 64 Ki frames each
 * field array is laid out as SPARSEMEM_VMEMMAP lays out mem_map (GrowableField below): one
 * virtually contiguous array for all of framesMax, backed by memory only where it is used,
 * so it is never copied again and growing never leaves an old and a new mem_map alive at
 * once. The pool reuses freed pfns through a free list, and keeps a freed frame's last value
 * and a FREED flag so that a stale PTE (a driver bug) still reads what the memory held and
 * is seen as pointing at no live frame.
 */
import type { FrameKind } from '../kernel-api/state.ts';
import { fail } from './assert.ts';

export const KIND_ANON = 0;
export const KIND_FILE = 1;
export const KIND_SHMEM = 2;
export const KIND_DRIVER = 3;
export const KIND_ZERO = 4;
export const KIND_NAMES: readonly FrameKind[] = ['anon', 'file', 'shmem', 'driver', 'zero'];

export const F_KIND = 7;
export const F_DIRTY = 1 << 3;
export const F_RESERVED = 1 << 4;
export const F_ANON_EXCLUSIVE = 1 << 5;
/** The pfn is not a live frame (on the free list or quarantined). */
export const F_FREED = 1 << 6;
/**
 * The pfn number was handed to driver code (or named by a special PTE). Such a frame is
 * quarantined when freed, never reused, so a stale reference keeps seeing its last value.
 */
export const F_EXPOSED = 1 << 7;
/** On the LRU's cold heap (lru step 0) rather than on its list. */
export const F_COLD = 1 << 8;
/** On the LRU list. */
export const F_ON_LRU = 1 << 9;
/** A new anonymous page not yet mapped or in the swap cache: reclaim does not see it (model/types.ts Frame.fresh). */
export const F_FRESH = 1 << 10;
/** MADV_FREE made it lazily free (PG_swapbacked clear): model/types.ts Frame.lazyfree. */
export const F_LAZYFREE = 1 << 11;

const CAPACITY_MIN = 64;
/** The most frames mem_map reserves address space for at once (32 Mi: 1.6 GiB of struct page). */
const RESERVE_MAX = 1 << 25;

type Field = Int32Array | Uint32Array | Uint16Array | Uint8Array | Float64Array;
type FieldCtor<T extends Field> = {
  new (length: number): T;
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
};

/** Entries from which a field array is a reserved linear memory; below, an ordinary array. */
const LINEAR_MIN = 1 << 16;
const WASM_PAGE = 65536;
/** A linear memory's limit: 4 GiB. */
const WASM_PAGES_MAX = 65536;
/** One colour step: a 4 KiB page and a 64-byte cache line. */
const COLOUR_STEP = 4096 + 64;
/** Colours before the offsets repeat, in the cache lines of a page. */
const COLOURS = 64;

/**
 * A field array (per pfn, per rmap entry, per swap slot) that grows without ever holding two
 * large copies, as SPARSEMEM_VMEMMAP's mem_map is one virtually contiguous array whose
 * address space is set up once and backed by memory only where it is used. Below LINEAR_MIN
 * entries it is an ordinary typed array doubled by copying, so a short-lived kernel stays
 * small and quick to create. From there on it is a view of a WebAssembly.Memory spanning
 * `reserve` entries at once: mapped but untouched, its pages take no memory until written,
 * and it never grows (growing a linear memory detaches its old buffer, which would cost every
 * typed-array access in the process a detached check). Past the reservation it moves to one
 * twice the size, copying once. Each field array is given a colour, as the slab allocator
 * colours its slabs: it starts `colour` pages and cache lines into its memory, so that the
 * fields of one frame, at the same index of arrays that would otherwise all be aligned
 * alike, do not all fall into the same cache set and the same TLB set.
 */
export class GrowableField<T extends Field> {
  array: T;

  constructor(private readonly make: FieldCtor<T>, private readonly reserve: number, private readonly colour: number) {
    this.array = new make(0);
  }

  /** The array grown to at least `length` entries, its contents kept and zeros after them. */
  grow(length: number): T {
    const old = this.array;
    const next = length < LINEAR_MIN ? new this.make(length) : this.linear(Math.max(length, this.reserve));
    next.set(old);
    this.array = next;
    return next;
  }

  private linear(length: number): T {
    const bytes = this.make.BYTES_PER_ELEMENT;
    const offset = (this.colour % COLOURS) * COLOUR_STEP;
    const pages = Math.min(WASM_PAGES_MAX, Math.ceil((offset + length * bytes) / WASM_PAGE));
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    return new this.make(memory.buffer, offset, Math.min(length, Math.floor((pages * WASM_PAGE - offset) / bytes)));
  }
}

export class FramePool {
  capacity = 0;
  /** The next never-used pfn; pfns at or above it were never allocated. */
  nextPfn = 0;
  /** Head of the free list (linked through lruNext), or -1. */
  freeHead = -1;
  liveCount = 0;
  /** Allocation sequence number source: the order the model's pfns would have. */
  nextSeq = 1;

  refcount: Int32Array = new Int32Array(0);
  mapcount: Int32Array = new Int32Array(0);
  flags: Uint16Array = new Uint16Array(0);
  /** The page's 32-bit contents (DESIGN.md: each page holds one 32-bit value). */
  value: Uint32Array = new Uint32Array(0);
  /** Anon: swap cache slot, or -1. File/shmem: owning file id, or -1. */
  owner: Int32Array = new Int32Array(0);
  /** Page cache index (file and shmem frames), or -1. */
  index: Int32Array = new Int32Array(0);
  /** LRU age: the step of the last touch; 0 after MADV_COLD. */
  lru: Uint32Array = new Uint32Array(0);
  /** Allocation sequence number: ties in LRU age break by it, oldest first. */
  seq: Uint32Array = new Uint32Array(0);
  lruPrev: Int32Array = new Int32Array(0);
  lruNext: Int32Array = new Int32Array(0);
  /** Head of the frame's rmap chain (rmap.ts), or -1. */
  rmapHead: Int32Array = new Int32Array(0);
  /** The frame's one direct rmap entry (page->pte.direct, rmap.ts), or -1. */
  rmapDirect: Float64Array = new Float64Array(0);
  /** FOLL_PIN counts; sparse, since pins are rare and short-lived. */
  readonly pincount = new Map<number, number>();

  /**
   * The growable arrays behind the fields above, each reserved for framesMax frames (at most
   * RESERVE_MAX): pfns run past framesMax only when many freed frames stay quarantined. Each
   * is registered once with the setter of its field; its colour is its registration order.
   */
  private readonly growables: { field: GrowableField<Field>; set: (a: Field) => void }[] = [];

  constructor(private readonly framesMax: number) {
    const reserve = Math.min(framesMax, RESERVE_MAX);
    const field = <T extends Field>(make: FieldCtor<T>, set: (a: T) => void) => {
      this.growables.push({ field: new GrowableField<Field>(make, reserve, this.growables.length), set: set as (a: Field) => void });
    };
    field(Int32Array, (a) => { this.refcount = a; });
    field(Int32Array, (a) => { this.mapcount = a; });
    field(Uint16Array, (a) => { this.flags = a; });
    field(Uint32Array, (a) => { this.value = a; });
    field(Int32Array, (a) => { this.owner = a; });
    field(Int32Array, (a) => { this.index = a; });
    field(Uint32Array, (a) => { this.lru = a; });
    field(Uint32Array, (a) => { this.seq = a; });
    field(Int32Array, (a) => { this.lruPrev = a; });
    field(Int32Array, (a) => { this.lruNext = a; });
    field(Int32Array, (a) => { this.rmapHead = a; });
    field(Float64Array, (a) => { this.rmapDirect = a; });
    this.grow(CAPACITY_MIN);
  }

  private grow(capacity: number): void {
    for (const g of this.growables) g.set(g.field.grow(capacity));
    // All fields have the same length (the 64-bit one is the first a 4 GiB memory would cap).
    this.capacity = Math.min(this.refcount.length, this.rmapDirect.length);
  }

  /** A pfn for a new frame: the free list first, else a never-used one. Fields are reset. */
  take(kind: number, value: number, step: number): number {
    if (!(this.liveCount < this.framesMax)) fail(`frames exhausted: ${this.liveCount} of framesMax ${this.framesMax}`);
    let pfn = this.freeHead;
    if (pfn !== -1) {
      this.freeHead = this.lruNext[pfn];
    } else {
      if (this.nextPfn === this.capacity) this.grow(this.capacity * 2);
      if (!(this.nextPfn < this.capacity)) fail(`mem_map cannot hold pfn ${this.nextPfn}`);
      pfn = this.nextPfn++;
    }
    if (!(value === value >>> 0)) fail(`frame value ${value} is not a 32-bit unsigned value`);
    if (!(this.nextSeq < 2 ** 32)) fail('allocation sequence numbers exhausted');
    this.refcount[pfn] = 1;
    this.mapcount[pfn] = 0;
    this.flags[pfn] = kind;
    this.value[pfn] = value;
    this.owner[pfn] = -1;
    this.index[pfn] = -1;
    this.lru[pfn] = step;
    this.seq[pfn] = this.nextSeq++;
    this.lruPrev[pfn] = -1;
    this.lruNext[pfn] = -1;
    this.rmapHead[pfn] = -1;
    this.rmapDirect[pfn] = -1;
    this.liveCount += 1;
    return pfn;
  }

  /** Mark a frame freed; an exposed one is quarantined (never reused), others go on the free list. */
  release(pfn: number): void {
    if (!(this.isLive(pfn))) fail(`release of pfn ${pfn} that is not live`);
    this.flags[pfn] |= F_FREED;
    this.liveCount -= 1;
    if ((this.flags[pfn] & F_EXPOSED) !== 0) return;
    this.lruNext[pfn] = this.freeHead;
    this.freeHead = pfn;
  }

  isLive(pfn: number): boolean {
    return Number.isInteger(pfn) && pfn >= 0 && pfn < this.nextPfn && (this.flags[pfn] & F_FREED) === 0;
  }

  /** Ever allocated (live, free or quarantined): its value cell holds what the memory held. */
  wasAllocated(pfn: number): boolean {
    return Number.isInteger(pfn) && pfn >= 0 && pfn < this.nextPfn;
  }

  kind(pfn: number): number {
    return this.flags[pfn] & F_KIND;
  }

  test(pfn: number, flag: number): boolean {
    return (this.flags[pfn] & flag) !== 0;
  }

  setFlag(pfn: number, flag: number, on: boolean): void {
    if (on) this.flags[pfn] |= flag;
    else this.flags[pfn] &= ~flag;
  }

  pins(pfn: number): number {
    return this.pincount.size === 0 ? 0 : this.pincount.get(pfn) ?? 0;
  }

  setPins(pfn: number, pins: number): void {
    if (pins === 0) this.pincount.delete(pfn);
    else this.pincount.set(pfn, pins);
  }

  /** Swap cache slot of an anonymous frame, or -1. */
  swapSlot(pfn: number): number {
    return (this.flags[pfn] & F_KIND) === KIND_ANON ? this.owner[pfn] : -1;
  }

  /** Page cache file of a file or shmem frame, or -1. */
  file(pfn: number): number {
    const kind = this.flags[pfn] & F_KIND;
    return kind === KIND_FILE || kind === KIND_SHMEM ? this.owner[pfn] : -1;
  }
}
