/**
 * The reverse map: for each frame, the (mm, address) pairs whose normal PTE maps it, as
 * Linux 2.5's per-page pte_chain did before anon_vma and i_mmap took over. It answers
 * try_to_unmap's question — every PTE of this frame — without scanning any mm. As in 2.5
 * (PG_direct, page->pte.direct), one mapping is held in the frame itself (pool.rmapDirect),
 * packed into one number: pid · 2^36 + page address, exact while pid < 2^17 (else that
 * mapping goes on the chain); further ones are chained. A page mapped once costs 8 bytes,
 * not a 16-byte chain entry. Chain entries live in field arrays laid out like mem_map
 * (GrowableField: past 64 Ki entries reserved once, never copied again) and are recycled
 * through a free list.
 */
import type { FramePool } from './framepool.ts';
import { GrowableField } from './framepool.ts';
import { assert } from './assert.ts';

/** Page addresses are below 2^36 (the page table's reach): the direct word's low part. */
const ADDR_SPAN = 2 ** 36;
const DIRECT_PID_LIMIT = 2 ** 17;
/** Chain entries reserved up front (address space only): one per frame of the default framesMax. */
const RESERVE = 1 << 22;

/** The direct word for (pid, addr), or -1 when it does not fit exactly in 53 bits. */
const directKey = (pid: number, addr: number): number =>
  pid >= 0 && pid < DIRECT_PID_LIMIT && addr >= 0 && addr < ADDR_SPAN ? pid * ADDR_SPAN + addr : -1;

export class Rmap {
  private capacity = 0;
  private freeHead = -1;
  private used = 0;
  private pid: Int32Array = new Int32Array(0);
  private addr: Float64Array = new Float64Array(0);
  private next: Int32Array = new Int32Array(0);
  private readonly pidF = new GrowableField(Int32Array, RESERVE, 12);
  private readonly addrF = new GrowableField(Float64Array, RESERVE, 13);
  private readonly nextF = new GrowableField(Int32Array, RESERVE, 14);

  constructor(private readonly pool: FramePool) {
    this.grow(64);
  }

  private grow(want: number): void {
    this.pid = this.pidF.grow(want);
    this.addr = this.addrF.grow(want);
    this.next = this.nextF.grow(want);
    const capacity = Math.min(this.pid.length, this.addr.length);
    const next = this.next;
    for (let e = capacity - 1; e >= this.capacity; e--) {
      next[e] = this.freeHead;
      this.freeHead = e;
    }
    this.capacity = capacity;
  }

  /** page_add_*_rmap: the PTE at (pid, addr) now maps `pfn`. */
  add(pfn: number, pid: number, addr: number): void {
    this.used += 1;
    const pool = this.pool;
    if (pool.rmapDirect[pfn] === -1 && pid >= 0 && pid < DIRECT_PID_LIMIT && addr >= 0 && addr < ADDR_SPAN) {
      pool.rmapDirect[pfn] = pid * ADDR_SPAN + addr; // as directKey(pid, addr)
      return;
    }
    if (this.freeHead === -1) this.grow(this.capacity * 2);
    const e = this.freeHead;
    this.freeHead = this.next[e];
    this.pid[e] = pid;
    this.addr[e] = addr;
    this.next[e] = pool.rmapHead[pfn];
    pool.rmapHead[pfn] = e;
  }

  /** page_remove_rmap: the PTE at (pid, addr) no longer maps `pfn`. */
  remove(pfn: number, pid: number, addr: number): void {
    const pool = this.pool;
    const direct = pool.rmapDirect[pfn];
    if (direct !== -1 && direct === directKey(pid, addr)) {
      // The chain's head, if it fits, takes the frame's slot (a forked page back to one mm).
      const head = pool.rmapHead[pfn];
      const key = head === -1 ? -1 : directKey(this.pid[head], this.addr[head]);
      pool.rmapDirect[pfn] = key;
      if (key !== -1) {
        pool.rmapHead[pfn] = this.next[head];
        this.next[head] = this.freeHead;
        this.freeHead = head;
      }
      this.used -= 1;
      return;
    }
    let prev = -1;
    for (let e = pool.rmapHead[pfn]; e !== -1; prev = e, e = this.next[e]) {
      if (this.pid[e] !== pid || this.addr[e] !== addr) continue;
      if (prev === -1) pool.rmapHead[pfn] = this.next[e];
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
    const direct = this.pool.rmapDirect[pfn];
    if (direct !== -1 && direct === directKey(pid, from)) {
      const key = directKey(pid, to);
      if (key !== -1) {
        this.pool.rmapDirect[pfn] = key;
      } else {
        this.pool.rmapDirect[pfn] = -1;
        this.used -= 1;
        this.add(pfn, pid, to); // does not fit the frame's word: chained
      }
      return;
    }
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
    const direct = this.pool.rmapDirect[pfn];
    if (direct !== -1) {
      const pid = Math.floor(direct / ADDR_SPAN);
      found.push([pid, direct - pid * ADDR_SPAN]);
    }
    for (let e = this.pool.rmapHead[pfn]; e !== -1; e = this.next[e]) found.push([this.pid[e], this.addr[e]]);
    if (found.length > 1) found.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    return found;
  }

  /** Whether the PTE at (pid, addr) is among `pfn`'s mappings. */
  has(pfn: number, pid: number, addr: number): boolean {
    const direct = this.pool.rmapDirect[pfn];
    if (direct !== -1 && direct === directKey(pid, addr)) return true;
    for (let e = this.pool.rmapHead[pfn]; e !== -1; e = this.next[e]) if (this.pid[e] === pid && this.addr[e] === addr) return true;
    return false;
  }

  get entries(): number {
    return this.used;
  }
}
