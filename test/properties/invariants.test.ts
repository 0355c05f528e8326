/**
 * Each invariant can fail: a state is corrupted on purpose in one named way, and exactly
 * the invariant that describes it must report it, with a message naming the frame, the
 * process or the address. Run against both kernels.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import type { Outcome } from '../../kernel-api/outcome.ts';
import type { InvariantId, StrategyDefinition } from '../../kernel-api/strategy.ts';
import type { FileOperations, RemoteView, StrategyInstance } from '../../kernel-api/driver.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { INVARIANTS, takeCensus, type Violation } from '../../properties/invariants/index.ts';
import { Session } from '../../properties/session.ts';
import { pinBuffers } from '../../strategies/pin-buffers.ts';

const A = 2 ** 35 - 2; // where the first 2-page mmap lands (top-down below mmap_base)

/** A stand-in driver for the tests: its views and holds are whatever the test says. */
function testStrategy(views: RemoteView[]): StrategyDefinition {
  return {
    name: 'test-driver', seed: 'new', title: 'test', promises: [], calls: [],
    create(k): StrategyInstance {
      return {
        call(call) {
          if (call === 'double-kfree') {
            const obj = k.kmalloc('thing')!;
            k.kfree(obj);
            k.kfree(obj);
          }
          return { kind: 'ok', value: 0 };
        },
        holds: () => [],
        remoteViews: () => views,
      };
    },
  };
}

function session(kernel: 'model' | 'impl' | 'diff', strategies: StrategyDefinition[] = []) {
  return new Session({ kernel, config: DEFAULT_CONFIG, strategies });
}

function run(s: Session, ops: Op[]): Outcome[] {
  return ops.map((op) => {
    const { outcome, violation } = s.step(op);
    expect(violation, `unexpected violation after ${JSON.stringify(op)}`).toBeNull();
    return outcome;
  });
}

/** Every invariant's verdict on the current state, as if `op` had just returned `outcome`. */
function verdicts(s: Session, op: Op, outcome: Outcome, views: RemoteView[] = []): Map<InvariantId, Violation> {
  const k = s.primary.inspect;
  const ctx = { k, config: s.opts.config, census: takeCensus(k), ghost: s.ghost, op, outcome, remoteViews: views };
  const out = new Map<InvariantId, Violation>();
  for (const inv of INVARIANTS) {
    const v = inv.check(ctx);
    if (v !== null) out.set(inv.id, v);
  }
  return out;
}

const NOOP: Op = { op: 'fail_nth', nth: 0 };
const OK: Outcome = { kind: 'ok', value: 0 };

function anonFrameAt(s: Session, pid: number, addr: number): number {
  for (const [a, pte] of s.primary.inspect.ptes(pid)) if (a === addr && pte.kind === 'present') return pte.pfn;
  throw new Error(`no page at ${addr}`);
}

/** P1 with two written private pages at A and A+1. */
function twoPages(kernel: 'model' | 'impl'): Session {
  const s = session(kernel);
  run(s, [
    { op: 'spawn' },
    { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false },
    { op: 'write', pid: 1, addr: A, value: 11 },
    { op: 'write', pid: 1, addr: A + 1, value: 12 },
  ]);
  return s;
}

function expectOnly(found: Map<InvariantId, Violation>, id: InvariantId, mentions: RegExp): void {
  expect([...found.keys()]).toEqual([id]);
  expect(found.get(id)!.message).toMatch(mentions);
}

for (const kernel of ['model', 'impl'] as const) {
  describe(`invariants fail when their property is broken (${kernel})`, () => {
    it('refcount-balance reports a leaked reference with its frame', () => {
      const s = twoPages(kernel);
      const pfn = anonFrameAt(s, 1, A);
      s.primary.corrupt({ kind: 'leak-ref', pfn });
      expectOnly(verdicts(s, NOOP, OK), 'refcount-balance', new RegExp(`pfn ${pfn}.*P1 at 0x${A.toString(16)}`));
    });

    it('mapcount reports a mapcount that disagrees with the PTEs', () => {
      const s = twoPages(kernel);
      const pfn = anonFrameAt(s, 1, A);
      s.primary.corrupt({ kind: 'skew-mapcount', pfn });
      expectOnly(verdicts(s, NOOP, OK), 'mapcount', new RegExp(`pfn ${pfn}: mapcount 2 but 1 PTEs`));
    });

    it('no-stale-pte reports a PTE left on a freed frame', () => {
      const s = twoPages(kernel);
      const pfn = anonFrameAt(s, 1, A);
      s.primary.corrupt({ kind: 'free-under-pte', pid: 1, addr: A });
      expectOnly(verdicts(s, NOOP, OK), 'no-stale-pte', new RegExp(`P1 at 0x${A.toString(16)} maps pfn ${pfn}, which was freed`));
    });

    it('remote-coherence reports a view that shows another page than its target has', () => {
      const s = session(kernel);
      run(s, [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: true },
        { op: 'write', pid: 1, addr: A, value: 11 },
        { op: 'write', pid: 1, addr: A + 1, value: 12 },
      ]);
      const views: RemoteView[] = [{ pid: 1, addr: A + 1, target: 1, targetAddr: A, onMissing: 'sigbus' }];
      expectOnly(verdicts(s, NOOP, OK, views), 'remote-coherence', new RegExp(`P1 at 0x${(A + 1).toString(16)} shows pfn \\d+ as P1's page 0x${A.toString(16)}`));
    });

    it('cow-isolation reports a read that differs from ghost memory', () => {
      const s = twoPages(kernel);
      s.primary.corrupt({ kind: 'set-value', pfn: anonFrameAt(s, 1, A), value: 99 });
      const read: Op = { op: 'read', pid: 1, addr: A };
      const outcome = s.primary.step(read);
      expect(outcome).toEqual({ kind: 'ok', value: 99 });
      expectOnly(verdicts(s, read, outcome), 'cow-isolation', new RegExp(`read of P1 at 0x${A.toString(16)} returned 99, ghost memory says 11`));
    });

    it('cow-isolation after MADV_FREE: the value or 0 (reclaim discarded it), nothing else; a store makes it one value again', () => {
      const s = twoPages(kernel);
      run(s, [{ op: 'madvise', pid: 1, addr: A, lengthPages: 2, advice: 'FREE' }, { op: 'write', pid: 1, addr: A + 1, value: 13 }]);
      // Reclaim discards the clean page (it reads 0 after) and keeps the one stored to since.
      expect(run(s, [{ op: 'reclaim', count: 8 }, { op: 'read', pid: 1, addr: A }, { op: 'read', pid: 1, addr: A + 1 }]).slice(1))
        .toEqual([{ kind: 'ok', value: 0 }, { kind: 'ok', value: 13 }]);
      const t = twoPages(kernel);
      run(t, [{ op: 'madvise', pid: 1, addr: A, lengthPages: 2, advice: 'FREE' }, { op: 'write', pid: 1, addr: A + 1, value: 13 }]);
      t.primary.corrupt({ kind: 'set-value', pfn: anonFrameAt(t, 1, A), value: 99 });
      const read: Op = { op: 'read', pid: 1, addr: A };
      expectOnly(verdicts(t, read, t.primary.step(read)), 'cow-isolation', /returned 99, ghost memory says 11 \(or 0 once reclaim discards/);
      t.primary.corrupt({ kind: 'set-value', pfn: anonFrameAt(t, 1, A + 1), value: 0 });
      const again: Op = { op: 'read', pid: 1, addr: A + 1 };
      expectOnly(verdicts(t, again, t.primary.step(again)), 'cow-isolation', /returned 0, ghost memory says 13$/);
    });

    it('cow-isolation of a pipe read: a store through the same PTE shows, one after fork (COW) must not (CVE-2020-29374)', () => {
      const s = twoPages(kernel);
      // Before fork the page is exclusive and writable: the store reaches the page the pipe holds.
      const spliced = run(s, [{ op: 'vmsplice', pid: 1, addr: A, lengthPages: 1 }, { op: 'write', pid: 1, addr: A, value: 20 }]);
      expect(spliced[0]).toEqual({ kind: 'ok', value: 1, values: [1] });
      expect(run(s, [{ op: 'pipe_read', pid: 1, pipe: 1, pages: 1 }])).toEqual([{ kind: 'ok', value: 1, values: [20] }]);
      // After fork neither side's store reaches it.
      run(s, [{ op: 'vmsplice', pid: 1, addr: A + 1, lengthPages: 1 }, { op: 'fork', pid: 1 }, { op: 'write', pid: 1, addr: A + 1, value: 30 }, { op: 'write', pid: 2, addr: A + 1, value: 31 }]);
      const pfn = [...s.primary.inspect.pipes()].find((p) => p.id === 2)!.pfns[0]!;
      // A kernel that let the parent reuse the page the pipe holds: the pipe sees its store.
      s.primary.corrupt({ kind: 'set-value', pfn, value: 30 });
      const read: Op = { op: 'pipe_read', pid: 2, pipe: 2, pages: 1 };
      expectOnly(verdicts(s, read, s.primary.step(read)), 'cow-isolation', /read of pipe 2 by P2 returned 30 from its buffer 1, but the page vmsplice put there can hold only 12 /);
    });

    it('exclusive-anon reports a COW-shared page mapped writable', () => {
      const s = twoPages(kernel);
      run(s, [{ op: 'fork', pid: 1 }]);
      s.primary.corrupt({ kind: 'make-writable', pid: 1, addr: A });
      expectOnly(verdicts(s, NOOP, OK), 'exclusive-anon', /anonymous pfn \d+ is mapped writable and 2 times/);
    });

    it('zero-page reports a zero page that is no longer zero', () => {
      const s = twoPages(kernel);
      s.primary.corrupt({ kind: 'set-value', pfn: s.primary.inspect.zeroPfn, value: 1 });
      expectOnly(verdicts(s, NOOP, OK), 'zero-page', /the zero page holds 1/);
    });

    it('file-integrity reports a file page changed without a write', () => {
      const s = session(kernel);
      run(s, [{ op: 'creat', sizePages: 2 }, { op: 'pwrite', file: 1, index: 0, value: 5 }]);
      const [, pfn] = [...s.primary.inspect.pagecache(1)][0];
      s.primary.corrupt({ kind: 'set-value', pfn, value: 6 });
      expectOnly(verdicts(s, NOOP, OK), 'file-integrity', /file 1 page 0 holds 6, but only 5 was ever written/);
    });

    it('rss-counters reports a counter that disagrees with the page table', () => {
      const s = twoPages(kernel);
      s.primary.corrupt({ kind: 'skew-rss', pid: 1 });
      expectOnly(verdicts(s, NOOP, OK), 'rss-counters', /P1 \(running\): anon counter is 3 but the page table has 2/);
    });

    it('swap-accounting reports a slot count no entry accounts for', () => {
      const s = twoPages(kernel);
      run(s, [{ op: 'reclaim', pid: 1, addr: A }]);
      const [slot] = [...s.primary.inspect.swapSlots()];
      s.primary.corrupt({ kind: 'skew-swap-count', slot: slot.slot });
      expectOnly(verdicts(s, NOOP, OK), 'swap-accounting', new RegExp(`swap slot ${slot.slot}: count 2 but 1 entries`));
    });

    it('vma-wellformed reports a PTE outside every VMA', () => {
      const s = twoPages(kernel);
      s.primary.corrupt({ kind: 'pte-outside-vma', pid: 1, addr: A, to: A - 5 });
      expectOnly(verdicts(s, NOOP, OK), 'vma-wellformed', new RegExp(`P1 has a PTE at 0x${(A - 5).toString(16)} outside every VMA`));
    });

    it('no-leak reports a frame left after everything exited', () => {
      const s = twoPages(kernel);
      s.primary.corrupt({ kind: 'leak-frame' });
      run(s, []);
      s.primary.step({ op: 'exit', pid: 1 });
      expectOnly(verdicts(s, NOOP, OK), 'no-leak', /pfn \d+ \(anon, refcount 1, pincount 0\) is still in use after everything exited/);
    });

    it('access-control reports remote access granted without ptrace rights', () => {
      const s = twoPages(kernel);
      run(s, [{ op: 'fork', pid: 1 }]);
      // Under Yama scope 1 a child may not attach to its parent.
      const denied: Op = { op: 'proc_mem_read', pid: 2, target: 1, addr: A };
      expect(s.primary.step(denied)).toEqual({ kind: 'errno', errno: 'EACCES' });
      s.primary.corrupt({ kind: 'skip-ptrace-check' });
      const outcome = s.primary.step(denied);
      expect(outcome).toEqual({ kind: 'ok', value: 11 });
      expectOnly(verdicts(s, denied, outcome), 'access-control', /proc_mem_read by P2 \(uid 1000\) of P1 .* succeeded without ptrace attach rights/);
    });

    it('access-control judges a strategy call by the ptrace check it declares, apart from the driver', () => {
      // A driver whose open asks ptrace_may_access for `asks` while its design (`access`) says ATTACH.
      const driver = (asks: 'read' | 'attach' | 'refuse'): StrategyDefinition => ({
        name: 'ptrace-driver', seed: 'new', title: 'test', promises: ['access-control'],
        calls: [{ name: 'open', weight: 1, args: () => null, access: { mode: 'attach', target: 'target', denied: 'EACCES', deniedOnlyByAccess: true } }],
        create(k): StrategyInstance {
          return {
            call(_call, args) {
              if (asks === 'refuse' || !k.ptrace_may_access(Number(args.pid), Number(args.target), asks)) return { kind: 'errno', errno: 'EACCES' };
              return { kind: 'ok', value: 0 };
            },
            holds: () => [],
            remoteViews: () => [],
          };
        },
      });
      const open = (pid: number, target: number): Op => ({ op: 'drv', strategy: 'ptrace-driver', call: 'open', args: { pid, target } });
      const verdictOf = (asks: 'read' | 'attach' | 'refuse', op: Op) => {
        const s = session(kernel, [driver(asks)]);
        run(s, [{ op: 'spawn' }, { op: 'fork', pid: 1 }]);
        return s.step(op);
      };
      // Under Yama scope 1 the child may read its parent (PTRACE_MODE_READ) but not attach to it.
      expect(DEFAULT_CONFIG.yamaPtraceScope).toBe(1);
      const bypass = verdictOf('read', open(2, 1));
      expect(bypass.outcome).toEqual({ kind: 'ok', value: 0 });
      expect(bypass.violation?.invariant).toBe('access-control');
      expect(bypass.violation?.cause).toBe('bypassed');
      expect(bypass.violation?.message).toMatch(/ptrace-driver open by P2 \(uid 1000\) of P1 .* succeeded without the PTRACE_MODE_ATTACH rights its design checks/);
      // As designed: refused, and nothing to report; the parent may attach to its child.
      expect(verdictOf('attach', open(2, 1))).toMatchObject({ outcome: { kind: 'errno', errno: 'EACCES' }, violation: null });
      expect(verdictOf('attach', open(1, 2))).toMatchObject({ outcome: { kind: 'ok', value: 0 }, violation: null });
      // Refused although the parent may attach: the check alone gives EACCES here, so that is a flaw too.
      const refused = verdictOf('refuse', open(1, 2));
      expect(refused.violation?.cause).toBe('refused');
      expect(refused.violation?.message).toMatch(/refused with EACCES although PTRACE_MODE_ATTACH is allowed/);
    });

    it('vma-wellformed reports special PTEs outside VM_PFNMAP|VM_MIXEDMAP and pages under normal PTEs in a VM_PFNMAP VMA', () => {
      // A driver whose ->mmap fills the VMA and then leaves it with flags vm_normal_page cannot trust.
      const driver = (how: 'pfn-without-pfnmap' | 'page-in-pfnmap'): StrategyDefinition => ({
        name: 'pfn-driver', seed: 'new', title: 'test', promises: [],
        calls: [{ name: 'open', weight: 1, args: () => null, returns: 'fd' }],
        create(k): StrategyInstance {
          const pages: number[] = [];
          const fops: FileOperations = {
            name: 'pfn-driver',
            mmap: (_file, vma) => {
              const pfn = k.alloc_page()!;
              pages.push(pfn);
              k.SetPageReserved(pfn);
              if (how === 'pfn-without-pfnmap') {
                const r = k.remap_pfn_range(vma, vma.start, pfn, 1);
                vma.pfnmap = vma.mixedmap = false; // as if remap_pfn_range had not set VM_PFNMAP
                return r;
              }
              const r = k.vm_insert_page(vma, vma.start, pfn);
              vma.mixedmap = false; // as if vm_insert_page had not made the VMA VM_MIXEDMAP
              vma.pfnmap = true;
              return r;
            },
          };
          return {
            call: (_call, args) => {
              const fd = k.anon_inode_getfd(Number(args.pid), fops, null);
              return typeof fd === 'string' ? { kind: 'errno', errno: fd } : { kind: 'ok', value: fd };
            },
            holds: () => pages.map((pfn) => ({ pfn, holder: 'pfn-driver buffer', pins: 0, refs: 1 })),
            remoteViews: () => [],
          };
        },
      });
      for (const [how, cause, message] of [
        ['pfn-without-pfnmap', 'special-pte-normal-vma', /special PTE of pfn \d+ in a VMA without VM_PFNMAP or VM_MIXEDMAP/],
        ['page-in-pfnmap', 'page-pte-pfnmap', /driver page pfn \d+ mapped by a normal PTE in a VM_PFNMAP VMA/],
      ] as const) {
        const s = session(kernel, [driver(how)]);
        run(s, [{ op: 'spawn' }, { op: 'drv', strategy: 'pfn-driver', call: 'open', args: { pid: 1 } }]);
        const { violation } = s.step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, fd: 3 });
        expect(violation?.invariant, how).toBe('vma-wellformed');
        expect(violation?.cause).toBe(cause);
        expect(violation?.message).toMatch(message);
      }
    });

    it('pin-coherence reports a pinned anonymous page that fork shared instead of copying early', () => {
      const pinned = (skip: boolean) => {
        const s = session(kernel, [pinBuffers]);
        run(s, [
          { op: 'spawn' },
          { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false },
          { op: 'write', pid: 1, addr: A, value: 11 },
          { op: 'drv', strategy: 'pin-buffers', call: 'register', args: { pid: 1, addr: A, lengthPages: 1 } },
        ]);
        if (skip) s.primary.corrupt({ kind: 'skip-fork-dma-copy' });
        return s.step({ op: 'fork', pid: 1 }).violation;
      };
      // As Linux: the child gets its own copy at fork, the parent keeps the pinned page.
      expect(pinned(false)).toBeNull();
      const v = pinned(true);
      expect(v?.invariant).toBe('pin-coherence');
      expect(v?.cause).toBe('shared');
      expect(v?.message).toMatch(/anonymous pfn \d+, pinned 1× \(FOLL_PIN\), is mapped by 2 PTEs \(first P1 at 0x[0-9a-f]+\): a write will COW it away from the pin/);
    });

    it('pin-coherence reports a FOLL_WRITE pin that a GUP without FOLL_WRITE left on the zero page', () => {
      const s = session(kernel, [pinBuffers]);
      run(s, [
        { op: 'spawn' },
        { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false },
        { op: 'read', pid: 1, addr: A },
        { op: 'drv', strategy: 'pin-buffers', call: 'register', args: { pid: 1, addr: A, lengthPages: 1 } },
      ]);
      // The pin took a page of its own (as Linux: FOLL_WRITE faults the zero page away first).
      const ok = verdicts(s, NOOP, OK);
      expect(ok.get('pin-coherence')).toBeUndefined();
      // The same holds with the zero page under them, as a GUP that dropped FOLL_WRITE would leave them.
      const k = s.primary.inspect;
      const zeroHeld = new Proxy(k, {
        get(target, prop) {
          if (prop === 'driverHolds') return () => [...target.driverHolds()].map((h) => ({ ...h, pfn: target.zeroPfn }));
          const v: unknown = Reflect.get(target, prop, target);
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const v = INVARIANTS.find((i) => i.id === 'pin-coherence')!.check({ k: zeroHeld, config: s.opts.config, census: takeCensus(zeroHeld), ghost: s.ghost, op: NOOP, outcome: OK, remoteViews: [] });
      expect(v?.cause).toBe('write-pin-zero-page');
      expect(v?.message).toMatch(/pin-buffers#\d+\[0\] of P1 holds the zero page \(pfn \d+\) by a FOLL_WRITE GUP/);
    });

    it('slab reports a double kfree by a driver', () => {
      const s = session(kernel, [testStrategy([])]);
      run(s, [{ op: 'spawn' }]);
      const { violation } = s.step({ op: 'drv', strategy: 'test-driver', call: 'double-kfree', args: { pid: 1 } });
      expect(violation?.invariant).toBe('slab');
      expect(violation?.message).toMatch(/kfree of slab object \d+ that is not allocated \(double free\)/);
    });
  });
}

describe('differential', () => {
  it('reports the first step after which model and implementation disagree', () => {
    const s = session('diff');
    run(s, [{ op: 'spawn' }, { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false }, { op: 'write', pid: 1, addr: A, value: 1 }]);
    let pfn = -1;
    for (const [a, pte] of s.shadow!.inspect.ptes(1)) if (a === A && pte.kind === 'present') pfn = pte.pfn;
    s.shadow!.corrupt({ kind: 'leak-ref', pfn });
    const { violation } = s.step({ op: 'read', pid: 1, addr: A });
    expect(violation?.invariant).toBe('differential');
    expect(violation?.message).toMatch(/after read the observations differ/);
  });

  it('reports a different outcome', () => {
    const s = session('diff');
    run(s, [{ op: 'spawn' }, { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false }, { op: 'write', pid: 1, addr: A, value: 1 }]);
    let pfn = -1;
    for (const [a, pte] of s.shadow!.inspect.ptes(1)) if (a === A && pte.kind === 'present') pfn = pte.pfn;
    s.shadow!.corrupt({ kind: 'set-value', pfn, value: 2 });
    const { violation } = s.step({ op: 'read', pid: 1, addr: A });
    expect(violation?.invariant).toBe('differential');
    expect(violation?.message).toMatch(/read: model = 1, impl = 2/);
  });
});
