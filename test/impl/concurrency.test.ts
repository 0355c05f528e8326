/**
 * Locks, tasks and nested interleavings in the implementation (CONCURRENCY-SPEC.md), each
 * scenario run on the model too: a recorded schedule names a scheduling point by its index
 * within an operation, so both kernels must take the same locks and pass the same points
 * (by name, task and locks held) for every operation, with the same outcomes, errors and
 * observations. Then the re-entrancy of what the implementation keeps that the model does
 * not — the page table's leaf cache, pfns reused through the frame pool's free list, rmap
 * chain entries recycled through their free list, the notifier interval tree — with another
 * task's operations run nested at a scheduling point where each of them is in use.
 */
import { describe, expect, it } from 'vitest';
import type { DriverFile, DriverKernel, DriverVma, FaultResult, MmuIntervalNotifier, MmuNotifierRange, VmOperations } from '../../kernel-api/driver.ts';
import { FOLL_GET } from '../../kernel-api/driver.ts';
import type { StrategyFactory } from '../../kernel-api/kernel.ts';
import type { Op } from '../../kernel-api/op.ts';
import { PROT_READ, PROT_WRITE } from '../../kernel-api/op.ts';
import type { Errno, Outcome } from '../../kernel-api/outcome.ts';
import { err, ok } from '../../kernel-api/outcome.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { WouldBlock } from '../../kernel-api/sched.ts';
import { ModelKernel } from '../../model/kernel.ts';
import { ImplKernel } from '../../impl/kernel.ts';
import { observe } from '../../properties/observe.ts';
import { NestedScheduler, TraceCursor } from '../../properties/sched.ts';

const RW = PROT_READ | PROT_WRITE;
const ALL = DEFAULT_CONFIG.taskSizePages;
type Args = Record<string, number | boolean | string>;
type AnyKernel = ModelKernel | ImplKernel;

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

/** A driver page with `value` (alloc_page: a scheduling point). */
function pageWith(k: DriverKernel, value: number): FaultResult {
  const pfn = k.alloc_page();
  if (pfn === null) return { kind: 'oom' };
  k.page_write(pfn, value);
  return { kind: 'page', pfn };
}

/** What a scenario saw, in order: points, outcomes, errors, notes. Compared between the kernels. */
type Log = unknown[];

/** One run of a scenario on one kernel: the kernel, a log, and helpers that log as they go. */
class Run {
  readonly log: Log = [];
  /** A hook run at each scheduling point after it is logged (null: none). */
  onPoint: ((where: string, run: Run) => void) | null = null;
  constructor(readonly k: AnyKernel) {
    k.locks.hooks = {
      preempt: (where) => {
        this.log.push({ point: where, task: k.locks.current, held: k.locks.heldNames(k.locks.current) });
        this.onPoint?.(where, this);
      },
    };
  }

  /** Step `op`, logging its outcome or what it threw. */
  step(op: Op): Outcome | undefined {
    try {
      const o = this.k.step(op);
      this.log.push({ op: op.op, outcome: o });
      return o;
    } catch (e) {
      this.log.push({ op: op.op, error: describeError(e) });
      return undefined;
    }
  }

  /** Step `op`, which must succeed; its value. */
  ok(op: Op): number {
    const o = this.step(op);
    expect(o, `${this.k.kind}: ${JSON.stringify(op)}`).toMatchObject({ kind: 'ok' });
    return (o as { value: number }).value;
  }

  note(x: unknown): void {
    this.log.push({ note: x });
  }

  /** The log entries of the points only, as `where` strings. */
  wheres(from = 0): string[] {
    return this.log.slice(from).flatMap((e) => ((e as { point?: string }).point === undefined ? [] : [(e as { point: string }).point]));
  }
}

function describeError(e: unknown): unknown {
  if (e instanceof WouldBlock) return { name: e.name, tid: e.tid, holder: e.holder, mode: e.mode, where: e.where, lock: e.lock.name };
  if (e instanceof Error) return { name: e.name, invariant: (e as { invariant?: string }).invariant, message: e.message };
  return String(e);
}

/**
 * Run `scenario` on a fresh model and a fresh implementation (with the test driver) and
 * require the same log and the same observations after; the impl's CONFIG_DEBUG_VM check
 * must hold. Returns the impl's run for the scenario's own assertions.
 */
function both(spec: DriverSpec, scenario: (r: Run) => void): Run {
  const runs = [new ModelKernel(DEFAULT_CONFIG, [testDriver(spec)]), new ImplKernel(DEFAULT_CONFIG, [testDriver(spec)])].map((k) => {
    const r = new Run(k);
    scenario(r);
    k.locks.hooks = null;
    return r;
  });
  const [m, i] = runs as [Run, Run];
  expect(i.log).toEqual(m.log);
  expect(observe(i.k.inspect)).toEqual(observe(m.k.inspect));
  (i.k as ImplKernel).debugVm();
  return i;
}

/** P1 with an fd of the test driver; `map` maps it. */
function setup(r: Run): { fd: number; map: (lengthPages?: number, shared?: boolean) => number; tryMap: () => void } {
  const pid = r.ok({ op: 'spawn' });
  const fd = r.ok({ op: 'drv', strategy: 'test', call: 'open', args: { pid } });
  return {
    fd,
    map: (lengthPages = 1, shared = true) => r.ok({ op: 'mmap', pid, addr: 0, lengthPages, prot: RW, shared, fd }),
    tryMap: () => void r.step({ op: 'mmap', pid, addr: 0, lengthPages: 1, prot: RW, shared: true, fd }),
  };
}

const notifyCall = (onInvalidate: (k: DriverKernel, n: MmuIntervalNotifier, r: MmuNotifierRange) => boolean) => ({
  notify(k: DriverKernel, args: Args): Outcome {
    const n = k.mmu_interval_notifier_insert(k.get_task_mm(args.pid as number)!, (args.addr as number | undefined) ?? 0, (args.len as number | undefined) ?? ALL, {
      invalidate: (self, range) => onInvalidate(k, self, range),
    });
    return typeof n === 'string' ? err(n) : ok(n.id);
  },
});

describe('the same locks and scheduling points as the model, operation by operation', () => {
  it('core operations: each path passes the points the spec says (where, task, locks held), in order', () => {
    const i = both({}, (r) => {
      r.ok({ op: 'spawn' });
      const a = r.ok({ op: 'mmap', pid: 1, addr: 0, lengthPages: 4, prot: RW, shared: false });
      r.ok({ op: 'write', pid: 1, addr: a, value: 5 });
      r.ok({ op: 'write', pid: 1, addr: a, value: 6 });
      r.ok({ op: 'read', pid: 1, addr: a });
      r.step({ op: 'read', pid: 1, addr: 3 });
      r.ok({ op: 'mprotect', pid: 1, addr: a + 3, lengthPages: 1, prot: 1 });
      r.ok({ op: 'madvise', pid: 1, addr: a + 2, lengthPages: 1, advice: 'COLD' });
      r.ok({ op: 'madvise', pid: 1, addr: a + 2, lengthPages: 1, advice: 'DONTFORK' });
      r.ok({ op: 'fork', pid: 1 });
      r.ok({ op: 'proc_mem_read', pid: 1, target: 1, addr: a });
      r.ok({ op: 'proc_mem_read', pid: 1, target: 1, addr: a + 1 });
      r.ok({ op: 'process_vm_readv', pid: 1, target: 1, addr: a });
      r.ok({ op: 'process_vm_readv', pid: 1, target: 1, addr: a });
      r.ok({ op: 'process_vm_writev', pid: 1, target: 2, addr: a, value: 3 });
      r.ok({ op: 'proc_mem_write', pid: 1, target: 2, addr: a + 1, value: 4 });
      r.ok({ op: 'pagemap_read', pid: 1, target: 1, addr: a, count: 4 });
      r.ok({ op: 'map_files_readdir', pid: 1, target: 1 });
      r.ok({ op: 'clear_refs', pid: 1, target: 1, mode: 4 });
      r.ok({
        op: 'pagemap_scan', pid: 1, start: a, end: a + 4, flags: 0, max_pages: 0, category_inverted: 0, category_mask: 0,
        category_anyof_mask: 0, return_mask: 0x1ff, vec_len: 4,
      });
      r.ok({ op: 'uffd_register_wp', pid: 1, addr: a, lengthPages: 1, async: true });
      r.ok({ op: 'reclaim', pid: 1, addr: a });
      r.ok({ op: 'reclaim', count: 10 });
      const file = r.ok({ op: 'creat', sizePages: 2 });
      const fm = r.ok({ op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: RW, shared: true, file });
      r.ok({ op: 'write', pid: 1, addr: fm, value: 1 });
      r.ok({ op: 'reclaim', pid: 1, addr: fm });
      r.ok({ op: 'truncate', file, sizePages: 0 });
      r.ok({ op: 'pwrite', file, index: 0, value: 3 });
      r.ok({ op: 'pread', file, index: 0 });
      r.ok({ op: 'fail_nth', nth: 0 });
      r.ok({ op: 'set_dumpable', pid: 1, dumpable: true });
      r.ok({ op: 'clone', pid: 1 });
      r.ok({ op: 'mremap', pid: 1, addr: a, oldPages: 1, newPages: 1 });
      r.ok({ op: 'munmap', pid: 1, addr: fm, lengthPages: 2 });
      r.step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 0, prot: RW, shared: false });
      r.step({ op: 'madvise', pid: 1, addr: a, lengthPages: 1, advice: 'BOGUS' as 'COLD' });
      r.step({ op: 'mmap', pid: 9, addr: 0, lengthPages: 1, prot: RW, shared: false });
      r.ok({ op: 'exit', pid: 2 });
      r.ok({ op: 'oom', pid: 1 });
      r.ok({ op: 'exit', pid: 1 });
    });
    // Each op's points, as the impl passed them (the same as the model's, checked above).
    const perOp: Array<[string, string[]]> = [];
    let pending: string[] = [];
    for (const e of i.log) {
      const x = e as { point?: string; op?: string };
      if (x.point !== undefined) pending.push(x.point);
      else if (x.op !== undefined) {
        perOp.push([x.op, pending]);
        pending = [];
      }
    }
    expect(perOp).toEqual([
      ['spawn', []],
      ['mmap', ['vm_mmap_pgoff']],
      ['write', ['do_user_addr_fault', 'alloc_anon_folio']],
      ['write', []],
      ['read', []],
      ['read', ['do_user_addr_fault']],
      ['mprotect', ['do_mprotect_pkey']],
      ['madvise', ['do_madvise']],
      ['madvise', ['do_madvise']],
      ['fork', ['dup_mmap', 'dup_mmap']],
      ['proc_mem_read', ['access_remote_vm']],
      ['proc_mem_read', ['access_remote_vm', 'get_user_pages_remote']],
      ['process_vm_readv', ['process_vm_rw_single_vec', 'folio_prealloc', 'get_user_pages_remote']],
      ['process_vm_readv', ['process_vm_rw_single_vec']],
      ['process_vm_writev', ['process_vm_rw_single_vec', 'get_user_pages_remote']],
      ['proc_mem_write', ['access_remote_vm', 'alloc_anon_folio', 'get_user_pages_remote']],
      ['pagemap_read', ['pagemap_read']],
      ['map_files_readdir', ['proc_map_files_readdir']],
      ['clear_refs', ['clear_refs_write']],
      ['pagemap_scan', ['do_pagemap_scan']],
      ['uffd_register_wp', ['userfaultfd_register']],
      ['reclaim', []],
      ['reclaim', []],
      ['creat', []],
      ['mmap', ['vm_mmap_pgoff']],
      ['write', ['do_user_addr_fault', 'filemap_fault']],
      ['reclaim', []],
      ['truncate', []],
      ['pwrite', []],
      ['pread', []],
      ['fail_nth', []],
      ['set_dumpable', []],
      ['clone', []],
      ['mremap', ['do_mremap']],
      ['munmap', ['vm_munmap']],
      ['mmap', ['vm_mmap_pgoff']],
      ['madvise', []],
      ['mmap', []],
      ['exit', ['exit_mmap']],
      ['oom', ['oom_reap_task_mm']],
      ['exit', ['exit_mmap']],
    ]);
    // fork takes the child's mmap_lock holding the parent's.
    expect(i.log.filter((e) => (e as { point?: string }).point === 'dup_mmap').map((e) => (e as { held: string[] }).held)).toEqual([[], ['mmap_lock of P1']]);
    expect(i.k.locks.holdsAny(0) || i.k.locks.holdsAny(1) || i.k.locks.holdsAny(2)).toBe(false);
  });

  it('hooks run with the locks Linux holds: ->mmap write, ->fault read, ->open both (fork), ->close write, ->release after unlock', () => {
    const i = both(
      {
        mmap: (k) => { noteHeld(k, 'mmap'); return 0; },
        release: (k) => noteHeld(k, 'release'),
        vmOps: (k) => ({
          fault: (_v, _a, pgoff) => { noteHeld(k, 'fault'); return pageWith(k, pgoff); },
          open: () => noteHeld(k, 'open'),
          close: () => noteHeld(k, 'close'),
        }),
      },
      (r) => {
        current = r;
        const t = setup(r);
        const a = t.map(2);
        r.ok({ op: 'read', pid: 1, addr: a });
        r.ok({ op: 'fork', pid: 1 });
        r.ok({ op: 'munmap', pid: 2, addr: a, lengthPages: 1 });
        r.ok({ op: 'close', pid: 1, fd: t.fd });
        r.ok({ op: 'close', pid: 2, fd: t.fd });
        r.ok({ op: 'exit', pid: 2 });
        r.ok({ op: 'exit', pid: 1 });
      },
    );
    const held = (what: string) => i.log.filter((e) => (e as { note?: { what: string } }).note?.what === what).map((e) => (e as { note: { held: string[] } }).note.held);
    expect(held('mmap')).toEqual([['mmap_lock of P1']]);
    expect(held('fault')).toEqual([['mmap_lock of P1 (read)']]);
    expect(held('open')).toEqual([['mmap_lock of P1', 'mmap_lock of P2'], ['mmap_lock of P2']]);
    expect(held('close')).toEqual([['mmap_lock of P2'], ['mmap_lock of P2'], ['mmap_lock of P1']]);
    expect(held('release')).toEqual([[]]);
  });

  it('notifier callbacks: mmap_lock read for DONTNEED, the rmap lock in reclaim and truncate, non-blockable in the OOM reap only', () => {
    const i = both({ calls: notifyCall((k, _n, range) => { noteHeld(k, range.event, range.blockable); return true; }) }, (r) => {
      current = r;
      r.ok({ op: 'spawn' });
      const file = r.ok({ op: 'creat', sizePages: 4 });
      const fm = r.ok({ op: 'mmap', pid: 1, addr: 0, lengthPages: 4, prot: RW, shared: true, file });
      const anon = r.ok({ op: 'mmap', pid: 1, addr: 0, lengthPages: 4, prot: RW, shared: false });
      r.ok({ op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1 } });
      for (let j = 0; j < 4; j++) {
        r.ok({ op: 'write', pid: 1, addr: fm + j, value: j });
        r.ok({ op: 'write', pid: 1, addr: anon + j, value: j });
      }
      r.ok({ op: 'madvise', pid: 1, addr: anon, lengthPages: 1, advice: 'DONTNEED' });
      r.ok({ op: 'reclaim', pid: 1, addr: anon + 1 });
      r.ok({ op: 'reclaim', pid: 1, addr: fm + 1 });
      r.ok({ op: 'truncate', file, sizePages: 3 });
      r.ok({ op: 'mprotect', pid: 1, addr: anon + 2, lengthPages: 1, prot: 1 });
      r.ok({ op: 'fork', pid: 1 });
      r.ok({ op: 'oom', pid: 1 });
      r.ok({ op: 'exit', pid: 1 });
    });
    const notes = i.log.flatMap((e) => ((e as { note?: unknown }).note === undefined ? [] : [(e as { note: unknown }).note]));
    expect(notes.slice(0, 5)).toEqual([
      { what: 'clear', blockable: true, held: ['mmap_lock of P1 (read)'] },
      { what: 'clear', blockable: true, held: [expect.stringMatching(/^anon_vma \d+ \(read\)$/)] },
      { what: 'clear', blockable: true, held: ['i_mmap_rwsem of file 1 (read)'] },
      { what: 'clear', blockable: true, held: ['i_mmap_rwsem of file 1 (read)'] },
      { what: 'protection', blockable: true, held: ['mmap_lock of P1'] },
    ]);
    expect(notes).toContainEqual({ what: 'protection', blockable: true, held: ['mmap_lock of P1', 'mmap_lock of P2'] });
    expect(notes).toContainEqual({ what: 'oom', blockable: false, held: ['mmap_lock of P1 (read)'] });
    expect(notes).toContainEqual({ what: 'exit', blockable: true, held: ['mmap_lock of P1'] });
  });

  it('driver API: kmalloc(GFP_KERNEL), mutex_lock, alloc_page, anon_inode_getfd, might_sleep, page-table installs, notifier insert are points', () => {
    const i = both(
      {
        mmap: (_k, _f, vma) => { vma.pfnmap = true; return 0; },
        vmOps: (k) => ({ fault: (vma, addr) => { k.vmf_insert_pfn(vma, addr, k.zeroPfn); return k.vmf_insert_pfn(vma, addr, k.zeroPfn); } }),
        calls: {
          ...notifyCall(() => true),
          mix(k) {
            const m = k.mutex_init('test:m');
            const sp = k.spin_lock_init('test:s');
            k.kfree(k.kmalloc('a')!);
            k.kfree(k.kmalloc('b', 'GFP_ATOMIC')!);
            k.mutex_lock(m);
            k.mutex_unlock(m);
            if (!k.mutex_trylock(m)) return err('EBUSY');
            k.mutex_unlock(m);
            k.spin_lock(sp);
            k.kfree(k.kmalloc('c', 'GFP_ATOMIC')!);
            k.spin_unlock(sp);
            k.__free_page(k.alloc_page()!);
            k.might_sleep('copy_to_user');
            return ok(0);
          },
        },
      },
      (r) => {
        const t = setup(r);
        r.ok({ op: 'drv', strategy: 'test', call: 'mix', args: { pid: 1 } });
        r.ok({ op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1, addr: 0, len: 4 } });
        const a = t.map(1);
        r.ok({ op: 'read', pid: 1, addr: a });
      },
    );
    expect(i.wheres()).toEqual([
      'anon_inode_getfd',
      'kmalloc', 'mutex_lock', 'alloc_page', 'copy_to_user',
      'mmu_interval_notifier_insert', 'mmu_interval_notifier_insert',
      'vm_mmap_pgoff',
      'do_user_addr_fault', 'vmf_insert_pfn', 'vmf_insert_pfn',
    ]);
  });

  it('lock violations by drivers are raised alike: deadlock, lock-order, sleep-in-atomic, lock-leak, the GUP assertion', () => {
    const cases: Array<[string, DriverSpec, (r: Run) => void]> = [
      ['->mmap takes mmap_read_lock(current_mm())', { mmap: (k) => { k.mmap_read_lock(k.current_mm()); return 0; } }, (r) => { setup(r).tryMap(); }],
      ['->mmap inserts a notifier on its own mm', {
        mmap: (k, _f, vma) => { const n = k.mmu_interval_notifier_insert(k.current_mm(), vma.start, 1, { invalidate: () => true }); return typeof n === 'string' ? n : 0; },
      }, (r) => { setup(r).tryMap(); }],
      ['->mmap inserts a notifier on another mm', {
        mmap: (k) => { const n = k.mmu_interval_notifier_insert(k.get_task_mm(2)!, 0, 1, { invalidate: () => true }); return typeof n === 'string' ? n : 0; },
      }, (r) => { const t = setup(r); r.ok({ op: 'spawn' }); t.tryMap(); }],
      ['a callback takes a mutex in the OOM reap', {
        calls: { notify(k, args) {
          const m = k.mutex_init('test:lock');
          const n = k.mmu_interval_notifier_insert(k.get_task_mm(args.pid as number)!, 0, ALL, { invalidate() { k.mutex_lock(m); k.mutex_unlock(m); return true; } });
          return typeof n === 'string' ? err(n) : ok(n.id);
        } },
      }, (r) => {
        r.ok({ op: 'spawn' });
        const a = r.ok({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
        r.ok({ op: 'write', pid: 1, addr: a, value: 1 });
        r.ok({ op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1 } });
        r.ok({ op: 'madvise', pid: 1, addr: a, lengthPages: 1, advice: 'DONTNEED' });
        r.ok({ op: 'write', pid: 1, addr: a, value: 2 });
        r.step({ op: 'oom', pid: 1 });
      }],
      ['->fault returns holding a mutex', {
        vmOps: (k) => { const m = k.mutex_init('test:fault_lock'); return { fault: () => { k.mutex_lock(m); return pageWith(k, 1); } }; },
      }, (r) => { const a = setup(r).map(); r.step({ op: 'read', pid: 1, addr: a }); }],
      ['vmf_insert_pfn under a spinlock', {
        mmap: (_k, _f, vma) => { vma.pfnmap = true; return 0; },
        vmOps: (k) => { const sp = k.spin_lock_init('test:spin'); return { fault: (vma, addr) => { k.spin_lock(sp); const x = k.vmf_insert_pfn(vma, addr, k.zeroPfn); k.spin_unlock(sp); return x; } }; },
      }, (r) => { const a = setup(r).map(); r.step({ op: 'read', pid: 1, addr: a }); }],
      ['get_user_pages_remote without the mmap_lock', {
        calls: { gup(k, args) {
          const mm = k.get_task_mm(args.pid as number)!;
          const pfn = k.get_user_pages_remote(mm, args.addr as number, FOLL_GET);
          if (typeof pfn === 'string') return err(pfn);
          k.put_page(pfn);
          return ok(0);
        } },
      }, (r) => {
        r.ok({ op: 'spawn' });
        const a = r.ok({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
        r.step({ op: 'drv', strategy: 'test', call: 'gup', args: { pid: 1, addr: a } });
      }],
    ];
    const errors = cases.map(([what, spec, scenario]) => {
      const i = both(spec, scenario);
      const last = i.log.at(-1) as { error?: { name: string; invariant: string; message: string } };
      expect(last.error, what).toBeDefined();
      return [last.error!.name, last.error!.invariant];
    });
    expect(errors).toEqual([
      ['LockViolation', 'deadlock'],
      ['LockViolation', 'deadlock'],
      ['LockViolation', 'lock-order'],
      ['LockViolation', 'sleep-in-atomic'],
      ['LockViolation', 'lock-leak'],
      ['LockViolation', 'sleep-in-atomic'],
      ['KernelAssertionError', 'kernel-assert'],
    ]);
  });

  it('the GUP assertion names the mm and mmap_assert_locked; with the lock held GUP faults the page in, then passes its point', () => {
    const i = both({
      calls: { gup(k, args) {
        const mm = k.get_task_mm(args.pid as number)!;
        if (args.lock === true) k.mmap_read_lock(mm);
        const pfn = k.get_user_pages_remote(mm, args.addr as number, FOLL_GET);
        if (args.lock === true) k.mmap_read_unlock(mm);
        if (typeof pfn === 'string') return err(pfn);
        const v = k.page_read(pfn);
        k.put_page(pfn);
        return ok(v);
      } },
    }, (r) => {
      r.ok({ op: 'spawn' });
      const a = r.ok({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
      r.step({ op: 'drv', strategy: 'test', call: 'gup', args: { pid: 1, addr: a } });
      r.ok({ op: 'drv', strategy: 'test', call: 'gup', args: { pid: 1, addr: a, lock: true } });
      r.ok({ op: 'write', pid: 1, addr: a, value: 42 });
      r.ok({ op: 'drv', strategy: 'test', call: 'gup', args: { pid: 1, addr: a, lock: true } });
    });
    const errors = i.log.filter((e) => (e as { error?: unknown }).error !== undefined);
    expect(errors).toEqual([{ op: 'drv', error: { name: 'KernelAssertionError', invariant: 'kernel-assert', message: 'get_user_pages_remote without mmap_lock of P1 held (mmap_assert_locked)' } }]);
    expect(i.wheres(2)).toEqual(['mmap_read_lock', 'get_user_pages_remote', 'do_user_addr_fault', 'folio_prealloc', 'mmap_read_lock']);
  });

  it('VM_FAULT_RETRY: the lock is retaken, the VMA looked up again, the fault redone with tried; forever is an assertion', () => {
    const flags: unknown[] = [];
    const i = both({
      vmOps: (k) => ({
        fault: (_v, _a, pgoff, _w, f) => {
          flags.push(f);
          if (!f.tried || pgoff === 7) {
            k.mmap_read_unlock(k.current_mm());
            return { kind: 'retry' };
          }
          return pageWith(k, 100 + pgoff);
        },
      }),
    }, (r) => {
      const t = setup(r);
      const a = t.map(1);
      r.ok({ op: 'read', pid: 1, addr: a });
      r.ok({ op: 'munmap', pid: 1, addr: a, lengthPages: 1 });
      const b = r.ok({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: true, fd: t.fd, pgoff: 7 });
      r.step({ op: 'read', pid: 1, addr: b });
    });
    const errors = i.log.filter((e) => (e as { error?: unknown }).error !== undefined) as Array<{ error: { message: string } }>;
    expect(errors).toHaveLength(1);
    expect(errors[0]!.error.message).toContain('retried forever');
    expect(flags.slice(0, 2)).toEqual([{ allowRetry: true, tried: false }, { allowRetry: true, tried: true }]);
  });

  it('clone: a thread whose ops run as itself, ESRCH for a tid not of the named process, fork copies the caller only, exit takes all', () => {
    const i = both({}, (r) => {
      r.ok({ op: 'spawn' });
      const tid = r.ok({ op: 'clone', pid: 1 });
      r.ok({ op: 'spawn' });
      r.ok({ op: 'mmap', pid: 1, tid, addr: 0, lengthPages: 1, prot: RW, shared: false });
      const a = [...r.k.inspect.vmas(1)][0]!.start;
      r.ok({ op: 'write', pid: 1, tid, addr: a, value: 9 });
      r.ok({ op: 'read', pid: 1, addr: a });
      r.step({ op: 'read', pid: 1, tid: 3, addr: a });
      r.step({ op: 'read', pid: 1, tid: 99, addr: a });
      r.step({ op: 'clone', pid: 42 });
      r.step({ op: 'creat', sizePages: 1, tid: 99 });
      r.ok({ op: 'creat', sizePages: 1, tid });
      const child = r.ok({ op: 'fork', pid: 1, tid });
      r.note({ threads: r.k.threadsOf(child) });
      r.ok({ op: 'read', pid: child, addr: a });
      r.ok({ op: 'exit', pid: 1, tid });
      r.note({ threads: r.k.threadsOf(1) });
      r.step({ op: 'read', pid: 1, tid, addr: a });
      r.step({ op: 'clone', pid: 1 });
    });
    expect(i.log.filter((e) => (e as { point?: string }).point !== undefined && (e as { task: number }).task === 2).length).toBeGreaterThan(0);
    const outcomes = i.log.flatMap((e) => ((e as { outcome?: Outcome }).outcome === undefined ? [] : [(e as { outcome: Outcome }).outcome]));
    expect(outcomes).toEqual([
      ok(1), ok(2), ok(3), expect.objectContaining({ kind: 'ok' }), ok(0), ok(9), err('ESRCH'), err('ESRCH'), err('ESRCH'), err('ESRCH'),
      expect.objectContaining({ kind: 'ok' }), ok(4), ok(9), ok(0), err('ESRCH'), err('ESRCH'),
    ]);
    expect(i.log).toContainEqual({ note: { threads: [4] } });
    expect(i.log).toContainEqual({ note: { threads: [] } });
  });
});

/** The locks the running task holds, noted in the current run's log (hooks see the kernel through it). */
let current: Run | undefined;
function noteHeld(k: DriverKernel, what: string, blockable?: boolean): void {
  const r = current!;
  r.note({ what, ...(blockable === undefined ? {} : { blockable }), held: r.k.locks.heldNames(k.current()) });
}

describe('nested steps at scheduling points, on both kernels', () => {
  it('another process at a point inside ->fault; another thread filling the PTE while ->fault slept (finish_fault drops the page)', () => {
    let value = 0;
    both({ vmOps: (k) => ({ fault: () => { k.kfree(k.kmalloc('ctx')!); return pageWith(k, value++ % 2); } }) }, (r) => {
      value = 0;
      const t = setup(r);
      const a = t.map(1);
      const other = r.ok({ op: 'spawn' });
      const b = r.ok({ op: 'mmap', pid: other, addr: 0, lengthPages: 1, prot: RW, shared: false });
      const tid = r.ok({ op: 'clone', pid: 1 });
      let n = 0;
      r.onPoint = (where) => {
        if (where !== 'kmalloc' || n++ > 0) return;
        r.step({ op: 'write', pid: other, addr: b, value: 55 });
        r.step({ op: 'read', pid: 1, tid, addr: a });
        r.note({ current: r.k.locks.current });
      };
      r.ok({ op: 'read', pid: 1, addr: a });
      r.onPoint = null;
      r.ok({ op: 'read', pid: other, addr: b });
    });
  });

  it('a nested op that must wait for the preempted task\'s lock: WouldBlock, nothing left held; the nested scheduler does not start it there', () => {
    const i = both({ vmOps: (k) => ({ fault: (_v, _a, pgoff) => pageWith(k, 10 + pgoff) }) }, (r) => {
      const t = setup(r);
      const a = t.map(2);
      const tid = r.ok({ op: 'clone', pid: 1 });
      r.onPoint = (where) => {
        if (where === 'alloc_page') r.step({ op: 'munmap', pid: 1, tid, addr: a, lengthPages: 1 });
      };
      r.step({ op: 'read', pid: 1, addr: a });
      r.onPoint = null;
      r.note({ held: r.k.locks.holdsAny(1) || r.k.locks.holdsAny(tid), current: r.k.locks.current });
      const trace: Op[] = [
        { op: 'read', pid: 1, addr: a + 1, switches: [{ at: 1, to: tid }] },
        { op: 'munmap', pid: 1, tid, addr: a, lengthPages: 1 },
        { op: 'read', pid: 1, tid, addr: a },
      ];
      const hooks = r.k.locks.hooks;
      const sched = new NestedScheduler(r.k, new TraceCursor(trace, 1), null);
      sched.run(trace[0]!);
      r.k.locks.hooks = hooks;
      r.note({ ran: sched.ran.map((c) => [c.op.op, c.outcome]) });
    });
    expect(i.log).toContainEqual({ op: 'munmap', error: { name: 'WouldBlock', tid: 2, holder: 1, mode: 'write', where: 'vm_munmap', lock: 'mmap_lock of P1' } });
    expect(i.log).toContainEqual({ note: { held: false, current: 0 } });
    expect(i.log).toContainEqual({ note: { ran: [['read', ok(11)]] } });
  });

  it('the nested scheduler replays a recorded switch identically on both kernels', () => {
    both({ vmOps: (k) => ({ fault: (_v, _a, pgoff) => pageWith(k, 10 + pgoff) }) }, (r) => {
      const t = setup(r);
      const a = t.map(2);
      const tid = r.ok({ op: 'clone', pid: 1 });
      const trace: Op[] = [
        { op: 'read', pid: 1, addr: a, switches: [{ at: 1, to: tid }] },
        { op: 'read', pid: 1, tid, addr: a + 1, switches: [{ at: 0, to: 0 }] },
        { op: 'reclaim', count: 4 },
      ];
      const hooks = r.k.locks.hooks;
      const sched = new NestedScheduler(r.k, new TraceCursor(trace, 1), null);
      sched.run(trace[0]!);
      r.k.locks.hooks = hooks;
      r.note({ ran: sched.ran.map((c) => [c.op.op, taskOfOp(c.op), c.outcome]) });
    });
  });

  it('MMU notifier waits: read_begin or remove in its own invalidation deadlocks; by another task it would block', () => {
    let nth = 0;
    const spec = (mode: 'begin' | 'remove' | 'sleep'): DriverSpec => {
      let n: MmuIntervalNotifier | undefined;
      return {
        calls: {
          notify(k, args) {
            const x = k.mmu_interval_notifier_insert(k.get_task_mm(args.pid as number)!, 0, ALL, {
              invalidate(self) {
                if (mode === 'begin') k.mmu_interval_read_begin(self);
                else if (mode === 'remove') k.mmu_interval_notifier_remove(self);
                else if (nth++ === 0) k.kfree(k.kmalloc('ctx')!);
                return true;
              },
            });
            if (typeof x === 'string') return err(x);
            n = x;
            return ok(x.id);
          },
          begin: (k) => ok(k.mmu_interval_read_begin(n!)),
          remove: (k) => { k.mmu_interval_notifier_remove(n!); return ok(0); },
          retry: (k, args) => ok(k.mmu_interval_read_retry(n!, args.seq as number) ? 1 : 0),
        },
      };
    };
    for (const mode of ['begin', 'remove'] as const) {
      const i = both(spec(mode), (r) => {
        r.ok({ op: 'spawn' });
        const a = r.ok({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
        r.ok({ op: 'write', pid: 1, addr: a, value: 1 });
        r.ok({ op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1 } });
        r.step({ op: 'madvise', pid: 1, addr: a, lengthPages: 1, advice: 'DONTNEED' });
      });
      const last = i.log.at(-1) as { error: { invariant: string; message: string } };
      expect(last.error.invariant).toBe('deadlock');
      expect(last.error.message).toContain('waits for its own invalidation');
    }
    const i = both(spec('sleep'), (r) => {
      nth = 0;
      r.ok({ op: 'spawn' });
      const a = r.ok({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
      r.ok({ op: 'write', pid: 1, addr: a, value: 1 });
      r.ok({ op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1 } });
      r.ok({ op: 'spawn' });
      const seq = r.ok({ op: 'drv', strategy: 'test', call: 'begin', args: { pid: 2 } });
      r.onPoint = (where) => {
        if (where !== 'kmalloc') return;
        r.step({ op: 'drv', strategy: 'test', call: 'begin', args: { pid: 2 } });
        r.step({ op: 'drv', strategy: 'test', call: 'remove', args: { pid: 2 } });
      };
      r.ok({ op: 'madvise', pid: 1, addr: a, lengthPages: 1, advice: 'DONTNEED' });
      r.onPoint = null;
      r.ok({ op: 'drv', strategy: 'test', call: 'retry', args: { pid: 2, seq } });
    });
    const blocked = i.log.filter((e) => ((e as { error?: { name: string } }).error?.name === 'WouldBlock'));
    expect(blocked).toEqual([
      { op: 'drv', error: { name: 'WouldBlock', tid: 2, holder: 1, mode: 'write', where: 'mmu_interval_read_begin', lock: 'the MMU notifier invalidation of P1' } },
      { op: 'drv', error: { name: 'WouldBlock', tid: 2, holder: 1, mode: 'write', where: 'mmu_interval_notifier_remove', lock: 'the MMU notifier invalidation of P1' } },
    ]);
    expect(i.log.at(-1)).toEqual({ op: 'drv', outcome: ok(1) });
  });
});

function taskOfOp(op: Op): number {
  return op.tid ?? ('pid' in op ? op.pid : 0);
}

describe('re-entrancy of the implementation\'s own structures under a nested step', () => {
  it('the page table\'s leaf cache: the leaf ->fault will fill is freed and made again by a nested step while ->fault sleeps', () => {
    let tables: number[] = [];
    both({ vmOps: (k) => ({ fault: (_v, _a, pgoff) => { k.kfree(k.kmalloc('ctx')!); return pageWith(k, 20 + pgoff); } }) }, (r) => {
      tables = [];
      const t = setup(r);
      const anon = r.ok({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
      const a = t.map(1);
      const tid = r.ok({ op: 'clone', pid: 1 });
      // Both pages under one leaf table: the anonymous page is its only entry.
      expect(Math.floor(a / 512)).toBe(Math.floor(anon / 512));
      r.ok({ op: 'write', pid: 1, addr: anon, value: 3 });
      const pt = r.k instanceof ImplKernel ? r.k.state.processes.get(1)!.mm.pt : null;
      r.ok({ op: 'read', pid: 1, addr: anon });
      r.onPoint = (where) => {
        if (where !== 'kmalloc') return;
        if (pt !== null) tables.push(pt.tables);
        // The other thread zaps the leaf's only entry: the leaf (and its directories) go.
        r.ok({ op: 'madvise', pid: 1, tid, addr: anon, lengthPages: 1, advice: 'DONTNEED' });
        if (pt !== null) tables.push(pt.tables);
        // And faults its page back in: a new leaf, the cache now pointing at it.
        r.ok({ op: 'read', pid: 1, tid, addr: anon });
        if (pt !== null) tables.push(pt.tables);
        r.ok({ op: 'madvise', pid: 1, tid, addr: anon, lengthPages: 1, advice: 'DONTNEED' });
        if (pt !== null) tables.push(pt.tables);
      };
      r.ok({ op: 'read', pid: 1, addr: a });
      r.onPoint = null;
      if (pt !== null) tables.push(pt.tables);
      r.ok({ op: 'read', pid: 1, addr: a });
      r.ok({ op: 'read', pid: 1, addr: anon });
    });
    // The leaf and both directories went (3 table pages), came back, went; ->fault's PTE made them again.
    expect(tables).toEqual([3, 0, 3, 0, 3]);
  });

  it('a pfn freed and reused by a nested step while reclaim sleeps in a notifier: reclaim lets the new frame be', () => {
    let pfns: number[] = [];
    let slept = false;
    both({ calls: notifyCall((k) => { if (!slept) { slept = true; k.kfree(k.kmalloc('ctx')!); } return true; }) }, (r) => {
      pfns = [];
      slept = false;
      r.ok({ op: 'spawn' });
      const a = r.ok({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
      const tid = r.ok({ op: 'clone', pid: 1 });
      r.ok({ op: 'write', pid: 1, addr: a, value: 1 });
      r.ok({ op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1 } });
      const pfnAt = () => (new Map(r.k.inspect.ptes(1)).get(a) as { pfn: number } | undefined)?.pfn ?? -1;
      pfns.push(pfnAt());
      r.onPoint = (where) => {
        if (where !== 'kmalloc') return;
        // The other thread drops the page (it leaves the swap cache reclaim put it in, and
        // is freed), then writes there: a new frame, on the pfn just freed.
        r.ok({ op: 'madvise', pid: 1, tid, addr: a, lengthPages: 1, advice: 'DONTNEED' });
        r.ok({ op: 'write', pid: 1, tid, addr: a, value: 2 });
        pfns.push(pfnAt());
      };
      r.ok({ op: 'reclaim', pid: 1, addr: a });
      r.onPoint = null;
      r.ok({ op: 'read', pid: 1, addr: a });
      pfns.push(pfnAt());
    });
    // The implementation's pool handed the freed pfn out again; the model's never does.
    expect(pfns[1]).toBe(pfns[0]);
    expect(pfns[2]).toBe(pfns[0]);
  });

  it('rmap chain entries recycled by a nested exit and fork while reclaim walks the frame\'s mappings', () => {
    let slept = false;
    const i = both({ calls: notifyCall((k) => { if (!slept) { slept = true; k.kfree(k.kmalloc('ctx')!); } return true; }) }, (r) => {
      slept = false;
      r.ok({ op: 'spawn' });
      const a = r.ok({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: RW, shared: false });
      r.ok({ op: 'write', pid: 1, addr: a, value: 7 });
      r.ok({ op: 'fork', pid: 1 });
      r.ok({ op: 'fork', pid: 1 });
      r.ok({ op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1 } });
      r.onPoint = (where) => {
        if (where !== 'kmalloc') return;
        // P3's mapping (a chain entry) goes; P2's child P4 takes a chain entry (the freed one).
        r.ok({ op: 'exit', pid: 3 });
        r.ok({ op: 'fork', pid: 2 });
      };
      r.note({ reclaimed: r.ok({ op: 'reclaim', pid: 1, addr: a }) });
      r.onPoint = null;
      for (const pid of [1, 2, 4]) r.note({ pid, value: r.ok({ op: 'read', pid, addr: a }) });
      r.ok({ op: 'reclaim', pid: 4, addr: a });
    });
    expect(i.log).toContainEqual({ note: { reclaimed: 0 } });
    expect(i.log).toContainEqual({ note: { pid: 4, value: 7 } });
  });

  it('the notifier interval tree: a notifier inserted and another removed by a nested step during an invalidation', () => {
    let slept = false;
    const calls: unknown[] = [];
    let victim: MmuIntervalNotifier | undefined;
    both({
      calls: {
        notify(k, args) {
          const n = k.mmu_interval_notifier_insert(k.get_task_mm(args.pid as number)!, args.addr as number, args.len as number, {
            invalidate(self, range) {
              calls.push([self.start, range.start, range.end]);
              if (!slept && args.sleep === true) { slept = true; k.kfree(k.kmalloc('ctx')!); }
              return true;
            },
          });
          if (typeof n === 'string') return err(n);
          if (args.victim === true) victim = n;
          return ok(n.start);
        },
        remove: (k) => { k.mmu_interval_notifier_remove(victim!); return ok(0); },
      },
    }, (r) => {
      slept = false;
      calls.length = 0;
      r.ok({ op: 'spawn' });
      const a = r.ok({ op: 'mmap', pid: 1, addr: 0, lengthPages: 4, prot: RW, shared: false });
      for (let j = 0; j < 4; j++) r.ok({ op: 'write', pid: 1, addr: a + j, value: j });
      r.ok({ op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1, addr: a, len: 1, sleep: true } });
      r.ok({ op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1, addr: a + 2, len: 2, victim: true } });
      r.ok({ op: 'spawn' });
      r.onPoint = (where) => {
        if (where !== 'kmalloc') return;
        // Reclaim holds no mmap_lock: another process's driver call can insert on P1's mm.
        r.ok({ op: 'drv', strategy: 'test', call: 'notify', args: { pid: 1, addr: a + 1, len: 1 } });
        r.step({ op: 'drv', strategy: 'test', call: 'remove', args: { pid: 2 } });
      };
      r.ok({ op: 'reclaim', count: 8 });
      r.onPoint = null;
      r.note({ calls: [...calls] });
      r.ok({ op: 'drv', strategy: 'test', call: 'remove', args: { pid: 2 } });
      r.ok({ op: 'madvise', pid: 1, addr: a, lengthPages: 4, advice: 'DONTNEED' });
      r.note({ calls: [...calls] });
    });
  });
});
