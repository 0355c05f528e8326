/**
 * Dirty tracking as Linux 6.18: a store sets the PTE's dirty bit; the bit reaches the folio
 * only for a normal page, at zap or try_to_unmap (zap_present_folio_ptes, try_to_unmap_one).
 * A special PTE (vm_normal_page() is NULL: a remap_pfn_range map, the zero page) never dirties
 * a page, so a store through a PFN map to a clean page-cache page is lost when reclaim drops
 * the clean page (shrink_folio_list: no pageout) and the next access reads the backing store.
 * GUP writers mark the page dirty themselves (__access_remote_vm's folio_mark_dirty_lock).
 * Every scenario runs on both kernels, which must agree.
 */
import { describe, expect, it } from 'vitest';
import { ModelKernel } from '../../model/kernel.ts';
import { ImplKernel } from '../../impl/kernel.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { procMemMmap } from '../../strategies/proc-mem-mmap.ts';
import type { Op } from '../../kernel-api/op.ts';
import { MS_SYNC } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import type { Kernel } from '../../kernel-api/kernel.ts';
import { Session } from '../../properties/session.ts';
import { FUZZ_CONFIG } from '../../harness/config.ts';

const KERNELS: Array<[string, () => Kernel]> = [
  ['model', () => new ModelKernel(DEFAULT_CONFIG, [procMemMmap])],
  ['impl', () => new ImplKernel(DEFAULT_CONFIG, [procMemMmap])],
];

function ok(k: Kernel, op: Op): number {
  const r: Outcome = k.step(op);
  expect(r, JSON.stringify(op)).toMatchObject({ kind: 'ok' });
  return (r as { value: number }).value;
}

/**
 * P1 maps a one-page file shared, forks P2, which reads the page in (clean, from the backing
 * store); P1 opens /proc/2/mem and maps P2's page shared and writable through seed 000's
 * driver (remap_pfn_range: a special PTE). `how` writes 77 to that page.
 */
function fileView(k: Kernel) {
  // The driver's mmap nests mmap_lock in itself (lockdep's warning, seed 000's known flaw): not judged here.
  (k as unknown as { locks: { checks: Set<string> } }).locks.checks = new Set(['sleep-in-atomic', 'lock-leak']);
  ok(k, { op: 'spawn' });
  const file = ok(k, { op: 'creat', sizePages: 1 });
  const a = ok(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, file });
  ok(k, { op: 'fork', pid: 1 });
  expect(k.step({ op: 'read', pid: 2, addr: a })).toEqual({ kind: 'ok', value: 0 });
  const fd = ok(k, { op: 'drv', strategy: 'proc-mem-mmap', call: 'open', args: { pid: 1, target: 2 } });
  const view = ok(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, fd, pgoff: a });
  const pfn = (new Map(k.inspect.ptes(2)).get(a) as { pfn: number }).pfn;
  return { file, a, view, pfn };
}

describe('dirty tracking: a store through a special PTE dirties no page', () => {
  for (const [name, make] of KERNELS) {
    it(`${name}: the store changes the page-cache page but leaves it clean; reclaim drops it and the write is lost`, () => {
      const k = make();
      const { file, a, view, pfn } = fileView(k);
      ok(k, { op: 'write', pid: 1, addr: view, value: 77 });
      // The view's special PTE is dirty; the page is not (vm_normal_page() is NULL).
      expect(new Map(k.inspect.ptes(1)).get(view)).toMatchObject({ kind: 'present', pfn, special: true, dirty: true });
      expect(k.inspect.frame(pfn)).toMatchObject({ value: 77, dirty: false });
      expect(k.step({ op: 'read', pid: 2, addr: a })).toEqual({ kind: 'ok', value: 77 });
      // While the driver holds its reference reclaim unmaps P2's clean PTE and keeps the page.
      expect(k.step({ op: 'reclaim', pid: 2, addr: a })).toEqual({ kind: 'ok', value: 0 });
      expect(k.inspect.frame(pfn)).toMatchObject({ value: 77, dirty: false });
      // mem_vma_close of the whole VMA drops the reference (zap skips the special PTE's dirty bit).
      ok(k, { op: 'munmap', pid: 1, addr: view, lengthPages: 1 });
      expect(k.inspect.frame(pfn)).toMatchObject({ dirty: false });
      expect(k.step({ op: 'read', pid: 2, addr: a })).toEqual({ kind: 'ok', value: 77 }); // refault: the cached page
      expect(k.step({ op: 'reclaim', pid: 2, addr: a })).toEqual({ kind: 'ok', value: 1 });
      expect(k.inspect.frame(pfn)).toBeUndefined();
      expect([...k.inspect.backing(file)]).toEqual([]);
      expect(k.step({ op: 'read', pid: 2, addr: a })).toEqual({ kind: 'ok', value: 0 });
      expect(k.step({ op: 'pread', file, index: 0 })).toEqual({ kind: 'ok', value: 0 });
    });

    it(`${name}: the same store through P2's own shared mapping dirties the page and survives reclaim (fault_dirty_shared_page, pageout)`, () => {
      const k = make();
      const { file, a, pfn } = fileView(k);
      ok(k, { op: 'write', pid: 2, addr: a, value: 77 });
      expect(k.inspect.frame(pfn)).toMatchObject({ value: 77, dirty: true });
      expect(k.step({ op: 'reclaim', pid: 2, addr: a })).toEqual({ kind: 'ok', value: 0 }); // written back, kept (driver's ref)
      expect([...k.inspect.backing(file)]).toEqual([[0, 77]]);
      expect(k.inspect.frame(pfn)).toMatchObject({ dirty: false });
    });

    it(`${name}: a /proc/<pid>/mem write (GUP) marks the page dirty (folio_mark_dirty_lock) and survives reclaim`, () => {
      const k = make();
      const { file, a, view, pfn } = fileView(k);
      ok(k, { op: 'munmap', pid: 1, addr: view, lengthPages: 1 });
      expect(k.step({ op: 'proc_mem_write', pid: 1, target: 2, addr: a, value: 66 })).toEqual({ kind: 'ok', value: 0 });
      expect(k.inspect.frame(pfn)).toMatchObject({ value: 66, dirty: true });
      expect(k.step({ op: 'reclaim', pid: 2, addr: a })).toEqual({ kind: 'ok', value: 1 });
      expect([...k.inspect.backing(file)]).toEqual([[0, 66]]);
      expect(k.step({ op: 'read', pid: 2, addr: a })).toEqual({ kind: 'ok', value: 66 });
    });
  }
});

/** Seed 000's lockdep warning on every mmap of another's mem file: known, not these tests' business. */
const NOT_JUDGED = new Set(['lock-order'] as const);

/** A session of seed 000's design (its lockdep warning not judged): `val` is an ok outcome's value, else -1. */
function viewSession(kernel: 'model' | 'impl') {
  const s = new Session({ kernel, config: FUZZ_CONFIG, strategies: [procMemMmap], exclude: NOT_JUDGED });
  const step = (op: Op) => s.step(op);
  const val = (op: Op) => { const r = step(op); return r.outcome.kind === 'ok' ? r.outcome.value : -1; };
  return { s, step, val };
}

describe('ghost memory follows Linux: the store through the view is lost at reclaim', () => {
  for (const kernel of ['model', 'impl'] as const) {
    it(`${kernel}: remote-coherence reports the lost write when the clean page is dropped; the ghost then expects the old value`, () => {
      const { s, step, val } = viewSession(kernel);
      val({ op: 'spawn' });
      const file = val({ op: 'creat', sizePages: 1 });
      const a = val({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 1, shared: true, file });
      val({ op: 'fork', pid: 1 });
      val({ op: 'read', pid: 2, addr: a });
      const fd = val({ op: 'drv', strategy: 'proc-mem-mmap', call: 'open', args: { pid: 1, target: 2 } });
      const view = step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, fd, pgoff: a });
      expect(view.violation).toBeNull();
      const v = (view.outcome as { value: number }).value;
      expect(step({ op: 'write', pid: 1, addr: v, value: 77 }).violation).toBeNull();
      expect(s.ghost.expect(2, a)).toEqual({ kind: 'value', value: 77 });
      expect(step({ op: 'munmap', pid: 1, addr: v, lengthPages: 1 }).violation).toBeNull();
      const r = step({ op: 'reclaim', pid: 2, addr: a });
      expect(r.violation).toMatchObject({ invariant: 'remote-coherence', cause: 'reclaim:lost-write' });
      expect(s.ghost.expect(2, a)).toEqual({ kind: 'value', value: 0 });
      // The re-read is what the ghost expects: no cow-isolation report on top.
      const read = step({ op: 'read', pid: 2, addr: a });
      expect(read.outcome).toEqual({ kind: 'ok', value: 0 });
      expect(read.violation).toBeNull();
    });

    it(`${kernel}: a dirty page reclaim wrote back but the driver's reference kept is clean again: a later store through the view is lost`, () => {
      const { step, val } = viewSession(kernel);
      val({ op: 'spawn' });
      const file = val({ op: 'creat', sizePages: 1 });
      const a = val({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, file });
      val({ op: 'fork', pid: 1 });
      expect(step({ op: 'write', pid: 2, addr: a, value: 5 }).violation).toBeNull();
      const fd = val({ op: 'drv', strategy: 'proc-mem-mmap', call: 'open', args: { pid: 1, target: 2 } });
      const v = (step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, fd, pgoff: a }).outcome as { value: number }).value;
      // try_to_unmap, pageout (5 reaches the file), then the driver's reference keeps the page.
      expect(step({ op: 'reclaim', pid: 2, addr: a })).toEqual({ outcome: { kind: 'ok', value: 0 }, violation: null });
      expect(step({ op: 'write', pid: 1, addr: v, value: 77 }).violation).toBeNull();
      expect(step({ op: 'munmap', pid: 1, addr: v, lengthPages: 1 }).violation).toBeNull();
      expect(step({ op: 'reclaim', count: 8 }).violation).toMatchObject({ invariant: 'remote-coherence', cause: 'reclaim:lost-write' });
      const read = step({ op: 'read', pid: 2, addr: a });
      expect(read).toEqual({ outcome: { kind: 'ok', value: 5 }, violation: null });
      expect(step({ op: 'pread', file, index: 0 }).outcome).toEqual({ kind: 'ok', value: 5 });
    });

    it(`${kernel}: a page pwrite dirtied while only the view maps it, written back by a reclaim that keeps it for the driver's reference, is clean again: a later store through the view is lost`, () => {
      const { s, step, val } = viewSession(kernel);
      val({ op: 'spawn' });
      const file = val({ op: 'creat', sizePages: 1 });
      const a = val({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 1, shared: true, file });
      val({ op: 'fork', pid: 1 });
      val({ op: 'read', pid: 2, addr: a });
      const fd = val({ op: 'drv', strategy: 'proc-mem-mmap', call: 'open', args: { pid: 1, target: 2 } });
      const v = val({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, fd, pgoff: a });
      // Reclaim unmaps P2's page; the view's special PTE and the driver's reference keep it.
      expect(step({ op: 'reclaim', pid: 2, addr: a }).violation).toBeNull();
      expect(step({ op: 'pwrite', file, index: 0, value: 1 }).violation).toBeNull();
      // Mapped by no normal PTE, dirty: pageout writes 1 back, the reference keeps the page.
      expect(step({ op: 'reclaim', count: 8 }).violation).toBeNull();
      expect(s.primary.inspect.frame(new Map(s.primary.inspect.pagecache(file)).get(0)!)).toMatchObject({ value: 1, dirty: false });
      expect(step({ op: 'write', pid: 1, addr: v, value: 0 }).violation).toBeNull();
      expect(step({ op: 'munmap', pid: 1, addr: v, lengthPages: 1 }).violation).toBeNull();
      // The clean page is dropped and the file reads 1 again: the store through the view is
      // the one lost (not a change of the file without a write path: 1 was pwritten).
      expect(step({ op: 'reclaim', count: 8 }).violation).toMatchObject({ invariant: 'remote-coherence', cause: 'reclaim:lost-write' });
      expect(step({ op: 'pread', file, index: 0 })).toEqual({ outcome: { kind: 'ok', value: 1 }, violation: null });
    });

    it(`${kernel}: msync(MS_SYNC) writes the target's dirty page back and cleans it: a later store through the view is lost at reclaim, as on Linux`, () => {
      const { step, val } = viewSession(kernel);
      val({ op: 'spawn' });
      const file = val({ op: 'creat', sizePages: 1 });
      const a = val({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, file });
      val({ op: 'fork', pid: 1 });
      expect(step({ op: 'write', pid: 2, addr: a, value: 5 }).violation).toBeNull();
      expect(step({ op: 'msync', pid: 2, addr: a, lengthPages: 1, flags: MS_SYNC })).toEqual({ outcome: { kind: 'ok', value: 0 }, violation: null });
      expect(step({ op: 'pread', file, index: 0 }).outcome).toEqual({ kind: 'ok', value: 5 });
      const fd = val({ op: 'drv', strategy: 'proc-mem-mmap', call: 'open', args: { pid: 1, target: 2 } });
      const v = (step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, fd, pgoff: a }).outcome as { value: number }).value;
      expect(step({ op: 'write', pid: 1, addr: v, value: 77 }).violation).toBeNull();
      expect(step({ op: 'munmap', pid: 1, addr: v, lengthPages: 1 }).violation).toBeNull();
      expect(step({ op: 'reclaim', pid: 2, addr: a }).violation).toMatchObject({ invariant: 'remote-coherence', cause: 'reclaim:lost-write' });
      expect(step({ op: 'read', pid: 2, addr: a })).toEqual({ outcome: { kind: 'ok', value: 5 }, violation: null });
    });

    it(`${kernel}: after msync(MS_SYNC) the target's own store faults again and dirties the page (folio_mkclean write-protected it): it survives reclaim`, () => {
      const s = new Session({ kernel, config: FUZZ_CONFIG, strategies: [], exclude: NOT_JUDGED });
      const step = (op: Op) => s.step(op);
      const val = (op: Op) => { const r = step(op); return r.outcome.kind === 'ok' ? r.outcome.value : -1; };
      val({ op: 'spawn' });
      const file = val({ op: 'creat', sizePages: 1 });
      const a = val({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, file });
      expect(step({ op: 'write', pid: 1, addr: a, value: 5 }).violation).toBeNull();
      expect(step({ op: 'msync', pid: 1, addr: a, lengthPages: 1, flags: MS_SYNC }).violation).toBeNull();
      expect(new Map(s.view.ptes(1)).get(a)).toMatchObject({ kind: 'present', write: false, dirty: false });
      expect(step({ op: 'write', pid: 1, addr: a, value: 6 }).violation).toBeNull();
      expect(step({ op: 'reclaim', pid: 1, addr: a })).toEqual({ outcome: { kind: 'ok', value: 1 }, violation: null });
      expect(step({ op: 'read', pid: 1, addr: a })).toEqual({ outcome: { kind: 'ok', value: 6 }, violation: null });
    });

    it(`${kernel}: no report when the target dirtied the page itself before the store through the view`, () => {
      const { step, val } = viewSession(kernel);
      val({ op: 'spawn' });
      const file = val({ op: 'creat', sizePages: 1 });
      const a = val({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, file });
      val({ op: 'fork', pid: 1 });
      expect(step({ op: 'write', pid: 2, addr: a, value: 5 }).violation).toBeNull();
      const fd = val({ op: 'drv', strategy: 'proc-mem-mmap', call: 'open', args: { pid: 1, target: 2 } });
      const v = (step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, fd, pgoff: a }).outcome as { value: number }).value;
      expect(step({ op: 'write', pid: 1, addr: v, value: 77 }).violation).toBeNull();
      expect(step({ op: 'munmap', pid: 1, addr: v, lengthPages: 1 }).violation).toBeNull();
      expect(step({ op: 'reclaim', pid: 2, addr: a }).violation).toBeNull();
      const read = step({ op: 'read', pid: 2, addr: a });
      expect(read.outcome).toEqual({ kind: 'ok', value: 77 });
      expect(read.violation).toBeNull();
      expect(step({ op: 'pread', file, index: 0 }).outcome).toEqual({ kind: 'ok', value: 77 });
    });
  }
});
