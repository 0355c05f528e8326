/**
 * Swap slots (mm/swapfile.c's swap_map plus the swap cache's back pointer), as a struct of
 * typed arrays indexed by slot: the use count, the pfn of the swap cache frame and the
 * value written out. Freed slots are reused through a free list, as scan_swap_map does.
 */
import { fail } from './assert.ts';

export class SwapMap {
  private capacity = 0;
  /** Slots ever handed out are [1, highWater). */
  highWater = 1;
  private free: number[] = [];
  liveCount = 0;
  count = new Int32Array(0);
  cachePfn = new Int32Array(0);
  value = new Uint32Array(0);
  live = new Uint8Array(0);

  constructor() {
    this.grow(1024);
  }

  private grow(capacity: number): void {
    const count = new Int32Array(capacity);
    const cachePfn = new Int32Array(capacity);
    const value = new Uint32Array(capacity);
    const live = new Uint8Array(capacity);
    count.set(this.count);
    cachePfn.set(this.cachePfn);
    value.set(this.value);
    live.set(this.live);
    this.count = count;
    this.cachePfn = cachePfn;
    this.value = value;
    this.live = live;
    this.capacity = capacity;
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
