/**
 * Helpers for the model's scenario tests: a thin driver over ModelKernel that unwraps
 * outcomes, reads state through `k.inspect`, recomputes the counters the kernel keeps
 * (refcount, mapcount, RSS, swap counts) after every step, and checks that nothing leaks
 * once every process has exited.
 */
import { expect } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { PROT_READ, PROT_WRITE } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import type { FrameView, ProcessView, PteView, SwapSlotView, VmaView } from '../../kernel-api/state.ts';
import type { KernelConfig } from '../../kernel-api/config.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { ModelKernel } from '../../model/kernel.ts';
import { ModelDriverKernel } from '../../model/driverapi.ts';

export const RW = PROT_READ | PROT_WRITE;
export const RO = PROT_READ;

export const okv = (value = 0): Outcome => ({ kind: 'ok', value });

export class Scenario {
  readonly k: ModelKernel;
  /** References the test itself holds through the driver API (FOLL_GET): pfn → count. */
  private readonly heldRefs = new Map<number, number>();
  private driverKernel: ModelDriverKernel | undefined;

  constructor(config: Partial<KernelConfig> = {}) {
    this.k = new ModelKernel({ ...DEFAULT_CONFIG, ...config });
  }

  /** One step, then the recomputed counters must agree with the kernel's. */
  step(op: Op): Outcome {
    const outcome = this.k.step(op);
    checkCounters(this.k, this.heldRefs);
    return outcome;
  }

  /** A step that must succeed; returns its value. */
  ok(op: Op): number {
    const outcome = this.step(op);
    expect(outcome, JSON.stringify(op)).toMatchObject({ kind: 'ok' });
    return (outcome as { value: number }).value;
  }

  spawn(uid?: number): number {
    return this.ok(uid === undefined ? { op: 'spawn' } : { op: 'spawn', uid });
  }

  anon(pid: number, lengthPages: number, opts: { prot?: number; shared?: boolean; addr?: number } = {}): number {
    const fixed = opts.addr !== undefined;
    return this.ok({
      op: 'mmap', pid, addr: opts.addr ?? 0, lengthPages, prot: opts.prot ?? RW, shared: opts.shared ?? false, fixed,
    });
  }

  mapFile(pid: number, file: number, lengthPages: number, opts: { prot?: number; shared: boolean; pgoff?: number; mode?: 'r' | 'rw' }): number {
    return this.ok({
      op: 'mmap', pid, addr: 0, lengthPages, prot: opts.prot ?? RW, shared: opts.shared, file, pgoff: opts.pgoff ?? 0, mode: opts.mode,
    });
  }

  read(pid: number, addr: number): Outcome {
    return this.step({ op: 'read', pid, addr });
  }

  write(pid: number, addr: number, value: number): Outcome {
    return this.step({ op: 'write', pid, addr, value });
  }

  pte(pid: number, addr: number): PteView | undefined {
    for (const [a, pte] of this.k.inspect.ptes(pid)) if (a === addr) return pte;
    return undefined;
  }

  /** The pfn a present PTE maps (the test fails otherwise). */
  pfnAt(pid: number, addr: number): number {
    const pte = this.pte(pid, addr);
    expect(pte?.kind, `PTE of P${pid} at ${addr}`).toBe('present');
    return (pte as Extract<PteView, { kind: 'present' }>).pfn;
  }

  frameAt(pid: number, addr: number): FrameView {
    return this.frame(this.pfnAt(pid, addr))!;
  }

  frame(pfn: number): FrameView | undefined {
    return this.k.inspect.frame(pfn);
  }

  vmas(pid: number): VmaView[] {
    return [...this.k.inspect.vmas(pid)];
  }

  proc(pid: number): ProcessView {
    const p = [...this.k.inspect.processes()].find((v) => v.pid === pid);
    expect(p).toBeDefined();
    return p!;
  }

  slots(): SwapSlotView[] {
    return [...this.k.inspect.swapSlots()];
  }

  pagecache(file: number): Array<[number, number]> {
    return [...this.k.inspect.pagecache(file)];
  }

  /** The driver API over this kernel's state, for GUP and pins. */
  get driver(): ModelDriverKernel {
    this.driverKernel ??= new ModelDriverKernel(this.k.state);
    return this.driverKernel;
  }

  /** GUP is called with the target's mmap_lock held for read (mmap_assert_locked). */
  private underMmapReadLock<T>(pid: number, f: (mm: ReturnType<ModelDriverKernel['get_task_mm']> & object) => T): T {
    const mm = this.driver.get_task_mm(pid)!;
    this.driver.mmap_read_lock(mm);
    try {
      return f(mm);
    } finally {
      this.driver.mmap_read_unlock(mm);
    }
  }

  /** pin_user_pages_remote of one page; the test holds the pin until unpin(). */
  pin(pid: number, addr: number, gupFlags: number): number {
    const pfn = this.underMmapReadLock(pid, (mm) => this.driver.pin_user_pages_remote(mm, addr, gupFlags));
    expect(typeof pfn).toBe('number');
    checkCounters(this.k, this.heldRefs);
    return pfn as number;
  }

  unpin(pfn: number): void {
    this.driver.unpin_user_page(pfn);
    checkCounters(this.k, this.heldRefs);
  }

  /** get_user_pages_remote of one page; the test holds the reference until put(). */
  gup(pid: number, addr: number, gupFlags: number): number {
    const pfn = this.underMmapReadLock(pid, (mm) => this.driver.get_user_pages_remote(mm, addr, gupFlags));
    expect(typeof pfn).toBe('number');
    this.heldRefs.set(pfn as number, (this.heldRefs.get(pfn as number) ?? 0) + 1);
    checkCounters(this.k, this.heldRefs);
    return pfn as number;
  }

  put(pfn: number): void {
    const held = this.heldRefs.get(pfn) ?? 0;
    expect(held).toBeGreaterThan(0);
    if (held === 1) this.heldRefs.delete(pfn);
    else this.heldRefs.set(pfn, held - 1);
    this.driver.put_page(pfn);
    checkCounters(this.k, this.heldRefs);
  }

  /**
   * Every running process exits, the page cache of regular files is dropped (as
   * drop_caches would, writing back what is dirty), and then no frame but the zero page
   * and no swap slot may remain.
   */
  exitAllAndExpectNoLeak(): void {
    expect(this.heldRefs.size, 'the test still holds page references').toBe(0);
    for (const p of [...this.k.inspect.processes()]) {
      if (p.state === 'running') this.ok({ op: 'exit', pid: p.pid });
    }
    for (const p of this.k.inspect.processes()) expect(p.rss, `rss of exited P${p.pid}`).toEqual({ anon: 0, file: 0, shmem: 0, swap: 0 });
    for (const f of this.k.inspect.frames()) {
      if (f.pfn === this.k.inspect.zeroPfn) continue;
      // Only a regular file's page cache may outlive its mappers, holding its one reference.
      expect(f.kind, `pfn ${f.pfn} left after exit`).toBe('file');
      expect(f.refcount, `page cache pfn ${f.pfn}`).toBe(1);
      expect(f.mapcount).toBe(0);
    }
    this.ok({ op: 'reclaim', count: [...this.k.inspect.frames()].length });
    expect([...this.k.inspect.frames()].map((f) => f.pfn), 'frames left').toEqual([this.k.inspect.zeroPfn]);
    expect(this.slots(), 'swap slots left').toEqual([]);
    expect([...this.k.inspect.files()].filter((f) => f.shmem), 'shmem objects left').toEqual([]);
    expect(this.k.inspect.openFdCount()).toBe(0);
  }
}

/**
 * Recompute what the kernel counts and compare: mapcount from normal PTEs, refcount from
 * the references that can be named (mappings, pins, page cache, swap cache, the test's own
 * FOLL_GET references), RSS counters from the page tables, swap counts from swap PTEs and
 * shmem swap entries.
 */
export function checkCounters(k: ModelKernel, heldRefs: ReadonlyMap<number, number> = new Map()): void {
  const i = k.inspect;
  const mapped = new Map<number, number>();
  const slotUsers = new Map<number, number>();
  for (const p of i.processes()) {
    const rss = { anon: 0, file: 0, shmem: 0, swap: 0 };
    for (const [addr, pte] of i.ptes(p.pid)) {
      if (pte.kind === 'swap') {
        rss.swap += 1;
        slotUsers.set(pte.slot, (slotUsers.get(pte.slot) ?? 0) + 1);
        continue;
      }
      if (pte.special) continue;
      const f = i.frame(pte.pfn);
      expect(f, `P${p.pid} at ${addr} maps freed pfn ${pte.pfn}`).toBeDefined();
      mapped.set(pte.pfn, (mapped.get(pte.pfn) ?? 0) + 1);
      rss[f!.kind === 'anon' ? 'anon' : f!.kind === 'shmem' ? 'shmem' : 'file'] += 1;
    }
    expect(p.rss, `rss counters of P${p.pid}`).toEqual(rss);
  }
  for (const file of i.files()) {
    for (const [, slot] of i.shmemSwap(file.id)) slotUsers.set(slot, (slotUsers.get(slot) ?? 0) + 1);
  }
  for (const f of i.frames()) {
    if (f.kind === 'zero') continue;
    expect(f.mapcount, `mapcount of pfn ${f.pfn}`).toBe(mapped.get(f.pfn) ?? 0);
    const expected = f.mapcount + f.pincount + (f.file !== -1 ? 1 : 0) + (f.swapSlot !== -1 ? 1 : 0) + (heldRefs.get(f.pfn) ?? 0);
    expect(f.refcount, `refcount of pfn ${f.pfn}`).toBe(expected);
  }
  for (const slot of i.swapSlots()) {
    expect(slot.count, `swap_map count of slot ${slot.slot}`).toBe(slotUsers.get(slot.slot) ?? 0);
    expect(slot.count > 0 || slot.cachePfn !== -1, `slot ${slot.slot} is used by nothing`).toBe(true);
    if (slot.cachePfn !== -1) expect(i.frame(slot.cachePfn)?.swapSlot).toBe(slot.slot);
  }
}
