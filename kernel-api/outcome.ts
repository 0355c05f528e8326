/**
 * Outcomes: what an operation returns. An errno or a signal is a value, never an
 * exception; a thrown error in a kernel means a bug (a broken assertion).
 */

/** The errno names the emulated kernel returns, with Linux's numbers. */
export const ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EACCES: 13,
  EFAULT: 14, EBUSY: 16, EEXIST: 17, ENODEV: 19, EINVAL: 22, EMFILE: 24, ENOSPC: 28, ENOTTY: 25,
  EOVERFLOW: 75, EOPNOTSUPP: 95,
} as const;
export type Errno = keyof typeof ERRNO;

export type Signal = 'SIGSEGV' | 'SIGBUS';

export type Outcome =
  | {
    kind: 'ok'; value: number;
    /** Further results of an op that returns several (pagemap entries, scan regions, names). */
    values?: number[];
    /**
     * Kernel-internal numbers user space may see (PFNs, swap offsets in pagemap entries).
     * They differ between kernels by construction, so outcomeEquals ignores them; an
     * invariant checks them against the kernel's own state instead.
     */
    frames?: number[];
  }
  | { kind: 'errno'; errno: Errno }
  | { kind: 'signal'; signal: Signal };

export const ok = (value = 0): Outcome => ({ kind: 'ok', value });
export const okValues = (value: number, values: number[], frames?: number[]): Outcome =>
  frames === undefined ? { kind: 'ok', value, values } : { kind: 'ok', value, values, frames };
export const err = (errno: Errno): Outcome => ({ kind: 'errno', errno });
export const sig = (signal: Signal): Outcome => ({ kind: 'signal', signal });

export function outcomeEquals(a: Outcome, b: Outcome): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'ok') {
    const bv = (b as { value: number; values?: number[] });
    if (a.value !== bv.value) return false;
    const x = a.values ?? [];
    const y = bv.values ?? [];
    return x.length === y.length && x.every((v, i) => v === y[i]);
  }
  if (a.kind === 'errno') return a.errno === (b as { errno: Errno }).errno;
  return a.signal === (b as { signal: Signal }).signal;
}

export function formatOutcome(o: Outcome): string {
  if (o.kind === 'ok') return o.values === undefined ? `= ${o.value}` : `= ${o.value} [${o.values.join(', ')}]`;
  if (o.kind === 'errno') return `-${o.errno}`;
  return `${o.signal}`;
}
