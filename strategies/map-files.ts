/**
 * Seed 003, the mapping half of /proc/<pid>/map_files/: one entry per VMA with a file,
 * named "start-end"; looking an entry up finds the exact VMA (find_exact_vma), and opening
 * it gives a new fd on the VMA's file, which another process can mmap to share the mapping
 * (how checkpoint/restore rebuilds shared mappings). The checks are the current kernel's
 * (fs/proc/base.c): proc_map_files_lookup and _readdir need PTRACE_MODE_READ (EACCES), and
 * following the link (proc_map_files_get_link) needs checkpoint_restore_ns_capable, i.e.
 * CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE (EPERM) — uid 0 here. Not emulated: dentry
 * caching and d_revalidate (each open looks the entry up afresh), getattr/setattr, names.
 */
import type { DriverKernel, DriverVma, MmHandle, RemoteView, StrategyInstance } from '../kernel-api/driver.ts';
import type { Outcome } from '../kernel-api/outcome.ts';
import { err, ok } from '../kernel-api/outcome.ts';
import type { DriverHold } from '../kernel-api/state.ts';
import type { DriverArgs, StrategyDefinition } from '../kernel-api/strategy.ts';
import { intArg } from './args.ts';

const NAME = 'map-files';

/** vm.max_map_count's default: the most VMAs a walk of one mm visits. */
const VMAS_WALKED_MAX = 65530;

class MapFiles implements StrategyInstance {
  constructor(private readonly k: DriverKernel) {}

  call(call: string, args: DriverArgs): Outcome {
    const pid = intArg(args, 'pid');
    const target = intArg(args, 'target');
    if (pid === null || target === null) return err('EINVAL');
    if (!this.k.taskAlive(pid)) return err('ESRCH');
    if (call === 'readdir') return this.readdir(pid, target);
    if (call === 'open') return this.open(pid, target, intArg(args, 'start'), intArg(args, 'end'), args.write === true);
    return err('ENOTTY');
  }

  /** vma->vm_file is set: a regular file, a shmem object (shared anonymous memory) or a driver's file. */
  private hasFile(vma: DriverVma): boolean {
    return this.k.vma_inode(vma) !== -1 || vma.vmOps !== null;
  }

  /** proc_map_files_readdir: the number of entries, "." and ".." not counted. */
  private readdir(pid: number, target: number): Outcome {
    if (!this.k.taskAlive(target)) return err('ENOENT'); // get_proc_task
    if (!this.k.ptrace_may_access(pid, target, 'read')) return err('EACCES');
    const mm = this.k.get_task_mm(target);
    if (mm === null) return ok(0);
    let entries = 0;
    let addr = 0;
    for (let walked = 0; walked < VMAS_WALKED_MAX; walked++) {
      const vma = this.k.find_vma(mm, addr);
      if (vma === null) break;
      if (this.hasFile(vma)) entries += 1;
      addr = vma.end;
    }
    this.k.mmput(mm);
    return ok(entries);
  }

  /**
   * open("/proc/<target>/map_files/<start>-<end>"): proc_map_files_lookup, then following
   * the link (proc_map_files_get_link → proc_pid_get_link → map_files_get_link), then
   * dentry_open of the VMA's file with the requested mode.
   */
  private open(pid: number, target: number, start: number | null, end: number | null, write: boolean): Outcome {
    if (!this.k.taskAlive(target)) return err('ENOENT');
    if (!this.k.ptrace_may_access(pid, target, 'read')) return err('EACCES');
    if (start === null || end === null) return err('ENOENT'); // dname_to_vma_addr
    const mm = this.k.get_task_mm(target);
    if (mm === null) return err('ENOENT');
    const r = this.lookupAndOpen(pid, mm, start, end, write);
    this.k.mmput(mm);
    return r;
  }

  private lookupAndOpen(pid: number, mm: MmHandle, start: number, end: number, write: boolean): Outcome {
    const vma = this.k.find_exact_vma(mm, start, end);
    if (vma === null || !this.hasFile(vma)) return err('ENOENT');
    if (!this.k.capable(pid, 'CAP_SYS_ADMIN')) return err('EPERM'); // checkpoint_restore_ns_capable
    // An anonymous inode (a driver's file) cannot be reopened through its link.
    if (this.k.vma_inode(vma) === -1) return err('ENXIO');
    const fd = this.k.open_vma_file(pid, vma, write ? 'rw' : 'r');
    return typeof fd === 'string' ? err(fd) : ok(fd);
  }

  /** The fd holds the inode, not pages: nothing to report. */
  holds(): Iterable<DriverHold> {
    return [];
  }

  /** Sharing goes through the file's page cache, which ghost memory judges: no remote views. */
  remoteViews(): Iterable<RemoteView> {
    return [];
  }
}

export const mapFiles: StrategyDefinition = {
  name: NAME,
  seed: '003',
  title: '/proc/<pid>/map_files: exact-VMA lookup with ptrace and CAP_SYS_ADMIN checks, open and mmap to share a mapping',
  // The series' claims: entries only for exact VMAs, behind ptrace checks (access-control);
  // an opened entry is "exactly the same inode as the vma's one", so mapping it shares the
  // memory (cow-isolation, file-integrity); the fd holds the file, no pages (refcount-
  // balance, no-leak).
  promises: ['access-control', 'cow-isolation', 'file-integrity', 'refcount-balance', 'no-leak'],
  calls: [
    {
      name: 'open', weight: 3, returns: 'fd',
      args(ctx, c) {
        if (ctx.pids().length === 0) return null;
        const pid = ctx.pid(c);
        const target = ctx.otherPid(pid, c);
        // range() is biased to VMA starts and to lengths that reach a VMA's end.
        const r = ctx.range(target, c);
        return { pid, target, start: r.addr, end: r.addr + r.lengthPages, write: c.int(4) === 0 };
      },
    },
    {
      name: 'readdir', weight: 1,
      args(ctx, c) {
        if (ctx.pids().length === 0) return null;
        const pid = ctx.pid(c);
        return { pid, target: ctx.otherPid(pid, c) };
      },
    },
  ],
  create: (k) => new MapFiles(k),
};
