import { describe, expect, it } from 'vitest';
import { ModelKernel } from '../../model/kernel.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { pidfdMem } from '../../strategies/pidfd-mem.ts';
import { AtPoint, atNth, KERNELS, okValue, outcomeOf, presentPfn, pteAt, ptePid, session, stepNested, stepOk } from './helpers.ts';
import type { Op } from '../../kernel-api/op.ts';
import type { MmHandle } from '../../kernel-api/driver.ts';
import type { StrategyDefinition } from '../../kernel-api/strategy.ts';
import type { PointContext } from '../../properties/sched.ts';

const S = 'pidfd-mem';
const SIGBUS = { kind: 'signal', signal: 'SIGBUS' };

/**
 * P1 is the introspector; its child P2 (the target) has four private anonymous pages, the
 * first three written. P1 holds the control fd and the access fd (ctrl + 1 here) on P2.
 */
function setup() {
  const k = new ModelKernel(DEFAULT_CONFIG, [pidfdMem]);
  okValue(k, { op: 'spawn' });
  okValue(k, { op: 'fork', pid: 1 });
  const a = okValue(k, { op: 'mmap', pid: 2, addr: 0, lengthPages: 4, prot: 3, shared: false });
  for (let i = 0; i < 3; i++) okValue(k, { op: 'write', pid: 2, addr: a + i, value: 10 + i });
  const ctrl = okValue(k, { op: 'drv', strategy: S, call: 'pidfd_mem', args: { pid: 1, target: 2 } });
  const access = ctrl + 1;
  const drv = (call: string, args: Record<string, number>) => k.step({ op: 'drv', strategy: S, call, args: { pid: 1, fd: ctrl, ...args } });
  return { k, a, ctrl, access, drv };
}

function mirror(size = 4) {
  const s = setup();
  expect(s.drv('map', { address: s.a, offset: 0, size })).toEqual({ kind: 'ok', value: 0 });
  const m = okValue(s.k, { op: 'mmap', pid: 1, addr: 0, lengthPages: size, prot: 1, shared: true, fd: s.access, pgoff: 0 });
  return { ...s, m };
}

describe('pidfd-mem (seed 001)', () => {
  it('a mirror shows the target\'s current page, installed at fault time without a reference', () => {
    const { k, a, m } = mirror();
    expect(pteAt(k, 1, m)).toBeUndefined();
    expect(k.step({ op: 'read', pid: 1, addr: m + 1 })).toEqual({ kind: 'ok', value: 11 });
    const pfn = presentPfn(k, 1, m + 1);
    expect(pfn).toBe(presentPfn(k, 2, a + 1));
    expect(pteAt(k, 1, m + 1)).toMatchObject({ special: true });
    expect(k.inspect.frame(pfn)).toMatchObject({ refcount: 1, mapcount: 1 });
    okValue(k, { op: 'write', pid: 2, addr: a + 1, value: 99 });
    expect(k.step({ op: 'read', pid: 1, addr: m + 1 })).toEqual({ kind: 'ok', value: 99 });
    expect([...k.inspect.driverHolds()]).toEqual([]);
  });

  it('a target page that goes away is zapped from the mirror, which then faults with SIGBUS', () => {
    const { k, a, m } = mirror();
    k.step({ op: 'read', pid: 1, addr: m });
    okValue(k, { op: 'munmap', pid: 2, addr: a, lengthPages: 1 });
    expect(pteAt(k, 1, m)).toBeUndefined();
    expect(k.step({ op: 'read', pid: 1, addr: m })).toEqual(SIGBUS);
  });

  it('a hole gives SIGBUS: unmapped, and an untouched page (the zero page is not anonymous)', () => {
    const { k, m } = mirror();
    expect(k.step({ op: 'read', pid: 1, addr: m + 3 })).toEqual(SIGBUS);
    const s = setup();
    expect(s.drv('map', { address: s.a + 64, offset: 0, size: 2 })).toEqual({ kind: 'ok', value: 0 });
    const h = okValue(s.k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 1, shared: true, fd: s.access });
    expect(s.k.step({ op: 'read', pid: 1, addr: h })).toEqual(SIGBUS);
  });

  it('PIDFD_MEM_UNMAP makes an existing mirror disappear: its PTEs go and it faults with SIGBUS', () => {
    const { k, m, drv } = mirror();
    k.step({ op: 'read', pid: 1, addr: m });
    expect(drv('unmap', { offset: 0, size: 4 })).toEqual({ kind: 'ok', value: 0 });
    expect(pteAt(k, 1, m)).toBeUndefined();
    expect(k.step({ op: 'read', pid: 1, addr: m + 1 })).toEqual(SIGBUS);
    expect(drv('unmap', { offset: 0, size: 4 })).toEqual({ kind: 'errno', errno: 'EINVAL' });
  });

  it('a target killed and reaped by the OOM killer gives SIGBUS', () => {
    const { k, m } = mirror();
    k.step({ op: 'read', pid: 1, addr: m });
    okValue(k, { op: 'oom', pid: 2 });
    expect(pteAt(k, 1, m)).toBeUndefined();
    expect(k.step({ op: 'read', pid: 1, addr: m })).toEqual(SIGBUS);
    expect(k.step({ op: 'read', pid: 1, addr: m + 2 })).toEqual(SIGBUS);
  });

  it('PIDFD_MEM_LOCK takes only 0, and then MAP and UNMAP give EPERM', () => {
    const { a, drv } = mirror();
    expect(drv('lock', { arg: 1 })).toEqual({ kind: 'errno', errno: 'EINVAL' });
    expect(drv('lock', { arg: 0 })).toEqual({ kind: 'ok', value: 0 });
    expect(drv('map', { address: a, offset: 8, size: 1 })).toEqual({ kind: 'errno', errno: 'EPERM' });
    expect(drv('unmap', { offset: 0, size: 4 })).toEqual({ kind: 'errno', errno: 'EPERM' });
  });

  it('MAP refuses bad sizes and offset overlaps; mmap needs MAP_SHARED and a view containing it; mirrors do not split', () => {
    const { k, a, access, m, drv } = mirror();
    expect(drv('map', { address: a, offset: 8, size: 0 })).toEqual({ kind: 'errno', errno: 'EINVAL' });
    expect(drv('map', { address: a, offset: -1, size: 1 })).toEqual({ kind: 'errno', errno: 'EINVAL' });
    expect(drv('map', { address: a, offset: 3, size: 2 })).toEqual({ kind: 'errno', errno: 'EINVAL' });
    expect(drv('map', { address: a, offset: 4, size: 2 })).toEqual({ kind: 'ok', value: 0 });
    expect(k.step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 1, shared: false, fd: access })).toEqual({ kind: 'errno', errno: 'EINVAL' });
    expect(k.step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 1, shared: true, fd: access, pgoff: 3 })).toEqual({ kind: 'errno', errno: 'EINVAL' });
    expect(k.step({ op: 'munmap', pid: 1, addr: m, lengthPages: 1 })).toEqual({ kind: 'errno', errno: 'EINVAL' });
    expect(k.step({ op: 'drv', strategy: S, call: 'map', args: { pid: 1, fd: access, address: a, offset: 9, size: 1 } }))
      .toEqual({ kind: 'errno', errno: 'ENOTTY' });
  });

  it('pidfd_mem needs ptrace attach rights (EPERM)', () => {
    const k = new ModelKernel(DEFAULT_CONFIG, [pidfdMem]);
    okValue(k, { op: 'spawn' });
    okValue(k, { op: 'spawn' });
    expect(k.step({ op: 'drv', strategy: S, call: 'pidfd_mem', args: { pid: 2, target: 1 } })).toEqual({ kind: 'errno', errno: 'EPERM' });
  });

  it('reports a remote view per mirror page, promising SIGBUS when the target page is gone', () => {
    const { k, a, m } = mirror(2);
    expect([...k.strategy(S)!.remoteViews()]).toEqual([0, 1].map((i) => ({ pid: 1, addr: m + i, target: 2, targetAddr: a + i, onMissing: 'sigbus' })));
  });

  it('closing every fd and mapping frees every context, view and notifier', () => {
    const { k, ctrl, access, m } = mirror();
    k.step({ op: 'read', pid: 1, addr: m });
    okValue(k, { op: 'close', pid: 1, fd: ctrl });
    okValue(k, { op: 'close', pid: 1, fd: access });
    expect(k.state.slab.size).toBe(3); // the mirror VMA keeps the access file: fctx, view, VMA context
    okValue(k, { op: 'munmap', pid: 1, addr: m, lengthPages: 4 });
    expect(k.state.slab.size).toBe(0);
    expect(k.state.notifiers.size).toBe(0);
  });

  it('legacy REMOTE_PROC_MAP: root mirrors the whole address space at pgoff = target address; others cannot open the device', () => {
    const k = new ModelKernel(DEFAULT_CONFIG, [pidfdMem]);
    okValue(k, { op: 'spawn' });
    const a = okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false });
    okValue(k, { op: 'write', pid: 1, addr: a + 1, value: 5 });
    expect(k.step({ op: 'drv', strategy: S, call: 'remote_proc_map', args: { pid: 1, target: 1 } })).toEqual({ kind: 'errno', errno: 'EACCES' });
    okValue(k, { op: 'spawn', uid: 0 });
    const fd = okValue(k, { op: 'drv', strategy: S, call: 'remote_proc_map', args: { pid: 2, target: 1 } });
    const m = okValue(k, { op: 'mmap', pid: 2, addr: 0, lengthPages: 2, prot: 1, shared: true, fd, pgoff: a });
    expect(k.step({ op: 'read', pid: 2, addr: m + 1 })).toEqual({ kind: 'ok', value: 5 });
  });

  it('KNOWN FLAW (patch: no ->open, mirror_vm_close frees the context): a mirror moved by mremap keeps PTEs the notifier no longer zaps', () => {
    const { k, a, m } = mirror();
    k.step({ op: 'read', pid: 1, addr: m });
    const moved = okValue(k, { op: 'mremap', pid: 1, addr: m, oldPages: 4, newPages: 4, maymove: true, fixed: true, newAddr: m + 1024 });
    const pfn = presentPfn(k, 1, moved);
    okValue(k, { op: 'munmap', pid: 2, addr: a, lengthPages: 4 });
    // The target's page is freed, and the moved mirror still maps it.
    expect(k.inspect.frame(pfn)).toBeUndefined();
    expect(pteAt(k, 1, moved)).toMatchObject({ kind: 'present', pfn });
  });

  it('KNOWN FLAW (task_remote_map error path): a failed anon_inode_getfd puts the context once too often', () => {
    const k = new ModelKernel(DEFAULT_CONFIG, [pidfdMem]);
    okValue(k, { op: 'spawn' });
    okValue(k, { op: 'fail_nth', nth: 3 }); // 1: kmalloc, 2: the control fd, 3: the access fd
    expect(() => k.step({ op: 'drv', strategy: S, call: 'pidfd_mem', args: { pid: 1, target: 1 } })).toThrow(/underflow/);
  });

  it('KNOWN FLAW (no pfn_mkwrite): mprotect(PROT_WRITE) of a read-only mirror lets a store reach a page the target shares copy-on-write', () => {
    const { k, a, m } = mirror();
    const sibling = okValue(k, { op: 'fork', pid: 2 }); // P2's page is now shared copy-on-write
    expect(k.step({ op: 'read', pid: 1, addr: m })).toEqual({ kind: 'ok', value: 10 }); // a read-only GUP: the shared page
    okValue(k, { op: 'mprotect', pid: 1, addr: m, lengthPages: 4, prot: 3 });
    okValue(k, { op: 'write', pid: 1, addr: m, value: 666 });
    expect(k.step({ op: 'read', pid: sibling, addr: a })).toEqual({ kind: 'ok', value: 666 });
  });
});

/**
 * mirror_vm_fault's locking under interleaving (issue 15), as the patch writes it. P2 has
 * four private pages (10, 11, 12 written), P1 mirrors them at `m` through a view at
 * offset 0; task T is a second thread of P1. Each test starts an operation nested at a
 * named scheduling point of P1's read of the mirror. The fault's points, in order:
 * do_user_addr_fault (P1's mmap_lock), mmu_interval_read_begin, then with P1's mmap_lock
 * dropped mmap_read_lock (P2's), mm_remote_get_page (P2's held), mmap_read_lock (P1's
 * again), then mutex_lock (user_lock) and vmf_insert_pfn.
 */
describe('pidfd-mem (seed 001): locking under interleaving', () => {
  const T = 3;
  function lockSetup(kernel: 'model' | 'impl', strategy: StrategyDefinition = pidfdMem) {
    const s = session(kernel, [strategy]);
    stepOk(s, { op: 'spawn' });
    stepOk(s, { op: 'fork', pid: 1 });
    expect(stepOk(s, { op: 'clone', pid: 1 })).toBe(T);
    const a = stepOk(s, { op: 'mmap', pid: 2, addr: 0, lengthPages: 4, prot: 3, shared: false });
    for (let i = 0; i < 3; i++) stepOk(s, { op: 'write', pid: 2, addr: a + i, value: 10 + i });
    const ctrl = stepOk(s, { op: 'drv', strategy: S, call: 'pidfd_mem', args: { pid: 1, target: 2 } });
    stepOk(s, { op: 'drv', strategy: S, call: 'map', args: { pid: 1, fd: ctrl, address: a, offset: 0, size: 4 } });
    const m = stepOk(s, { op: 'mmap', pid: 1, addr: 0, lengthPages: 4, prot: 1, shared: true, fd: ctrl + 1, pgoff: 0 });
    return { s, a, m, ctrl, access: ctrl + 1 };
  }
  const faultCalls = (policy: AtPoint) => policy.seen.filter((p) => p.task === 1 && p.where === 'do_user_addr_fault').length;

  for (const kernel of KERNELS) {
    describe(`on the ${kernel}`, () => {
      it('the fault drops P1\'s mmap_lock to take P2\'s (a thread\'s mmap runs there) and installs the page once it holds P1\'s again', () => {
        const { s, a, m } = lockSetup(kernel);
        const read: Op = { op: 'read', pid: 1, addr: m + 1 };
        const mmap: Op = { op: 'mmap', pid: 1, tid: T, addr: 0, lengthPages: 1, prot: 3, shared: false };
        const r = stepNested(s, read, [mmap], new AtPoint(atNth(1, 'mmap_read_lock', 0)));
        expect(r.infeasible).toBeNull();
        expect(r.violation).toBeNull();
        expect(r.started).toEqual([read, mmap]);
        expect(outcomeOf(r, read)).toEqual({ kind: 'ok', value: 11 });
        expect(ptePid(s, 1, m + 1)).toMatchObject({ kind: 'present', pfn: (ptePid(s, 2, a + 1) as { pfn: number }).pfn });
        expect(s.primary.locks.dependencies().filter((d) => d.from === 'mmap_lock' && d.to === 'mmap_lock')).toEqual([]);
      });

      it('find_vma(current->mm) != vmf->vma after the lock is retaken (a thread unmapped the mirror): the result stays VM_FAULT_SIGBUS, as written', () => {
        const { s, m } = lockSetup(kernel);
        const read: Op = { op: 'read', pid: 1, addr: m + 1 };
        const munmap: Op = { op: 'munmap', pid: 1, tid: T, addr: m, lengthPages: 4 };
        const r = stepNested(s, read, [munmap], new AtPoint(atNth(1, 'mmap_read_lock', 0)));
        expect(r.infeasible).toBeNull();
        expect(r.started).toEqual([read, munmap]);
        expect(r.violation).toBeNull();
        expect(outcomeOf(r, munmap)).toEqual({ kind: 'ok', value: 0 });
        expect(outcomeOf(r, read)).toEqual({ kind: 'signal', signal: 'SIGBUS' });
        expect(ptePid(s, 1, m + 1)).toBeUndefined();
      });

      it('mmu_interval_check_retry: the target page unmapped while the lock was dropped sends the fault round again, where the page is gone (SIGBUS), not to a stale PTE', () => {
        const { s, a, m } = lockSetup(kernel);
        const read: Op = { op: 'read', pid: 1, addr: m + 1 };
        const munmap: Op = { op: 'munmap', pid: 2, addr: a + 1, lengthPages: 1 };
        const policy = new AtPoint(atNth(1, 'mmap_read_lock', 0)); // P1 retaking its own (P2's is a trylock: no point)
        const r = stepNested(s, read, [munmap], policy);
        expect(r.infeasible).toBeNull();
        expect(r.violation).toBeNull();
        expect(r.started).toEqual([read, munmap]);
        expect(outcomeOf(r, read)).toEqual({ kind: 'signal', signal: 'SIGBUS' });
        expect(ptePid(s, 1, m + 1)).toBeUndefined();
        // `goto fault_retry` is inside the handler: the mmap_lock was taken once.
        expect(faultCalls(policy)).toBe(1);
        // The early check sent it round before user_lock was ever taken.
        const mine = policy.seen.filter((p) => p.task === 1).map((p) => p.where);
        expect(mine.filter((w) => w === 'mmu_interval_read_begin')).toHaveLength(2);
        expect(mine.slice(0, mine.lastIndexOf('mmu_interval_read_begin'))).not.toContain('mutex_lock');
      });

      it('mmu_interval_read_retry under user_lock: the target page unmapped after the early check sends the fault round again too', () => {
        const { s, a, m } = lockSetup(kernel);
        const read: Op = { op: 'read', pid: 1, addr: m + 1 };
        const munmap: Op = { op: 'munmap', pid: 2, addr: a + 1, lengthPages: 1 };
        const policy = new AtPoint(atNth(1, 'mutex_lock', 0)); // user_lock, after check_retry passed
        const r = stepNested(s, read, [munmap], policy);
        expect(r.infeasible).toBeNull();
        expect(r.violation).toBeNull();
        expect(r.started).toEqual([read, munmap]);
        expect(outcomeOf(r, read)).toEqual({ kind: 'signal', signal: 'SIGBUS' });
        expect(ptePid(s, 1, m + 1)).toBeUndefined();
        expect(policy.seen.filter((p) => p.task === 1 && p.where === 'mmu_interval_read_begin')).toHaveLength(2);
      });

      it('mmin_invalidate takes user_lock: a target munmap started while the fault installs under it waits in the callback', () => {
        const { s, a, m } = lockSetup(kernel);
        const read: Op = { op: 'read', pid: 1, addr: m + 1 };
        const munmap: Op = { op: 'munmap', pid: 2, addr: a + 1, lengthPages: 1 };
        const policy = new AtPoint(atNth(1, 'vmf_insert_pfn'));
        const r = stepNested(s, read, [munmap], policy);
        expect(r.violation).toBeNull();
        const after = policy.seen.slice(policy.seen.findIndex((p) => p.task === 2));
        expect(after.map((p) => `${p.task}:${p.where}`)).toEqual(['2:vm_munmap', '2:mutex_lock']);
        expect(r.ran.some((c) => c.op === munmap)).toBe(false);
        if (r.infeasible !== null) expect(r.infeasible).toMatch(/pidfd-mem:user_lock/);
        else expect(r.started).toEqual([read]);
      });

      it('PIDFD_MEM_UNMAP waits for the faults in progress (synchronize_srcu): not started inside one; after it, the mirror is gone', () => {
        const { s, m, ctrl } = lockSetup(kernel);
        const read: Op = { op: 'read', pid: 1, addr: m + 1 };
        const unmap: Op = { op: 'drv', strategy: S, call: 'unmap', tid: T, args: { pid: 1, fd: ctrl, offset: 0, size: 4 } };
        const r = stepNested(s, read, [unmap], new AtPoint(atNth(1, 'mmap_read_lock', 0)));
        expect(r.infeasible).toBeNull();
        expect(r.violation).toBeNull();
        expect(r.started).toEqual([read]);
        expect(outcomeOf(r, read)).toEqual({ kind: 'ok', value: 11 });
        expect(stepOk(s, { ...unmap })).toBe(0);
        expect(ptePid(s, 1, m + 1)).toBeUndefined();
        expect(s.step({ op: 'read', pid: 1, addr: m + 1 }).outcome).toEqual(SIGBUS);
      });

      it('KNOWN FLAW (the review: "vmf->vma can go away"): with both fds closed, the mirror unmapped while the fault has dropped the lock frees the view it then reads', () => {
        const { s, m, ctrl, access } = lockSetup(kernel);
        stepOk(s, { op: 'close', pid: 1, fd: ctrl });
        stepOk(s, { op: 'close', pid: 1, fd: access });
        const read: Op = { op: 'read', pid: 1, addr: m + 1 };
        const munmap: Op = { op: 'munmap', pid: 1, tid: T, addr: m, lengthPages: 4 };
        // At a point of the fault after it dropped P1's mmap_lock (P2's is taken by trylock,
        // no point): mm_remote_get_page or P1's mmap_read_lock. The mirror VMA holds the
        // view's last reference.
        const afterDrop = (ctx: PointContext) => ctx.task === 1 && (ctx.where === 'mmap_read_lock' || ctx.where === 'mm_remote_get_page');
        const r = stepNested(s, read, [munmap], new AtPoint(afterDrop, 1));
        expect(r.infeasible).toBeNull();
        expect(r.started).toEqual([read, munmap]);
        expect(r.violation).toMatchObject({ invariant: 'slab' });
        expect(r.violation!.message).toMatch(/remote_view#\d+ after it was freed .*use-after-free/);
      });

      it('VM_FAULT_RETRY where the C returns it (GUP fails with EBUSY): the mmap_lock is released, and the retry with FAULT_FLAG_TRIED installs the page', () => {
        const calls: number[] = [];
        const ebusyOnce: StrategyDefinition = {
          ...pidfdMem,
          create: (k) => pidfdMem.create(new Proxy(k, {
            get(target, prop) {
              if (prop === 'get_user_pages_remote') {
                return (mm: MmHandle, addr: number, flags: number) => {
                  calls.push(addr);
                  return calls.length === 1 ? 'EBUSY' : target.get_user_pages_remote(mm, addr, flags);
                };
              }
              const v = Reflect.get(target, prop, target);
              return typeof v === 'function' ? v.bind(target) : v;
            },
          })),
        };
        const { s, a, m } = lockSetup(kernel, ebusyOnce);
        const read: Op = { op: 'read', pid: 1, addr: m + 1 };
        const policy = new AtPoint(() => false);
        const r = stepNested(s, read, [], policy);
        expect(r.violation).toBeNull();
        expect(outcomeOf(r, read)).toEqual({ kind: 'ok', value: 11 });
        expect(calls).toEqual([a + 1, a + 1]);
        expect(faultCalls(policy)).toBe(2); // the kernel took the mmap_lock again for the retry
        expect(ptePid(s, 1, m + 1)).toMatchObject({ kind: 'present', pfn: (ptePid(s, 2, a + 1) as { pfn: number }).pfn });
      });
    });
  }
});
