/**
 * The page table: a 4-level radix tree of 9 bits a level (pgd, pud, pmd, pte) over the
 * 36-bit page-number space, as x86-64's 4-level paging. A PTE is packed into a leaf's
 * typed arrays — a 32-bit pfn or swap slot and 8 flag bits — and a table page is freed as
 * soon as its last entry goes (free_pgtables), so a sparse address space costs little.
 */
import { fail } from './assert.ts';

export const PTE_PRESENT = 1;
export const PTE_SWAP = 2;
export const PTE_WRITE = 4;
export const PTE_DIRTY = 8;
export const PTE_SOFT_DIRTY = 16;
export const PTE_SPECIAL = 32;
export const PTE_UFFD_WP = 64;
/** Swap entries only: pte_swp_exclusive. */
export const PTE_EXCLUSIVE = 128;

const FANOUT = 512;
const MASK = 511;
const LEAF_SPAN = 512;
const TOP_SPAN = 2 ** 27;

/** Words of an occupancy bitmap over one table's 512 slots. */
const OCC_WORDS = FANOUT / 32;
/** The bitmap's summary word, after its 16 words: bit w set when word w is not zero. */
const OCC_SUMMARY = OCC_WORDS;

/**
 * A table page. `occ` has bit j set when slot j is in use, and a summary word saying
 * which of its words are not zero, so a walk visits only the populated slots (a sparse
 * table near the top of the address space costs a word or two, not 512 slot reads a level).
 */
type Leaf = { idx: Uint32Array; flags: Uint8Array; occ: Uint32Array; count: number };
type Dir = { slots: Array<Dir | Leaf | null>; occ: Uint32Array; count: number };

/**
 * Freed table pages kept for reuse, as the kernel's per-CPU page-table quicklists did: a
 * table is freed only when empty, so it is all zeros (all nulls) and can be handed out again
 * as is. Allocating typed arrays costs far more than the faults that need them. One per
 * kernel: a table page a bug left referenced after freeing must not reach another kernel of
 * the same thread, or a repro would depend on the runs before it.
 */
const QUICKLIST_MAX = 256;

export class Quicklist {
  private readonly dirs: Dir[] = [];
  private readonly leaves: Leaf[] = [];

  newDir(): Dir {
    return this.dirs.pop() ?? { slots: new Array<Dir | Leaf | null>(FANOUT).fill(null), occ: new Uint32Array(OCC_WORDS + 1), count: 0 };
  }

  newLeaf(): Leaf {
    return this.leaves.pop() ?? { idx: new Uint32Array(FANOUT), flags: new Uint8Array(FANOUT), occ: new Uint32Array(OCC_WORDS + 1), count: 0 };
  }

  freeDir(dir: Dir): void {
    if (!(dir.count === 0)) fail(`page directory freed with ${dir.count} entries`);
    if (this.dirs.length < QUICKLIST_MAX) this.dirs.push(dir);
  }

  freeLeaf(leaf: Leaf): void {
    if (!(leaf.count === 0)) fail(`page table freed with ${leaf.count} entries`);
    if (this.leaves.length < QUICKLIST_MAX) this.leaves.push(leaf);
  }
}

function occSet(occ: Uint32Array, j: number): void {
  occ[j >>> 5] |= 1 << (j & 31);
  occ[OCC_SUMMARY] |= 1 << (j >>> 5);
}
function occClear(occ: Uint32Array, j: number): void {
  if ((occ[j >>> 5] &= ~(1 << (j & 31))) === 0) occ[OCC_SUMMARY] &= ~(1 << (j >>> 5));
}
/** The summary bits of the words that hold slots [from, to]. */
function occWords(occ: Uint32Array, from: number, to: number): number {
  return occ[OCC_SUMMARY] & ((2 << (to >>> 5)) - 1) & ~((1 << (from >>> 5)) - 1);
}
/** Index of the lowest set bit of a non-zero word. */
const lowBit = (bits: number): number => 31 - Math.clz32(bits & -bits);
/** The bits of word `w` for slots in [from, to]. */
function occBits(occ: Uint32Array, w: number, from: number, to: number): number {
  let bits = occ[w];
  const lo = w << 5;
  if (from > lo) bits &= ~0 << (from - lo);
  if (to < lo + 31) bits &= ~0 >>> (31 - (to - lo));
  return bits;
}

export type PteVisitor = (addr: number, flags: number, idx: number) => void;

export class PageTable {
  private readonly root: Dir;
  /** One-entry cache of the last leaf looked up: faults walk neighbouring pages. */
  private cacheBase = -1;
  private cacheLeaf: Leaf | null = null;
  /** PTEs in use. */
  entries = 0;
  /** Table pages in use, the root excluded. */
  tables = 0;

  constructor(private readonly quicklist: Quicklist) {
    this.root = quicklist.newDir();
  }

  private leaf(addr: number, create: boolean): Leaf | null {
    const hi = (addr - (addr & MASK)) / LEAF_SPAN;
    if (hi === this.cacheBase) return this.cacheLeaf;
    if (!(addr >= 0 && hi < FANOUT * FANOUT * FANOUT)) {
      // Nothing is mapped out there (a lookup of a wild address finds no PTE); installing is a bug.
      if (!create) return null;
      fail(`address ${addr} outside the page table`);
    }
    const d1 = this.child(this.root, (hi >>> 18) & MASK, create);
    if (d1 === null) return null;
    const dir = this.child(d1, (hi >>> 9) & MASK, create);
    if (dir === null) return null;
    const j = hi & MASK;
    let leaf = dir.slots[j] as Leaf | null;
    if (leaf === null) {
      if (!create) return null;
      leaf = this.quicklist.newLeaf();
      dir.slots[j] = leaf;
      occSet(dir.occ, j);
      dir.count += 1;
      this.tables += 1;
    }
    this.cacheBase = hi;
    this.cacheLeaf = leaf;
    return leaf;
  }

  private child(dir: Dir, j: number, create: boolean): Dir | null {
    let next = dir.slots[j] as Dir | null;
    if (next === null && create) {
      next = this.quicklist.newDir();
      dir.slots[j] = next;
      occSet(dir.occ, j);
      dir.count += 1;
      this.tables += 1;
    }
    return next;
  }

  /** The PTE's flags; 0 when there is none (pte_none). */
  flags(addr: number): number {
    const leaf = this.leaf(addr, false);
    return leaf === null ? 0 : leaf.flags[addr & MASK];
  }

  /** The pfn of a present PTE or the slot of a swap entry. */
  idx(addr: number): number {
    const leaf = this.leaf(addr, false);
    return leaf === null ? 0 : leaf.idx[addr & MASK];
  }

  /** set_pte_at. */
  set(addr: number, idx: number, flags: number): void {
    if (!(flags !== 0 && (flags & (PTE_PRESENT | PTE_SWAP)) !== 0)) fail(`PTE at ${addr} set with flags ${flags}`);
    if (!(idx >= 0 && idx < 2 ** 32)) fail(`PTE at ${addr} set to index ${idx}`);
    const leaf = this.leaf(addr, true)!;
    const i = addr & MASK;
    if (leaf.flags[i] === 0) {
      occSet(leaf.occ, i);
      leaf.count += 1;
      this.entries += 1;
    }
    leaf.idx[i] = idx;
    leaf.flags[i] = flags;
  }

  /** Change the flags of an existing PTE. */
  setFlags(addr: number, flags: number): void {
    const leaf = this.leaf(addr, false);
    if (!(leaf !== null && leaf.flags[addr & MASK] !== 0 && flags !== 0)) fail(`flag update of a missing PTE at ${addr}`);
    leaf.flags[addr & MASK] = flags;
  }

  /** pte_clear; frees table pages left empty. */
  clear(addr: number): void {
    const leaf = this.leaf(addr, false);
    const i = addr & MASK;
    if (leaf === null || leaf.flags[i] === 0) return;
    leaf.flags[i] = 0;
    leaf.idx[i] = 0;
    occClear(leaf.occ, i);
    leaf.count -= 1;
    this.entries -= 1;
    if (leaf.count === 0) this.freeEmpty(addr);
  }

  /** free_pgtables for the path to `addr`: each table page left with no entry goes. */
  private freeEmpty(addr: number): void {
    const hi = (addr - (addr & MASK)) / LEAF_SPAN;
    const d1 = this.root.slots[(hi >>> 18) & MASK] as Dir;
    const d2 = d1.slots[(hi >>> 9) & MASK] as Dir;
    this.quicklist.freeLeaf(d2.slots[hi & MASK] as Leaf);
    d2.slots[hi & MASK] = null;
    occClear(d2.occ, hi & MASK);
    d2.count -= 1;
    this.tables -= 1;
    if (hi === this.cacheBase) {
      this.cacheBase = -1;
      this.cacheLeaf = null;
    }
    if (d2.count > 0) return;
    this.quicklist.freeDir(d2);
    d1.slots[(hi >>> 9) & MASK] = null;
    occClear(d1.occ, (hi >>> 9) & MASK);
    d1.count -= 1;
    this.tables -= 1;
    if (d1.count > 0) return;
    this.quicklist.freeDir(d1);
    this.root.slots[(hi >>> 18) & MASK] = null;
    occClear(this.root.occ, (hi >>> 18) & MASK);
    this.root.count -= 1;
    this.tables -= 1;
  }

  /**
   * Visit every PTE in [start, end) in address order. The visitor may clear the PTE it is
   * given (or others already visited); it must not install PTEs in the range.
   */
  forEach(start: number, end: number, visit: PteVisitor): void {
    if (start >= end || this.root.count === 0) return;
    this.walkDir(this.root, 0, TOP_SPAN, Math.max(0, start), end, visit);
  }

  /** Addresses of the PTEs in [start, end), in order: a snapshot for callers that install. */
  collect(start: number, end: number): number[] {
    const out: number[] = [];
    this.forEach(start, end, (addr) => { out.push(addr); });
    return out;
  }

  private walkDir(dir: Dir, base: number, span: number, start: number, end: number, visit: PteVisitor): void {
    const first = start > base ? Math.floor((start - base) / span) : 0;
    const last = Math.min(MASK, Math.floor((end - 1 - base) / span));
    for (let words = occWords(dir.occ, first, last); words !== 0; words &= words - 1) {
      const w = lowBit(words);
      let bits = occBits(dir.occ, w, first, last);
      while (bits !== 0) {
        const j = (w << 5) + lowBit(bits);
        bits &= bits - 1;
        const child = dir.slots[j];
        if (child === null) continue; // freed by the visitor meanwhile
        const childBase = base + j * span;
        if (span === LEAF_SPAN) this.walkLeaf(child as Leaf, childBase, start, end, visit);
        else this.walkDir(child as Dir, childBase, span / FANOUT, start, end, visit);
      }
    }
  }

  private walkLeaf(leaf: Leaf, base: number, start: number, end: number, visit: PteVisitor): void {
    const from = Math.max(0, start - base);
    const to = Math.min(LEAF_SPAN, end - base) - 1;
    const flags = leaf.flags;
    const idx = leaf.idx;
    for (let words = occWords(leaf.occ, from, to); words !== 0; words &= words - 1) {
      const w = lowBit(words);
      let bits = occBits(leaf.occ, w, from, to);
      while (bits !== 0) {
        const i = (w << 5) + lowBit(bits);
        bits &= bits - 1;
        const f = flags[i];
        if (f === 0) continue; // cleared by the visitor meanwhile
        visit(base + i, f, idx[i]);
      }
    }
  }
}
