/**
 * Swap slots (mm/swapfile.c's swap_map plus the swap cache's back pointer), as a struct of
 * typed arrays indexed by slot: the use count, the pfn of the swap cache frame and the
 * value written out. Freed slots are reused through a free list, as scan_swap_map does.
 * Past 64 Ki slots the arrays are reserved once for 4 Mi slots and never copied again
 * (GrowableField), much as swap_map is sized once at swapon.
 */
import { fail } from './assert.ts';
import { GrowableField } from './framepool.ts';

/** Slots reserved up front (address space only): the default swapSlotsMax. */
const RESERVE = 1 << 22;

export class SwapMap {
  private capacity = 0;
  /** Slots ever handed out are [1, highWater). */
  highWater = 1;
  private free: number[] = [];
  liveCount = 0;
  count: Int32Array = new Int32Array(0);
  cachePfn: Int32Array = new Int32Array(0);
  value: Uint32Array = new Uint32Array(0);
  live: Uint8Array = new Uint8Array(0);
  private readonly countF = new GrowableField(Int32Array, RESERVE, 15);
  private readonly cachePfnF = new GrowableField(Int32Array, RESERVE, 16);
  private readonly valueF = new GrowableField(Uint32Array, RESERVE, 17);
  private readonly liveF = new GrowableField(Uint8Array, RESERVE, 18);

  constructor() {
    this.grow(64);
  }

  private grow(capacity: number): void {
    this.count = this.countF.grow(capacity);
    this.cachePfn = this.cachePfnF.grow(capacity);
    this.value = this.valueF.grow(capacity);
    this.live = this.liveF.grow(capacity);
    this.capacity = Math.min(this.count.length, this.live.length);
  }

  alloc(value: number): number {
    let slot = this.free.pop();
    if (slot === undefined) {
      if (this.highWater === this.capacity) this.grow(this.capacity * 2);
      slot = this.highWater++;
    }
    this.count[slot] = 0;
    this.cachePfn[slot] = -1;
    this.value[slot] = value;
    this.live[slot] = 1;
    this.liveCount += 1;
    return slot;
  }

  release(slot: number): void {
    if (!(this.isLive(slot))) fail(`swap slot ${slot} freed twice`);
    this.live[slot] = 0;
    this.liveCount -= 1;
    this.free.push(slot);
  }

  isLive(slot: number): boolean {
    return Number.isInteger(slot) && slot > 0 && slot < this.highWater && this.live[slot] === 1;
  }
}
