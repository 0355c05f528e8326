/**
 * Argument checks as Linux 6.18 makes them, on the model and on the kernel (issue 17's
 * conformance): the prot bits mmap ignores and mprotect validates (PROT_SEM, the GROWS
 * bits), the order of mprotect's checks, mmap's negative length and its fd looked up
 * first, MAP_FIXED_NOREPLACE with MAP_FIXED, mremap's silly new length and its zero old
 * length (a second mapping of a shared object; EINVAL for a private one). Each must agree,
 * outcome and layout, and the kernel's answers are pinned so that agreeing on the wrong
 * thing is noticed.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../kernel-api/op.ts';
import { checkTrace, oracleConfig } from '../../harness/oracle.ts';
import { agreeOutcomes, oracle, oracleBinary } from './helpers.ts';

const T = oracleConfig().taskSizePages;
const A = 0x1000;
const GROWSDOWN = 0x01000000, GROWSUP = 0x02000000;
const base: Op[] = [{ op: 'spawn' }, { op: 'mmap', pid: 1, addr: A, lengthPages: 4, prot: 3, shared: false, fixed: true }];
const shared: Op = { op: 'mmap', pid: 1, addr: A + 10, lengthPages: 4, prot: 3, shared: true, fixed: true };

/** [name, ops after `base`, the kernel's outcomes of those ops]. */
const CASES: Array<[string, Op[], string[]]> = [
  ['mmap ignores prot bits it does not know (0x10, PROT_SEM): a PROT_READ map reads and faults on a write',
    [{ op: 'mmap', pid: 1, addr: A + 50, lengthPages: 1, prot: 0x19, shared: false, fixed: true }, { op: 'read', pid: 1, addr: A + 50 }, { op: 'write', pid: 1, addr: A + 50, value: 1 }],
    [`= ${A + 50}`, '= 0', 'SIGSEGV']],
  ['mmap of a negative length is ENOMEM (PAGE_ALIGNed past TASK_SIZE)', [{ op: 'mmap', pid: 1, addr: 0, lengthPages: -1, prot: 3, shared: false }], ['-ENOMEM']],
  ['MAP_FIXED_NOREPLACE with MAP_FIXED is still EEXIST over a mapping',
    [{ op: 'mmap', pid: 1, addr: A + 2, lengthPages: 4, prot: 3, shared: false, fixed: true, noreplace: true }], ['-EEXIST']],
  ['mprotect accepts PROT_SEM and changes only the VMA\'s R/W/X', [{ op: 'mprotect', pid: 1, addr: A, lengthPages: 1, prot: 9 }, { op: 'write', pid: 1, addr: A, value: 1 }], ['= 0', 'SIGSEGV']],
  ['mprotect of unknown bits is EINVAL', [{ op: 'mprotect', pid: 1, addr: A, lengthPages: 1, prot: 0x11 }], ['-EINVAL']],
  ['mprotect of a zero length is 0 before prot is validated', [{ op: 'mprotect', pid: 1, addr: A, lengthPages: 0, prot: 0x11 }], ['= 0']],
  ['mprotect of a wrapping range is ENOMEM before prot is validated', [{ op: 'mprotect', pid: 1, addr: A, lengthPages: -1, prot: 0x11 }], ['-ENOMEM']],
  ['mprotect past TASK_SIZE with unknown bits is EINVAL (validated before the VMA lookup)', [{ op: 'mprotect', pid: 1, addr: T - 1, lengthPages: 4, prot: 0x11 }], ['-EINVAL']],
  ['mprotect with both GROWS bits is EINVAL even for a zero length', [{ op: 'mprotect', pid: 1, addr: A, lengthPages: 0, prot: GROWSDOWN | GROWSUP | 1 }], ['-EINVAL']],
  ['mprotect PROT_GROWSDOWN of a VMA without VM_GROWSDOWN is EINVAL', [{ op: 'mprotect', pid: 1, addr: A, lengthPages: 1, prot: GROWSDOWN | 1 }], ['-EINVAL']],
  ['mprotect PROT_GROWSDOWN where no VMA is is ENOMEM', [{ op: 'mprotect', pid: 1, addr: A + 100, lengthPages: 1, prot: GROWSDOWN | 1 }], ['-ENOMEM']],
  ['mprotect PROT_GROWSUP (no VM_GROWSUP on x86) is EINVAL', [{ op: 'mprotect', pid: 1, addr: A, lengthPages: 1, prot: GROWSUP | 1 }], ['-EINVAL']],
  ['mremap to a negative new length is EINVAL', [{ op: 'mremap', pid: 1, addr: A, oldPages: 1, newPages: -1, maymove: true }], ['-EINVAL']],
  ['mremap of a zero old length of a private mapping is EINVAL', [{ op: 'mremap', pid: 1, addr: A, oldPages: 0, newPages: 1, maymove: true }], ['-EINVAL']],
  ['mremap of a zero old length where nothing is mapped is EFAULT', [{ op: 'mremap', pid: 1, addr: A + 100, oldPages: 0, newPages: 1, maymove: true }], ['-EFAULT']],
  ['mremap of a zero old length without MREMAP_MAYMOVE cannot grow in place: ENOMEM', [shared, { op: 'mremap', pid: 1, addr: A + 11, oldPages: 0, newPages: 2 }], [`= ${A + 10}`, '-ENOMEM']],
  ['mremap of a zero old length of a shared mapping maps the object again, the old mapping kept',
    [shared, { op: 'write', pid: 1, addr: A + 12, value: 9 }, { op: 'mremap', pid: 1, addr: A + 11, oldPages: 0, newPages: 3, maymove: true, fixed: true, newAddr: A + 40 },
      { op: 'read', pid: 1, addr: A + 41 }, { op: 'write', pid: 1, addr: A + 42, value: 5 }, { op: 'read', pid: 1, addr: A + 13 }, { op: 'read', pid: 1, addr: A + 12 }],
    [`= ${A + 10}`, '= 0', `= ${A + 40}`, '= 9', '= 0', '= 5', '= 9']],
];

describe.skipIf(!oracle().ok)('oracle: argument checks agree with Linux 6.18', () => {
  for (const [name, ops, kernel] of CASES) {
    it(name, () => {
      expect(agreeOutcomes([...base, ...ops]).slice(base.length)).toEqual(kernel);
    });
  }

  it('a shared mapping duplicated by a zero old length is one object: the second mapping sees the first\'s stores', () => {
    const v = checkTrace(oracleBinary(), [...base, shared, { op: 'mremap', pid: 1, addr: A + 10, oldPages: 0, newPages: 4, maymove: true }, { op: 'write', pid: 1, addr: A + 10, value: 3 }]);
    expect(v.result).toBe('agree');
    const to = (v.model.steps[base.length + 1].outcome as { value: number }).value;
    expect(agreeOutcomes([...base, shared, { op: 'mremap', pid: 1, addr: A + 10, oldPages: 0, newPages: 4, maymove: true, fixed: true, newAddr: to },
      { op: 'write', pid: 1, addr: A + 10, value: 3 }, { op: 'read', pid: 1, addr: to }]).slice(-1)).toEqual(['= 3']);
  });
});

describe.skipIf(!oracle().ok)('oracle: mmap_min_addr as cap_mmap_addr applies it', () => {
  it('root (CAP_SYS_RAWIO) may map and mremap below mmap_min_addr; another user gets EPERM', () => {
    expect(agreeOutcomes([{ op: 'spawn', uid: 0 }, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: false, fixed: true },
      { op: 'write', pid: 1, addr: 0, value: 4 }, { op: 'read', pid: 1, addr: 0 }])).toEqual(['= 1', '= 0', '= 0', '= 4']);
    expect(agreeOutcomes([{ op: 'spawn', uid: 0 }, { op: 'mmap', pid: 1, addr: A, lengthPages: 1, prot: 3, shared: false, fixed: true },
      { op: 'mremap', pid: 1, addr: A, oldPages: 1, newPages: 1, maymove: true, fixed: true, newAddr: 0 }])).toEqual(['= 1', `= ${A}`, '= 0']);
    expect(agreeOutcomes([{ op: 'spawn' }, { op: 'mmap', pid: 1, addr: 0, lengthPages: 1, prot: 3, shared: false, noreplace: true }])).toEqual(['= 1', '-EPERM']);
  });
});
