/**
 * Locks, tasks and nested interleavings in the model (CONCURRENCY-SPEC.md): each lock taken
 * where the spec's table says, the scheduling points of each operation path, the lock
 * checks firing on drivers that break the rules, clone and tids, and nested steps at
 * scheduling points (the model re-checks what Linux re-checks).
 */
import { describe, expect, it } from 'vitest';
import type { DriverFile, DriverKernel, DriverVma, FaultFlags, FaultResult, MmuIntervalNotifier, MmuNotifierRange, VmOperations } from '../../kernel-api/driver.ts';
import { FOLL_GET } from '../../kernel-api/driver.ts';
import type { StrategyFactory } from '../../kernel-api/kernel.ts';
import type { Op } from '../../kernel-api/op.ts';
import type { Errno, Outcome } from '../../kernel-api/outcome.ts';
import { err, ok } from '../../kernel-api/outcome.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { LockViolation } from '../../kernel-api/locks.ts';
import { WouldBlock } from '../../kernel-api/sched.ts';
import { ModelKernel } from '../../model/kernel.ts';
import { KernelAssertionError } from '../../model/assert.ts';
import { NestedScheduler, TraceCursor } from '../../properties/sched.ts';
import { checkCounters, RW } from './helpers.ts';

type Args = Record<string, number | boolean | string>;

/** A notifier interval covering all of user space. */
const ALL = DEFAULT_CONFIG.taskSizePages;

/** A test driver: `open` makes an fd; ->mmap installs `vmOps`; other calls as given. */
type DriverSpec = {
  mmap?(k: DriverKernel, file: DriverFile, vma: DriverVma): Errno | 0;
  release?(k: DriverKernel, file: DriverFile): void;
  vmOps?(k: DriverKernel): Omit<VmOperations, 'name'>;
  calls?: Record<string, (k: DriverKernel, args: Args) => Outcome>;
};

function testDriver(spec: DriverSpec): StrategyFactory {
  return {
    name: 'test',
    create(k) {
      const vmOps: VmOperations = { name: 'test', ...(spec.vmOps?.(k) ?? {}) };
      const fop = {
        name: 'test',
        mmap(file: DriverFile, vma: DriverVma): Errno | 0 {
          vma.vmOps = vmOps;
          return spec.mmap?.(k, file, vma) ?? 0;
        },
        release(file: DriverFile): void {
          spec.release?.(k, file);
        },
      };
      return {
        call(call: string, args: Args): Outcome {
          if (call === 'open') {
            const fd = k.anon_inode_getfd(args.pid as number, fop, null);
            return typeof fd === 'string' ? err(fd) : ok(fd);
          }
          const f = spec.calls?.[call];
          return f === undefined ? err('EINVAL') : f(k, args);
        },
        holds: () => [],
        remoteViews: () => [],
      };
    },
  };
}

function okValue(k: ModelKernel, op: Op): number {
  const o = k.step(op);
  expect(o, JSON.stringify(op)).toMatchObject({ kind: 'ok' });
  return (o as { value: number }).value;
}

/** A kernel with the test driver, one process (P1) and an fd of the driver in it. */
function setup(spec: DriverSpec = {}) {
  const k = new ModelKernel(DEFAULT_CONFIG, [testDriver(spec)]);
  const pid = okValue(k, { op: 'spawn' });
  const fd = okValue(k, { op: 'drv', strategy: 'test', call: 'open', args: { pid } });
  const map = (lengthPages = 2, shared = true, p = pid, f = fd) =>
    okValue(k, { op: 'mmap', pid: p, addr: 0, lengthPages, prot: RW, shared, fd: f });
  return { k, pid, fd, map };
}

type Point = { where: string; task: number; held: string[] };

/** The scheduling points `f` passes, with the task and the locks it holds at each. */
function points(k: ModelKernel, f: () => void): Point[] {
  const out: Point[] = [];
  k.locks.hooks = { preempt: (where) => void out.push({ where, task: k.locks.current, held: k.locks.heldNames(k.locks.current) }) };
  try {
    f();
  } finally {
    k.locks.hooks = null;
  }
  return out;
}

const wheres = (k: ModelKernel, op: Op) => points(k, () => void k.step(op)).map((p) => p.where);

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('nothing thrown');
}

/** A driver page with `value` (alloc_page: a scheduling point). */
function pageWith(k: DriverKernel, value: number): FaultResult {
  const pfn = k.alloc_page();
  if (pfn === null) return { kind: 'oom' };
  k.page_write(pfn, value);
  return { kind: 'page', pfn };
}

describe('scheduling points of the core operations', () => {
  it('each operation path passes the points the spec says, in order, holding nothing before its entry lock', () => {
    const k = new ModelKernel();
    expect(wheres(k, { op: 'spawn' })).toEqual([]);
    okValue(k, { op: 'spawn' });
    let a = 0;
    const mmap = points(k, () => { a = okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 4, prot: RW, shared: false }); });
    expect(mmap).toEqual([{ where: 'vm_mmap_pgoff', task: 1, held: [] }]);
    // The fault allocates the page (alloc_anon_folio may sleep): a point inside it.
    expect(wheres(k, { op: 'write', pid: 1, addr: a, value: 5 })).toEqual(['do_user_addr_fault', 'alloc_anon_folio']);
    // A present PTE that permits the access: no fault, no lock, no point.
    expect(wheres(k, { op: 'write', pid: 1, addr: a, value: 6 })).toEqual([]);
    expect(wheres(k, { op: 'read', pid: 1, addr: a })).toEqual([]);
    // A read of an unmapped page faults, takes the lock and finds no VMA.
    expect(wheres(k, { op: 'read', pid: 1, addr: 3 })).toEqual(['do_user_addr_fault']);
    expect(k.step({ op: 'read', pid: 1, addr: 3 })).toEqual({ kind: 'signal', signal: 'SIGSEGV' });
    expect(wheres(k, { op: 'mprotect', pid: 1, addr: a + 3, lengthPages: 1, prot: 1 })).toEqual(['do_mprotect_pkey']);
    expect(wheres(k, { op: 'madvise', pid: 1, addr: a + 2, lengthPages: 1, advice: 'COLD' })).toEqual(['do_madvise']);
    expect(wheres(k, { op: 'madvise', pid: 1, addr: a + 2, lengthPages: 1, advice: 'DONTFORK' })).toEqual(['do_madvise']);
    const fork = points(k, () => void okValue(k, { op: 'fork', pid: 1 }));
    expect(fork).toEqual([
      { where: 'dup_mmap', task: 1, held: [] },
      { where: 'dup_mmap', task: 1, held: ['mmap_lock of P1'] },
    ]);
    // GUP of a present page: only the entry lock; of a page to fault in: the GUP point after the fault.
    expect(wheres(k, { op: 'proc_mem_read', pid: 1, target: 1, addr: a })).toEqual(['access_remote_vm']);
    expect(wheres(k, { op: 'proc_mem_read', pid: 1, target: 1, addr: a + 1 })).toEqual(['access_remote_vm', 'get_user_pages_remote']);
    // A read-only pin of the page fork made COW-shared unshares it first: a fault that
    // allocates the copy (folio_prealloc may sleep), then the GUP point.
    expect(wheres(k, { op: 'process_vm_readv', pid: 1, target: 1, addr: a })).toEqual(['process_vm_rw_single_vec', 'folio_prealloc', 'get_user_pages_remote']);
    expect(wheres(k, { op: 'process_vm_readv', pid: 1, target: 1, addr: a })).toEqual(['process_vm_rw_single_vec']);
    expect(wheres(k, { op: 'pagemap_read', pid: 1, target: 1, addr: a, count: 4 })).toEqual(['pagemap_read']);
    expect(wheres(k, { op: 'map_files_readdir', pid: 1, target: 1 })).toEqual(['proc_map_files_readdir']);
    expect(wheres(k, { op: 'clear_refs', pid: 1, target: 1, mode: 4 })).toEqual(['clear_refs_write']);
    expect(wheres(k, {
      op: 'pagemap_scan', pid: 1, start: a, end: a + 4, flags: 0, max_pages: 0, category_inverted: 0, category_mask: 0,
      category_anyof_mask: 0, return_mask: 0x1ff, vec_len: 4,
    })).toEqual(['do_pagemap_scan']);
    expect(wheres(k, { op: 'uffd_register_wp', pid: 1, addr: a, lengthPages: 1, async: true })).toEqual(['userfaultfd_register']);
    // Reclaim and truncate have no scheduling point of their own; nor do file ops, clone, fault injection.
    expect(wheres(k, { op: 'reclaim', pid: 1, addr: a })).toEqual([]);
    expect(wheres(k, { op: 'reclaim', count: 10 })).toEqual([]);
    const file = okValue(k, { op: 'creat', sizePages: 2 });
    const fm = okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: RW, shared: true, file });
    // A file page not in the page cache is brought in under the invalidate_lock (shared): a point.
    expect(wheres(k, { op: 'write', pid: 1, addr: fm, value: 1 })).toEqual(['do_user_addr_fault', 'filemap_fault']);
    expect(wheres(k, { op: 'truncate', file, sizePages: 0 })).toEqual([]);
    expect(wheres(k, { op: 'pwrite', file, index: 0, value: 3 })).toEqual([]);
    expect(wheres(k, { op: 'pread', file, index: 0 })).toEqual([]);
    expect(wheres(k, { op: 'fail_nth', nth: 0 })).toEqual([]);
    expect(wheres(k, { op: 'set_dumpable', pid: 1, dumpable: true })).toEqual([]);
    expect(wheres(k, { op: 'clone', pid: 1 })).toEqual([]);
    expect(wheres(k, { op: 'mremap', pid: 1, addr: a, oldPages: 1, newPages: 1 })).toEqual(['do_mremap']);
    expect(wheres(k, { op: 'munmap', pid: 1, addr: fm, lengthPages: 2 })).toEqual(['vm_munmap']);
    expect(wheres(k, { op: 'exit', pid: 2 })).toEqual(['exit_mmap']);
    expect(wheres(k, { op: 'oom', pid: 1 })).toEqual(['oom_reap_task_mm']);
    expect(wheres(k, { op: 'exit', pid: 1 })).toEqual(['exit_mmap']); // the victim's own exit, later
    expect(k.locks.holdsAny(1) || k.locks.holdsAny(0)).toBe(false);
  });

  it('mmap(MAP_LOCKED) takes effect at do_mmap, then lets another task in only at the populate\'s mmap_lock', () => {
    const k = new ModelKernel();
    okValue(k, { op: 'spawn' });
    const events: string[] = [];
    k.locks.hooks = {
      preempt: (where) => void events.push(where),
      linearized: (o) => void events.push(`linearized ${o.kind}`),
    };
    let a = 0;
    try {
      a = okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 3, prot: RW, shared: false, locked: true });
    } finally {
      k.locks.hooks = null;
    }
    // Three write faults ran inside the populate, each past points of its own, none offered.
    expect(events).toEqual(['vm_mmap_pgoff', 'linearized ok', '__mm_populate']);
    expect(k.locks.points).toBeGreaterThan(2);
    expect([...k.inspect.ptes(1)].filter(([addr, p]) => addr >= a && addr < a + 3 && p.kind === 'present')).toHaveLength(3);
    // Without MAP_LOCKED nothing follows do_mmap: no early effect.
    events.length = 0;
    k.locks.hooks = { preempt: (where) => void events.push(where), linearized: () => void events.push('linearized') };
    try {
      okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
    } finally {
      k.locks.hooks = null;
    }
    expect(events).toEqual(['vm_mmap_pgoff']);
  });

  it('a validation error of an op on its own mm still takes the entry lock first; ESRCH takes none', () => {
    const k = new ModelKernel();
    okValue(k, { op: 'spawn' });
    expect(wheres(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 0, prot: RW, shared: false })).toEqual(['vm_mmap_pgoff']);
    expect(wheres(k, { op: 'mmap', pid: 7, addr: 0, lengthPages: 1, prot: RW, shared: false })).toEqual([]);
    expect(k.step({ op: 'mmap', pid: 7, addr: 0, lengthPages: 1, prot: RW, shared: false })).toEqual(err('ESRCH'));
  });
});

describe('locks held in hooks and callbacks', () => {
  it('->mmap under mmap_lock write, ->fault under read, ->open under both (fork), ->close under write, ->release after unlock', () => {
    const seen: Record<string, string[][]> = {};
    const note = (k: DriverKernel, what: string, kernel: () => ModelKernel) => {
      (seen[what] ??= []).push(kernel().locks.heldNames(k.current()));
    };
    let kernel: ModelKernel | undefined;
    const K = () => kernel!;
    const t = setup({
      mmap: (k) => { note(k, 'mmap', K); return 0; },
      release: (k) => note(k, 'release', K),
      vmOps: (k) => ({
        fault: (_v, _a, pgoff) => { note(k, 'fault', K); return pageWith(k, pgoff); },
        open: () => note(k, 'open', K),
        close: () => note(k, 'close', K),
      }),
    });
    kernel = t.k;
    const a = t.map(2);
    expect(okValue(t.k, { op: 'read', pid: 1, addr: a })).toBe(0);
    okValue(t.k, { op: 'fork', pid: 1 });
    okValue(t.k, { op: 'munmap', pid: 2, addr: a, lengthPages: 1 });
    okValue(t.k, { op: 'close', pid: 1, fd: t.fd });
    okValue(t.k, { op: 'close', pid: 2, fd: t.fd });
    okValue(t.k, { op: 'exit', pid: 2 });
    okValue(t.k, { op: 'exit', pid: 1 });
    expect(seen.mmap).toEqual([['mmap_lock of P1']]);
    expect(seen.fault).toEqual([['mmap_lock of P1 (read)']]);
    // fork's copy under both; the split of munmap under the child's.
    expect(seen.open).toEqual([['mmap_lock of P1', 'mmap_lock of P2'], ['mmap_lock of P2']]);
    expect(seen.close).toEqual([['mmap_lock of P2'], ['mmap_lock of P2'], ['mmap_lock of P1']]);
    // The last reference was the last VMA's: its fput ran after exit_mmap dropped the lock.
    expect(seen.release).toEqual([[]]);
  });

  it('notifier callbacks: under mmap_lock read for DONTNEED, rmap locks (no mmap_lock) in reclaim and truncate, non-blockable only in the OOM reap', () => {
    const calls: Array<{ event: string; blockable: boolean; held: string[]; task: number }> = [];
    let kernel: ModelKernel | undefined;
    const t = setup({
      calls: {
        notify(k, args) {
          const n = k.mmu_interval_notifier_insert(k.get_task_mm(args.pid as number)!, args.addr as number, args.len as number, {
            invalidate(_n: MmuIntervalNotifier, r: MmuNotifierRange) {
              calls.push({ event: r.event, blockable: r.blockable, held: kernel!.locks.heldNames(k.current()), task: k.current() });
              return true;
            },
          });
          return typeof n === 'string' ? err(n) : ok(n.id);
        },
      },
    });
    kernel = t.k;
    const k = t.k;
    const file = okValue(k, { op: 'creat', sizePages: 4 });
    const fm = okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 4, prot: RW, shared: true, file });
    const anon = okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 4, prot: RW, shared: false });
    okValue(k, { op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1, addr: 0, len: ALL } });
    for (let i = 0; i < 4; i++) {
      okValue(k, { op: 'write', pid: 1, addr: fm + i, value: i });
      okValue(k, { op: 'write', pid: 1, addr: anon + i, value: i });
    }
    const take = () => calls.splice(0);
    okValue(k, { op: 'madvise', pid: 1, addr: anon, lengthPages: 1, advice: 'DONTNEED' });
    expect(take()).toEqual([{ event: 'clear', blockable: true, held: ['mmap_lock of P1 (read)'], task: 1 }]);
    okValue(k, { op: 'reclaim', pid: 1, addr: anon + 1 });
    const anonVmaLock = take();
    expect(anonVmaLock).toHaveLength(1);
    expect(anonVmaLock[0]!.held).toHaveLength(1);
    expect(anonVmaLock[0]!.held[0]).toMatch(/^anon_vma \d+ \(read\)$/);
    okValue(k, { op: 'reclaim', pid: 1, addr: fm + 1 });
    expect(take()).toEqual([{ event: 'clear', blockable: true, held: [`i_mmap_rwsem of file ${file} (read)`], task: 1 }]);
    okValue(k, { op: 'truncate', file, sizePages: 3 });
    expect(take()).toEqual([{ event: 'clear', blockable: true, held: [`i_mmap_rwsem of file ${file} (read)`], task: 0 }]);
    okValue(k, { op: 'mprotect', pid: 1, addr: anon + 2, lengthPages: 1, prot: 1 });
    expect(take()).toEqual([{ event: 'protection', blockable: true, held: ['mmap_lock of P1'], task: 1 }]);
    okValue(k, { op: 'oom', pid: 1 });
    // The reap tells of the private VMA (anonymous) under the read lock, non-blockable; the
    // victim's exit, later, of every VMA under write in exit_mmap.
    // mprotect split the anonymous mapping in three; the shared file mapping is not reaped.
    const reap = { event: 'oom', blockable: false, held: ['mmap_lock of P1 (read)'], task: 1 };
    const exit = { event: 'exit', blockable: true, held: ['mmap_lock of P1'], task: 1 };
    expect(take()).toEqual([reap, reap, reap]);
    okValue(k, { op: 'exit', pid: 1 });
    expect(take()).toEqual([exit, exit, exit, exit]);
  });
});

describe('lock violations by drivers', () => {
  it('deadlock: ->mmap takes mmap_read_lock(current_mm()), which the mmap caller holds for write', () => {
    const t = setup({ mmap: (k) => { k.mmap_read_lock(k.current_mm()); return 0; } });
    const e = thrown(() => t.k.step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: true, fd: t.fd }));
    expect(e).toBeInstanceOf(LockViolation);
    expect((e as LockViolation).invariant).toBe('deadlock');
    expect((e as LockViolation).message).toContain('mmap_lock of P1');
  });

  it('deadlock: ->mmap registers an interval notifier on its own mm (mmu_notifier_register takes mmap_lock write)', () => {
    const t = setup({
      mmap: (k, _f, vma) => {
        const n = k.mmu_interval_notifier_insert(k.current_mm(), vma.start, vma.end - vma.start, { invalidate: () => true });
        return typeof n === 'string' ? n : 0;
      },
    });
    const e = thrown(() => t.k.step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: true, fd: t.fd }));
    expect((e as LockViolation).invariant).toBe('deadlock');
  });

  it('lock-order: a notifier insert on another mm while holding this mm\'s mmap_lock nests the class without annotation', () => {
    const t = setup({
      mmap: (k) => {
        const n = k.mmu_interval_notifier_insert(k.get_task_mm(2)!, 0, 1, { invalidate: () => true });
        return typeof n === 'string' ? n : 0;
      },
    });
    okValue(t.k, { op: 'spawn' });
    const e = thrown(() => t.k.step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: true, fd: t.fd }));
    expect(e).toBeInstanceOf(LockViolation);
    expect((e as LockViolation).invariant).toBe('lock-order');
  });

  it('sleep-in-atomic: a notifier callback that takes a mutex in the OOM reap (non-blockable range)', () => {
    let kernel: ModelKernel | undefined;
    const t = setup({
      calls: {
        notify(k, args) {
          const lock = k.mutex_init('test:lock');
          const n = k.mmu_interval_notifier_insert(k.get_task_mm(args.pid as number)!, 0, ALL, {
            invalidate() {
              k.mutex_lock(lock);
              k.mutex_unlock(lock);
              return true;
            },
          });
          return typeof n === 'string' ? err(n) : ok(n.id);
        },
      },
    });
    kernel = t.k;
    const a = okValue(t.k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
    okValue(t.k, { op: 'write', pid: 1, addr: a, value: 1 });
    okValue(t.k, { op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1 } });
    // Blockable ranges may sleep: DONTNEED is fine.
    okValue(t.k, { op: 'madvise', pid: 1, addr: a, lengthPages: 1, advice: 'DONTNEED' });
    okValue(t.k, { op: 'write', pid: 1, addr: a, value: 2 });
    const e = thrown(() => kernel!.step({ op: 'oom', pid: 1 }));
    expect(e).toBeInstanceOf(LockViolation);
    expect((e as LockViolation).invariant).toBe('sleep-in-atomic');
    expect((e as LockViolation).message).toContain('non-blockable');
  });

  it('the OOM reaper skips a range whose callback refuses (trylock failed): the exit zaps it', () => {
    const seen: Array<[string, boolean, boolean]> = [];
    let kernel: ModelKernel | undefined;
    let addr = 0;
    const t = setup({
      calls: {
        notify(k, args) {
          const n = k.mmu_interval_notifier_insert(k.get_task_mm(args.pid as number)!, 0, ALL, {
            invalidate(_n, r) {
              const mapped = new Map(kernel!.inspect.ptes(1)).has(addr);
              seen.push([r.event, r.blockable, mapped]);
              return r.blockable;
            },
          });
          return typeof n === 'string' ? err(n) : ok(n.id);
        },
      },
    });
    kernel = t.k;
    addr = okValue(t.k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
    okValue(t.k, { op: 'write', pid: 1, addr, value: 1 });
    const pfn = (new Map(t.k.inspect.ptes(1)).get(addr) as { pfn: number }).pfn;
    okValue(t.k, { op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1 } });
    okValue(t.k, { op: 'oom', pid: 1 });
    // Refused in the reap: the page is still mapped, and the victim's exit_mmap tells of it.
    expect(seen).toEqual([['oom', false, true]]);
    expect(t.k.inspect.frame(pfn)).toBeDefined();
    okValue(t.k, { op: 'exit', pid: 1 });
    expect(seen).toEqual([['oom', false, true], ['exit', true, true]]);
    expect(t.k.inspect.frame(pfn)).toBeUndefined();
  });

  it('lock-leak: ->fault returns holding a driver mutex', () => {
    const t = setup({
      vmOps: (k) => {
        const lock = k.mutex_init('test:fault_lock');
        return { fault: () => { k.mutex_lock(lock); return pageWith(k, 1); } };
      },
    });
    const a = t.map(1);
    const e = thrown(() => t.k.step({ op: 'read', pid: 1, addr: a }));
    expect(e).toBeInstanceOf(LockViolation);
    expect((e as LockViolation).invariant).toBe('lock-leak');
    expect((e as LockViolation).message).toContain('test:fault_lock');
  });

  it('sleep-in-atomic: vmf_insert_pfn (page-table allocation may sleep) under a driver spinlock', () => {
    const t = setup({
      mmap: (_k, _f, vma) => { vma.pfnmap = true; return 0; },
      vmOps: (k) => {
        const spin = k.spin_lock_init('test:spin');
        return { fault: (vma, addr) => { k.spin_lock(spin); const r = k.vmf_insert_pfn(vma, addr, k.zeroPfn); k.spin_unlock(spin); return r; } };
      },
    });
    const a = t.map(1);
    const e = thrown(() => t.k.step({ op: 'read', pid: 1, addr: a }));
    expect((e as LockViolation).invariant).toBe('sleep-in-atomic');
  });

  it('get_user_pages_remote without the mmap_lock is a kernel assertion (mmap_assert_locked); with it, it works', () => {
    const t = setup({
      calls: {
        gup(k, args) {
          const mm = k.get_task_mm(args.pid as number)!;
          if (args.lock === true) k.mmap_read_lock(mm);
          const pfn = k.get_user_pages_remote(mm, args.addr as number, FOLL_GET);
          if (args.lock === true) k.mmap_read_unlock(mm);
          if (typeof pfn === 'string') return err(pfn);
          const v = k.page_read(pfn);
          k.put_page(pfn);
          return ok(v);
        },
      },
    });
    const a = okValue(t.k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
    okValue(t.k, { op: 'write', pid: 1, addr: a, value: 42 });
    const e = thrown(() => t.k.step({ op: 'drv', strategy: 'test', call: 'gup', args: { pid: 1, addr: a } }));
    expect(e).toBeInstanceOf(KernelAssertionError);
    expect((e as KernelAssertionError).invariant).toBe('kernel-assert');
    expect((e as Error).message).toBe('get_user_pages_remote without mmap_lock of P1 held (mmap_assert_locked)');
    expect(okValue(t.k, { op: 'drv', strategy: 'test', call: 'gup', args: { pid: 1, addr: a, lock: true } })).toBe(42);
    checkCounters(t.k);
  });
});

describe('driver API scheduling points', () => {
  it('kmalloc(GFP_KERNEL), mutex_lock, alloc_page, anon_inode_getfd, might_sleep are points; GFP_ATOMIC, trylock, spin_lock are not', () => {
    const t = setup({
      calls: {
        mix(k) {
          const m = k.mutex_init('test:m');
          const sp = k.spin_lock_init('test:s');
          k.kfree(k.kmalloc('a')!);
          k.kfree(k.kmalloc('b', 'GFP_ATOMIC')!);
          k.mutex_lock(m);
          k.mutex_unlock(m);
          expect(k.mutex_trylock(m)).toBe(true);
          k.mutex_unlock(m);
          k.spin_lock(sp);
          k.kfree(k.kmalloc('c', 'GFP_ATOMIC')!);
          k.spin_unlock(sp);
          k.__free_page(k.alloc_page()!);
          k.might_sleep('copy_to_user');
          return ok(0);
        },
      },
    });
    expect(wheres(t.k, { op: 'drv', strategy: 'test', call: 'mix', args: { pid: 1 } })).toEqual(['kmalloc', 'mutex_lock', 'alloc_page', 'copy_to_user']);
    expect(wheres(t.k, { op: 'drv', strategy: 'test', call: 'open', args: { pid: 1 } })).toEqual(['anon_inode_getfd']);
  });

  it('mmu_interval_notifier_insert: a point, then mmap_lock write taken and released', () => {
    const t = setup({
      calls: {
        notify(k, args) {
          const n = k.mmu_interval_notifier_insert(k.get_task_mm(args.pid as number)!, 0, 4, { invalidate: () => true });
          return typeof n === 'string' ? err(n) : ok(n.id);
        },
      },
    });
    const p = points(t.k, () => void okValue(t.k, { op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1 } }));
    expect(p).toEqual([
      { where: 'mmu_interval_notifier_insert', task: 1, held: [] },
      { where: 'mmu_interval_notifier_insert', task: 1, held: [] },
    ]);
    expect(t.k.locks.dependencies()).toEqual([]);
  });

  it('vmf_insert_pfn on a PTE already present returns VM_FAULT_NOPAGE and leaves it; each insert passes a point', () => {
    const inserted: FaultResult[] = [];
    let first = 0;
    let second = 0;
    const t = setup({
      mmap: (k, _f, vma) => {
        vma.pfnmap = true;
        first = k.alloc_page()!;
        second = k.alloc_page()!;
        return 0;
      },
      vmOps: (k) => ({
        fault: (vma, addr) => {
          inserted.push(k.vmf_insert_pfn(vma, addr, first));
          inserted.push(k.vmf_insert_pfn(vma, addr, second));
          return { kind: 'nopage' };
        },
      }),
    });
    const a = t.map(1);
    expect(wheres(t.k, { op: 'read', pid: 1, addr: a })).toEqual(['do_user_addr_fault', 'vmf_insert_pfn', 'vmf_insert_pfn']);
    expect(inserted).toEqual([{ kind: 'nopage' }, { kind: 'nopage' }]);
    expect(new Map(t.k.inspect.ptes(1)).get(a)).toMatchObject({ kind: 'present', pfn: first, special: true });
  });
});

describe('faults: VM_FAULT_RETRY', () => {
  it('a handler that drops the mmap_lock and returns RETRY is called again with tried, after the lock is retaken', () => {
    const flags: FaultFlags[] = [];
    const t = setup({
      vmOps: (k) => ({
        fault: (_v, _a, pgoff, _w, f) => {
          flags.push(f);
          if (!f.tried) {
            k.mmap_read_unlock(k.current_mm());
            return { kind: 'retry' };
          }
          return pageWith(k, 100 + pgoff);
        },
      }),
    });
    const a = t.map(1);
    expect(points(t.k, () => expect(t.k.step({ op: 'read', pid: 1, addr: a })).toEqual(ok(100))).map((p) => [p.where, p.held])).toEqual([
      ['do_user_addr_fault', []], ['do_user_addr_fault', []], ['alloc_page', ['mmap_lock of P1 (read)']],
    ]);
    expect(flags).toEqual([{ allowRetry: true, tried: false }, { allowRetry: true, tried: true }]);
    // A GUP fault (get_user_pages_remote with locked == NULL) may not retry.
    okValue(t.k, { op: 'munmap', pid: 1, addr: a, lengthPages: 1 });
    const b = t.map(1);
    flags.length = 0;
    const e = thrown(() => t.k.step({ op: 'proc_mem_read', pid: 1, target: 1, addr: b }));
    expect(flags).toEqual([{ allowRetry: false, tried: false }]);
    expect((e as Error).message).toContain('VM_FAULT_RETRY');
  });

  it('a fault retried forever is a kernel assertion', () => {
    const t = setup({ vmOps: (k) => ({ fault: () => { k.mmap_read_unlock(k.current_mm()); return { kind: 'retry' }; } }) });
    const a = t.map(1);
    const e = thrown(() => t.k.step({ op: 'read', pid: 1, addr: a }));
    expect(e).toBeInstanceOf(KernelAssertionError);
    expect((e as Error).message).toContain('retried forever');
  });

  it('after a retry the VMA is looked up again: another thread unmapped it meanwhile, so SIGSEGV', () => {
    const t = setup({ vmOps: (k) => ({ fault: () => { k.mmap_read_unlock(k.current_mm()); return { kind: 'retry' }; } }) });
    const a = t.map(1);
    const tid = okValue(t.k, { op: 'clone', pid: 1 });
    let nested: Outcome | undefined;
    let n = 0;
    t.k.locks.hooks = {
      preempt: (where) => {
        if (where === 'do_user_addr_fault' && n++ === 1) nested = t.k.step({ op: 'munmap', pid: 1, tid, addr: a, lengthPages: 1 });
      },
    };
    expect(t.k.step({ op: 'read', pid: 1, addr: a })).toEqual({ kind: 'signal', signal: 'SIGSEGV' });
    t.k.locks.hooks = null;
    expect(nested).toEqual(ok(0));
    expect([...t.k.inspect.vmas(1)]).toEqual([]);
  });
});

describe('clone: threads and tids', () => {
  it('clone makes a thread whose ops run as itself; tids come from the pid counter; a bad tid is ESRCH; exit takes every thread', () => {
    const k = new ModelKernel();
    okValue(k, { op: 'spawn' });
    const tid = okValue(k, { op: 'clone', pid: 1 });
    expect(tid).toBe(2);
    expect(okValue(k, { op: 'spawn' })).toBe(3);
    expect(k.threadsOf(1)).toEqual([1, 2]);
    const p = points(k, () => void okValue(k, { op: 'mmap', pid: 1, tid, addr: 0, lengthPages: 1, prot: RW, shared: false }));
    expect(p.map((x) => x.task)).toEqual([tid]);
    const a = [...k.inspect.vmas(1)][0]!.start;
    okValue(k, { op: 'write', pid: 1, tid, addr: a, value: 9 });
    expect(okValue(k, { op: 'read', pid: 1, addr: a })).toBe(9);
    // P3's main thread is not a thread of P1; 99 is nobody.
    expect(k.step({ op: 'read', pid: 1, tid: 3, addr: a })).toEqual(err('ESRCH'));
    expect(k.step({ op: 'read', pid: 1, tid: 99, addr: a })).toEqual(err('ESRCH'));
    expect(k.step({ op: 'clone', pid: 42 })).toEqual(err('ESRCH'));
    // fork by a thread copies only that thread: the child's one thread is its main thread.
    const child = okValue(k, { op: 'fork', pid: 1, tid });
    expect(k.threadsOf(child)).toEqual([child]);
    expect(okValue(k, { op: 'read', pid: child, addr: a })).toBe(9);
    // exit_group by a thread: all of P1's threads go.
    okValue(k, { op: 'exit', pid: 1, tid });
    expect(k.threadsOf(1)).toEqual([]);
    expect(k.step({ op: 'read', pid: 1, tid, addr: a })).toEqual(err('ESRCH'));
    expect(k.step({ op: 'clone', pid: 1 })).toEqual(err('ESRCH'));
    expect(k.locks.holdsAny(tid)).toBe(false);
  });
});

describe('re-entrancy: nested steps at scheduling points', () => {
  it('another process runs to completion at a driver point inside ->fault; the outer fault then completes', () => {
    let kernel: ModelKernel | undefined;
    const t = setup({ vmOps: (k) => ({ fault: (_v, _a, pgoff) => { k.kfree(k.kmalloc('ctx')!); return pageWith(k, 7 + pgoff); } }) });
    kernel = t.k;
    const a = t.map(1);
    const other = okValue(t.k, { op: 'spawn' });
    const b = okValue(t.k, { op: 'mmap', pid: other, addr: 0, lengthPages: 1, prot: RW, shared: false });
    const nested: Outcome[] = [];
    t.k.locks.hooks = {
      preempt(where) {
        if (where !== 'kmalloc' || nested.length > 0) return;
        nested.push(kernel!.step({ op: 'write', pid: other, addr: b, value: 55 }));
        // The preempted task is current again once the nested step returns.
        expect(kernel!.locks.current).toBe(1);
      },
    };
    expect(t.k.step({ op: 'read', pid: 1, addr: a })).toEqual(ok(7));
    t.k.locks.hooks = null;
    expect(nested).toEqual([ok(0)]);
    expect(okValue(t.k, { op: 'read', pid: other, addr: b })).toBe(55);
    checkCounters(t.k);
  });

  it('finish_fault: another thread filled the PTE while ->fault slept; the outer page is dropped, not mapped over', () => {
    let kernel: ModelKernel | undefined;
    let value = 0;
    const allocated: number[] = [];
    const t = setup({
      vmOps: (k) => ({
        fault: () => {
          const r = pageWith(k, value++);
          if (r.kind === 'page') allocated.push(r.pfn);
          return r;
        },
      }),
    });
    kernel = t.k;
    const a = t.map(1);
    const tid = okValue(t.k, { op: 'clone', pid: 1 });
    let nested: Outcome | undefined;
    t.k.locks.hooks = {
      preempt(where) {
        if (where !== 'alloc_page' || nested !== undefined) return;
        nested = { kind: 'ok', value: -1 };
        // Another thread of the same process faults the same page: both hold mmap_lock for read.
        nested = kernel!.step({ op: 'read', pid: 1, tid, addr: a });
      },
    };
    // The outer handler's page has value 0, the nested one's value 1; the nested one got mapped
    // first, so the outer page is dropped and the outer read sees the nested page.
    expect(t.k.step({ op: 'read', pid: 1, addr: a })).toEqual(ok(1));
    t.k.locks.hooks = null;
    expect(nested).toEqual(ok(1));
    expect(allocated).toHaveLength(2);
    expect(new Map(t.k.inspect.ptes(1)).get(a)).toMatchObject({ kind: 'present', pfn: allocated[0] });
    expect(t.k.inspect.frame(allocated[1]!)).toBeUndefined();
    checkCounters(t.k);
  });

  it('a nested op that needs the mmap_lock for write while the preempted fault holds it for read: WouldBlock, and nothing stays held', () => {
    let kernel: ModelKernel | undefined;
    const t = setup({ vmOps: (k) => ({ fault: () => pageWith(k, 1) }) });
    kernel = t.k;
    const a = t.map(1);
    const tid = okValue(t.k, { op: 'clone', pid: 1 });
    t.k.locks.hooks = {
      preempt(where) {
        if (where === 'alloc_page') kernel!.step({ op: 'munmap', pid: 1, tid, addr: a, lengthPages: 1 });
      },
    };
    const e = thrown(() => t.k.step({ op: 'read', pid: 1, addr: a }));
    t.k.locks.hooks = null;
    expect(e).toBeInstanceOf(WouldBlock);
    expect(e).toMatchObject({ tid, holder: 1, mode: 'write', where: 'vm_munmap' });
    expect((e as WouldBlock).lock.name).toBe('mmap_lock of P1');
    expect(t.k.locks.holdsAny(1) || t.k.locks.holdsAny(tid)).toBe(false);
    expect(t.k.locks.current).toBe(0);
  });

  it('the nested scheduler: a recorded switch starts the next op at the k-th point; one that would wait at its first lock is not started', () => {
    const t = setup({ vmOps: (k) => ({ fault: (_v, _a, pgoff) => pageWith(k, 10 + pgoff) }) });
    const a = t.map(2);
    const tid = okValue(t.k, { op: 'clone', pid: 1 });
    // Point 0: do_user_addr_fault; point 1: alloc_page in ->fault. A read by the other thread of page a+1 fits there.
    const trace: Op[] = [
      { op: 'read', pid: 1, addr: a, switches: [{ at: 1, to: tid }] },
      { op: 'read', pid: 1, tid, addr: a + 1 },
    ];
    const sched = new NestedScheduler(t.k, new TraceCursor(trace, 1), null);
    sched.run(trace[0]!);
    expect(sched.ran.map((r) => [r.op.tid ?? r.op.op, r.outcome])).toEqual([[tid, ok(11)], ['read', ok(10)]]);
    // A munmap by the other thread at the same point waits for the read lock: it is not started there.
    okValue(t.k, { op: 'munmap', pid: 1, addr: a, lengthPages: 2 });
    const c = t.map(1);
    const trace2: Op[] = [
      { op: 'read', pid: 1, addr: c, switches: [{ at: 1, to: tid }] },
      { op: 'munmap', pid: 1, tid, addr: c, lengthPages: 1 },
    ];
    const cursor = new TraceCursor(trace2, 1);
    const sched2 = new NestedScheduler(t.k, cursor, null);
    sched2.run(trace2[0]!);
    expect(sched2.ran.map((r) => r.outcome)).toEqual([ok(10)]);
    expect(t.k.locks.holdsAny(tid)).toBe(false);
  });
});

describe('a task whose process exited while it slept', () => {
  it('exit_group by another thread at the entry lock\'s point: the preempted op does nothing (ESRCH), nothing is mapped into the dead mm', () => {
    const k = new ModelKernel();
    okValue(k, { op: 'spawn' });
    const tid = okValue(k, { op: 'clone', pid: 1 });
    const nested: Outcome[] = [];
    let once = false;
    k.locks.hooks = { preempt: () => { if (!once) { once = true; nested.push(k.step({ op: 'oom', pid: 1, tid })); } } };
    expect(k.step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false })).toEqual(err('ESRCH'));
    k.locks.hooks = null;
    expect(nested).toEqual([ok(0)]);
    expect([...k.inspect.vmas(1)]).toEqual([]);
    // A fault whose lock point lets the exit run: ESRCH too, and no page is left behind.
    okValue(k, { op: 'spawn' });
    const t2 = okValue(k, { op: 'clone', pid: 3 });
    const a = okValue(k, { op: 'mmap', pid: 3, addr: 0, lengthPages: 1, prot: RW, shared: false });
    nested.length = 0;
    once = false;
    k.locks.hooks = { preempt: (where) => { if (!once && where === 'do_user_addr_fault') { once = true; nested.push(k.step({ op: 'exit', pid: 3, tid: t2 })); } } };
    expect(k.step({ op: 'write', pid: 3, addr: a, value: 1 })).toEqual(err('ESRCH'));
    k.locks.hooks = null;
    expect(nested).toEqual([ok(0)]);
    expect([...k.inspect.frames()].filter((f) => f.kind !== 'zero')).toEqual([]);
  });
});

describe('MMU notifier waits', () => {
  function notifierSetup(onInvalidate: (k: DriverKernel, n: MmuIntervalNotifier) => void) {
    let n: MmuIntervalNotifier | undefined;
    const t = setup({
      calls: {
        notify(k, args) {
          const r = k.mmu_interval_notifier_insert(k.get_task_mm(args.pid as number)!, 0, ALL, {
            invalidate(self) {
              onInvalidate(k, self);
              return true;
            },
          });
          if (typeof r === 'string') return err(r);
          n = r;
          return ok(r.id);
        },
        begin(k) {
          return ok(k.mmu_interval_read_begin(n!));
        },
        retry(k, args) {
          const seq = args.seq as number;
          const a = k.mmu_interval_read_retry(n!, seq);
          expect(k.mmu_interval_check_retry(n!, seq)).toBe(a);
          return ok(a ? 1 : 0);
        },
      },
    });
    const a = okValue(t.k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
    okValue(t.k, { op: 'write', pid: 1, addr: a, value: 1 });
    okValue(t.k, { op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1 } });
    return { ...t, a, n: () => n! };
  }

  it('read_begin from the callback of its own invalidation deadlocks; remove from it too', () => {
    const t = notifierSetup((k, n) => void k.mmu_interval_read_begin(n));
    const e = thrown(() => t.k.step({ op: 'madvise', pid: 1, addr: t.a, lengthPages: 1, advice: 'DONTNEED' }));
    expect(e).toBeInstanceOf(LockViolation);
    expect((e as LockViolation).invariant).toBe('deadlock');
    expect((e as Error).message).toContain('waits for its own invalidation');
    const u = notifierSetup((k, n) => k.mmu_interval_notifier_remove(n));
    const f = thrown(() => u.k.step({ op: 'madvise', pid: 1, addr: u.a, lengthPages: 1, advice: 'DONTNEED' }));
    expect((f as LockViolation).invariant).toBe('deadlock');
  });

  it('read_begin by another task while an invalidation is in progress waits (WouldBlock on the invalidation); after it, the sequence moved', () => {
    let kernel: ModelKernel | undefined;
    let nestedError: unknown;
    const t = notifierSetup((k) => {
      // The callback sleeps (GFP_KERNEL): another process's driver call runs there.
      kernel!.locks.hooks = {
        preempt() {
          kernel!.locks.hooks = null;
          nestedError = thrown(() => kernel!.step({ op: 'drv', strategy: 'test', call: 'begin', args: { pid: 2 } }));
        },
      };
      k.kfree(k.kmalloc('ctx')!);
    });
    kernel = t.k;
    okValue(t.k, { op: 'spawn' });
    const seq = okValue(t.k, { op: 'drv', strategy: 'test', call: 'begin', args: { pid: 2 } });
    expect(okValue(t.k, { op: 'drv', strategy: 'test', call: 'retry', args: { pid: 2, seq } })).toBe(0);
    okValue(t.k, { op: 'madvise', pid: 1, addr: t.a, lengthPages: 1, advice: 'DONTNEED' });
    expect(nestedError).toBeInstanceOf(WouldBlock);
    expect(nestedError).toMatchObject({ tid: 2, holder: 1 });
    expect((nestedError as WouldBlock).lock.name).toBe('the MMU notifier invalidation of P1');
    expect(okValue(t.k, { op: 'drv', strategy: 'test', call: 'retry', args: { pid: 2, seq } })).toBe(1);
    expect(okValue(t.k, { op: 'drv', strategy: 'test', call: 'begin', args: { pid: 2 } })).not.toBe(seq);
  });
});
