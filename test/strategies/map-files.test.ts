import { describe, expect, it } from 'vitest';
import { ModelKernel } from '../../model/kernel.ts';
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { mapFiles } from '../../strategies/map-files.ts';
import { STRATEGIES, strategyByName } from '../../strategies/index.ts';
import { AtPoint, atNth, KERNELS, okValue, outcomeOf, presentPfn, session, stepNested, stepOk } from './helpers.ts';
import type { Op } from '../../kernel-api/op.ts';

const S = 'map-files';

describe('map-files (seed 003)', () => {
  it('checkpoint/restore: a second task opens the first one\'s shared mapping by name and maps it, sharing the pages', () => {
    const k = new ModelKernel(DEFAULT_CONFIG, [mapFiles]);
    okValue(k, { op: 'spawn', uid: 0 });
    const a = okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: true });
    okValue(k, { op: 'write', pid: 1, addr: a, value: 5 });
    okValue(k, { op: 'spawn', uid: 0 });
    const fd = okValue(k, { op: 'drv', strategy: S, call: 'open', args: { pid: 2, target: 1, start: a, end: a + 2, write: true } });
    const b = okValue(k, { op: 'mmap', pid: 2, addr: 0, lengthPages: 2, prot: 3, shared: true, fd });
    expect(k.step({ op: 'read', pid: 2, addr: b })).toEqual({ kind: 'ok', value: 5 });
    expect(presentPfn(k, 2, b)).toBe(presentPfn(k, 1, a));
    okValue(k, { op: 'write', pid: 2, addr: b + 1, value: 6 });
    expect(k.step({ op: 'read', pid: 1, addr: a + 1 })).toEqual({ kind: 'ok', value: 6 });
  });

  it('finds only an exact VMA with a file: ENOENT otherwise', () => {
    const k = new ModelKernel(DEFAULT_CONFIG, [mapFiles]);
    okValue(k, { op: 'spawn', uid: 0 });
    const a = okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 3, prot: 3, shared: true });
    const p = okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: false });
    const open = (start: number, end: number) => k.step({ op: 'drv', strategy: S, call: 'open', args: { pid: 1, target: 1, start, end } });
    expect(open(a, a + 2)).toEqual({ kind: 'errno', errno: 'ENOENT' });
    expect(open(a + 1, a + 3)).toEqual({ kind: 'errno', errno: 'ENOENT' });
    expect(open(p, p + 1)).toEqual({ kind: 'errno', errno: 'ENOENT' });
    okValue(k, { op: 'munmap', pid: 1, addr: a + 2, lengthPages: 1 });
    expect(open(a, a + 3)).toEqual({ kind: 'errno', errno: 'ENOENT' });
    okValue(k, { op: 'drv', strategy: S, call: 'open', args: { pid: 1, target: 1, start: a, end: a + 2 } });
  });

  it('readdir counts the VMAs with a file: regular files and shared anonymous memory, not private anonymous', () => {
    const k = new ModelKernel(DEFAULT_CONFIG, [mapFiles]);
    okValue(k, { op: 'spawn' });
    const file = okValue(k, { op: 'creat', sizePages: 4 });
    okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 1, shared: false, file });
    okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true });
    okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: false });
    expect(k.step({ op: 'drv', strategy: S, call: 'readdir', args: { pid: 1, target: 1 } })).toEqual({ kind: 'ok', value: 2 });
  });

  it('needs PTRACE_MODE_READ (EACCES) to look, and CAP_SYS_ADMIN (EPERM) to follow the link', () => {
    const k = new ModelKernel(DEFAULT_CONFIG, [mapFiles]);
    okValue(k, { op: 'spawn' });
    const a = okValue(k, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true });
    okValue(k, { op: 'spawn', uid: 1001 });
    const args = { target: 1, start: a, end: a + 1 };
    expect(k.step({ op: 'drv', strategy: S, call: 'readdir', args: { pid: 2, target: 1 } })).toEqual({ kind: 'errno', errno: 'EACCES' });
    expect(k.step({ op: 'drv', strategy: S, call: 'open', args: { pid: 2, ...args } })).toEqual({ kind: 'errno', errno: 'EACCES' });
    // The owner may list and look up its own entries but not follow them without the capability.
    expect(k.step({ op: 'drv', strategy: S, call: 'readdir', args: { pid: 1, target: 1 } })).toEqual({ kind: 'ok', value: 1 });
    expect(k.step({ op: 'drv', strategy: S, call: 'open', args: { pid: 1, ...args } })).toEqual({ kind: 'errno', errno: 'EPERM' });
    expect(k.step({ op: 'drv', strategy: S, call: 'open', args: { pid: 1, target: 9, start: a, end: a + 1 } })).toEqual({ kind: 'errno', errno: 'ENOENT' });
  });
});

describe('strategies/index', () => {
  it('registers every strategy once under its name', () => {
    const names = STRATEGIES.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(['proc-mem-mmap', 'pidfd-mem', 'kbuf-fault', 'kbuf-remap', 'map-files', 'proc-mem-notify', 'pin-buffers', 'kbuf-insert', 'kbuf-insert-kmalloc']);
    for (const s of STRATEGIES) expect(strategyByName(s.name)).toBe(s);
    expect(strategyByName('nope')).toBeUndefined();
  });
});

/** The lookups under the target's mmap_lock, readdir's two passes (issue 15). P2 (root) looks at P1's mappings. */
describe('map-files (seed 003): locking', () => {
  for (const kernel of KERNELS) {
    describe(`on the ${kernel}`, () => {
      const start = () => {
        const s = session(kernel, [mapFiles]);
        stepOk(s, { op: 'spawn', uid: 0 });
        const a = stepOk(s, { op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: true });
        const b = stepOk(s, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true });
        stepOk(s, { op: 'spawn', uid: 0 });
        return { s, a, b };
      };

      it('following the link looks the VMA up again under the lock: unmapped after the lookup, the open is ENOENT', () => {
        const { s, a } = start();
        const open: Op = { op: 'drv', strategy: S, call: 'open', args: { pid: 2, target: 1, start: a, end: a + 2 } };
        const munmap: Op = { op: 'munmap', pid: 1, addr: a, lengthPages: 2 };
        const r = stepNested(s, open, [munmap], new AtPoint(atNth(2, 'mmap_read_lock', 1)));
        expect(r.violation).toBeNull();
        expect(r.started).toEqual([open, munmap]);
        expect(outcomeOf(r, open)).toEqual({ kind: 'errno', errno: 'ENOENT' });
        expect(s.primary.inspect.openFdCount()).toBe(0);
      });

      it('readdir walks the VMAs under the target\'s mmap_lock (a munmap cannot start at its GFP_KERNEL allocation) and fills the entries without it (one can there)', () => {
        const { s, a, b } = start();
        const readdir: Op = { op: 'drv', strategy: S, call: 'readdir', args: { pid: 2, target: 1 } };
        const underLock: Op = { op: 'munmap', pid: 1, addr: b, lengthPages: 1 };
        const r1 = stepNested(s, readdir, [underLock], new AtPoint(atNth(2, 'kmalloc')));
        expect(r1.violation).toBeNull();
        expect(r1.started).toEqual([readdir]);
        expect(outcomeOf(r1, readdir)).toEqual({ kind: 'ok', value: 2 });
        const again: Op = { ...readdir };
        const unlocked: Op = { op: 'munmap', pid: 1, addr: a, lengthPages: 2 };
        const r2 = stepNested(s, again, [unlocked], new AtPoint(atNth(2, 'proc_fill_cache')));
        expect(r2.violation).toBeNull();
        expect(r2.started).toEqual([again, unlocked]);
        expect(outcomeOf(r2, again)).toEqual({ kind: 'ok', value: 2 }); // what the first pass collected
        expect(stepOk(s, { ...readdir })).toBe(1);
      });
    });
  }
});
