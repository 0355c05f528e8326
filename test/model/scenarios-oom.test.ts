/**
 * The OOM killer (mm/oom_kill.c): __oom_reap_task_mm tears down the victim's private
 * memory at once (vma_is_anonymous or !VM_SHARED); the victim, killed, exits later, when its
 * own do_exit runs. Shared memory lives on in the shmem object for whoever else maps it.
 */
import { describe, expect, it } from 'vitest';
import { Scenario, okv } from './helpers.ts';

describe('OOM kill', () => {
  it('the child still reads what the victim wrote to shared anonymous memory; the victim private pages are freed', () => {
    const t = new Scenario();
    t.spawn();
    const shared = t.anon(1, 1, { shared: true });
    const cow = t.anon(1, 1);
    t.write(1, shared, 100);
    t.write(1, cow, 200);
    t.ok({ op: 'fork', pid: 1 });
    // After fork: the victim writes the shared page, and a private page only it holds.
    t.write(1, shared, 101);
    const own = t.anon(1, 2);
    t.write(1, own, 300);
    t.write(1, own + 1, 301);
    t.ok({ op: 'reclaim', pid: 1, addr: own + 1 });
    const ownPfn = t.pfnAt(1, own);
    const cowPfn = t.pfnAt(1, cow);
    const shmemPfn = t.pfnAt(1, shared);
    expect(t.slots()).toHaveLength(1);
    expect(t.step({ op: 'oom', pid: 1 })).toEqual(okv());
    // Reaped, not exited: the private memory only the victim held is gone, swap included;
    // its shared mapping stands until it exits, and it can start nothing but its exit.
    expect(t.proc(1)).toMatchObject({ state: 'running', oomReaped: true, rss: { anon: 0, file: 0, shmem: 1, swap: 0 } });
    expect(t.frame(ownPfn)).toBeUndefined();
    expect(t.slots()).toEqual([]);
    expect(t.frame(shmemPfn)).toMatchObject({ kind: 'shmem', mapcount: 1 });
    // The COW page shared with the child survives, held by the child alone now.
    expect(t.frame(cowPfn)).toMatchObject({ refcount: 1, mapcount: 1 });
    expect(t.read(2, cow)).toEqual(okv(200));
    expect(t.step({ op: 'read', pid: 1, addr: shared })).toEqual({ kind: 'errno', errno: 'ESRCH' });
    expect(t.step({ op: 'fork', pid: 1 })).toEqual({ kind: 'errno', errno: 'ESRCH' });
    // Its do_exit, when it runs.
    expect(t.step({ op: 'exit', pid: 1 })).toEqual(okv());
    expect(t.proc(1)).toMatchObject({ state: 'exited', oomReaped: true, rss: { anon: 0, file: 0, shmem: 0, swap: 0 } });
    // The shmem page stays in its object. The child has not touched it since fork, which
    // copies no PTEs of a shared VMA without anon_vma (vma_needs_copy): it maps it on read.
    expect(t.frame(shmemPfn)).toMatchObject({ kind: 'shmem', mapcount: 0, refcount: 1, value: 101 });
    expect(t.read(2, shared)).toEqual(okv(101));
    expect(t.pfnAt(2, shared)).toBe(shmemPfn);
    expect(t.write(2, shared, 102)).toEqual(okv());
    t.exitAllAndExpectNoLeak();
  });

  it('a swapped-out shmem page survives the victim and is read back by the child', () => {
    const t = new Scenario();
    t.spawn();
    const shared = t.anon(1, 1, { shared: true });
    t.write(1, shared, 7);
    t.ok({ op: 'fork', pid: 1 });
    t.read(2, shared);
    expect(t.ok({ op: 'reclaim', pid: 1, addr: shared })).toBe(1);
    expect(t.slots()).toMatchObject([{ count: 1, value: 7 }]);
    t.ok({ op: 'oom', pid: 1 });
    expect(t.slots()).toHaveLength(1);
    expect(t.read(2, shared)).toEqual(okv(7));
    t.exitAllAndExpectNoLeak();
  });
});
