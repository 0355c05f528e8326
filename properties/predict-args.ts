/**
 * The outcome predictor's own reading of how each syscall takes its byte arguments (Linux
 * 6.18), written apart from kernel-api/bytes.ts, which both kernels share: a flaw there is
 * one both kernels have, and the predictor must not have it too. Addresses and lengths are
 * in pages; a fraction k/4096 of a page is a byte value (kernel-api/op.ts).
 */
import type { Errno } from '../kernel-api/outcome.ts';

/** Pages in the 64-bit address space: a negative page number or length read as size_t. */
const SPACE = 2 ** 52;

/**
 * (start, len) of munmap (do_vmi_munmap: offset_in_page(start) EINVAL, len = PAGE_ALIGN(len),
 * then 0 is EINVAL), mprotect (do_mprotect_pkey: start & ~PAGE_MASK EINVAL; !len 0 before the
 * rounding; PAGE_ALIGN wrapping a nonzero len to 0 leaves end <= start: ENOMEM), madvise
 * (is_valid_madvise: unaligned EINVAL, len_in && !PAGE_ALIGN(len_in) EINVAL) and mincore
 * (start & ~PAGE_MASK EINVAL; a negative len fails access_ok: ENOMEM; a partial page counts).
 */
export function argRange(call: 'munmap' | 'mprotect' | 'madvise' | 'mincore', addr: number, len: number): { addr: number; len: number } | { errno: Errno } {
  if (!Number.isInteger(addr)) return { errno: 'EINVAL' };
  if (Number.isInteger(len)) return { addr, len };
  const pages = Math.ceil(len) || 0; // PAGE_ALIGN; -0 is 0
  if (pages !== 0) return { addr, len: pages };
  return { errno: call === 'munmap' || call === 'madvise' ? 'EINVAL' : 'ENOMEM' };
}

/**
 * madvise's range against user space (madvise_walk_vmas after is_valid_madvise): wrapping past
 * the top of the address space EINVAL; starting in the kernel's half or past TASK_SIZE ENOMEM
 * (no VMA); reaching past TASK_SIZE: the part below is advised, then ENOMEM (`inside` pages).
 */
export function argMadviseSpan(addr: number, len: number, taskSize: number): 'inside' | { errno: Errno } | { inside: number } {
  const start = addr < 0 ? addr + SPACE : addr;
  const size = len < 0 ? len + SPACE : len;
  if (start + size >= SPACE) return { errno: 'EINVAL' };
  if (addr >= 0 && len > 0 && addr + len <= taskSize) return 'inside';
  return addr >= 0 && len > 0 && addr < taskSize ? { inside: taskSize - addr } : { errno: 'ENOMEM' };
}

/**
 * mmap's (x86-64 sys_mmap: an unaligned offset EINVAL first; do_mmap: len = PAGE_ALIGN(len),
 * a negative byte length wraps or lies past TASK_SIZE: ENOMEM; a hint rounded down, a fixed
 * address left for __get_unmapped_area to refuse).
 */
export function argMmap(addr: number, len: number, pgoff: number | undefined, fixed: boolean): { addr: number; len: number } | { errno: Errno } {
  if (pgoff !== undefined && !Number.isInteger(pgoff)) return { errno: 'EINVAL' };
  if (Number.isInteger(len)) return { addr: fixed || Number.isInteger(addr) ? addr : Math.floor(addr), len };
  const pages = Math.ceil(len);
  if (pages <= 0) return { errno: 'ENOMEM' };
  return { addr: fixed ? addr : Math.floor(addr), len: pages };
}

/**
 * mremap's (SYSCALL_DEFINE5(mremap), check_mremap_params): old_len and new_len PAGE_ALIGNed
 * first, an unaligned addr EINVAL, an unaligned new_addr EINVAL when the flags name one.
 */
export function argMremap(addr: number, oldLen: number, newLen: number, newAddr: number | undefined, namesNewAddr: boolean): { oldLen: number; newLen: number } | { errno: Errno } {
  if (!Number.isInteger(addr)) return { errno: 'EINVAL' };
  if (namesNewAddr && newAddr !== undefined && !Number.isInteger(newAddr)) return { errno: 'EINVAL' };
  return { oldLen: Math.ceil(oldLen) || 0, newLen: Math.ceil(newLen) || 0 };
}

/** do_mlock / do_munlock: len = PAGE_ALIGN(len + offset_in_page(start)), start &= PAGE_MASK; a negative len: null (not judged). */
export function argMlock(addr: number, len: number): { addr: number; len: number } | null {
  if (len < 0) return null;
  const start = Math.floor(addr);
  return { addr: start, len: Math.ceil(addr + len) - start };
}

/**
 * SYSCALL_DEFINE3(msync): unknown flags, an unaligned start, MS_ASYNC with MS_SYNC EINVAL;
 * len = PAGE_ALIGN(len); end < start ENOMEM; end == start 0.
 */
export function argMsync(addr: number, len: number, flags: number): { addr: number; len: number } | { errno: Errno | 0 } {
  const MS_ASYNC = 1, MS_INVALIDATE = 2, MS_SYNC = 4;
  if (!Number.isSafeInteger(flags) || flags < 0 || (flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC)) !== 0) return { errno: 'EINVAL' };
  if (!Number.isInteger(addr)) return { errno: 'EINVAL' };
  if ((flags & MS_ASYNC) !== 0 && (flags & MS_SYNC) !== 0) return { errno: 'EINVAL' };
  const pages = Math.ceil(len) || 0;
  if (pages < 0) return { errno: 'ENOMEM' };
  if (pages === 0) return { errno: 0 };
  return { addr, len: pages };
}
