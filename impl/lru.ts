/**
 * The LRU (mm/vmscan.c's lruvec lists, reduced to one list): frames ordered by last touch,
 * oldest first, ties broken by allocation order as the model's (step, pfn) sort does.
 * A touch moves a frame to the young end; MADV_COLD (age 0) moves it to a cold heap
 * ordered by allocation sequence, which reclaim drains before the list.
 */
import type { FramePool } from './framepool.ts';
import { F_COLD, F_FREED, F_ON_LRU } from './framepool.ts';
import { fail } from './assert.ts';

export class Lru {
  private head = -1;
  private tail = -1;
  /** Binary min-heap of (seq, pfn) for cold frames; entries go stale lazily. */
  private heapSeq: number[] = [];
  private heapPfn: number[] = [];
  private coldCount = 0;

  constructor(private readonly pool: FramePool) {}

  /** A new frame of an LRU kind joins at the age the pool gave it. */
  add(pfn: number): void {
    if (this.pool.lru[pfn] === 0) this.pushCold(pfn);
    else this.insertYoung(pfn);
  }

  /** mark_page_accessed: the frame's age becomes `step`. */
  touch(pfn: number, step: number): void {
    const p = this.pool;
    if (p.lru[pfn] === step && (p.flags[pfn] & (F_ON_LRU | F_COLD)) !== 0) return;
    this.unlink(pfn);
    p.lru[pfn] = step;
    if (step === 0) this.pushCold(pfn);
    else this.insertYoung(pfn);
  }

  /** Off the LRU (the frame is freed). */
  del(pfn: number): void {
    this.unlink(pfn);
  }

  private unlink(pfn: number): void {
    const p = this.pool;
    if ((p.flags[pfn] & F_COLD) !== 0) {
      p.flags[pfn] &= ~F_COLD;
      this.coldCount -= 1;
      return;
    }
    if ((p.flags[pfn] & F_ON_LRU) === 0) return;
    const prev = p.lruPrev[pfn];
    const next = p.lruNext[pfn];
    if (prev === -1) this.head = next; else p.lruNext[prev] = next;
    if (next === -1) this.tail = prev; else p.lruPrev[next] = prev;
    p.lruPrev[pfn] = -1;
    p.lruNext[pfn] = -1;
    p.flags[pfn] &= ~F_ON_LRU;
  }

  /** Insert by (lru, seq) walking back from the young end: the frame's age is the newest or near it. */
  private insertYoung(pfn: number): void {
    const p = this.pool;
    const age = p.lru[pfn];
    const seq = p.seq[pfn];
    let after = this.tail;
    while (after !== -1 && (p.lru[after] > age || (p.lru[after] === age && p.seq[after] > seq))) after = p.lruPrev[after];
    const before = after === -1 ? this.head : p.lruNext[after];
    p.lruPrev[pfn] = after;
    p.lruNext[pfn] = before;
    if (after === -1) this.head = pfn; else p.lruNext[after] = pfn;
    if (before === -1) this.tail = pfn; else p.lruPrev[before] = pfn;
    p.flags[pfn] |= F_ON_LRU;
  }

  private pushCold(pfn: number): void {
    const p = this.pool;
    p.flags[pfn] |= F_COLD;
    this.coldCount += 1;
    if (this.heapSeq.length > 2 * this.coldCount + 64) this.rebuildHeap();
    this.heapPush(p.seq[pfn], pfn);
  }

  private coldValid(seq: number, pfn: number): boolean {
    const p = this.pool;
    return (p.flags[pfn] & (F_COLD | F_FREED)) === F_COLD && p.seq[pfn] === seq;
  }

  private rebuildHeap(): void {
    const seqs = this.heapSeq;
    const pfns = this.heapPfn;
    this.heapSeq = [];
    this.heapPfn = [];
    const seen = new Set<number>();
    for (let i = 0; i < seqs.length; i++) {
      if (this.coldValid(seqs[i], pfns[i]) && !seen.has(pfns[i])) {
        seen.add(pfns[i]);
        this.heapPush(seqs[i], pfns[i]);
      }
    }
  }

  /**
   * The `count` oldest frames for which `eligible` holds, oldest first, as (pfn, seq)
   * pairs so the caller can tell a frame freed and reused meanwhile.
   */
  oldest(count: number, eligible: (pfn: number) => boolean): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    const popped: Array<[number, number]> = [];
    while (out.length < count && this.heapSeq.length > 0) {
      const [seq, pfn] = this.heapPop();
      if (!this.coldValid(seq, pfn)) continue;
      const last = popped.at(-1);
      if (last !== undefined && last[0] === pfn && last[1] === seq) continue; // a duplicate entry
      popped.push([pfn, seq]);
      if (eligible(pfn)) out.push([pfn, seq]);
    }
    for (const [pfn, seq] of popped) this.heapPush(seq, pfn);
    const p = this.pool;
    for (let pfn = this.head; pfn !== -1 && out.length < count; pfn = p.lruNext[pfn]) {
      if (eligible(pfn)) out.push([pfn, p.seq[pfn]]);
    }
    return out;
  }

  private heapPush(seq: number, pfn: number): void {
    const s = this.heapSeq;
    const f = this.heapPfn;
    let i = s.length;
    s.push(seq);
    f.push(pfn);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (s[parent] <= seq) break;
      s[i] = s[parent];
      f[i] = f[parent];
      i = parent;
    }
    s[i] = seq;
    f[i] = pfn;
  }

  private heapPop(): [number, number] {
    const s = this.heapSeq;
    const f = this.heapPfn;
    if (!(s.length > 0)) fail('pop of an empty cold heap');
    const top: [number, number] = [s[0], f[0]];
    const lastSeq = s.pop()!;
    const lastPfn = f.pop()!;
    if (s.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= s.length) break;
        const c = l + 1 < s.length && s[l + 1] < s[l] ? l + 1 : l;
        if (s[c] >= lastSeq) break;
        s[i] = s[c];
        f[i] = f[c];
        i = c;
      }
      s[i] = lastSeq;
      f[i] = lastPfn;
    }
    return top;
  }
}
