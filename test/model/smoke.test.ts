import { describe, expect, it } from 'vitest';
import { ModelKernel } from '../../model/kernel.ts';

describe('model smoke', () => {
  it('a private page written before fork is copied on the child write', () => {
    const k = new ModelKernel();
    const pid = k.step({ op: 'spawn' });
    expect(pid).toEqual({ kind: 'ok', value: 1 });
    const addr = k.step({ op: 'mmap', pid: 1, addr: 0, lengthPages: 2, prot: 3, shared: false });
    expect(addr.kind).toBe('ok');
    const a = (addr as { value: number }).value;
    k.step({ op: 'write', pid: 1, addr: a, value: 42 });
    expect(k.step({ op: 'fork', pid: 1 })).toEqual({ kind: 'ok', value: 2 });
    k.step({ op: 'write', pid: 2, addr: a, value: 7 });
    expect(k.step({ op: 'read', pid: 1, addr: a })).toEqual({ kind: 'ok', value: 42 });
    expect(k.step({ op: 'read', pid: 2, addr: a })).toEqual({ kind: 'ok', value: 7 });
  });
});
