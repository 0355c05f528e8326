/**
 * Coverage points (kernel-api/coverage.ts): the list itself (ids unique, every driver-API
 * function of both implementations has a point), each driver-API function counted once at
 * its entry, and hand traces that reach named fault, GUP, notifier, reclaim and swap paths,
 * counted alike by the model and the implementation.
 */
import { describe, expect, it } from 'vitest';
import { COVER, COVERAGE_POINTS, COVERAGE_POINTS_COUNT, DRIVER_FUNCTION_NAMES, DRIVER_POINT, coverageJson, type KernelPathKey } from '../../kernel-api/coverage.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { FOLL_FORCE, FOLL_WRITE } from '../../kernel-api/driver.ts';
import type { DriverKernel } from '../../kernel-api/driver.ts';
import type { Kernel } from '../../kernel-api/kernel.ts';
import type { Op } from '../../kernel-api/op.ts';
import { PROT_READ, PROT_WRITE } from '../../kernel-api/op.ts';
import { ModelKernel } from '../../model/kernel.ts';
import { ImplKernel } from '../../impl/kernel.ts';
import { ModelDriverKernel } from '../../model/driverapi.ts';
import { ImplDriverKernel } from '../../impl/driverapi.ts';

const RW = PROT_READ | PROT_WRITE;

type Kernels = { model: ModelKernel; impl: ImplKernel };
const kernels = (): Kernels => ({ model: new ModelKernel(DEFAULT_CONFIG), impl: new ImplKernel(DEFAULT_CONFIG) });

/** Each kernel's driver API and kernel, by kind. */
function eachKernel(ks: Kernels): Array<[string, Kernel, DriverKernel]> {
  return [['model', ks.model, ks.model.driverKernel], ['impl', ks.impl, ks.impl.driverKernel]];
}

/** `op` on both kernels; both must give the same outcome, which is returned. */
function step(ks: Kernels, op: Op): number {
  const m = ks.model.step(op);
  const i = ks.impl.step(op);
  expect(i, JSON.stringify(op)).toEqual(m);
  return m.kind === 'ok' ? m.value : -1;
}

/** The count of a kernel path, per kernel: [model, impl]. */
const countOf = (ks: Kernels, key: KernelPathKey) => [ks.model.locks.coverage[COVER[key]], ks.impl.locks.coverage[COVER[key]]];

/** What changed in each point since `before`, by id, in both kernels (which must agree). */
function delta(ks: Kernels, before: Uint32Array): Record<string, number> {
  expect(coverageJson(ks.impl.locks.coverage)).toEqual(coverageJson(ks.model.locks.coverage));
  const out: Record<string, number> = {};
  for (const [i, p] of COVERAGE_POINTS.entries()) {
    const d = ks.model.locks.coverage[i] - before[i];
    if (d !== 0) out[p.id] = d;
  }
  return out;
}

/** The public functions on a driver-API class's prototype: every own function but the constructor and the private helpers. */
function publicFunctions(proto: object, privateHelpers: readonly string[]): string[] {
  return Object.getOwnPropertyNames(proto).filter((name) => {
    const d = Object.getOwnPropertyDescriptor(proto, name)!;
    return typeof d.value === 'function' && name !== 'constructor' && !privateHelpers.includes(name);
  }).sort();
}

describe('coverage points', () => {
  it('are unique, grouped, one line each, and indexed as listed', () => {
    const ids = COVERAGE_POINTS.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(COVERAGE_POINTS_COUNT);
    for (const p of COVERAGE_POINTS) {
      expect(p.id).toMatch(/^(driver|fault|gup|notifier|fork|zap|reclaim|swap|oom):\S+$/);
      expect(p.description.length, p.id).toBeGreaterThan(0);
      expect(p.description, p.id).not.toMatch(/\n/);
    }
    for (const fn of DRIVER_FUNCTION_NAMES) expect(ids[DRIVER_POINT[fn as keyof typeof DRIVER_POINT]]).toBe(`driver:${fn}`);
    for (const [key, index] of Object.entries(COVER)) expect(ids[index], key).not.toMatch(/^driver:/);
    expect(new Set([...Object.values(COVER), ...Object.values(DRIVER_POINT)]).size).toBe(COVERAGE_POINTS_COUNT);
  });

  it('name every function of both driver-API implementations (a new function without a point fails here)', () => {
    // The classes' private helpers; a public function added to either class lands outside this list and must get a point.
    const modelHelpers = ['assertMmapLocked', 'dropOrphanSwapCache', 'liveMm', 'releasePage', 'seqOf', 'specialPte', 'vmaOf', 'vmaToFill', 'waitForInvalidation'];
    const implHelpers = [...modelHelpers, 'expose'];
    for (const name of modelHelpers) expect(typeof (ModelDriverKernel.prototype as unknown as Record<string, unknown>)[name], name).toBe('function');
    for (const name of implHelpers) expect(typeof (ImplDriverKernel.prototype as unknown as Record<string, unknown>)[name], name).toBe('function');
    const sorted = [...DRIVER_FUNCTION_NAMES].sort();
    expect(publicFunctions(ModelDriverKernel.prototype, modelHelpers)).toEqual(sorted);
    expect(publicFunctions(ImplDriverKernel.prototype, implHelpers)).toEqual(sorted);
  });

  it('count each driver-API call once, at its entry, in both kernels', () => {
    for (const fn of DRIVER_FUNCTION_NAMES) {
      const ks = kernels();
      step(ks, { op: 'spawn' });
      for (const [kind, k, driver] of eachKernel(ks)) {
        const before = k.locks.coverage.slice();
        // Called with no arguments: whatever the function does with them (most throw), the entry counted first.
        try {
          (driver as unknown as Record<string, () => unknown>)[fn]!.call(driver);
        } catch {
          // expected for most: undefined arguments
        }
        const changed = COVERAGE_POINTS.filter((_, i) => i < DRIVER_FUNCTION_NAMES.length && k.locks.coverage[i] !== before[i]).map((p) => p.id);
        expect(changed, `${kind} ${fn}`).toEqual([`driver:${fn}`]);
        expect(k.locks.coverage[DRIVER_POINT[fn as keyof typeof DRIVER_POINT]] - before[DRIVER_POINT[fn as keyof typeof DRIVER_POINT]], `${kind} ${fn}`).toBe(1);
      }
    }
  });
});

describe('kernel paths counted', () => {
  it('anonymous faults: zero page, COW of the zero page, fork COW copy and reuse, SIGSEGV', () => {
    const ks = kernels();
    step(ks, { op: 'spawn' });
    const a = step(ks, { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: RW, shared: false });
    let before = ks.model.locks.coverage.slice();
    step(ks, { op: 'read', pid: 1, addr: a });
    expect(delta(ks, before)).toEqual({ 'fault:do_user_addr_fault': 1, 'fault:handle_mm_fault': 1, 'fault:do_anonymous_page:zero_page': 1 });
    before = ks.model.locks.coverage.slice();
    step(ks, { op: 'write', pid: 1, addr: a, value: 5 });
    // A write to the zero page's read-only special PTE: do_wp_page copies it (under an MMU_NOTIFY_CLEAR range).
    expect(delta(ks, before)).toEqual({
      'fault:do_user_addr_fault': 1, 'fault:handle_mm_fault': 1, 'fault:do_wp_page': 1, 'fault:wp_page_copy:zero_page': 1, 'notifier:invalidate_range_start': 1,
    });
    before = ks.model.locks.coverage.slice();
    step(ks, { op: 'fork', pid: 1 });
    // copy_page_range of the one present page, under the parent's MMU_NOTIFY_PROTECTION range.
    expect(delta(ks, before)).toEqual({ 'fork:copy_present_pte': 1, 'notifier:invalidate_range_start': 1 });
    before = ks.model.locks.coverage.slice();
    step(ks, { op: 'write', pid: 1, addr: a, value: 6 });
    step(ks, { op: 'write', pid: 2, addr: a, value: 7 });
    // The parent copies (the child still holds the page); the child is then alone and reuses it.
    expect(delta(ks, before)).toEqual({
      'fault:do_user_addr_fault': 2, 'fault:handle_mm_fault': 2, 'fault:do_wp_page': 2, 'fault:wp_page_copy': 1, 'fault:wp_can_reuse_anon_folio': 1,
      'notifier:invalidate_range_start': 1,
    });
    before = ks.model.locks.coverage.slice();
    step(ks, { op: 'write', pid: 2, addr: a + 1, value: 8 });
    expect(step(ks, { op: 'read', pid: 1, addr: a + 9 })).toBe(-1);
    expect(delta(ks, before)).toEqual({
      'fault:do_user_addr_fault': 2, 'fault:handle_mm_fault': 1, 'fault:do_anonymous_page': 1, 'fault:bad_area:SIGSEGV': 1,
    });
    before = ks.model.locks.coverage.slice();
    step(ks, { op: 'read', pid: 2, addr: a + 1 });
    step(ks, { op: 'munmap', pid: 1, addr: a, lengthPages: 2 });
    step(ks, { op: 'read', pid: 1, addr: a });
    step(ks, { op: 'munmap', pid: 2, addr: a, lengthPages: 2 });
    // P1 held its copy of page 0; P2 its reused page 0 and page 1, now written.
    expect(delta(ks, before)).toEqual({ 'zap:zap_present_pte': 3, 'notifier:invalidate_range_start': 2, 'fault:do_user_addr_fault': 1, 'fault:bad_area:SIGSEGV': 1 });
  });

  it('file faults: read, shared write, private write (do_cow_fault), beyond EOF', () => {
    const ks = kernels();
    step(ks, { op: 'spawn' });
    const file = step(ks, { op: 'creat', sizePages: 2 });
    const shared = step(ks, { op: 'mmap', pid: 1, addr: 0, lengthPages: 3, prot: RW, shared: true, file });
    const priv = step(ks, { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: RW, shared: false, file });
    const before = ks.model.locks.coverage.slice();
    step(ks, { op: 'read', pid: 1, addr: shared });
    step(ks, { op: 'write', pid: 1, addr: shared + 1, value: 3 });
    step(ks, { op: 'write', pid: 1, addr: priv, value: 4 });
    expect(step(ks, { op: 'read', pid: 1, addr: shared + 2 })).toBe(-1);
    const d = delta(ks, before);
    expect(d).toMatchObject({
      'fault:do_read_fault': 1, 'fault:do_shared_fault': 1, 'fault:do_cow_fault': 1, 'fault:filemap_fault:beyond_eof': 1, 'fault:VM_FAULT_SIGBUS': 1,
      'fault:handle_mm_fault': 4, 'fault:do_user_addr_fault': 4,
    });
    expect(d['fault:do_anonymous_page']).toBeUndefined();
  });

  it('reclaim and swap-in: add_to_swap, try_to_unmap_one, pageout, swapin_readahead, then the swap cache', () => {
    const ks = kernels();
    step(ks, { op: 'spawn' });
    const a = step(ks, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
    step(ks, { op: 'write', pid: 1, addr: a, value: 9 });
    let before = ks.model.locks.coverage.slice();
    expect(step(ks, { op: 'reclaim', pid: 1, addr: a })).toBe(1);
    expect(delta(ks, before)).toEqual({
      'reclaim:shrink_folio_list': 1, 'reclaim:add_to_swap': 1, 'reclaim:try_to_unmap_one:anon': 1, 'reclaim:__remove_mapping:swap': 1,
      'notifier:invalidate_range_start': 1,
    });
    before = ks.model.locks.coverage.slice();
    step(ks, { op: 'read', pid: 1, addr: a });
    expect(delta(ks, before)).toMatchObject({ 'fault:do_swap_page:swapin_readahead': 1, 'fault:do_swap_page:exclusive': 1 });
    expect(countOf(ks, 'doSwapPageCache')).toEqual([0, 0]);
  });

  it('check_stable_address_space: a remote access to an OOM victim\'s page before its exit is SIGBUS (EIO)', () => {
    const ks = kernels();
    step(ks, { op: 'spawn' });
    step(ks, { op: 'spawn', uid: 0 });
    const a = step(ks, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
    step(ks, { op: 'oom', pid: 1 });
    const before = ks.model.locks.coverage.slice();
    const m = ks.model.step({ op: 'proc_mem_read', pid: 2, target: 1, addr: a });
    expect(ks.impl.step({ op: 'proc_mem_read', pid: 2, target: 1, addr: a })).toEqual(m);
    expect(m).toEqual({ kind: 'errno', errno: 'EIO' });
    expect(delta(ks, before)).toEqual({
      'gup:access_remote_vm': 1, 'gup:__get_user_pages': 1, 'gup:faultin_page': 1, 'fault:handle_mm_fault': 1,
      'fault:check_stable_address_space': 1, 'gup:EFAULT:VM_FAULT_SIGBUS': 1,
    });
  });

  it('GUP through the driver API: follow_page, faultin, FOLL_FORCE COW, EFAULT for a hole and for check_vma_flags, and notifier events', () => {
    const ks = kernels();
    step(ks, { op: 'spawn' });
    const a = step(ks, { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: PROT_READ, shared: false });
    const before = ks.model.locks.coverage.slice();
    const results: Record<string, Array<number | string>> = {};
    for (const [kind, , driver] of eachKernel(ks)) {
      const mm = driver.get_task_mm(1)!;
      driver.mmap_read_lock(mm);
      const got = [
        driver.get_user_pages_remote(mm, a, 0), // faulted in: the zero page
        driver.get_user_pages_remote(mm, a, 0), // present now
        driver.get_user_pages_remote(mm, a + 1, FOLL_WRITE | FOLL_FORCE), // a forced write breaks COW
        driver.get_user_pages_remote(mm, a + 7, 0), // no VMA
        driver.get_user_pages_remote(mm, a + 1, FOLL_WRITE), // the VMA is read-only: check_vma_flags
      ];
      driver.mmap_read_unlock(mm);
      const n = driver.mmu_interval_notifier_insert(mm, a, 2, { invalidate: () => true });
      expect(typeof n).toBe('object');
      for (const pfn of got) if (typeof pfn === 'number' && pfn !== driver.zeroPfn) driver.put_page(pfn);
      driver.mmput(mm);
      results[kind] = got.map((r) => typeof r === 'number' ? (r === driver.zeroPfn ? 'zero' : 'page') : r);
    }
    expect(results.impl).toEqual(results.model);
    expect(results.model).toEqual(['zero', 'zero', 'page', 'EFAULT', 'EFAULT']);
    step(ks, { op: 'munmap', pid: 1, addr: a, lengthPages: 2 });
    const d = delta(ks, before);
    expect(d).toMatchObject({
      'driver:get_user_pages_remote': 5, 'driver:mmap_read_lock': 1, 'driver:mmap_read_unlock': 1, 'driver:put_page': 1, 'driver:mmu_interval_notifier_insert': 1,
      'gup:__get_user_pages': 5, 'gup:faultin_page': 2, 'gup:FOLL_FORCE:cow': 1, 'gup:follow_page_pte': 3, 'gup:zero_page': 2, 'gup:FOLL_GET': 1,
      'gup:EFAULT:no_vma': 1, 'gup:EFAULT:check_vma_flags': 1, 'fault:do_anonymous_page:zero_page': 1, 'fault:do_anonymous_page': 1,
      'notifier:MMU_NOTIFY_UNMAP': 1,
    });
    expect(d['gup:EFAULT:VM_IO|VM_PFNMAP']).toBeUndefined();
    expect(d['fault:wp_page_copy']).toBeUndefined();
  });
});
