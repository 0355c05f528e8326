// The lock table's checks, each shown able to fail and shown quiet on correct use.
import { describe, expect, it } from 'vitest';
import { LockTable, LockViolation } from '../../kernel-api/locks.ts';
import { WouldBlock } from '../../kernel-api/sched.ts';

const table = () => new LockTable(() => 0);
const mm = (t: LockTable, pid: number) => t.lock(`mmap_lock:P${pid}`, 'mmap_lock', 'rwsem', `mmap_lock of P${pid}`);

function violation(f: () => void): LockViolation {
  try {
    f();
  } catch (e) {
    if (e instanceof LockViolation) return e;
    throw e;
  }
  throw new Error('no violation');
}

describe('lock table', () => {
  it('deadlock: an rwsem held for write and asked for read by the same task (mmap of /proc/self/mem)', () => {
    const t = table();
    t.current = 1;
    t.acquire(mm(t, 1), 'write', 'do_mmap');
    const v = violation(() => t.acquire(mm(t, 1), 'read', 'get_user_pages_remote'));
    expect(v.invariant).toBe('deadlock');
    expect(v.message).toContain('already holds');
  });

  it('no deadlock for two readers of different tasks, and a writer then waits (WouldBlock)', () => {
    const t = table();
    const l = mm(t, 1);
    t.current = 1;
    t.acquire(l, 'read', 'a');
    t.current = 2;
    t.acquire(l, 'read', 'b');
    t.current = 3;
    expect(() => t.acquire(l, 'write', 'c')).toThrow(WouldBlock);
  });

  it('lock-order: A then B in one place and B then A in another is a cycle', () => {
    const t = table();
    const a = t.newLock('drv:a', 'mutex');
    const b = t.newLock('drv:b', 'mutex');
    t.current = 1;
    t.acquire(a, 'write', 'f');
    t.acquire(b, 'write', 'g');
    t.release(b, 'g');
    t.release(a, 'f');
    t.acquire(b, 'write', 'h');
    const v = violation(() => t.acquire(a, 'write', 'i'));
    expect(v.invariant).toBe('lock-order');
    expect(v.message).toContain('circular');
  });

  it('lock-order: one class nested in itself unannotated is recursive locking; annotated (fork) it is not', () => {
    const t = table();
    t.current = 1;
    t.acquire(mm(t, 1), 'write', 'do_mmap');
    expect(violation(() => t.acquire(mm(t, 2), 'read', 'get_user_pages_remote')).invariant).toBe('lock-order');
    const u = table();
    u.current = 1;
    u.acquire(mm(u, 1), 'write', 'dup_mmap');
    expect(() => u.acquire(mm(u, 2), 'write', 'dup_mmap', 1)).not.toThrow();
  });

  it('sleep-in-atomic: a sleeping point under a spinlock or in a non-blockable notifier range', () => {
    const t = table();
    t.current = 1;
    const s = t.newLock('drv:spin', 'spinlock');
    t.spinLock(s, 'f');
    expect(violation(() => t.preemptPoint('kmalloc')).invariant).toBe('sleep-in-atomic');
    t.release(s, 'f');
    expect(() => t.preemptPoint('kmalloc')).not.toThrow();
    t.enterAtomic();
    expect(violation(() => t.acquire(t.newLock('drv:m', 'mutex'), 'write', 'mutex_lock')).invariant).toBe('sleep-in-atomic');
    t.exitAtomic();
  });

  it('lock-leak: a lock held on the way back to user space, and an unlock by a non-holder', () => {
    const t = table();
    t.current = 1;
    const m = t.newLock('drv:m', 'mutex');
    t.acquire(m, 'write', 'ioctl');
    expect(violation(() => t.returnToUser('drv')).invariant).toBe('lock-leak');
    t.current = 2;
    expect(violation(() => t.release(m, 'other')).invariant).toBe('lock-leak');
    t.current = 1;
    t.release(m, 'ioctl');
    expect(() => t.returnToUser('drv')).not.toThrow();
  });

  it('a scheduling point hands over to the hooks and restores current', () => {
    const t = table();
    t.current = 1;
    const seen: number[] = [];
    t.hooks = { preempt: () => { seen.push(t.current); t.current = 7; } };
    t.preemptPoint('x');
    expect(seen).toEqual([1]);
    expect(t.current).toBe(1);
  });

  it('a retry loop on a failed trylock is a wait for the holder: WouldBlock, or a deadlock when the holder waits for this task', () => {
    const t = table();
    const a = mm(t, 1);
    const b = mm(t, 2);
    t.current = 2;
    t.acquire(b, 'write', 'dup_mmap');
    t.current = 1;
    expect(t.tryAcquire(b, 'read', 'mmap_read_trylock')).toBe(false);
    expect(() => t.waitForFailedTrylock('do_user_addr_fault')).toThrow(WouldBlock);
    // Nothing failed for a task whose trylock succeeded since.
    t.current = 2;
    t.release(b, 'dup_mmap');
    t.current = 1;
    expect(t.tryAcquire(b, 'read', 'mmap_read_trylock')).toBe(true);
    expect(() => t.waitForFailedTrylock('do_user_addr_fault')).not.toThrow();
    t.release(b, 'x');
    // Task 2, preempted before taking a lock task 1 holds, holds the lock task 1 trylocked: a
    // cycle. (Two mmap_locks nested is also lockdep's recursive warning: not checked here.)
    t.checks = new Set();
    t.current = 1;
    t.acquire(a, 'read', 'do_user_addr_fault');
    t.current = 2;
    t.acquire(b, 'write', 'dup_mmap');
    let tried = false;
    let v: LockViolation | null = null;
    t.hooks = {
      preempt: () => {
        t.current = 1;
        tried = t.tryAcquire(b, 'read', 'mmap_read_trylock');
        v = violation(() => t.waitForFailedTrylock('do_user_addr_fault'));
      },
    };
    expect(() => t.acquire(a, 'write', 'copy_page_range')).toThrow(WouldBlock);
    expect(tried).toBe(false);
    expect(v).toMatchObject({ invariant: 'deadlock' });
    expect(v!.message).toMatch(/^circular wait: P1 waits in do_user_addr_fault for mmap_lock of P2, held by P2; P2 waits in copy_page_range for mmap_lock of P1/);
  });

  it('srcu: readers nest and never wait; synchronize_srcu waits for them, for itself inside one, and closes cycles through them', () => {
    const t = table();
    const srcu = t.newLock('drv:fault_srcu', 'srcu');
    const m = t.newLock('drv:lock', 'mutex');
    // Two readers, one nested twice; a grace period waits (WouldBlock) while any is inside.
    t.current = 1;
    t.srcuReadLock(srcu, 'fault');
    t.srcuReadLock(srcu, 'fault');
    t.current = 2;
    t.srcuReadLock(srcu, 'fault');
    expect(() => t.returnToUser('fault')).toThrow(LockViolation); // a section left open is a leak
    t.release(srcu, 'fault');
    t.current = 3;
    expect(() => t.synchronizeSrcu(srcu, 'unmap')).toThrow(WouldBlock);
    t.current = 1;
    t.release(srcu, 'fault');
    t.current = 3;
    expect(() => t.synchronizeSrcu(srcu, 'unmap')).toThrow(WouldBlock); // P1 is still inside once
    t.current = 1;
    expect(violation(() => t.synchronizeSrcu(srcu, 'unmap')).invariant).toBe('deadlock'); // inside its own section
    t.release(srcu, 'fault');
    t.current = 3;
    expect(() => t.synchronizeSrcu(srcu, 'unmap')).not.toThrow();
    expect(t.srcuReadersActive(srcu)).toBe(false);

    // lockdep's srcu_lock_sync: a reader takes the mutex inside its section (srcu → lock); a
    // grace period waited for under the mutex (lock → srcu) closes the cycle.
    t.current = 1;
    t.srcuReadLock(srcu, 'fault');
    t.acquire(m, 'write', 'fault');
    t.release(m, 'fault');
    t.release(srcu, 'fault');
    t.current = 2;
    t.acquire(m, 'write', 'unmap');
    const order = violation(() => t.synchronizeSrcu(srcu, 'unmap'));
    expect(order.invariant).toBe('lock-order');
    expect(order.message).toMatch(/circular locking dependency: drv:lock → drv:fault_srcu/);
    t.release(m, 'unmap');

    // The wait itself: P1 inside a section, preempted before the mutex P2 holds while P2
    // waits for the grace period: no task in the cycle can run again.
    const u = table();
    u.checks = new Set();
    const s2 = u.newLock('drv:fault_srcu', 'srcu');
    const m2 = u.newLock('drv:lock', 'mutex');
    u.current = 2;
    u.acquire(m2, 'write', 'unmap');
    let v: LockViolation | null = null;
    u.current = 1;
    u.srcuReadLock(s2, 'fault');
    u.hooks = {
      preempt: () => {
        // P1 sits before the mutex; P2, nested, waits for the grace period P1 is inside.
        u.hooks = { preempt: () => {} };
        const back = u.current;
        u.current = 2;
        v = violation(() => u.synchronizeSrcu(s2, 'unmap'));
        u.current = back;
      },
    };
    expect(() => u.acquire(m2, 'write', 'fault')).toThrow(WouldBlock);
    expect(v).toMatchObject({ invariant: 'deadlock' });
    expect(v!.message).toMatch(/^circular wait: P2 waits in unmap for drv:fault_srcu, held by P1; P1 waits in fault for drv:lock, held by P2/);
  });
});
