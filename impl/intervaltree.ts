/**
 * The interval tree of one mm's MMU interval notifiers (mm/mmu_notifier.c keeps them in an
 * interval_tree): a treap keyed by (start, id) with each subtree's largest end, so an
 * invalidation finds the notifiers it overlaps in (start, id) order without scanning all.
 */
import { fail } from './assert.ts';

export type IntervalNode<T> = {
  start: number;
  end: number;
  id: number;
  item: T;
  left: IntervalNode<T> | null;
  right: IntervalNode<T> | null;
  prio: number;
  maxEnd: number;
};

const before = <T>(a: IntervalNode<T>, start: number, id: number) => a.start < start || (a.start === start && a.id < id);

export class IntervalTree<T> {
  private root: IntervalNode<T> | null = null;
  private seed = 0x1b873593;
  size = 0;

  private random(): number {
    let x = this.seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.seed = x >>> 0;
    return this.seed;
  }

  private pull(n: IntervalNode<T>): void {
    n.maxEnd = Math.max(n.end, n.left?.maxEnd ?? -Infinity, n.right?.maxEnd ?? -Infinity);
  }

  private split(t: IntervalNode<T> | null, start: number, id: number): [IntervalNode<T> | null, IntervalNode<T> | null] {
    if (t === null) return [null, null];
    if (before(t, start, id)) {
      const [a, b] = this.split(t.right, start, id);
      t.right = a;
      this.pull(t);
      return [t, b];
    }
    const [a, b] = this.split(t.left, start, id);
    t.left = b;
    this.pull(t);
    return [a, t];
  }

  private merge(a: IntervalNode<T> | null, b: IntervalNode<T> | null): IntervalNode<T> | null {
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

  insert(start: number, end: number, id: number, item: T): void {
    const node: IntervalNode<T> = { start, end, id, item, left: null, right: null, prio: this.random(), maxEnd: end };
    const [a, b] = this.split(this.root, start, id);
    this.root = this.merge(this.merge(a, node), b);
    this.size += 1;
  }

  remove(start: number, id: number): void {
    const [a, bc] = this.split(this.root, start, id);
    const [b, c] = this.split(bc, start, id + 1);
    if (!(b !== null && b.id === id && b.left === null && b.right === null)) fail(`interval ${id} is not in the tree`);
    this.root = this.merge(a, c);
    this.size -= 1;
  }

  /** Items whose [start, end) overlaps [start, end), in (start, id) order. */
  overlapping(start: number, end: number): T[] {
    const out: T[] = [];
    this.collect(this.root, start, end, out);
    return out;
  }

  private collect(n: IntervalNode<T> | null, start: number, end: number, out: T[]): void {
    if (n === null || n.maxEnd <= start) return;
    this.collect(n.left, start, end, out);
    if (n.start >= end) return;
    if (n.end > start) out.push(n.item);
    this.collect(n.right, start, end, out);
  }
}
