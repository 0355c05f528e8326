/**
 * Hand-written traces of the introspection calls through the model and the running kernel:
 * pagemap reads, PAGEMAP_SCAN, clear_refs, userfaultfd write-protect registration and
 * map_files readdir. Each must agree step by step (outcomes with their values, maps, pagemap
 * bits, uffd-wp bits and markers), and outcomes are pinned so that agreeing on the wrong
 * thing is noticed. A call the running kernel lacks (PAGEMAP_SCAN and UFFD_FEATURE_WP_ASYNC
 * are Linux 6.7) skips its tests with the reason printed; it never passes silently.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { formatOutcome } from '../../kernel-api/outcome.ts';
import { checkTrace, unsupportedReason } from '../../harness/oracle.ts';
import { oracle, oracleBinary } from './helpers.ts';

const RW = 3;
const A = 1000; // an address (in pages) inside the oracle's region, far from mmap_base

/** Why the kernel cannot replay `ops` (printed, and the test skipped), or undefined. */
function lacks(ops: Op[]): string | undefined {
  if (!oracle().ok) return undefined; // the whole suite is skipped, with its own reason
  const reason = unsupportedReason(oracleBinary(), ops);
  if (reason !== undefined) console.warn(`[oracle test skipped] ${reason}`);
  return reason;
}

/** Run a trace on both sides; expect full agreement; return the kernel's outcomes as text. */
function agree(ops: Op[]): string[] {
  const v = checkTrace(oracleBinary(), ops);
  if (v.result !== 'agree') {
    throw new Error(`${v.result} at step ${v.step + 1} (${JSON.stringify(ops[v.step])}): ${JSON.stringify(v.differences, null, 1)}`);
  }
  return v.kernel.steps.map((s) => formatOutcome(s.outcome));
}

type Scan = Extract<Op, { op: 'pagemap_scan' }>;
const scan = (over: Partial<Scan> = {}): Scan => ({
  op: 'pagemap_scan', pid: 1, target: 1, start: A, end: A + 4, flags: 0, max_pages: 0,
  category_inverted: 0, category_mask: 0, category_anyof_mask: 0, return_mask: 0x1ff, vec_len: 16, ...over,
});

// PAGE_IS_* and pagemap bits 55..63 (shifted down), as kernel-api/op.ts names them.
const WPALLOWED = 1, WRITTEN = 2, PRESENT = 8, PFNZERO = 0x20;
const PM_EXCL = 2, PM_UFFD_WP = 4, PM_FILE = 64, PM_PRESENT = 256;

const PAGEMAP_READ: Op[] = [
  { op: 'spawn' },
  { op: 'spawn', uid: 1001 },
  { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: false, noreplace: true },
  { op: 'write', pid: 1, addr: A, value: 7 },
  { op: 'read', pid: 1, addr: A + 1 },
  { op: 'creat', sizePages: 2 },
  { op: 'mmap', pid: 1, addr: A + 10, lengthPages: 2, prot: RW, shared: true, noreplace: true, file: 1 },
  { op: 'read', pid: 1, addr: A + 10 },
  { op: 'pagemap_read', pid: 1, target: 1, addr: A, count: 4 },
  { op: 'pagemap_read', pid: 1, target: 1, addr: A + 10, count: 2 },
  { op: 'pagemap_read', pid: 2, target: 1, addr: A, count: 1 },
  { op: 'pagemap_read', pid: 1, target: 1, addr: A, count: 0 },
  { op: 'fork', pid: 1 },
  { op: 'pagemap_read', pid: 3, target: 1, addr: A, count: 1 },
  { op: 'exit', pid: 3 },
  { op: 'pagemap_read', pid: 1, target: 3, addr: A, count: 1 },
  { op: 'pagemap_read', pid: 1, target: 1, addr: A, count: 1 },
];

const CLEAR_REFS: Op[] = [
  { op: 'spawn' },
  { op: 'spawn', uid: 1001 },
  { op: 'mmap', pid: 1, addr: A, lengthPages: 2, prot: RW, shared: false, noreplace: true },
  { op: 'write', pid: 1, addr: A, value: 7 },
  { op: 'clear_refs', pid: 1, target: 1, mode: 4 },
  { op: 'write', pid: 1, addr: A, value: 8 },
  { op: 'read', pid: 1, addr: A },
  { op: 'clear_refs', pid: 1, target: 1, mode: 1 },
  { op: 'clear_refs', pid: 1, target: 1, mode: 0 },
  { op: 'clear_refs', pid: 1, target: 1, mode: 6 },
  { op: 'clear_refs', pid: 2, target: 1, mode: 4 },
  { op: 'clear_refs', pid: 1, target: 7, mode: 4 },
  { op: 'pagemap_read', pid: 1, target: 1, addr: A, count: 2 },
];

const MAP_FILES: Op[] = [
  { op: 'spawn' },
  { op: 'spawn', uid: 1001 },
  { op: 'spawn' },
  { op: 'creat', sizePages: 4 },
  { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: true, noreplace: true, file: 1 },
  { op: 'mmap', pid: 1, addr: A + 10, lengthPages: 2, prot: RW, shared: false, noreplace: true },
  { op: 'mmap', pid: 1, addr: A + 20, lengthPages: 2, prot: RW, shared: true, noreplace: true },
  { op: 'map_files_readdir', pid: 1, target: 1 },
  { op: 'mprotect', pid: 1, addr: A + 1, lengthPages: 1, prot: 1 },
  { op: 'map_files_readdir', pid: 3, target: 1 },
  { op: 'map_files_readdir', pid: 2, target: 1 },
  { op: 'set_dumpable', pid: 1, dumpable: false },
  { op: 'map_files_readdir', pid: 3, target: 1 },
  { op: 'map_files_readdir', pid: 1, target: 1 },
  { op: 'map_files_readdir', pid: 1, target: 9 },
];

/** Four written pages, so that no empty page-table entry is scanned (see `pagemap-scan-empty-pte`). */
const WRITTEN_4: Op[] = [
  { op: 'spawn' },
  { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: false, noreplace: true },
  { op: 'write', pid: 1, addr: A, value: 1 },
  { op: 'write', pid: 1, addr: A + 1, value: 2 },
  { op: 'write', pid: 1, addr: A + 2, value: 3 },
  { op: 'write', pid: 1, addr: A + 3, value: 4 },
];

const PAGEMAP_SCAN_ARGS: Op[] = [
  { op: 'spawn' },
  { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: false, noreplace: true },
  { op: 'write', pid: 1, addr: A, value: 1 },
  { op: 'write', pid: 1, addr: A + 1, value: 2 },
  { op: 'read', pid: 1, addr: A + 2 },
  { op: 'write', pid: 1, addr: A + 3, value: 2 },
  scan({ size: 88 }),
  scan({ start: A + 0.5 }),
  scan({ end: A - 1 }),
  scan({ vecNull: true, vec_len: 1 }),
  scan({ category_mask: 0x200 }),
  scan({ flags: 4 }),
  scan({ flags: 2 }),
  scan({ max_pages: 2 }),
  scan({ vec_len: 1 }),
  scan({ end: A + 3.5 }),
  scan({ vecNull: true, vec_len: 0 }),
  scan({ category_inverted: PFNZERO, category_mask: PFNZERO }),
  scan({ category_anyof_mask: PFNZERO | 4, return_mask: PRESENT | PFNZERO }),
];

const UFFD_WP: Op[] = [
  ...WRITTEN_4,
  scan({ flags: 2 }),
  { op: 'uffd_register_wp', pid: 1, addr: A, lengthPages: 4, async: true },
  { op: 'uffd_register_wp', pid: 1, addr: A + 1, lengthPages: 1, async: true },
  { op: 'uffd_register_wp', pid: 1, addr: A + 100, lengthPages: 1, async: true },
  scan({ flags: 3, category_mask: WRITTEN, return_mask: WRITTEN }),
  scan({ category_mask: WRITTEN, return_mask: WRITTEN }),
  { op: 'write', pid: 1, addr: A + 2, value: 33 },
  scan({ category_mask: WRITTEN, return_mask: WRITTEN }),
  scan(),
  { op: 'pagemap_read', pid: 1, target: 1, addr: A, count: 4 },
  { op: 'fork', pid: 1 },
  scan({ pid: 2, target: 2, flags: 2 }),
  { op: 'pagemap_read', pid: 2, target: 2, addr: A, count: 4 },
  { op: 'read', pid: 1, addr: A + 2 },
];

/** An unpopulated page next to a written one: an empty entry of an existing page table. */
const EMPTY_PTE: Op[] = [
  { op: 'spawn' },
  { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: RW, shared: false, noreplace: true },
  { op: 'write', pid: 1, addr: A + 1, value: 1 },
  scan(),
  { op: 'uffd_register_wp', pid: 1, addr: A, lengthPages: 4, async: true },
  scan({ flags: 1, category_mask: WRITTEN, return_mask: WRITTEN }),
  { op: 'pagemap_read', pid: 1, target: 1, addr: A, count: 4 },
  { op: 'write', pid: 1, addr: A + 3, value: 3 },
  scan(),
];

describe.skipIf(!oracle().ok)('oracle: introspection calls agree with the kernel', () => {
  it.skipIf(lacks(PAGEMAP_READ) !== undefined)('pagemap_read: present, zero-page, file and exclusive bits; EACCES; ENOENT for an exited target', () => {
    const out = agree(PAGEMAP_READ);
    expect(out[8]).toBe(`= 4 [${PM_PRESENT | PM_EXCL}, ${PM_PRESENT}, 0, 0]`); // the zero page is special: no exclusive bit
    expect(out[9]).toBe(`= 2 [${PM_PRESENT | PM_FILE | PM_EXCL}, 0]`);
    expect(out.slice(10, 12)).toEqual(['-EACCES', '= 0 []']);
    expect(out[13]).toBe(`= 1 [${PM_PRESENT}]`); // shared with the child after fork
    expect(out.slice(15)).toEqual(['-ENOENT', `= 1 [${PM_PRESENT | PM_EXCL}]`]);
  });

  it.skipIf(lacks(CLEAR_REFS) !== undefined)('clear_refs: modes 1–5 accepted, 0 and 6 EINVAL, EACCES for another uid, ENOENT for no process', () => {
    const out = agree(CLEAR_REFS);
    expect(out.slice(4, 12)).toEqual(['= 0', '= 0', '= 8', '= 0', '-EINVAL', '-EINVAL', '-EACCES', '-ENOENT']);
  });

  it.skipIf(lacks(MAP_FILES) !== undefined)('map_files_readdir: one entry per file or shmem VMA, split by mprotect; EACCES without ptrace read access', () => {
    const out = agree(MAP_FILES);
    expect(out[7]).toBe(`= 2 [${A}, ${A + 4}, ${A + 20}, ${A + 22}]`);
    expect(out[9]).toBe(`= 4 [${A}, ${A + 1}, ${A + 1}, ${A + 2}, ${A + 2}, ${A + 4}, ${A + 20}, ${A + 22}]`);
    expect(out[10]).toBe('-EACCES'); // another uid
    expect(out[12]).toBe('-EACCES'); // not dumpable: owned by root
    expect(out[13]).toBe(out[9]); // the process itself still may
    expect(out[14]).toBe('-ENOENT');
  });

  it.skipIf(lacks(PAGEMAP_SCAN_ARGS) !== undefined)('pagemap_scan: every argument check, max_pages and vec_len limits, walk_end, PFNZERO', () => {
    const out = agree(PAGEMAP_SCAN_ARGS);
    expect(out.slice(6, 13)).toEqual(['-EINVAL', '-EINVAL', '-EFAULT', '-EINVAL', '-EINVAL', '-EINVAL', '-EPERM']);
    const rw = PRESENT | WRITTEN;
    expect(out[13]).toBe(`= 1 [${A + 2}, ${A}, ${A + 2}, ${rw}]`); // max_pages 2: walk_end where it stopped
    expect(out[14]).toBe(`= 1 [${A + 2}, ${A}, ${A + 2}, ${rw}]`); // one region fits
    expect(out[15]).toBe(`= 3 [${A + 4}, ${A}, ${A + 2}, ${rw}, ${A + 2}, ${A + 3}, ${rw | PFNZERO}, ${A + 3}, ${A + 4}, ${rw}]`);
    expect(out[16]).toBe(`= 0 [${A + 4}]`);
    expect(out[17]).toBe(`= 2 [${A + 4}, ${A}, ${A + 2}, ${rw}, ${A + 3}, ${A + 4}, ${rw}]`);
    expect(out[18]).toBe(`= 1 [${A + 4}, ${A + 2}, ${A + 3}, ${PRESENT | PFNZERO}]`);
  });

  it.skipIf(lacks(UFFD_WP) !== undefined)('uffd_register_wp + PAGEMAP_SCAN: write-protect on match, async resolution, EBUSY, fork drops the registration', () => {
    const out = agree(UFFD_WP);
    expect(out[6]).toBe('-EPERM'); // PM_SCAN_CHECK_WPASYNC before registration
    expect(out.slice(7, 10)).toEqual(['= 0', '-EBUSY', '-EINVAL']);
    expect(out[10]).toBe(`= 1 [${A + 4}, ${A}, ${A + 4}, ${WRITTEN}]`); // reported, then write-protected
    expect(out[11]).toBe(`= 0 [${A + 4}]`);
    expect(out[13]).toBe(`= 1 [${A + 4}, ${A + 2}, ${A + 3}, ${WRITTEN}]`); // the write resolved asynchronously
    const wp = WPALLOWED | PRESENT;
    expect(out[14]).toBe(`= 3 [${A + 4}, ${A}, ${A + 2}, ${wp}, ${A + 2}, ${A + 3}, ${wp | WRITTEN}, ${A + 3}, ${A + 4}, ${wp}]`);
    const p = PM_PRESENT | PM_EXCL;
    expect(out[15]).toBe(`= 4 [${p | PM_UFFD_WP}, ${p | PM_UFFD_WP}, ${p}, ${p | PM_UFFD_WP}]`);
    expect(out[17]).toBe('-EPERM'); // the child's VMAs are not registered (no UFFD_FEATURE_EVENT_FORK)
    expect(out[18]).toBe(`= 4 [${PM_PRESENT}, ${PM_PRESENT}, ${PM_PRESENT}, ${PM_PRESENT}]`); // nor its PTEs write-protected
    expect(out[19]).toBe('= 33');
  });

  it.skipIf(lacks(EMPTY_PTE) !== undefined)('empty entries of an existing page table: documented as pagemap-scan-empty-pte, exactly', () => {
    const v = checkTrace(oracleBinary(), EMPTY_PTE);
    // The kernel reports them PAGE_IS_WRITTEN and write-protects them with markers; the model
    // walks them as holes. Re-run with the kernel's empty entries, the model agrees everywhere.
    expect(v.result, JSON.stringify(v.differences)).toBe('documented');
    expect(v.documented).toEqual(['pagemap-scan-empty-pte']);
    expect(v.step).toBe(3);
    const kernel = v.kernel.steps.map((s) => formatOutcome(s.outcome));
    expect(kernel[3]).toBe(`= 3 [${A + 4}, ${A}, ${A + 1}, ${WRITTEN}, ${A + 1}, ${A + 2}, ${PRESENT | WRITTEN}, ${A + 2}, ${A + 4}, ${WRITTEN}]`);
    expect(v.plainModel?.steps[3].outcome).toEqual({ kind: 'ok', value: 3, values: [A + 4, A, A + 1, 0, A + 1, A + 2, PRESENT | WRITTEN, A + 2, A + 4, 0] });
    expect(kernel[6]).toBe('= 4 [132, 262, 132, 132]'); // markers (PM_SWAP | PM_UFFD_WP) on the empty entries
    expect(v.kernel.steps[3].emptyPtes).toEqual([A, A + 2, A + 3]);
  });
});
