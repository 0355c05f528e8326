/**
 * Byte addresses and lengths in the op language. Addresses and lengths are counted in pages;
 * a fraction k/4096 of a page stands for a byte value (addr + 1 byte is `addr + 1/4096`).
 * Every integer keeps its old meaning. This module holds the ONE place where both kernels
 * turn a syscall's (addr, len) into a whole-page range or the errno Linux 6.18 returns, so
 * that a new syscall is wired by naming its rule here and calling `pageRange` at its entry.
 */
import type { Errno } from './outcome.ts';
import { PROT_EXEC, PROT_READ, PROT_WRITE } from './op.ts';

export const PAGE_BYTES = 4096;

/** A page count with a whole number of bytes (k/4096 is exact in binary floating point). */
export function isWholeBytes(v: number): boolean {
  return Number.isInteger(v) || Number.isInteger(v * PAGE_BYTES);
}

/** A page value in bytes, exactly (multiplying by 4096 is exact in binary floating point). */
export function toBytes(pages: number): number {
  return Math.round(pages * PAGE_BYTES);
}

/**
 * A page value in bytes as a signed 64-bit decimal, as an oracle line gives it: the value
 * the C side's (size_t) cast sees, wrapped modulo 2^64 as `pages * PAGE_BYTES` in C was.
 */
export function bytesText(pages: number): string {
  const b = Number.isInteger(pages) ? BigInt(pages) * BigInt(PAGE_BYTES) : BigInt(toBytes(pages));
  return BigInt.asIntN(64, b).toString();
}

/**
 * How each syscall checks and rounds its (start, len) in Linux 6.18, before the page range:
 * - munmap (do_vmi_munmap): offset_in_page(start) → EINVAL; len = PAGE_ALIGN(len); len == 0 → EINVAL.
 * - mprotect (do_mprotect_pkey): start & ~PAGE_MASK → EINVAL; !len → 0; len = PAGE_ALIGN(len);
 *   end <= start → ENOMEM (a nonzero len that PAGE_ALIGN wraps to 0).
 * - madvise (is_valid_madvise): !PAGE_ALIGNED(start) → EINVAL; len = PAGE_ALIGN(len_in);
 *   len_in && !len → EINVAL.
 * - mincore (sys_mincore): start & ~PAGE_MASK → EINVAL; !access_ok(start, len) → ENOMEM (a
 *   negative len read as size_t); pages = len >> PAGE_SHIFT, plus one for a partial page.
 * - uffd (UFFDIO_REGISTER's validate_range): start & ~PAGE_MASK or len & ~PAGE_MASK → EINVAL:
 *   a byte length is refused, not rounded.
 * The rest (len 0, range past TASK_SIZE, negative values as size_t) the kernels already
 * decide on the whole-page range, as before.
 */
export type RangeRule = 'munmap' | 'mprotect' | 'madvise' | 'mincore' | 'uffd';

const WRAP_ERRNO: Record<RangeRule, Errno> = { munmap: 'EINVAL', mprotect: 'ENOMEM', madvise: 'EINVAL', mincore: 'ENOMEM', uffd: 'EINVAL' };

/**
 * The whole-page (addr, lengthPages) a syscall works on, or its errno. An unaligned start is
 * EINVAL for every rule; a byte length rounds up as PAGE_ALIGN does (Math.ceil is PAGE_ALIGN
 * in two's complement for a negative length read as size_t, too).
 */
export function pageRange(rule: RangeRule, addr: number, lengthPages: number): { addr: number; lengthPages: number } | { errno: Errno } {
  if (!Number.isInteger(addr)) return { errno: 'EINVAL' };
  if (Number.isInteger(lengthPages)) return { addr, lengthPages };
  if (rule === 'uffd') return { errno: 'EINVAL' };
  const pages = Math.ceil(lengthPages);
  if (pages === 0) return { errno: WRAP_ERRNO[rule] };
  return { addr, lengthPages: pages };
}

/**
 * Call `f` with the op's whole-page range, or answer the errno `pageRange` gives. How a
 * syscall is wired: `withPageRange('<rule>', op, (o) => syscall(s, proc, o))` at its entry
 * in both kernels, inside or outside `locked` as Linux checks before or after mmap_lock.
 */
export function withPageRange<T extends { addr: number; lengthPages: number }, R>(
  rule: RangeRule, op: T, f: (op: T) => R | { kind: 'errno'; errno: Errno },
): R | { kind: 'errno'; errno: Errno } {
  const r = pageRange(rule, op.addr, op.lengthPages);
  if ('errno' in r) return { kind: 'errno', errno: r.errno };
  return f(r.addr === op.addr && r.lengthPages === op.lengthPages ? op : { ...op, ...r });
}

/**
 * do_mlock / do_munlock's range: len = PAGE_ALIGN(len + offset_in_page(start)), start &=
 * PAGE_MASK, so a byte range widens to the pages it touches; nothing is EINVAL. A negative
 * length (read as size_t) is huge: null, for the kernels to refuse as Linux does.
 */
export function mlockPages<T extends { addr: number; lengthPages: number }>(op: T): T | null {
  if (op.lengthPages < 0) return null;
  if (Number.isInteger(op.addr) && Number.isInteger(op.lengthPages)) return op;
  const addr = Math.floor(op.addr);
  return { ...op, addr, lengthPages: Math.ceil(op.addr + op.lengthPages) - addr };
}

/**
 * msync's arguments (SYSCALL_DEFINE3(msync), Linux 6.18), checked before mmap_lock: unknown
 * flags, an unaligned start, or MS_ASYNC with MS_SYNC are EINVAL; len = PAGE_ALIGN(len), and
 * an end below the start (a negative length read as size_t) is ENOMEM; a length that rounds
 * to nothing (0, or a negative byte count PAGE_ALIGN wraps to 0) is 0 at once: `{ errno: 0 }`.
 */
export function msyncPages<T extends { addr: number; lengthPages: number; flags: number }>(op: T): T | { errno: Errno | 0 } {
  const MS_ASYNC = 1, MS_INVALIDATE = 2, MS_SYNC = 4;
  if (!Number.isSafeInteger(op.flags) || (op.flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC)) !== 0 || op.flags < 0) return { errno: 'EINVAL' };
  if (!Number.isInteger(op.addr)) return { errno: 'EINVAL' };
  if ((op.flags & MS_ASYNC) !== 0 && (op.flags & MS_SYNC) !== 0) return { errno: 'EINVAL' };
  const pages = Math.ceil(op.lengthPages) || 0;
  if (pages < 0) return { errno: 'ENOMEM' };
  if (pages === 0) return { errno: 0 };
  return pages === op.lengthPages ? op : { ...op, lengthPages: pages };
}

/** Pages in a 64-bit address space: a negative page number or length is read as size_t is. */
const ADDRESS_SPACE_PAGES = 2 ** 52;

/** Whether [addr, addr + len), both read as size_t, wraps past the top of the address space (end <= start). */
function wraps(addr: number, lengthPages: number): boolean {
  const start = addr < 0 ? addr + ADDRESS_SPACE_PAGES : addr;
  return start + (lengthPages < 0 ? lengthPages + ADDRESS_SPACE_PAGES : lengthPages) >= ADDRESS_SPACE_PAGES;
}

/** PROT_SEM and the two PROT_GROWS* bits (asm-generic/mman-common.h). */
export const PROT_SEM = 0x8, PROT_GROWSDOWN = 0x01000000, PROT_GROWSUP = 0x02000000;
/** The protection bits a VMA keeps (calc_vm_prot_bits: VM_READ, VM_WRITE, VM_EXEC). */
export const PROT_RWX = PROT_READ | PROT_WRITE | PROT_EXEC;

/**
 * do_mprotect_pkey's own checks (Linux 6.18), in its order, on the whole-page range
 * withPageRange gave (it checked the start's alignment): PROT_GROWSDOWN with PROT_GROWSUP
 * EINVAL; a zero length 0; a range that wraps (end <= start, as size_t) ENOMEM; then
 * arch_validate_prot, once the GROWS bits are taken off: any bit but PROT_READ, PROT_WRITE,
 * PROT_EXEC and PROT_SEM EINVAL (PROT_SEM is accepted and changes nothing on x86). Null: go
 * on to the VMA lookup under mmap_lock, where a GROWS bit is decided (mprotectGrows).
 */
export function mprotectArgs(addr: number, lengthPages: number, prot: number): Errno | 0 | null {
  if ((prot & (PROT_GROWSDOWN | PROT_GROWSUP)) === (PROT_GROWSDOWN | PROT_GROWSUP)) return 'EINVAL';
  if (lengthPages === 0) return 0;
  if (wraps(addr, lengthPages)) return 'ENOMEM';
  if ((prot & ~(PROT_GROWSDOWN | PROT_GROWSUP | PROT_RWX | PROT_SEM)) !== 0) return 'EINVAL';
  return null;
}

/**
 * do_mprotect_pkey with PROT_GROWSDOWN or PROT_GROWSUP, once it found `first`, the first VMA
 * the range overlaps (vma_find): no VMA is VM_GROWSDOWN or VM_GROWSUP here (no operation
 * makes a stack-like mapping; x86 has no VM_GROWSUP at all), so it fails: ENOMEM with no VMA
 * in the range (GROWSDOWN) or none at its start (GROWSUP), else EINVAL. Null without a GROWS bit.
 */
export function mprotectGrows(prot: number, start: number, first: { start: number } | undefined): Errno | null {
  if ((prot & PROT_GROWSDOWN) !== 0) return first === undefined ? 'ENOMEM' : 'EINVAL';
  if ((prot & PROT_GROWSUP) !== 0) return first === undefined || first.start > start ? 'ENOMEM' : 'EINVAL';
  return null;
}

/**
 * mmap's byte arguments (x86-64 sys_mmap, do_mmap and __get_unmapped_area, Linux 6.18): an
 * unaligned file offset is EINVAL before anything else (off & ~PAGE_MASK); a byte length is
 * PAGE_ALIGNed, a negative one (read as size_t) is ENOMEM (it wraps to 0, or is past TASK_SIZE);
 * a hint is rounded down (round_hint_to_min, and x86's arch_get_unmapped_area_topdown masks
 * it with PAGE_MASK). An unaligned MAP_FIXED or MAP_FIXED_NOREPLACE address stays as it is:
 * __get_unmapped_area refuses it with EINVAL after its TASK_SIZE check (ENOMEM) and before
 * mmap_min_addr's (EPERM), so both kernels check it there. prot is not checked at all:
 * calc_vm_prot_bits keeps PROT_READ, PROT_WRITE and PROT_EXEC and ignores every other bit.
 */
export function mmapPages<T extends { addr: number; lengthPages: number; prot: number; pgoff?: number; fixed?: boolean; noreplace?: boolean }>(
  op: T,
): T | { errno: Errno } {
  if (op.pgoff !== undefined && !Number.isInteger(op.pgoff)) return { errno: 'EINVAL' };
  if ((op.prot & ~PROT_RWX) !== 0) op = { ...op, prot: op.prot & PROT_RWX };
  const hint = op.fixed !== true && op.noreplace !== true;
  if (Number.isInteger(op.lengthPages) && (Number.isInteger(op.addr) || !hint)) return op;
  let lengthPages = op.lengthPages;
  if (!Number.isInteger(lengthPages)) {
    lengthPages = Math.ceil(lengthPages);
    if (lengthPages <= 0) return { errno: 'ENOMEM' };
  }
  return { ...op, lengthPages, addr: hint ? Math.floor(op.addr) : op.addr };
}

/**
 * mremap's byte arguments (SYSCALL_DEFINE5(mremap) and check_mremap_params, Linux 6.18):
 * old_len and new_len are PAGE_ALIGNed first (a negative byte length, read as size_t, wraps to
 * 0: a zero old_len is the special case the kernels already decide, a zero new_len EINVAL);
 * an unaligned addr is EINVAL, and so is an unaligned new_addr when the flags name one
 * (MREMAP_FIXED or MREMAP_DONTUNMAP, vrm_implies_new_addr). Every other check is EINVAL
 * too or comes later (the VMA lookup), so their order among these does not show.
 */
export function mremapPages<T extends { addr: number; oldPages: number; newPages: number; newAddr?: number; fixed?: boolean; dontunmap?: boolean }>(
  op: T,
): T | { errno: Errno } {
  if (!Number.isInteger(op.addr)) return { errno: 'EINVAL' };
  if ((op.fixed === true || op.dontunmap === true) && op.newAddr !== undefined && !Number.isInteger(op.newAddr)) return { errno: 'EINVAL' };
  if (Number.isInteger(op.oldPages) && Number.isInteger(op.newPages)) return op;
  // Math.ceil of a negative fraction is -0; PAGE_ALIGN gives 0.
  return { ...op, oldPages: Math.ceil(op.oldPages) || 0, newPages: Math.ceil(op.newPages) || 0 };
}


/**
 * madvise's whole-page range against user space's end (is_valid_madvise, then the VMA walk),
 * for a nonzero length: null when it lies in [0, TASK_SIZE); EINVAL when it wraps past the
 * top of the address space (end < start as size_t); ENOMEM when it starts past TASK_SIZE or
 * in the kernel's half (no VMA there); else the length of its part inside user space, which
 * is advised before the rest gives ENOMEM.
 */
export function madviseSpan(addr: number, lengthPages: number, taskSizePages: number): null | { errno: Errno } | { inside: number } {
  if (wraps(addr, lengthPages)) return { errno: 'EINVAL' };
  if (addr >= 0 && lengthPages > 0 && addr + lengthPages <= taskSizePages) return null;
  return addr >= 0 && lengthPages > 0 && addr < taskSizePages ? { inside: taskSizePages - addr } : { errno: 'ENOMEM' };
}
