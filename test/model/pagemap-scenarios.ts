/**
 * Scenarios shared by test/model/ and test/impl/ pagemap-scan tests: PAGEMAP_SCAN, /proc/<pid>/pagemap, clear_refs, userfaultfd async write-protect and
 * map_files readdir as merged upstream (fs/proc/task_mmu.c, fs/proc/base.c), pinned on the
 * model; test/impl/pagemap-scan.test.ts runs the same scenarios on the implementation.
 */
import { describe, expect, it } from 'vitest';
import type { Kernel } from '../../kernel-api/kernel.ts';
import type { Op, PagemapScanOp } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import type { KernelConfig } from '../../kernel-api/config.ts';

const ALL = 0x1ff;
export const scan = (over: Partial<PagemapScanOp>): PagemapScanOp => ({
  op: 'pagemap_scan', pid: 1, start: 100, end: 108, flags: 0, max_pages: 0, category_inverted: 0,
  category_mask: 0, category_anyof_mask: 0, return_mask: ALL, vec_len: 16, ...over,
});

/** P1 with [100, 108) private anonymous: page 100 written, 103 read (zero page). */
export function setUp(k: Kernel): void {
  const steps: Op[] = [
    { op: 'spawn' },
    { op: 'mmap', pid: 1, addr: 100, lengthPages: 8, prot: 3, shared: false, fixed: true },
    { op: 'write', pid: 1, addr: 100, value: 5 },
    { op: 'read', pid: 1, addr: 103 },
  ];
  for (const op of steps) k.step(op);
}

const values = (o: Outcome) => (o.kind === 'ok' ? o.values : o);

/** `make` builds a kernel with the default configuration, changed by `config`. */
export function pagemapScenarios(name: string, make: (config?: Partial<KernelConfig>) => Kernel): void {
  describe(`${name}: PAGEMAP_SCAN`, () => {
    it('coalesces pages with equal categories and reports walk_end = end', () => {
      const k = make();
      setUp(k);
      // present|written|soft-dirty; holes soft-dirty (VM_SOFTDIRTY); zero page with PFNZERO.
      expect(values(k.step(scan({})))).toEqual([108, 100, 101, 0x8a, 101, 103, 0x80, 103, 104, 0xaa, 104, 108, 0x80]);
      expect(values(k.step(scan({ return_mask: 0 })))).toEqual([108, 100, 108, 0]);
    });
    it('stops at max_pages = 1 and vec_len = 1 with walk_end at the next match', () => {
      const k = make();
      setUp(k);
      expect(values(k.step(scan({ max_pages: 1 })))).toEqual([101, 100, 101, 0x8a]);
      expect(values(k.step(scan({ vec_len: 1 })))).toEqual([101, 100, 101, 0x8a]);
      expect(values(k.step(scan({ category_mask: 8, vec_len: 1 })))).toEqual([103, 100, 101, 0x8a]);
    });
    it('matches by inverted, mask and anyof', () => {
      const k = make();
      setUp(k);
      expect(values(k.step(scan({ category_inverted: 8, category_mask: 8, return_mask: 8 })))).toEqual([108, 101, 103, 0, 104, 108, 0]);
      expect(values(k.step(scan({ category_anyof_mask: 0x20 | 0x10, return_mask: 0x20 })))).toEqual([108, 103, 104, 0x20]);
      expect(values(k.step(scan({ category_mask: 0x10 })))).toEqual([108]);
      expect(values(k.step(scan({ vecNull: true, vec_len: 0 })))).toEqual([108]);
    });
    it('checks its arguments in the merged order with the merged errnos', () => {
      const k = make();
      setUp(k);
      expect(k.step(scan({ size: 88 }))).toEqual({ kind: 'errno', errno: 'EINVAL' });
      expect(k.step(scan({ flags: 4 }))).toEqual({ kind: 'errno', errno: 'EINVAL' });
      expect(k.step(scan({ return_mask: 0x200 }))).toEqual({ kind: 'errno', errno: 'EINVAL' });
      expect(k.step(scan({ start: 100.5 }))).toEqual({ kind: 'errno', errno: 'EINVAL' });
      expect(k.step(scan({ end: 99 }))).toEqual({ kind: 'errno', errno: 'EFAULT' });
      expect(k.step(scan({ vecNull: true, vec_len: 1 }))).toEqual({ kind: 'errno', errno: 'EINVAL' });
      expect(k.step(scan({ flags: 2 }))).toEqual({ kind: 'errno', errno: 'EPERM' });
      expect(values(k.step(scan({ end: 107.25, return_mask: 0 })))).toEqual([108, 100, 108, 0]);
      expect(values(k.step(scan({ start: 104, end: 104 })))).toEqual([104]);
    });
    it('write-protects matches in async uffd-wp mode; a write clears the bit again', () => {
      const k = make();
      setUp(k);
      expect(k.step({ op: 'uffd_register_wp', pid: 1, addr: 100, lengthPages: 8, async: true })).toEqual({ kind: 'ok', value: 0 });
      expect(k.step({ op: 'uffd_register_wp', pid: 1, addr: 104, lengthPages: 1, async: true })).toEqual({ kind: 'errno', errno: 'EBUSY' });
      expect(values(k.step(scan({ flags: 3, category_mask: 2, return_mask: 2 })))).toEqual([108, 100, 101, 2, 103, 104, 2]);
      expect(values(k.step(scan({ category_mask: 2, return_mask: 2 })))).toEqual([108]);
      k.step({ op: 'write', pid: 1, addr: 100, value: 6 });
      expect(values(k.step(scan({ category_mask: 2, return_mask: 3 })))).toEqual([108, 100, 101, 3]);
      // A hole matched while write-protecting gets a marker: swapped, uffd-wp, not written.
      k.step(scan({ flags: 1, return_mask: 0, category_mask: 1 }));
      expect(values(k.step({ op: 'pagemap_read', pid: 1, target: 1, addr: 101 }))).toEqual([0x80 | 0x4 | 0x1]);
      k.step({ op: 'write', pid: 1, addr: 101, value: 1 });
      expect(values(k.step({ op: 'pagemap_read', pid: 1, target: 1, addr: 101 }))).toEqual([0x100 | 0x2 | 0x1]);
    });
  });

  describe(`${name}: pagemap, clear_refs, map_files`, () => {
    it('reads entries with PFNs only for CAP_SYS_ADMIN and refuses without ptrace read', () => {
      const k = make();
      setUp(k);
      const o = k.step({ op: 'pagemap_read', pid: 1, target: 1, addr: 99, count: 6 });
      expect(values(o)).toEqual([0, 0x103, 1, 1, 0x101, 1]);
      expect(o.kind === 'ok' && o.frames).toEqual([0, 0, 0, 0, 0, 0]);
      k.step({ op: 'spawn', uid: 0 });
      const root = k.step({ op: 'pagemap_read', pid: 2, target: 1, addr: 100 });
      expect(root.kind === 'ok' && root.frames![0]).toBeGreaterThan(0);
      k.step({ op: 'spawn', uid: 1001 });
      expect(k.step({ op: 'pagemap_read', pid: 3, target: 1, addr: 100 })).toEqual({ kind: 'errno', errno: 'EACCES' });
      expect(k.step({ op: 'map_files_readdir', pid: 3, target: 1 })).toEqual({ kind: 'errno', errno: 'EACCES' });
      expect(k.step({ op: 'clear_refs', pid: 3, target: 1, mode: 4 })).toEqual({ kind: 'errno', errno: 'EACCES' });
    });
    it('clear_refs 4 clears soft-dirty and write-protects; a later write sets it again', () => {
      const k = make();
      setUp(k);
      expect(k.step({ op: 'clear_refs', pid: 1, target: 1, mode: 6 })).toEqual({ kind: 'errno', errno: 'EINVAL' });
      k.step({ op: 'clear_refs', pid: 1, target: 1, mode: 4 });
      expect(values(k.step({ op: 'pagemap_read', pid: 1, target: 1, addr: 100, count: 2 }))).toEqual([0x102, 0]);
      k.step({ op: 'write', pid: 1, addr: 100, value: 9 });
      expect(values(k.step({ op: 'pagemap_read', pid: 1, target: 1, addr: 100 }))).toEqual([0x103]);
      k.step({ op: 'mremap', pid: 1, addr: 100, oldPages: 8, newPages: 8, maymove: true, fixed: true, newAddr: 200 });
      expect(values(k.step({ op: 'pagemap_read', pid: 1, target: 1, addr: 201 }))).toEqual([1]);
    });
    it('without CONFIG_MEM_SOFT_DIRTY: no soft-dirty bit anywhere, and clear_refs 4 leaves the PTEs writable', () => {
      const k = make({ softDirty: false });
      setUp(k);
      expect(values(k.step(scan({})))).toEqual([108, 100, 101, 0x0a, 101, 103, 0, 103, 104, 0x2a, 104, 108, 0]);
      expect(values(k.step(scan({ category_mask: 0x80 })))).toEqual([108]);
      expect(k.step({ op: 'clear_refs', pid: 1, target: 1, mode: 4 })).toEqual({ kind: 'ok', value: 0 });
      expect(values(k.step({ op: 'pagemap_read', pid: 1, target: 1, addr: 99, count: 3 }))).toEqual([0, 0x102, 0]);
      const pte = new Map(k.inspect.ptes(1)).get(100);
      expect(pte).toMatchObject({ kind: 'present', write: true });
      k.step({ op: 'mremap', pid: 1, addr: 100, oldPages: 8, newPages: 8, maymove: true, fixed: true, newAddr: 200 });
      expect(values(k.step({ op: 'pagemap_read', pid: 1, target: 1, addr: 200, count: 2 }))).toEqual([0x102, 0]);
    });
    it('map_files lists file-backed VMAs by exact range; names go stale after a split', () => {
      const k = make();
      k.step({ op: 'spawn' });
      k.step({ op: 'creat', sizePages: 8 });
      k.step({ op: 'mmap', pid: 1, addr: 300, lengthPages: 4, prot: 1, shared: true, fixed: true, file: 1 });
      k.step({ op: 'mmap', pid: 1, addr: 100, lengthPages: 4, prot: 3, shared: false, fixed: true });
      expect(values(k.step({ op: 'map_files_readdir', pid: 1, target: 1 }))).toEqual([300, 304]);
      k.step({ op: 'munmap', pid: 1, addr: 301, lengthPages: 1 });
      expect(values(k.step({ op: 'map_files_readdir', pid: 1, target: 1 }))).toEqual([300, 301, 302, 304]);
    });
  });
}

