/**
 * The VMA index of one mm: a treap keyed by vm_start, augmented with each subtree's first
 * start, last end and largest gap between neighbours — the maple tree's roles of O(log n)
 * lookup, insertion and removal, and of the gap tracking that lets get_unmapped_area find
 * the highest free gap without walking every VMA. Priorities come from a fixed-seed
 * xorshift, so the shape is deterministic.
 */
import { assert, fail } from './assert.ts';

/** The fields a VMA carries for the tree (intrusive, as vm_area_struct's maple node slot). */
export interface TreeVma {
  start: number;
  end: number;
  left: this | null;
  right: this | null;
  prio: number;
  firstStart: number;
  lastEnd: number;
  maxGap: number;
}

export class VmaTree<V extends TreeVma> {
  private root: V | null = null;
  private seed = 0x2545f491;
  size = 0;

  private random(): number {
    let x = this.seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.seed = x >>> 0;
    return this.seed;
  }

  private pull(n: V): void {
    const l = n.left;
    const r = n.right;
    n.firstStart = l === null ? n.start : l.firstStart;
    n.lastEnd = r === null ? n.end : r.lastEnd;
    let gap = 0;
    if (l !== null) gap = Math.max(l.maxGap, n.start - l.lastEnd);
    if (r !== null) gap = Math.max(gap, r.maxGap, r.firstStart - n.end);
    n.maxGap = gap;
  }

  /** Split into keys < key and keys >= key. */
  private split(t: V | null, key: number): [V | null, V | null] {
    if (t === null) return [null, null];
    if (t.start < key) {
      const [a, b] = this.split(t.right, key);
      t.right = a;
      this.pull(t);
      return [t, b];
    }
    const [a, b] = this.split(t.left, key);
    t.left = b;
    this.pull(t);
    return [a, t];
  }

  private merge(a: V | null, b: V | null): V | null {
    if (a === null) return b;
    if (b === null) return a;
    if (a.prio > b.prio) {
      a.right = this.merge(a.right, b);
      this.pull(a);
      return a;
    }
    b.left = this.merge(a, b.left);
    this.pull(b);
    return b;
  }

  insert(v: V): void {
    if (!(v.start < v.end)) fail(`empty VMA [${v.start}, ${v.end})`);
    const prev = this.prevOf(v.start);
    const next = this.find(v.start);
    if (prev !== null) assert(prev.end <= v.start, `VMA [${v.start}, ${v.end}) overlaps its predecessor`);
    if (next !== null) assert(next.start >= v.end, `VMA [${v.start}, ${v.end}) overlaps its successor`);
    v.prio = this.random();
    v.left = null;
    v.right = null;
    this.pull(v);
    const [a, b] = this.split(this.root, v.start);
    this.root = this.merge(this.merge(a, v), b);
    this.size += 1;
  }

  remove(v: V): void {
    const [a, bc] = this.split(this.root, v.start);
    const [b, c] = this.split(bc, v.start + 1);
    if (!(b === v && v.left === null && v.right === null)) fail(`VMA [${v.start}, ${v.end}) is not in the tree`);
    this.root = this.merge(a, c);
    this.size -= 1;
  }

  /** Recompute the augmentation after `v.end` changed in place (vm_end moves on split and merge). */
  updated(v: V): void {
    const path: V[] = [];
    for (let n = this.root; n !== null; n = v.start < n.start ? n.left : n.right) {
      path.push(n);
      if (n === v) break;
    }
    if (!(path.at(-1) === v)) fail(`VMA [${v.start}, ${v.end}) is not in the tree`);
    for (let i = path.length - 1; i >= 0; i--) this.pull(path[i]);
  }

  has(v: V): boolean {
    let n = this.root;
    while (n !== null && n !== v) n = v.start < n.start ? n.left : n.right;
    return n === v;
  }

  /** find_vma: the first VMA with end > addr. */
  find(addr: number): V | null {
    let best: V | null = null;
    for (let n = this.root; n !== null;) {
      if (n.end > addr) {
        best = n;
        n = n.left;
      } else {
        n = n.right;
      }
    }
    return best;
  }

  /** vma_lookup: the VMA containing addr. */
  lookup(addr: number): V | null {
    const v = this.find(addr);
    return v !== null && v.start <= addr ? v : null;
  }

  /** The last VMA starting below `key`. */
  prevOf(key: number): V | null {
    let best: V | null = null;
    for (let n = this.root; n !== null;) {
      if (n.start < key) {
        best = n;
        n = n.right;
      } else {
        n = n.left;
      }
    }
    return best;
  }

  /** The first VMA starting above `key`. */
  nextOf(key: number): V | null {
    let best: V | null = null;
    for (let n = this.root; n !== null;) {
      if (n.start > key) {
        best = n;
        n = n.left;
      } else {
        n = n.right;
      }
    }
    return best;
  }

  /** VMAs overlapping [start, end), in address order. */
  inRange(start: number, end: number): V[] {
    const out: V[] = [];
    this.collectRange(this.root, start, end, out);
    return out;
  }

  private collectRange(n: V | null, start: number, end: number, out: V[]): void {
    if (n === null || n.lastEnd <= start) return;
    if (n.left !== null && n.left.lastEnd > start) this.collectRange(n.left, start, end, out);
    if (n.start >= end) return;
    if (n.end > start) out.push(n);
    this.collectRange(n.right, start, end, out);
  }

  /** Every VMA in address order. */
  all(): V[] {
    const out: V[] = [];
    this.collectAll(this.root, out);
    return out;
  }

  private collectAll(n: V | null, out: V[]): void {
    if (n === null) return;
    this.collectAll(n.left, out);
    out.push(n);
    this.collectAll(n.right, out);
  }

  /**
   * vm_unmapped_area top-down: the highest `len`-page gap in [low, high), placed against
   * its upper end (the next VMA's start or `high`). Null when there is none.
   */
  unmappedAreaTopDown(low: number, high: number, len: number): number | null {
    const top = this.prevOf(high);
    if (top === null) return high - low >= len ? high - len : null;
    if (high - top.end >= len) return high - len;
    const w = this.rightmostGap(this.root, low, high, len);
    return w === null ? null : w.start - len;
  }

  /** The rightmost VMA starting below `limit` whose gap to its predecessor (or `predEnd`) is >= len. */
  private rightmostGap(n: V | null, predEnd: number, limit: number, len: number): V | null {
    if (n === null || Math.max(n.firstStart - predEnd, n.maxGap) < len) return null;
    if (n.start < limit) {
      const r = this.rightmostGap(n.right, n.end, limit, len);
      if (r !== null) return r;
      const gap = n.start - (n.left === null ? predEnd : n.left.lastEnd);
      if (gap >= len) return n;
    }
    return this.rightmostGap(n.left, predEnd, limit, len);
  }
}
