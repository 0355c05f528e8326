/**
 * The reverse map: for each frame, a chain of the (mm, address) pairs whose normal PTE maps
 * it, as Linux 2.5's per-page pte_chain did before anon_vma and i_mmap took over. It
 * answers try_to_unmap's question — every PTE of this frame — without scanning any mm.
 * Entries live in a typed-array pool that grows by doubling and recycles through a free list.
 */
import type { FramePool } from './framepool.ts';
import { assert } from './assert.ts';

export class Rmap {
  private capacity = 0;
  private freeHead = -1;
  private used = 0;
  private pid = new Int32Array(0);
  private addr = new Float64Array(0);
  private next = new Int32Array(0);

  constructor(private readonly pool: FramePool) {
    this.grow(1024);
  }

  private grow(capacity: number): void {
    const pid = new Int32Array(capacity);
    const addr = new Float64Array(capacity);
    const next = new Int32Array(capacity);
    pid.set(this.pid);
    addr.set(this.addr);
    next.set(this.next);
    for (let e = capacity - 1; e >= this.capacity; e--) {
      next[e] = this.freeHead;
      this.freeHead = e;
    }
    this.pid = pid;
    this.addr = addr;
    this.next = next;
    this.capacity = capacity;
  }

  /** page_add_*_rmap: the PTE at (pid, addr) now maps `pfn`. */
  add(pfn: number, pid: number, addr: number): void {
    if (this.freeHead === -1) this.grow(this.capacity * 2);
    const e = this.freeHead;
    this.freeHead = this.next[e];
    this.pid[e] = pid;
    this.addr[e] = addr;
    this.next[e] = this.pool.rmapHead[pfn];
    this.pool.rmapHead[pfn] = e;
    this.used += 1;
  }

  /** page_remove_rmap: the PTE at (pid, addr) no longer maps `pfn`. */
  remove(pfn: number, pid: number, addr: number): void {
    let prev = -1;
    for (let e = this.pool.rmapHead[pfn]; e !== -1; prev = e, e = this.next[e]) {
      if (this.pid[e] !== pid || this.addr[e] !== addr) continue;
      if (prev === -1) this.pool.rmapHead[pfn] = this.next[e];
      else this.next[prev] = this.next[e];
      this.next[e] = this.freeHead;
      this.freeHead = e;
      this.used -= 1;
      return;
    }
    assert(false, `rmap of pfn ${pfn} has no entry for P${pid} at ${addr}`, 'mapcount');
  }

  /** move_ptes: the mapping at (pid, from) moved to (pid, to). */
  move(pfn: number, pid: number, from: number, to: number): void {
    for (let e = this.pool.rmapHead[pfn]; e !== -1; e = this.next[e]) {
      if (this.pid[e] === pid && this.addr[e] === from) {
        this.addr[e] = to;
        return;
      }
    }
    assert(false, `rmap of pfn ${pfn} has no entry for P${pid} at ${from}`, 'mapcount');
  }

  /** Every (pid, addr) mapping `pfn`, in pid then address order (the model's walk order). */
  walk(pfn: number): Array<[number, number]> {
    const found: Array<[number, number]> = [];
    for (let e = this.pool.rmapHead[pfn]; e !== -1; e = this.next[e]) found.push([this.pid[e], this.addr[e]]);
    if (found.length > 1) found.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    return found;
  }

  get entries(): number {
    return this.used;
  }
}
