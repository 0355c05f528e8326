/**
 * The frame pool: struct page as a struct of typed arrays indexed by pfn, as the kernel's
 * mem_map is an array of struct page. It grows by doubling, reuses freed pfns through a
 * free list, and keeps a freed frame's last value and a FREED flag so that a stale PTE
 * (a driver bug) still reads what the memory held and is seen as pointing at no live frame.
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

const CAPACITY_MIN = 1024;

export class FramePool {
  capacity = 0;
  /** The next never-used pfn; pfns at or above it were never allocated. */
  nextPfn = 0;
  /** Head of the free list (linked through lruNext), or -1. */
  freeHead = -1;
  liveCount = 0;
  /** Allocation sequence number source: the order the model's pfns would have. */
  nextSeq = 1;

  refcount = new Int32Array(0);
  mapcount = new Int32Array(0);
  flags = new Uint16Array(0);
  /** The page's 32-bit contents (DESIGN.md: each page holds one 32-bit value). */
  value = new Uint32Array(0);
  /** Anon: swap cache slot, or -1. File/shmem: owning file id, or -1. */
  owner = new Int32Array(0);
  /** Page cache index (file and shmem frames), or -1. */
  index = new Int32Array(0);
  /** LRU age: the step of the last touch; 0 after MADV_COLD. */
  lru = new Uint32Array(0);
  /** Allocation sequence number: ties in LRU age break by it, oldest first. */
  seq = new Uint32Array(0);
  lruPrev = new Int32Array(0);
  lruNext = new Int32Array(0);
  /** Head of the frame's rmap chain (rmap.ts), or -1. */
  rmapHead = new Int32Array(0);
  /** FOLL_PIN counts; sparse, since pins are rare and short-lived. */
  readonly pincount = new Map<number, number>();

  constructor(private readonly framesMax: number) {
    this.grow(CAPACITY_MIN);
  }

  private grow(capacity: number): void {
    const copy = <T extends Int32Array | Uint16Array | Uint32Array | Float64Array>(old: T, make: (n: number) => T): T => {
      const next = make(capacity);
      next.set(old);
      return next;
    };
    this.refcount = copy(this.refcount, (n) => new Int32Array(n));
    this.mapcount = copy(this.mapcount, (n) => new Int32Array(n));
    this.flags = copy(this.flags, (n) => new Uint16Array(n));
    this.value = copy(this.value, (n) => new Uint32Array(n));
    this.owner = copy(this.owner, (n) => new Int32Array(n));
    this.index = copy(this.index, (n) => new Int32Array(n));
    this.lru = copy(this.lru, (n) => new Uint32Array(n));
    this.seq = copy(this.seq, (n) => new Uint32Array(n));
    this.lruPrev = copy(this.lruPrev, (n) => new Int32Array(n));
    this.lruNext = copy(this.lruNext, (n) => new Int32Array(n));
    this.rmapHead = copy(this.rmapHead, (n) => new Int32Array(n));
    this.capacity = capacity;
  }

  /** A pfn for a new frame: the free list first, else a never-used one. Fields are reset. */
  take(kind: number, value: number, step: number): number {
    if (!(this.liveCount < this.framesMax)) fail(`frames exhausted: ${this.liveCount} of framesMax ${this.framesMax}`);
    let pfn = this.freeHead;
    if (pfn !== -1) {
      this.freeHead = this.lruNext[pfn];
    } else {
      if (this.nextPfn === this.capacity) this.grow(this.capacity * 2);
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
