/**
 * pin-buffers, the control design: long-term FOLL_PIN pins held across steps, as io_uring's
 * registered buffers keep them. Each scenario runs on the model and on the implementation
 * through a Session, so every invariant is checked after every step; the campaign at the
 * end fuzzes both side by side and must find nothing, since the design is correct.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import type { FrameView, KernelInspect, PteView } from '../../kernel-api/state.ts';
import { runCampaign } from '../../harness/campaign.ts';
import { FUZZ_CONFIG, STEPS_MAX } from '../../harness/config.ts';
import { Session } from '../../properties/session.ts';
import { pinBuffers, REGISTER_PAGES_MAX } from '../../strategies/pin-buffers.ts';
import { AtPoint, atNth, KERNELS, outcomeOf, ptePid, session, stepNested, stepOk } from './helpers.ts';

const NAME = 'pin-buffers';

/** A session on one kernel with every invariant checked after every step. */
function open(kernel: 'model' | 'impl') {
  const s = new Session({ kernel, config: FUZZ_CONFIG, strategies: [pinBuffers] });
  const step = (op: Op): Outcome => {
    const { outcome, violation } = s.step(op);
    expect(violation, `after ${JSON.stringify(op)}`).toBeNull();
    return outcome;
  };
  const value = (op: Op): number => {
    const o = step(op);
    expect(o, JSON.stringify(op)).toMatchObject({ kind: 'ok' });
    return (o as { value: number }).value;
  };
  const drv = (call: string, args: Record<string, number>): Outcome => step({ op: 'drv', strategy: NAME, call, args });
  const k: KernelInspect = s.primary.inspect;
  return { step, value, drv, k };
}

function pte(k: KernelInspect, pid: number, addr: number): PteView | undefined {
  return new Map(k.ptes(pid)).get(addr);
}

function presentPfn(k: KernelInspect, pid: number, addr: number): number {
  const p = pte(k, pid, addr);
  expect(p?.kind, `P${pid} at ${addr}`).toBe('present');
  return (p as Extract<PteView, { kind: 'present' }>).pfn;
}

function frame(k: KernelInspect, pfn: number): FrameView {
  const f = k.frame(pfn);
  expect(f, `pfn ${pfn}`).toBeDefined();
  return f!;
}

/** Nothing pinned anywhere: no driver hold, no frame with a pincount. */
function expectNothingPinned(k: KernelInspect): void {
  expect([...k.driverHolds()]).toEqual([]);
  expect([...k.frames()].filter((f) => f.pincount > 0).map((f) => f.pfn)).toEqual([]);
}

/** P1 with a private anonymous mapping of `pages` pages, each written (1, 2, …): its address. */
function withMemory(t: ReturnType<typeof open>, pages: number): number {
  t.value({ op: 'spawn' });
  const a = t.value({ op: 'mmap', pid: 1, addr: 0, lengthPages: pages, prot: 3, shared: false });
  for (let i = 0; i < pages; i++) t.value({ op: 'write', pid: 1, addr: a + i, value: i + 1 });
  return a;
}

for (const kernel of ['model', 'impl'] as const) {
  describe(`pin-buffers on the ${kernel}`, () => {
    it('register pins each page once (one reference, one pin) and read goes through the pinned page', () => {
      const t = open(kernel);
      const a = withMemory(t, 2);
      const fd = t.value({ op: 'drv', strategy: NAME, call: 'register', args: { pid: 1, addr: a, lengthPages: 2 } });
      const pfns = [presentPfn(t.k, 1, a), presentPfn(t.k, 1, a + 1)];
      expect([...t.k.driverHolds()].map((h) => [h.pfn, h.pins, h.refs])).toEqual([[pfns[0], 1, 0], [pfns[1], 1, 0]]);
      for (const pfn of pfns) expect(frame(t.k, pfn)).toMatchObject({ refcount: 2, mapcount: 1, pincount: 1 });
      expect(t.drv('read', { pid: 1, fd, index: 1 })).toEqual({ kind: 'ok', value: 2 });
      expect(t.drv('read', { pid: 1, fd, index: 2 })).toEqual({ kind: 'errno', errno: 'EFAULT' });
    });

    it('a store by the process is what the registered buffer reads (the pin is the page the process maps)', () => {
      const t = open(kernel);
      const a = withMemory(t, 1);
      const fd = t.value({ op: 'drv', strategy: NAME, call: 'register', args: { pid: 1, addr: a, lengthPages: 1 } });
      t.value({ op: 'write', pid: 1, addr: a, value: 0x1234 });
      expect(t.drv('read', { pid: 1, fd, index: 0 })).toEqual({ kind: 'ok', value: 0x1234 });
      // No kernel-side write: ghost memory could not follow a store made by a drv call.
      expect(t.drv('write', { pid: 1, fd, index: 0, value: 5 })).toEqual({ kind: 'errno', errno: 'ENOTTY' });
    });

    it('reclaim skips a pinned page: it stays mapped and resident, and takes no swap slot', () => {
      const t = open(kernel);
      const a = withMemory(t, 3);
      const fd = t.value({ op: 'drv', strategy: NAME, call: 'register', args: { pid: 1, addr: a, lengthPages: 2 } });
      const pinned = [presentPfn(t.k, 1, a), presentPfn(t.k, 1, a + 1)];
      t.value({ op: 'reclaim', pid: 1, addr: a });
      t.value({ op: 'reclaim', count: 8 });
      expect(pte(t.k, 1, a + 2)?.kind).toBe('swap'); // the unpinned page did go
      for (let i = 0; i < 2; i++) {
        expect(presentPfn(t.k, 1, a + i)).toBe(pinned[i]);
        expect(frame(t.k, pinned[i])).toMatchObject({ pincount: 1, swapSlot: -1, value: i + 1 });
      }
      expect([...t.k.swapSlots()]).toHaveLength(1);
      t.value({ op: 'write', pid: 1, addr: a, value: 9 });
      expect(t.drv('read', { pid: 1, fd, index: 0 })).toEqual({ kind: 'ok', value: 9 });
    });

    it('fork copies a pinned anonymous page for the child at once (page_needs_cow_for_dma); the parent keeps the pinned one', () => {
      const t = open(kernel);
      const a = withMemory(t, 2);
      const fd = t.value({ op: 'drv', strategy: NAME, call: 'register', args: { pid: 1, addr: a, lengthPages: 1 } });
      const pinned = presentPfn(t.k, 1, a);
      const child = t.value({ op: 'fork', pid: 1 });
      expect(presentPfn(t.k, 1, a)).toBe(pinned);
      expect(pte(t.k, 1, a)).toMatchObject({ write: true });
      const copy = presentPfn(t.k, child, a);
      expect(copy).not.toBe(pinned);
      expect(frame(t.k, copy)).toMatchObject({ kind: 'anon', value: 1, anonExclusive: true, pincount: 0 });
      expect(frame(t.k, pinned)).toMatchObject({ anonExclusive: true, mapcount: 1, pincount: 1 });
      // The unpinned page is shared copy-on-write as usual.
      expect(presentPfn(t.k, child, a + 1)).toBe(presentPfn(t.k, 1, a + 1));
      expect(pte(t.k, 1, a + 1)).toMatchObject({ write: false });
      // The parent's store lands in the pinned page, the child's in its copy; the child's
      // inherited fd is the same registration.
      t.value({ op: 'write', pid: 1, addr: a, value: 7 });
      t.value({ op: 'write', pid: child, addr: a, value: 8 });
      expect(presentPfn(t.k, 1, a)).toBe(pinned);
      expect(t.drv('read', { pid: 1, fd, index: 0 })).toEqual({ kind: 'ok', value: 7 });
      expect(t.drv('read', { pid: child, fd, index: 0 })).toEqual({ kind: 'ok', value: 7 });
      expect(t.step({ op: 'read', pid: child, addr: a })).toEqual({ kind: 'ok', value: 8 });
    });

    it('a range that runs into unmapped space is EFAULT and leaves nothing pinned, no fd and no slab object', () => {
      const t = open(kernel);
      const a = withMemory(t, 2);
      const end = [...t.k.vmas(1)].find((v) => v.start <= a && a < v.end)!.end;
      expect([...t.k.vmas(1)].some((v) => v.start <= end && end < v.end)).toBe(false);
      expect(t.drv('register', { pid: 1, addr: end - 2, lengthPages: 3 })).toEqual({ kind: 'errno', errno: 'EFAULT' });
      expectNothingPinned(t.k);
      expect([...t.k.fds(1)]).toEqual([]);
      expect([...t.k.slabObjects()]).toEqual([]);
      expect(t.drv('register', { pid: 1, addr: a, lengthPages: 0 })).toEqual({ kind: 'errno', errno: 'EFAULT' });
      expect(t.drv('register', { pid: 1, addr: a, lengthPages: REGISTER_PAGES_MAX + 1 })).toEqual({ kind: 'errno', errno: 'EFAULT' });
      expect(t.drv('register', { pid: 9, addr: a, lengthPages: 1 })).toEqual({ kind: 'errno', errno: 'ESRCH' });
    });

    it('an allocation failing midway (the fault of the second page, or the fd) gives back the pins already taken', () => {
      const t = open(kernel);
      t.value({ op: 'spawn' });
      const a = t.value({ op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false });
      t.value({ op: 'write', pid: 1, addr: a, value: 1 }); // resident; a + 1 is not
      t.value({ op: 'fail_nth', nth: 2 }); // 1: kmalloc of the registration, 2: the fault at a + 1
      expect(t.drv('register', { pid: 1, addr: a, lengthPages: 2 })).toEqual({ kind: 'errno', errno: 'ENOMEM' });
      expectNothingPinned(t.k);
      t.value({ op: 'fail_nth', nth: 2 }); // 1: kmalloc, 2: the struct file (a + 1 is resident now)
      expect(t.drv('register', { pid: 1, addr: a, lengthPages: 2 })).toEqual({ kind: 'errno', errno: 'ENOMEM' });
      expectNothingPinned(t.k);
      expect([...t.k.fds(1)]).toEqual([]);
      expect([...t.k.slabObjects()]).toEqual([]);
    });

    it('refuses a read-only mapping (FOLL_WRITE) and any regular-file mapping, shared or private; shmem is pinned', () => {
      const t = open(kernel);
      t.value({ op: 'spawn' });
      const ro = t.value({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 1, shared: false });
      const file = t.value({ op: 'creat', sizePages: 1 });
      const sharedFile = t.value({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, file });
      const privateFile = t.value({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: false, file });
      const shmem = t.value({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true });
      expect(t.drv('register', { pid: 1, addr: ro, lengthPages: 1 })).toEqual({ kind: 'errno', errno: 'EFAULT' });
      expect(t.drv('register', { pid: 1, addr: sharedFile, lengthPages: 1 })).toEqual({ kind: 'errno', errno: 'EOPNOTSUPP' });
      expect(t.drv('register', { pid: 1, addr: privateFile, lengthPages: 1 })).toEqual({ kind: 'errno', errno: 'EOPNOTSUPP' });
      // Refused before anything is pinned: the private file page is not copied, it still follows the file.
      expect(pte(t.k, 1, privateFile)).toBeUndefined();
      t.value({ op: 'pwrite', file, index: 0, value: 6 });
      expect(t.step({ op: 'read', pid: 1, addr: privateFile })).toEqual({ kind: 'ok', value: 6 });
      t.value({ op: 'drv', strategy: NAME, call: 'register', args: { pid: 1, addr: shmem, lengthPages: 1 } });
      expect(frame(t.k, presentPfn(t.k, 1, shmem))).toMatchObject({ kind: 'shmem', pincount: 1 });
      // The shmem page pinned first is given back when the next page is a file's.
      expect(shmem + 1).toBe(privateFile);
      expect(t.drv('register', { pid: 1, addr: shmem, lengthPages: 2 })).toEqual({ kind: 'errno', errno: 'EOPNOTSUPP' });
      expect(frame(t.k, presentPfn(t.k, 1, shmem))).toMatchObject({ pincount: 1 });
      expect([...t.k.driverHolds()]).toHaveLength(1);
    });

    it('unregister drops the pins and keeps the fd; a second unregister is ENXIO', () => {
      const t = open(kernel);
      const a = withMemory(t, 2);
      const fd = t.value({ op: 'drv', strategy: NAME, call: 'register', args: { pid: 1, addr: a, lengthPages: 2 } });
      expect(t.drv('unregister', { pid: 1, fd })).toEqual({ kind: 'ok', value: 0 });
      expectNothingPinned(t.k);
      expect([...t.k.fds(1)].map((f) => f.fd)).toEqual([fd]);
      expect(t.drv('read', { pid: 1, fd, index: 0 })).toEqual({ kind: 'errno', errno: 'EFAULT' });
      expect(t.drv('unregister', { pid: 1, fd })).toEqual({ kind: 'errno', errno: 'ENXIO' });
      t.value({ op: 'close', pid: 1, fd });
      expect([...t.k.slabObjects()]).toEqual([]);
    });

    it('the last close drops the pins (an fd inherited by fork shares the registration), and nothing leaks after exit', () => {
      const t = open(kernel);
      const a = withMemory(t, 2);
      const fd = t.value({ op: 'drv', strategy: NAME, call: 'register', args: { pid: 1, addr: a, lengthPages: 2 } });
      const child = t.value({ op: 'fork', pid: 1 });
      t.value({ op: 'close', pid: 1, fd });
      expect([...t.k.driverHolds()]).toHaveLength(2);
      t.value({ op: 'munmap', pid: 1, addr: a, lengthPages: 2 }); // the pins alone keep the pages now
      expect([...t.k.driverHolds()].map((h) => frame(t.k, h.pfn).mapcount)).toEqual([0, 0]);
      expect(t.drv('read', { pid: child, fd, index: 1 })).toEqual({ kind: 'ok', value: 2 });
      t.value({ op: 'close', pid: child, fd });
      expectNothingPinned(t.k);
      t.value({ op: 'exit', pid: child });
      t.value({ op: 'exit', pid: 1 }); // no-leak is checked here, after everything exited
      expect([...t.k.frames()].filter((f) => f.kind !== 'zero')).toEqual([]);
    });

    it('exit with the fd still open releases the registration after the mm is gone', () => {
      const t = open(kernel);
      const a = withMemory(t, 2);
      t.value({ op: 'drv', strategy: NAME, call: 'register', args: { pid: 1, addr: a, lengthPages: 2 } });
      t.value({ op: 'exit', pid: 1 });
      expectNothingPinned(t.k);
      expect([...t.k.frames()].filter((f) => f.kind !== 'zero')).toEqual([]);
      expect([...t.k.slabObjects()]).toEqual([]);
    });
  });
}

describe('pin-buffers campaign', () => {
  it('a correct design: 100 runs on both kernels side by side find no failure', () => {
    const r = runCampaign({ seed: 1, runs: 100, kernel: 'diff', strategies: [pinBuffers], config: FUZZ_CONFIG, stepsMax: STEPS_MAX });
    expect(r.runs).toBe(100);
    expect(r.failures.map((f) => `${f.invariant}: ${f.message}\n${f.ops.map((op) => JSON.stringify(op)).join('\n')}`)).toEqual([]);
  });
});

/** io_uring's locking (issue 15): the pins under mmap_read_lock, the ring's uring_lock. P1's task 2 is a second thread. */
describe('pin-buffers: locking under interleaving', () => {
  for (const kernel of KERNELS) {
    describe(`on the ${kernel}`, () => {
      const start = () => {
        const s = session(kernel, [pinBuffers]);
        stepOk(s, { op: 'spawn' });
        expect(stepOk(s, { op: 'clone', pid: 1 })).toBe(2);
        const a = stepOk(s, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: false });
        return { s, a };
      };

      it('register pins under the caller\'s mmap_read_lock: a thread\'s munmap at the pin\'s fault cannot start there, and the pin is the page mapped', () => {
        const { s, a } = start();
        const register: Op = { op: 'drv', strategy: NAME, call: 'register', args: { pid: 1, addr: a, lengthPages: 1 } };
        const munmap: Op = { op: 'munmap', pid: 1, tid: 2, addr: a, lengthPages: 1 };
        const policy = new AtPoint(atNth(1, 'get_user_pages_remote'));
        const r = stepNested(s, register, [munmap], policy);
        expect(policy.fired).toBe(1);
        expect(r.infeasible).toBeNull();
        expect(r.violation).toBeNull();
        expect(r.started).toEqual([register]); // it would have waited for the mmap_lock
        expect(outcomeOf(r, register)).toMatchObject({ kind: 'ok' });
        const pfn = (ptePid(s, 1, a) as { pfn: number }).pfn;
        expect([...s.primary.inspect.driverHolds()].map((h) => h.pfn)).toEqual([pfn]);
      });

      it('read takes uring_lock and checks the registration under it: an unregister that got in first leaves it nothing (EFAULT)', () => {
        const { s, a } = start();
        const fd = stepOk(s, { op: 'drv', strategy: NAME, call: 'register', args: { pid: 1, addr: a, lengthPages: 1 } });
        const read: Op = { op: 'drv', strategy: NAME, call: 'read', args: { pid: 1, fd, index: 0 } };
        const unregister: Op = { op: 'drv', strategy: NAME, call: 'unregister', tid: 2, args: { pid: 1, fd } };
        const r = stepNested(s, read, [unregister], new AtPoint(atNth(1, 'mutex_lock')));
        expect(r.violation).toBeNull();
        expect(r.started).toEqual([read, unregister]);
        expect(outcomeOf(r, unregister)).toEqual({ kind: 'ok', value: 0 });
        expect(outcomeOf(r, read)).toEqual({ kind: 'errno', errno: 'EFAULT' });
        expect([...s.primary.inspect.driverHolds()]).toEqual([]);
      });
    });
  }
});
