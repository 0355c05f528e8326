/**
 * Remote memory access: /proc/<pid>/mem (mm_access with PTRACE_MODE_ATTACH, then
 * access_remote_vm with FOLL_FORCE) and process_vm_readv/writev (mm_access, then
 * pin_user_pages_remote without FOLL_FORCE). Permission follows __ptrace_may_access plus
 * Yama's relational scope; FOLL_FORCE may write through a read-only private mapping by
 * breaking COW (can_follow_write_pte) but never through a shared one (check_vma_flags).
 */
import { describe, expect, it } from 'vitest';
import { RO, RW, Scenario, okv } from './helpers.ts';

const errno = (e: string) => ({ kind: 'errno', errno: e });

/** P1 (uid 1000) with a private page holding 5 and its child P2. */
function parentAndChild(config = {}): [Scenario, number] {
  const t = new Scenario(config);
  t.spawn();
  const a = t.anon(1, 1);
  t.write(1, a, 5);
  t.ok({ op: 'fork', pid: 1 });
  return [t, a];
}

describe('remote access permission (ptrace_may_access, Yama scope 1)', () => {
  it('a same-uid parent may read and write its child; the child may not touch the parent', () => {
    const [t, a] = parentAndChild();
    expect(t.k.config.yamaPtraceScope).toBe(1);
    expect(t.step({ op: 'proc_mem_read', pid: 1, target: 2, addr: a })).toEqual(okv(5));
    expect(t.step({ op: 'process_vm_readv', pid: 1, target: 2, addr: a })).toEqual(okv(5));
    expect(t.step({ op: 'process_vm_writev', pid: 1, target: 2, addr: a, value: 6 })).toEqual(okv());
    expect(t.read(2, a)).toEqual(okv(6));
    expect(t.read(1, a)).toEqual(okv(5));
    // mm_access fails with EACCES; process_vm_rw_core maps it to EPERM.
    expect(t.step({ op: 'proc_mem_read', pid: 2, target: 1, addr: a })).toEqual(errno('EACCES'));
    expect(t.step({ op: 'proc_mem_write', pid: 2, target: 1, addr: a, value: 1 })).toEqual(errno('EACCES'));
    expect(t.step({ op: 'process_vm_readv', pid: 2, target: 1, addr: a })).toEqual(errno('EPERM'));
    expect(t.step({ op: 'process_vm_writev', pid: 2, target: 1, addr: a, value: 1 })).toEqual(errno('EPERM'));
    expect(t.read(1, a)).toEqual(okv(5));
    t.exitAllAndExpectNoLeak();
  });

  it('with Yama scope 0 a same-uid process may access a non-descendant', () => {
    const [t, a] = parentAndChild({ yamaPtraceScope: 0 });
    expect(t.step({ op: 'proc_mem_read', pid: 2, target: 1, addr: a })).toEqual(okv(5));
    expect(t.step({ op: 'process_vm_readv', pid: 2, target: 1, addr: a })).toEqual(okv(5));
    t.exitAllAndExpectNoLeak();
  });

  it('a non-dumpable target is denied to its same-uid parent, but not to uid 0 (CAP_SYS_PTRACE)', () => {
    const [t, a] = parentAndChild();
    t.ok({ op: 'set_dumpable', pid: 2, dumpable: false });
    expect(t.step({ op: 'proc_mem_read', pid: 1, target: 2, addr: a })).toEqual(errno('EACCES'));
    expect(t.step({ op: 'process_vm_readv', pid: 1, target: 2, addr: a })).toEqual(errno('EPERM'));
    const root = t.spawn(0);
    expect(t.step({ op: 'proc_mem_read', pid: root, target: 2, addr: a })).toEqual(okv(5));
    expect(t.step({ op: 'process_vm_writev', pid: root, target: 2, addr: a, value: 8 })).toEqual(okv());
    expect(t.read(2, a)).toEqual(okv(8));
    t.exitAllAndExpectNoLeak();
  });

  it('a different uid is denied even to a parent-like unrelated process', () => {
    const [t, a] = parentAndChild();
    const other = t.spawn(1001);
    expect(t.step({ op: 'proc_mem_read', pid: other, target: 1, addr: a })).toEqual(errno('EACCES'));
    expect(t.step({ op: 'process_vm_readv', pid: other, target: 1, addr: a })).toEqual(errno('EPERM'));
    t.exitAllAndExpectNoLeak();
  });

  it('an exited target is ESRCH (get_task_mm finds no mm)', () => {
    const [t, a] = parentAndChild();
    t.ok({ op: 'exit', pid: 2 });
    expect(t.step({ op: 'proc_mem_read', pid: 1, target: 2, addr: a })).toEqual(errno('ESRCH'));
    expect(t.step({ op: 'process_vm_readv', pid: 1, target: 2, addr: a })).toEqual(errno('ESRCH'));
    expect(t.step({ op: 'process_vm_writev', pid: 1, target: 2, addr: a, value: 1 })).toEqual(errno('ESRCH'));
    t.exitAllAndExpectNoLeak();
  });
});

describe('FOLL_FORCE and read-only mappings', () => {
  it('proc_mem_write into a read-only private page shared after fork breaks COW; the VMA stays read-only', () => {
    const [t, a] = parentAndChild();
    const shared = t.pfnAt(1, a);
    t.ok({ op: 'mprotect', pid: 2, addr: a, lengthPages: 1, prot: RO });
    expect(t.step({ op: 'proc_mem_write', pid: 1, target: 2, addr: a, value: 9 })).toEqual(okv());
    // do_wp_page → wp_page_copy; maybe_mkwrite leaves the PTE read-only without VM_WRITE.
    const copy = t.frameAt(2, a);
    expect(copy.pfn).not.toBe(shared);
    expect(copy).toMatchObject({ kind: 'anon', anonExclusive: true, value: 9 });
    expect(t.pte(2, a)).toMatchObject({ write: false });
    expect(t.read(2, a)).toEqual(okv(9));
    expect(t.read(1, a)).toEqual(okv(5));
    expect(t.write(2, a, 1)).toEqual({ kind: 'signal', signal: 'SIGSEGV' });
    // A second forced write finds the exclusive copy and writes it in place (can_follow_write_pte).
    expect(t.step({ op: 'proc_mem_write', pid: 1, target: 2, addr: a, value: 10 })).toEqual(okv());
    expect(t.pfnAt(2, a)).toBe(copy.pfn);
    expect(t.read(2, a)).toEqual(okv(10));
    t.exitAllAndExpectNoLeak();
  });

  it('proc_mem_write into a read-only private file mapping writes a private copy, not the file', () => {
    const t = new Scenario();
    t.spawn();
    const file = t.ok({ op: 'creat', sizePages: 1 });
    t.ok({ op: 'pwrite', file, index: 0, value: 3 });
    const a = t.mapFile(1, file, 1, { prot: RO, shared: false, mode: 'r' });
    t.ok({ op: 'fork', pid: 1 });
    expect(t.step({ op: 'proc_mem_write', pid: 1, target: 2, addr: a, value: 4 })).toEqual(okv());
    expect(t.read(2, a)).toEqual(okv(4));
    expect(t.frameAt(2, a).kind).toBe('anon');
    expect(t.read(1, a)).toEqual(okv(3));
    expect(t.step({ op: 'pread', file, index: 0 })).toEqual(okv(3));
    t.exitAllAndExpectNoLeak();
  });

  it('proc_mem_write into a read-only shared mapping is EIO: FOLL_FORCE does not apply to shared mappings', () => {
    const t = new Scenario();
    t.spawn();
    const file = t.ok({ op: 'creat', sizePages: 1 });
    const ro = t.mapFile(1, file, 1, { prot: RO, shared: true, mode: 'r' });
    const rwFd = t.mapFile(1, file, 1, { prot: RO, shared: true, mode: 'rw' });
    t.ok({ op: 'fork', pid: 1 });
    expect(t.step({ op: 'proc_mem_write', pid: 1, target: 2, addr: ro, value: 1 })).toEqual(errno('EIO'));
    expect(t.step({ op: 'proc_mem_write', pid: 1, target: 2, addr: rwFd, value: 1 })).toEqual(errno('EIO'));
    expect(t.step({ op: 'proc_mem_read', pid: 1, target: 2, addr: ro })).toEqual(okv(0));
    expect(t.step({ op: 'pread', file, index: 0 })).toEqual(okv(0));
    t.exitAllAndExpectNoLeak();
  });

  it('process_vm_writev to a read-only mapping is EFAULT: no FOLL_FORCE', () => {
    const [t, a] = parentAndChild();
    t.ok({ op: 'mprotect', pid: 2, addr: a, lengthPages: 1, prot: RO });
    expect(t.step({ op: 'process_vm_writev', pid: 1, target: 2, addr: a, value: 1 })).toEqual(errno('EFAULT'));
    expect(t.step({ op: 'process_vm_readv', pid: 1, target: 2, addr: a })).toEqual(okv(5));
    expect(t.step({ op: 'process_vm_readv', pid: 1, target: 2, addr: a + 100 })).toEqual(errno('EFAULT'));
    expect(t.read(2, a)).toEqual(okv(5));
    t.exitAllAndExpectNoLeak();
  });

  it('process_vm_writev to a writable page shared after fork breaks COW in the target only', () => {
    const [t, a] = parentAndChild();
    const shared = t.pfnAt(1, a);
    expect(t.step({ op: 'process_vm_writev', pid: 1, target: 2, addr: a, value: 7 })).toEqual(okv());
    expect(t.pfnAt(2, a)).not.toBe(shared);
    expect(t.pte(2, a)).toMatchObject({ write: true });
    expect(t.read(1, a)).toEqual(okv(5));
    expect(t.read(2, a)).toEqual(okv(7));
    expect(t.frame(shared)).toMatchObject({ pincount: 0, refcount: 1 });
    t.exitAllAndExpectNoLeak();
  });

  it('reading an untouched page through /proc/<pid>/mem maps the zero page without allocating', () => {
    const t = new Scenario();
    t.spawn();
    const a = t.anon(1, 1, { prot: RW });
    t.ok({ op: 'fork', pid: 1 });
    const before = [...t.k.inspect.frames()].length;
    expect(t.step({ op: 'proc_mem_read', pid: 1, target: 2, addr: a })).toEqual(okv(0));
    expect([...t.k.inspect.frames()].length).toBe(before);
    t.exitAllAndExpectNoLeak();
  });
});
