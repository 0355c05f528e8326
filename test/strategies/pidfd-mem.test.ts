import { describe, expect, it } from 'vitest';
import { ModelKernel } from '../../model/kernel.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { pidfdMem } from '../../strategies/pidfd-mem.ts';
import { okValue, presentPfn, pteAt } from './helpers.ts';

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
