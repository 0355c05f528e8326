/**
 * Seed 003, the mapping half of /proc/<pid>/map_files/: one entry per VMA with a file,
 * named "start-end"; looking an entry up finds the exact VMA (find_exact_vma), and opening
 * it gives a new fd on the VMA's file, which another process can mmap to share the mapping
 * (how checkpoint/restore rebuilds shared mappings). The checks are the current kernel's
 * (fs/proc/base.c): proc_map_files_lookup and _readdir need PTRACE_MODE_READ (EACCES), and
 * following the link (proc_map_files_get_link) needs checkpoint_restore_ns_capable, i.e.
 * CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE (EPERM) — uid 0 here. The locking is the
 * seed's and today's: find_exact_vma under mmap_read_lock of the target's mm (today's
 * _killable variant differs only on a fatal signal, which has no errno here),
 * in the lookup and again when the link is followed; readdir in two passes, the VMAs
 * collected under the lock into an array allocated with GFP_KERNEL there, the entries
 * filled in after it is dropped ("filldir() routine might require mmap_sem taken in
 * might_fault()"). Opening the file is done while the second lookup still holds the lock:
 * the C takes a path reference (path_get) under it and opens the path after, and the
 * driver API opens a VMA's file only while the VMA can be named. Not emulated: dentry
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

  /**
   * proc_map_files_readdir: the number of entries, "." and ".." not counted. First pass
   * under mmap_read_lock_killable: walk the VMAs and collect those with a file into an
   * array (the seed's flex_array, today's genradix: GFP_KERNEL, ENOMEM when it fails, the
   * lock dropped on the way out); second pass with the lock dropped: proc_fill_cache /
   * dir_emit for each, which may fault on the user buffer.
   */
  private readdir(pid: number, target: number): Outcome {
    if (!this.k.taskAlive(target)) return err('ENOENT'); // get_proc_task
    if (!this.k.ptrace_may_access(pid, target, 'read')) return err('EACCES');
    const mm = this.k.get_task_mm(target);
    if (mm === null) return ok(0);
    if (this.k.mmap_read_lock_killable(mm) !== 0) {
      this.k.mmput(mm);
      return err('EINTR');
    }
    const collected: Array<{ start: number; end: number }> = [];
    let addr = 0;
    for (let walked = 0; walked < VMAS_WALKED_MAX; walked++) {
      const vma = this.k.find_vma(mm, addr);
      if (vma === null) break;
      if (this.hasFile(vma)) collected.push({ start: vma.start, end: vma.end });
      addr = vma.end;
    }
    let fa: number | null = null;
    if (collected.length > 0) {
      fa = this.k.kmalloc('map_files_info', 'GFP_KERNEL');
      if (fa === null) {
        this.k.mmap_read_unlock(mm);
        this.k.mmput(mm);
        return err('ENOMEM');
      }
    }
    this.k.mmap_read_unlock(mm);
    for (let i = 0; i < collected.length; i++) this.k.might_sleep('proc_fill_cache');
    if (fa !== null) this.k.kfree(fa);
    this.k.mmput(mm);
    return ok(collected.length);
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
    // proc_map_files_lookup: find_exact_vma under the target's mmap_lock.
    this.k.mmap_read_lock(mm);
    const found = this.k.find_exact_vma(mm, start, end);
    const hasFile = found !== null && this.hasFile(found);
    this.k.mmap_read_unlock(mm);
    if (!hasFile) return err('ENOENT');
    if (!this.k.capable(pid, 'CAP_SYS_ADMIN')) return err('EPERM'); // checkpoint_restore_ns_capable
    // map_files_get_link: find_exact_vma again under the lock (the VMA may have changed
    // since the lookup), and the file's path taken under it.
    this.k.mmap_read_lock(mm);
    const vma = this.k.find_exact_vma(mm, start, end);
    if (vma === null || !this.hasFile(vma)) {
      this.k.mmap_read_unlock(mm);
      return err('ENOENT');
    }
    // An anonymous inode (a driver's file) cannot be reopened through its link.
    if (this.k.vma_inode(vma) === -1) {
      this.k.mmap_read_unlock(mm);
      return err('ENXIO');
    }
    const fd = this.k.open_vma_file(pid, vma, write ? 'rw' : 'r');
    this.k.mmap_read_unlock(mm);
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
      // proc_map_files_lookup: PTRACE_MODE_READ, EACCES (dentry_open may refuse with EACCES too).
      access: { mode: 'read', target: 'target', denied: 'EACCES' },
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
      // proc_map_files_readdir: PTRACE_MODE_READ, EACCES.
      access: { mode: 'read', target: 'target', denied: 'EACCES', deniedOnlyByAccess: true },
      args(ctx, c) {
        if (ctx.pids().length === 0) return null;
        const pid = ctx.pid(c);
        return { pid, target: ctx.otherPid(pid, c) };
      },
    },
  ],
  create: (k) => new MapFiles(k),
};
