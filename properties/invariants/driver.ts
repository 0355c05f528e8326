/**
 * driver-mmap: a design that declares what its ->mmap refuses (StrategyDefinition
 * .mmapRefusesOnly: its own range check's errno) maps every other request of its fds. An
 * mmap of such an fd refused with another errno, where the core's checks before ->mmap
 * (sys_mmap: an unaligned offset, EINVAL; do_mmap: a zero length EINVAL; ENOMEM, EOVERFLOW, EBADF, EPERM, EEXIST,
 * EACCES) cannot have given it, was refused by the design's ->mmap for a request the
 * design says it maps: a driver that cannot map its buffer (seed 002's kmalloc'd pages,
 * which vm_insert_page refuses as slab pages, EINVAL).
 */
import type { Errno } from '../../kernel-api/outcome.ts';
import { mmapPages } from '../../kernel-api/bytes.ts';
import type { Invariant } from './types.ts';

/** What do_mmap/mmap_region may give before or around f_op->mmap, whatever the driver does. */
const CORE_ERRNOS: ReadonlySet<Errno> = new Set<Errno>(['ENOMEM', 'EOVERFLOW', 'EBADF', 'EPERM', 'EEXIST', 'EACCES', 'ESRCH']);

export const driverMmap: Invariant = {
  id: 'driver-mmap',
  holds: "an mmap of a design's fd is refused only with the errnos its ->mmap declares (mmapRefusesOnly) or the core's own",
  causes: [{ id: 'refused', title: "mmap of a driver fd refused by its ->mmap with an errno the design does not declare" }],
  judges: 'outcome',
  check({ k, op, outcome, strategies }) {
    if (op.op !== 'mmap' || op.fd === undefined || outcome.kind !== 'errno') return null;
    const errno = outcome.errno;
    if (CORE_ERRNOS.has(errno)) return null;
    // The core's own EINVAL: sys_mmap's unaligned offset (mmapPages), do_mmap's zero length,
    // an unaligned MAP_FIXED address (__get_unmapped_area). Unknown prot bits are ignored.
    if (errno === 'EINVAL' && ('errno' in mmapPages(op) || !Number.isSafeInteger(Math.ceil(op.lengthPages)) || op.lengthPages === 0 ||
      !Number.isSafeInteger(op.addr))) return null;
    let driver: string | undefined;
    for (const f of k.fds(op.pid)) if (f.fd === op.fd) driver = f.driver;
    if (driver === undefined) return null;
    const def = strategies?.find((s) => s.name === driver || driver!.startsWith(`${s.name}.`));
    if (def?.mmapRefusesOnly === undefined || def.mmapRefusesOnly.includes(errno)) return null;
    return {
      invariant: 'driver-mmap', cause: 'refused', pid: op.pid, addr: op.addr,
      message: `mmap of ${def.name} fd ${op.fd} by P${op.pid} (pgoff ${op.pgoff ?? 0}, ${op.lengthPages} pages, ${op.shared ? 'shared' : 'private'}) was refused with ${errno}; the design's ->mmap refuses only with ${def.mmapRefusesOnly.join(', ')}`,
    };
  },
};
