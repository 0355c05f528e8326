/**
 * Seed 002 mapped with vm_insert_page in ->mmap (strategies/kbuf-insert.ts): the sound
 * design (alloc_page pages) and the answer's kmalloc'd pages, which vm_insert_page refuses
 * as slab pages. Every scenario runs on both kernels and on the differential of the two,
 * with every invariant checked after each step.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { kbufInsert, kbufInsertKmalloc } from '../../strategies/kbuf-insert.ts';
import { ASDF, BUFFER_PAGES } from '../../strategies/kbuf-common.ts';
import { ptePid, stepOk } from './helpers.ts';
import { Session } from '../../properties/session.ts';
import { FUZZ_CONFIG } from '../../harness/config.ts';
import type { StrategyDefinition } from '../../kernel-api/strategy.ts';

const session = (kernel: 'model' | 'impl' | 'diff', strategies: readonly StrategyDefinition[]) => new Session({ kernel, config: FUZZ_CONFIG, strategies });

const CHOICES = ['model', 'impl', 'diff'] as const;

function open(s: Session, name: string) {
  stepOk(s, { op: 'spawn' });
  const fd = stepOk(s, { op: 'drv', strategy: name, call: 'open', args: { pid: 1 } });
  const mmap = (extra: Partial<Extract<Op, { op: 'mmap' }>> = {}): Op =>
    ({ op: 'mmap', pid: 1, addr: 0, lengthPages: BUFFER_PAGES, prot: 3, shared: true, fd, ...extra });
  return { fd, mmap };
}

const frame = (s: Session, pfn: number) => s.primary.inspect.frame(pfn);
const pfnAt = (s: Session, pid: number, addr: number) => {
  const pte = ptePid(s, pid, addr);
  expect(pte?.kind, `P${pid} at ${addr}`).toBe('present');
  return (pte as { pfn: number }).pfn;
};
const vmaAt = (s: Session, pid: number, addr: number) => [...s.primary.inspect.vmas(pid)].find((v) => v.start <= addr && addr < v.end);

for (const kernel of CHOICES) {
  describe(`kbuf-insert (seed 002, vm_insert_page of alloc_page pages) on ${kernel}`, () => {
    it('->mmap inserts every page: normal PTEs, VM_MIXEDMAP, one reference and one mapcount per PTE, MM_FILEPAGES', () => {
      const s = session(kernel, [kbufInsert]);
      const { mmap } = open(s, 'kbuf-insert');
      const a = stepOk(s, mmap());
      const b = stepOk(s, mmap({ pgoff: 1, lengthPages: 2 }));
      expect(vmaAt(s, 1, a)).toMatchObject({ mixedmap: true, pfnmap: false, io: false });
      for (let i = 0; i < BUFFER_PAGES; i++) expect(ptePid(s, 1, a + i)).toMatchObject({ kind: 'present', special: false, write: true });
      const p1 = pfnAt(s, 1, a + 1);
      expect(pfnAt(s, 1, b)).toBe(p1);
      // alloc_page's reference (the buffer's) plus one per PTE.
      expect(frame(s, p1)).toMatchObject({ kind: 'driver', refcount: 3, mapcount: 2 });
      expect(frame(s, pfnAt(s, 1, a))).toMatchObject({ refcount: 2, mapcount: 1 });
      expect(stepOk(s, { op: 'read', pid: 1, addr: a })).toBe(ASDF);
      expect(s.primary.inspect.process(1)).toMatchObject({ rss: { file: BUFFER_PAGES + 2 } });
    });

    it('stores through one mapping show in the other and in read on the fd; a private mapping copies on write', () => {
      const s = session(kernel, [kbufInsert]);
      const { fd, mmap } = open(s, 'kbuf-insert');
      const a = stepOk(s, mmap());
      const p = stepOk(s, mmap({ shared: false }));
      stepOk(s, { op: 'write', pid: 1, addr: a + 2, value: 7 });
      expect(stepOk(s, { op: 'read', pid: 1, addr: p + 2 })).toBe(7);
      expect(stepOk(s, { op: 'drv', strategy: 'kbuf-insert', call: 'read', args: { pid: 1, fd, index: 2 } })).toBe(7);
      // The private VMA's PTE is read-only (vm_page_prot of a private mapping): the write COWs into an anon page.
      expect(ptePid(s, 1, p + 3)).toMatchObject({ write: false });
      stepOk(s, { op: 'write', pid: 1, addr: p + 3, value: 9 });
      expect(frame(s, pfnAt(s, 1, p + 3))).toMatchObject({ kind: 'anon' });
      expect(stepOk(s, { op: 'drv', strategy: 'kbuf-insert', call: 'read', args: { pid: 1, fd, index: 3 } })).toBe(0);
    });

    it('refuses a range past the buffer with ENXIO, as vm_map_pages does', () => {
      const s = session(kernel, [kbufInsert]);
      const { mmap } = open(s, 'kbuf-insert');
      expect(s.step(mmap({ pgoff: BUFFER_PAGES - 1, lengthPages: 2 }))).toEqual({ outcome: { kind: 'errno', errno: 'ENXIO' }, violation: null });
      expect(s.step(mmap({ pgoff: BUFFER_PAGES }))).toEqual({ outcome: { kind: 'errno', errno: 'ENXIO' }, violation: null });
    });

    it('fork copies the PTEs of the VM_MIXEDMAP VMA (vma_needs_copy): the child sees the buffer with no fault, each PTE a reference', () => {
      const s = session(kernel, [kbufInsert]);
      const { mmap } = open(s, 'kbuf-insert');
      const a = stepOk(s, mmap());
      const pfn = pfnAt(s, 1, a);
      const child = stepOk(s, { op: 'fork', pid: 1 });
      expect(pfnAt(s, child, a)).toBe(pfn);
      expect(frame(s, pfn)).toMatchObject({ refcount: 3, mapcount: 2 });
      stepOk(s, { op: 'write', pid: child, addr: a, value: 11 });
      expect(stepOk(s, { op: 'read', pid: 1, addr: a })).toBe(11);
      stepOk(s, { op: 'exit', pid: child });
      expect(frame(s, pfn)).toMatchObject({ refcount: 2, mapcount: 1 });
    });

    it('mremap moves the VMA with its PTEs; grown past them, the new page has no ->fault: SIGBUS', () => {
      const s = session(kernel, [kbufInsert]);
      const { mmap } = open(s, 'kbuf-insert');
      const a = stepOk(s, mmap({ lengthPages: 2 }));
      const pfn = pfnAt(s, 1, a + 1);
      const to = a - 64;
      expect(stepOk(s, { op: 'mremap', pid: 1, addr: a, oldPages: 2, newPages: 3, maymove: true, fixed: true, newAddr: to })).toBe(to);
      expect(pfnAt(s, 1, to + 1)).toBe(pfn);
      expect(vmaAt(s, 1, to)).toMatchObject({ mixedmap: true });
      expect(s.step({ op: 'read', pid: 1, addr: to + 2 }).outcome).toEqual({ kind: 'signal', signal: 'SIGBUS' });
    });

    it('munmap drops each PTE\'s reference; release frees the pages once the fd and every mapping are gone', () => {
      const s = session(kernel, [kbufInsert]);
      const { fd, mmap } = open(s, 'kbuf-insert');
      const a = stepOk(s, mmap());
      const pfn = pfnAt(s, 1, a);
      stepOk(s, { op: 'close', pid: 1, fd });
      expect(frame(s, pfn)).toMatchObject({ refcount: 2, mapcount: 1 });
      stepOk(s, { op: 'munmap', pid: 1, addr: a, lengthPages: BUFFER_PAGES });
      expect(frame(s, pfn)).toBeUndefined();
      expect([...s.primary.inspect.slabObjects()]).toEqual([]);
    });
  });

  describe(`kbuf-insert-kmalloc (seed 002, "use kmalloc, whatever") on ${kernel}`, () => {
    it('KNOWN FLAW: the buffer pages are slab pages, which vm_insert_page refuses (EINVAL): every mmap fails, and driver-mmap says so', () => {
      const s = session(kernel, [kbufInsertKmalloc]);
      const { fd, mmap } = open(s, 'kbuf-insert-kmalloc');
      const r = s.step(mmap({ lengthPages: 1 }));
      expect(r.outcome).toEqual({ kind: 'errno', errno: 'EINVAL' });
      expect(r.violation).toMatchObject({ invariant: 'driver-mmap', cause: 'refused' });
      expect(r.violation?.message).toMatch(/refused with EINVAL; the design's ->mmap refuses only with ENXIO/);
      // The buffer itself works through the fd; nothing was mapped or leaked by the failed mmap.
      expect([...s.primary.inspect.vmas(1)]).toEqual([]);
      expect(stepOk(s, { op: 'drv', strategy: 'kbuf-insert-kmalloc', call: 'read', args: { pid: 1, fd, index: 0 } })).toBe(ASDF);
      expect([...s.primary.inspect.slabObjects()]).toHaveLength(1 + BUFFER_PAGES);
      stepOk(s, { op: 'close', pid: 1, fd });
      expect([...s.primary.inspect.slabObjects()]).toEqual([]);
      expect([...s.primary.inspect.frames()].filter((f) => f.kind === 'driver')).toEqual([]);
    });

    it('its range check is not the flaw: a range past the buffer is ENXIO, judged as declared', () => {
      const s = session(kernel, [kbufInsertKmalloc]);
      const { mmap } = open(s, 'kbuf-insert-kmalloc');
      expect(s.step(mmap({ pgoff: BUFFER_PAGES }))).toEqual({ outcome: { kind: 'errno', errno: 'ENXIO' }, violation: null });
    });
  });
}
