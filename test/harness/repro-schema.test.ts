/**
 * Repro files are checked op by op against the schema of kernel-api/op-schema.ts: a
 * malformed operation is refused with `ops[i].<field>` named, a well-formed one passes even
 * when its values only earn an errno, and every shipped corpus file passes.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { validateOp } from '../../kernel-api/op-schema.ts';
import { parseRepro, ReproFormatError, REPRO_FORMAT } from '../../harness/repro.ts';
import { mapFiles, procMemMmap } from '../../strategies/index.ts';

const ROOT = join(import.meta.dirname, '..', '..', 'corpus');

function files(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.json') ? [p] : [];
  });
}

/** A proc-mem-mmap repro's text with `op` as its second step. */
function reproWith(op: unknown, strategy = 'proc-mem-mmap'): string {
  return JSON.stringify({
    format: REPRO_FORMAT, title: 't', kernel: 'model', strategy, invariant: 'zero-page', expect: 'reproduces', seed: 1,
    ops: [{ op: 'spawn' }, op, { op: 'read', pid: 1, addr: 16 }],
  });
}

/** The field a parse of `text` is refused at (or 'accepted'). */
function refusedAt(text: string): string {
  try {
    parseRepro('bad.json', text);
    return 'accepted';
  } catch (e) {
    if (!(e instanceof ReproFormatError)) throw e;
    expect(e.message.split('\n')).toHaveLength(1);
    expect(e.message.startsWith(`bad.json: ${e.field}: `)).toBe(true);
    return e.field;
  }
}

const open = { op: 'drv', strategy: 'proc-mem-mmap', call: 'open' };

describe('repro op schema', () => {
  it.each([
    ['a pid as a string', { op: 'munmap', pid: '1', addr: 16, lengthPages: 1 }, 'ops[1].pid'],
    ['a pid past 2^53', { op: 'read', pid: 2 ** 60, addr: 16 }, 'ops[1].pid'],
    ['a fractional address', { op: 'read', pid: 1, addr: 1.5 }, 'ops[1].addr'],
    ['a missing length', { op: 'munmap', pid: 1, addr: 16 }, 'ops[1].lengthPages'],
    ['a length of 1e300', { op: 'mprotect', pid: 1, addr: 16, lengthPages: 1e300, prot: 1 }, 'ops[1].lengthPages'],
    ['a null address', { op: 'munmap', pid: 1, addr: null, lengthPages: 1 }, 'ops[1].addr'],
    ['a uid as a name', { op: 'spawn', uid: 'root' }, 'ops[1].uid'],
    ['a fail_nth count as a string', { op: 'fail_nth', nth: 'x' }, 'ops[1].nth'],
    ['a written value as a string', { op: 'write', pid: 1, addr: 16, value: 'x' }, 'ops[1].value'],
    ['mremap arguments as strings', { op: 'mremap', pid: 1, addr: '16', oldPages: '1', newPages: '2' }, 'ops[1].addr'],
    ['a pagemap_scan with only a pid', { op: 'pagemap_scan', pid: 1 }, 'ops[1].start'],
    ['an advice madvise does not emulate', { op: 'madvise', pid: 1, addr: 16, lengthPages: 1, advice: 'HUGEPAGE' }, 'ops[1].advice'],
    ['an open mode that is not r or rw', { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: true, file: 1, mode: 'w' }, 'ops[1].mode'],
    ['dumpable as a number', { op: 'set_dumpable', pid: 1, dumpable: 1 }, 'ops[1].dumpable'],
    ['a misspelt field', { op: 'munmap', pid: 1, addr: 16, lenghtPages: 1 }, 'ops[1].lenghtPages'],
    ['a reclaim with neither shape', { op: 'reclaim' }, 'ops[1]'],
    ['a reclaim with both shapes', { op: 'reclaim', count: 1, pid: 1 }, 'ops[1].pid'],
    ['an unknown operation', { op: 'mlock3', pid: 1 }, 'ops[1].op'],
    ['null', null, 'ops[1]'],
    ['a drv op of an unknown strategy', { ...open, strategy: 'nope', args: { pid: 1, target: 1 } }, 'ops[1].strategy'],
    ['a drv op of a strategy the repro does not load', { ...open, strategy: 'pidfd-mem', call: 'pidfd_mem', args: { pid: 1, target: 1 } }, 'ops[1].strategy'],
    ['a drv op of an unknown call', { ...open, call: 'ioctl', args: { pid: 1, target: 1 } }, 'ops[1].call'],
    ['a drv op without args', open, 'ops[1].args'],
    ['a drv op with null args', { ...open, args: null }, 'ops[1].args'],
    ['a drv argument as a string', { ...open, args: { pid: 1, target: 1, addr: 'x' } }, 'ops[1].args.addr'],
  ])('refuses %s, naming the field', (_what, op, field) => {
    expect(refusedAt(reproWith(op))).toBe(field);
  });

  it('refuses a drv op in a core repro, which loads no strategy', () => {
    expect(refusedAt(reproWith({ ...open, args: { pid: 1, target: 1 } }, 'core'))).toBe('ops[1].strategy');
  });

  it('says what the field must be and what it found', () => {
    expect(() => parseRepro('bad.json', reproWith({ op: 'spawn', uid: 'root' }))).toThrow('bad.json: ops[1].uid: must be an integer, found "root"');
    expect(() => parseRepro('bad.json', reproWith({ op: 'munmap', pid: 1, addr: 16 }))).toThrow('bad.json: ops[1].lengthPages: missing (must be a number of pages, a fraction k/4096 for a byte address or length)');
  });

  it.each([
    ['negative pids, addresses and lengths (the kernels answer them with an errno)', { op: 'munmap', pid: -1, addr: -5, lengthPages: -(2 ** 53 - 1) }],
    ['a negative uid', { op: 'spawn', uid: -1 }],
    ['a spawn with no uid', { op: 'spawn' }],
    ['every optional field of mmap', { op: 'mmap', pid: 1, addr: 16, lengthPages: 1, prot: 3, shared: false, fixed: true, noreplace: false, file: 1, pgoff: 0, mode: 'r', fd: 3 }],
    ['a reclaim of the oldest frames', { op: 'reclaim', count: 3 }],
    ['a reclaim of one page', { op: 'reclaim', pid: 1, addr: 16 }],
    ['a pagemap_scan with an unaligned start and every optional field', {
      op: 'pagemap_scan', pid: 1, target: 1, start: 16.5, end: 20, flags: 0, max_pages: 0, category_inverted: 0, category_mask: 0,
      category_anyof_mask: 0, return_mask: 0x1ff, vec_len: 0, vecNull: true, size: 88,
    }],
    ['a uffd registration that is not async (EINVAL)', { op: 'uffd_register_wp', pid: 1, addr: 16, lengthPages: 1, async: false }],
    ['a drv call with a negative argument', { ...open, args: { pid: 1, target: -1 } }],
  ])('accepts %s', (_what, op) => {
    expect(refusedAt(reproWith(op))).toBe('accepted');
  });

  it('accepts boolean driver arguments, as map-files reads `write`', () => {
    const op = { op: 'drv', strategy: 'map-files', call: 'open', args: { pid: 1, target: 2, start: 16, end: 17, write: true } };
    expect(validateOp(op, [mapFiles])).toBeNull();
    expect(validateOp(op, [procMemMmap])?.field).toBe('strategy');
  });

  it('accepts every repro file of corpus/, the kernel oracle\'s included', () => {
    const all = files(ROOT);
    expect(all.length).toBeGreaterThan(0);
    const refused = all.map((f) => [relative(ROOT, f), refusedAt(readFileSync(f, 'utf8'))]).filter(([, field]) => field !== 'accepted');
    expect(refused).toEqual([]);
  });
});
