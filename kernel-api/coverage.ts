/**
 * Coverage points: a fixed, ordered list of the driver-API calls and kernel paths both
 * kernels count as they run — each function of the driver API (kernel-api/driver.ts), each
 * fault case of mm/memory.c, each outcome of GUP (mm/gup.c), each MMU notifier event
 * (mm/mmu_notifier.c), the cases of fork's copy_page_range and of zap_pte_range, and the
 * reclaim, swap and OOM paths (mm/vmscan.c, mm/swapfile.c, mm/oom_kill.c) — named as Linux
 * names them. A planted bug in a path no trace reaches
 * cannot be found; `mapfuzz fuzz --json` says which paths a campaign reached, and how often.
 *
 * Each kernel counts into its lock table's `coverage` (kernel-api/locks.ts `cover`), one
 * Uint32Array indexed by point: a call site names its point by a constant index (`COVER.x`,
 * `DRIVER_POINT.fn`), never by a string looked up at run time. Model and implementation count
 * with the same calls at the same branches, so the same trace gives the same counts.
 *
 * What is not here: paths the emulation does not have (userfaultfd MISSING faults,
 * page_mkwrite, THP, NUMA migration), and the struct fields a driver reads (zeroPfn).
 */
import type { DriverKernel, MmuNotifierRange } from './driver.ts';

export type CoveragePoint = { readonly id: string; readonly description: string };

/** Every function of DriverKernel, each a `driver:<fn>` point (a new one without a point fails to typecheck). */
const DRIVER_FUNCTIONS = [
  ['taskAlive', 'pid_task/pid_alive: whether a pid runs'],
  ['ptrace_may_access', 'ptrace_may_access: the ptrace access check'],
  ['capable', 'capable: a capability of a task'],
  ['get_task_mm', 'get_task_mm: a reference on a task\'s mm'],
  ['mmput', 'mmput: drop an mm reference'],
  ['mm_reaped', 'MMF_OOM_SKIP: whether the OOM reaper tore the mm down'],
  ['find_vma', 'find_vma: the first VMA ending above an address'],
  ['find_exact_vma', 'find_exact_vma: the VMA of exactly [start, end)'],
  ['get_user_pages_remote', 'get_user_pages_remote: one page of another mm, FOLL_GET'],
  ['pin_user_pages_remote', 'pin_user_pages_remote: one page of another mm, FOLL_PIN'],
  ['unpin_user_page', 'unpin_user_page: drop a FOLL_PIN pin'],
  ['get_page', 'get_page: take a page reference'],
  ['put_page', 'put_page: drop a page reference'],
  ['alloc_page', 'alloc_page(GFP_KERNEL)'],
  ['__free_page', '__free_page: free a driver\'s page'],
  ['SetPageReserved', 'SetPageReserved'],
  ['ClearPageReserved', 'ClearPageReserved'],
  ['page_read', 'a kernel read of a page through the direct map'],
  ['page_write', 'a kernel write of a page through the direct map'],
  ['kmalloc', 'kmalloc: a slab object'],
  ['kfree', 'kfree'],
  ['virt_to_page', 'virt_to_page of a page-sized kmalloc object'],
  ['remap_pfn_range', 'remap_pfn_range: special PTEs, VM_PFNMAP|VM_IO'],
  ['vm_insert_page', 'vm_insert_page: a refcounted PTE of a driver page'],
  ['vmf_insert_pfn', 'vmf_insert_pfn: a special PTE from ->fault'],
  ['zap_vma_ptes', 'zap_vma_ptes (zap_page_range_single)'],
  ['mmu_interval_notifier_insert', 'mmu_interval_notifier_insert'],
  ['mmu_interval_notifier_remove', 'mmu_interval_notifier_remove'],
  ['mmu_interval_read_begin', 'mmu_interval_read_begin'],
  ['mmu_interval_read_retry', 'mmu_interval_read_retry'],
  ['mmu_interval_check_retry', 'mmu_interval_check_retry: the lockless early check'],
  ['current', 'current: the running task'],
  ['current_mm', 'current->mm'],
  ['mmap_read_lock', 'mmap_read_lock'],
  ['mmap_read_lock_killable', 'mmap_read_lock_killable'],
  ['mmap_read_unlock', 'mmap_read_unlock'],
  ['mmap_read_trylock', 'mmap_read_trylock'],
  ['mutex_init', 'mutex_init'],
  ['spin_lock_init', 'spin_lock_init'],
  ['mutex_lock', 'mutex_lock'],
  ['mutex_trylock', 'mutex_trylock'],
  ['mutex_unlock', 'mutex_unlock'],
  ['init_rwsem', 'init_rwsem'],
  ['down_read', 'down_read'],
  ['down_read_trylock', 'down_read_trylock'],
  ['up_read', 'up_read'],
  ['down_write', 'down_write'],
  ['up_write', 'up_write'],
  ['spin_lock', 'spin_lock'],
  ['spin_unlock', 'spin_unlock'],
  ['init_srcu_struct', 'init_srcu_struct'],
  ['srcu_read_lock', 'srcu_read_lock'],
  ['srcu_read_unlock', 'srcu_read_unlock'],
  ['synchronize_srcu', 'synchronize_srcu'],
  ['srcu_readers_active', 'srcu_readers_active'],
  ['might_sleep', 'might_sleep: a scheduling point (copy_to_user, cond_resched)'],
  ['anon_inode_getfd', 'anon_inode_getfd: a new fd on a driver file'],
  ['fdget', 'fdget'],
  ['close_fd', 'close_fd: a driver\'s error path drops an fd it installed'],
  ['open_vma_file', 'dentry_open of vma->vm_file (map_files)'],
  ['vma_inode', 'file_inode(vma->vm_file)'],
] as const satisfies readonly (readonly [DriverFunction, string])[];

/** The names of DriverKernel's functions (its fields, such as zeroPfn, are no calls). */
type DriverFunction = { [K in keyof DriverKernel]: DriverKernel[K] extends (...args: never[]) => unknown ? K : never }[keyof DriverKernel];
type Uncounted = Exclude<DriverFunction, (typeof DRIVER_FUNCTIONS)[number][0]>;
/** Fails to typecheck, naming the function, when DriverKernel gains a function without a point. */
const EVERY_DRIVER_FUNCTION_COUNTED: [Uncounted] extends [never] ? true : Uncounted = true;
void EVERY_DRIVER_FUNCTION_COUNTED;

/** Kernel paths: [key of COVER, id, description], in report order. */
const KERNEL_PATHS = [
  // mm/memory.c
  ['handleMmFault', 'fault:handle_mm_fault', 'handle_mm_fault: any page fault (user, GUP, unshare)'],
  ['doUserAddrFault', 'fault:do_user_addr_fault', 'a user access the PTE does not permit: the fault path under mmap_lock'],
  ['badArea', 'fault:bad_area:SIGSEGV', 'no VMA or its protection refuses the access: SIGSEGV'],
  ['faultSigbus', 'fault:VM_FAULT_SIGBUS', 'a user fault ends in SIGBUS'],
  ['faultRetry', 'fault:VM_FAULT_RETRY', '->fault released mmap_lock; the fault is retried (FAULT_FLAG_TRIED)'],
  ['faultOomRetry', 'fault:VM_FAULT_OOM', 'a user fault failed an allocation and is retried'],
  ['handlePteMarker', 'fault:handle_pte_marker', 'a fault on a uffd-wp PTE marker (pte_marker_handle_uffd_wp)'],
  ['doAnonymousPageZero', 'fault:do_anonymous_page:zero_page', 'a read of anonymous memory maps the zero page'],
  ['doAnonymousPage', 'fault:do_anonymous_page', 'a write of anonymous memory: a new exclusive page'],
  ['doAnonymousPageRaced', 'fault:do_anonymous_page:!pte_none', 'another task filled the PTE while the new page was allocated: it is dropped'],
  ['unstableAddressSpace', 'fault:check_stable_address_space', 'MMF_UNSTABLE: a fault on an mm the OOM reaper tore down, SIGBUS'],
  ['doFaultNoHandler', 'fault:do_fault:no_fault', 'a VM_PFNMAP/MIXEDMAP or driver VMA without ->fault: SIGBUS'],
  ['fileBeyondEof', 'fault:filemap_fault:beyond_eof', 'a file fault past i_size: SIGBUS'],
  ['doReadFault', 'fault:do_read_fault', 'a read of a file or shmem page: the page-cache page mapped'],
  ['doSharedFault', 'fault:do_shared_fault', 'a write of a shared file or shmem page: mapped writable, dirtied'],
  ['doCowFault', 'fault:do_cow_fault', 'a write of a private file page (or a driver page): copied to anonymous memory'],
  ['driverFault', 'fault:__do_fault:vm_ops->fault', 'a driver\'s ->fault called'],
  ['driverFaultPage', 'fault:finish_fault:vmf->page', '->fault returned a page; finish_fault maps it'],
  ['driverFaultRaced', 'fault:finish_fault:!pte_none', 'another task filled the PTE while ->fault slept: the page is dropped'],
  ['fileFaultRaced', 'fault:finish_fault:!pte_none:file', 'another thread mapped the file page while this fault waited for the invalidate_lock: nothing to do'],
  ['driverFaultNopage', 'fault:VM_FAULT_NOPAGE', '->fault installed the PTE itself (vmf_insert_pfn, vm_insert_page)'],
  ['driverFaultSigbus', 'fault:->fault:VM_FAULT_SIGBUS', '->fault returned VM_FAULT_SIGBUS'],
  ['driverFaultOom', 'fault:->fault:VM_FAULT_OOM', '->fault returned VM_FAULT_OOM'],
  ['driverFaultRetry', 'fault:->fault:VM_FAULT_RETRY', '->fault dropped mmap_lock and returned VM_FAULT_RETRY'],
  ['doSwapPageCache', 'fault:do_swap_page:swap_cache', 'swap-in of a page still in the swap cache'],
  ['doSwapPageRead', 'fault:do_swap_page:swapin_readahead', 'swap-in read from the slot into a new swap-cache page'],
  ['doSwapPageRaced', 'fault:do_swap_page:!pte_same', 'the PTE changed while the swap-in slept: the page is put back'],
  ['doSwapPageReuse', 'fault:do_swap_page:exclusive', 'the swapped-in page is mapped exclusive (writable if the VMA is)'],
  ['doSwapPageUffdWp', 'fault:do_swap_page:uffd_wp', 'a uffd-wp swap entry comes back write-protected'],
  ['doWpPage', 'fault:do_wp_page', 'a write (or unshare) fault on a present, write-protected PTE'],
  ['uffdWpAsync', 'fault:userfaultfd_pte_wp:async', 'asynchronous uffd-wp: the write is allowed, the bit cleared'],
  ['wpPfnShared', 'fault:wp_pfn_shared', 'a write to a special PTE of a shared mapping: made writable in place'],
  ['wpPageReuse', 'fault:wp_page_reuse', 'a write to an exclusive anonymous page: reused without a copy'],
  ['wpCanReuseAnonFolio', 'fault:wp_can_reuse_anon_folio', 'a non-exclusive anonymous page nobody else holds: reused'],
  ['wpPageShared', 'fault:wp_page_shared', 'a write to a read-only PTE of a shared file page: made writable'],
  ['wpPageCopy', 'fault:wp_page_copy', 'copy-on-write: a new anonymous page replaces the PTE\'s page'],
  ['wpPageCopyZero', 'fault:wp_page_copy:zero_page', 'copy-on-write of a special PTE (the zero page or a PFN map)'],
  ['wpPageCopyRaced', 'fault:wp_page_copy:!pte_same', 'the PTE changed while the copy was allocated or a notifier callback slept: the copy is dropped'],
  ['wpUnshare', 'fault:FAULT_FLAG_UNSHARE', 'an unshare fault (read-only FOLL_PIN of a shared anonymous page)'],
  // mm/gup.c
  ['gup', 'gup:__get_user_pages', 'GUP of one page (get_user_pages_remote, pin_user_pages_remote, access_remote_vm)'],
  ['gupNoVma', 'gup:EFAULT:no_vma', 'no VMA at the address: EFAULT'],
  ['gupVmIoPfnmap', 'gup:EFAULT:VM_IO|VM_PFNMAP', 'check_vma_flags: a VM_IO or VM_PFNMAP VMA, EFAULT'],
  ['gupVmaFlags', 'gup:EFAULT:check_vma_flags', 'check_vma_flags: the protection refuses the access (FOLL_FORCE aside), EFAULT'],
  ['gupFollowPage', 'gup:follow_page_pte', 'the page is present and permits the access: taken without a fault'],
  ['gupFaultin', 'gup:faultin_page', 'the page is missing or not writable: handle_mm_fault, then looked up again'],
  ['gupForceCow', 'gup:FOLL_FORCE:cow', 'a FOLL_FORCE write to a read-only private VMA: the fault breaks COW'],
  ['gupNofault', 'gup:EFAULT:FOLL_NOFAULT', 'FOLL_NOFAULT and the page would need a fault: EFAULT'],
  ['gupFaultEnomem', 'gup:ENOMEM', 'the fault failed an allocation (VM_FAULT_OOM): ENOMEM'],
  ['gupFaultEfault', 'gup:EFAULT:VM_FAULT_SIGBUS', 'the fault gave VM_FAULT_SIGBUS: EFAULT'],
  ['gupUnshare', 'gup:FOLL_PIN:unshare', 'a read-only FOLL_PIN of a shared anonymous page: unshared first'],
  ['gupRetriesExhausted', 'gup:EFAULT:retries', 'faulted in and gone again too often: EFAULT'],
  ['gupZeroPage', 'gup:zero_page', 'the zero page returned, no reference taken'],
  ['gupPin', 'gup:FOLL_PIN', 'a page pinned (pincount and a reference)'],
  ['gupGet', 'gup:FOLL_GET', 'a page referenced (FOLL_GET)'],
  ['procMemEacces', 'gup:access_remote_vm:EACCES', '/proc/<pid>/mem refused (mode 0600 or ptrace_may_access)'],
  ['procMemAccess', 'gup:access_remote_vm', '/proc/<pid>/mem: a page copied through FOLL_FORCE GUP'],
  ['processVmEperm', 'gup:process_vm_rw:EPERM', 'process_vm_readv/writev refused by ptrace_may_access'],
  ['processVmRw', 'gup:process_vm_rw', 'process_vm_readv/writev: a page copied through FOLL_PIN'],
  // mm/mmu_notifier.c
  ['invalidateRangeStart', 'notifier:invalidate_range_start', 'mmu_notifier_invalidate_range_start (subscribed or not)'],
  ['invalidateNonblock', 'notifier:invalidate_range_start_nonblock', 'a non-blockable range (the OOM reaper, an atomic zap_vma_ptes)'],
  ['invalidateNonblockRefused', 'notifier:nonblock:-EAGAIN', 'a callback refused a non-blockable range: nothing zapped'],
  ['notifyUnmap', 'notifier:MMU_NOTIFY_UNMAP', 'a callback told of munmap, mremap, MADV_DONTNEED or zap_vma_ptes'],
  ['notifyClear', 'notifier:MMU_NOTIFY_CLEAR', 'a callback told of a PTE cleared (COW, reclaim, MADV_FREE)'],
  ['notifyProtection', 'notifier:MMU_NOTIFY_PROTECTION_VMA', 'a callback told of a protection change (mprotect, folio_mkclean, uffd-wp)'],
  ['notifyOom', 'notifier:MMU_NOTIFY_UNMAP:oom_reap', 'a callback told of the OOM reaper\'s zap'],
  ['notifyRelease', 'notifier:MMU_NOTIFY_RELEASE', 'a callback told of exit_mmap'],
  ['notifyMigrate', 'notifier:MMU_NOTIFY_MIGRATE', 'a callback told of a page migration (an event of the API no emulated path sends yet)'],
  // kernel/fork.c dup_mmap, mm/memory.c copy_page_range
  ['forkDontcopy', 'fork:VM_DONTCOPY', 'dup_mmap skips a VM_DONTCOPY VMA'],
  ['forkWipeonfork', 'fork:VM_WIPEONFORK', 'a VM_WIPEONFORK VMA: the child gets it empty (no copy_page_range)'],
  ['copyNonpresentPte', 'fork:copy_nonpresent_pte', 'a swap entry shared with the child (swap_duplicate)'],
  ['copyPresentPteSpecial', 'fork:copy_present_pte:special', 'a special PTE (PFN map, zero page) copied as it is'],
  ['copyPresentPage', 'fork:copy_present_page', 'a maybe-pinned exclusive anonymous page copied at fork (page_needs_cow_for_dma)'],
  ['copyPresentPte', 'fork:copy_present_pte', 'a page shared with the child (write-protected in a COW mapping)'],
  // mm/memory.c zap_pte_range
  ['zapPresentPte', 'zap:zap_present_pte', 'a PTE of a normal page zapped: mapcount and the reference dropped'],
  ['zapPresentPteSpecial', 'zap:zap_present_pte:special', 'a special PTE zapped (no page behind it to drop)'],
  ['zapSwapEntry', 'zap:zap_nonpresent_ptes:swap', 'a swap entry zapped'],
  // mm/vmscan.c, mm/swapfile.c, mm/oom_kill.c
  ['shrinkFolio', 'reclaim:shrink_folio_list', 'reclaim considers a page'],
  ['reclaimMlocked', 'reclaim:VM_LOCKED', 'a page an mlocked VMA maps is kept'],
  ['reclaimPinnedKept', 'reclaim:folio_maybe_dma_pinned', 'an anonymous page that may be pinned is kept before add_to_swap'],
  ['addToSwap', 'reclaim:add_to_swap', 'an anonymous page gets a swap slot and enters the swap cache'],
  ['swapFull', 'reclaim:add_to_swap:full', 'no free swap slot: the page is kept'],
  ['tryToUnmapAnon', 'reclaim:try_to_unmap_one:anon', 'an anonymous PTE replaced by a swap entry'],
  ['tryToUnmapExclusivePinned', 'reclaim:folio_try_share_anon_rmap_pte', 'a maybe-pinned exclusive page cannot be unmapped'],
  ['pageoutAnon', 'reclaim:__remove_mapping:swap', 'an anonymous page freed, its contents in its slot'],
  ['reclaimReferenced', 'reclaim:still_referenced', 'unmapped, but another reference keeps the page'],
  ['lazyfreeDiscard', 'reclaim:try_to_unmap_one:lazyfree', 'a clean MADV_FREE mapping discarded without swap'],
  ['lazyfreeRedirtied', 'reclaim:folio_set_swapbacked', 'a lazily freed page dirtied or referenced again: kept'],
  ['tryToUnmapFile', 'reclaim:try_to_unmap_one:file', 'a file or shmem PTE dropped'],
  ['pageoutFile', 'reclaim:__remove_mapping:file', 'a page cache page written back and freed'],
  ['shmemWriteout', 'reclaim:shmem_writeout', 'a shmem page moved to a swap slot'],
  ['folioFreeSwap', 'swap:folio_free_swap', 'a swap cache copy nobody needs freed'],
  ['freeSwapAndCache', 'swap:free_swap_and_cache', 'a swap entry dropped (zap, MADV_FREE)'],
  ['oomReap', 'oom:__oom_reap_task_mm', 'the OOM reaper tears down a victim\'s private memory'],
] as const;

export type KernelPathKey = (typeof KERNEL_PATHS)[number][0];

/** Every point, in report order: the driver API, then the kernel paths. */
export const COVERAGE_POINTS: readonly CoveragePoint[] = [
  ...DRIVER_FUNCTIONS.map(([fn, description]) => ({ id: `driver:${fn}`, description })),
  ...KERNEL_PATHS.map(([, id, description]) => ({ id, description })),
];

export const COVERAGE_POINTS_COUNT = COVERAGE_POINTS.length;

/** The point index of each driver-API function. */
export const DRIVER_POINT: Readonly<Record<DriverFunction, number>> = Object.freeze(
  Object.fromEntries(DRIVER_FUNCTIONS.map(([fn], i) => [fn, i])) as Record<DriverFunction, number>,
);

/** The point index of each kernel path. */
export const COVER: Readonly<Record<KernelPathKey, number>> = Object.freeze(
  Object.fromEntries(KERNEL_PATHS.map(([key], i) => [key, DRIVER_FUNCTIONS.length + i])) as Record<KernelPathKey, number>,
);

/** The point of a callback told of an invalidation `event` (mmu_notifier_range.event). */
export function notifierEventPoint(event: MmuNotifierRange['event']): number {
  switch (event) {
    case 'unmap': return COVER.notifyUnmap;
    case 'clear': return COVER.notifyClear;
    case 'protection': return COVER.notifyProtection;
    case 'oom': return COVER.notifyOom;
    case 'exit': return COVER.notifyRelease;
    case 'migrate': return COVER.notifyMigrate;
  }
}

/** The names of the driver-API functions that have a point, in order. */
export const DRIVER_FUNCTION_NAMES: readonly string[] = DRIVER_FUNCTIONS.map(([fn]) => fn);

/** Counts as JSON: every point's id to its count, in point order, zeros included. */
export function coverageJson(counts: ArrayLike<number>): Record<string, number> {
  if (counts.length !== COVERAGE_POINTS_COUNT) throw new Error(`coverage: ${counts.length} counts for ${COVERAGE_POINTS_COUNT} points`);
  const out: Record<string, number> = {};
  for (const [i, p] of COVERAGE_POINTS.entries()) out[p.id] = counts[i];
  return out;
}

/** A campaign's sum: plain numbers, so a long campaign's totals do not wrap at 2^32. */
export function emptyCoverage(): number[] {
  return new Array<number>(COVERAGE_POINTS_COUNT).fill(0);
}

/** `into` += `add`, point by point. */
export function addCoverage(into: number[], add: ArrayLike<number>): void {
  if (add.length !== into.length) throw new Error(`coverage: adding ${add.length} counts to ${into.length}`);
  for (let i = 0; i < into.length; i++) into[i] += add[i];
}

/** The points of `counts` never reached (count 0), in order. */
export function unreachedPoints(counts: ArrayLike<number>): CoveragePoint[] {
  return COVERAGE_POINTS.filter((_, i) => counts[i] === 0);
}

/** One line for a campaign's human-readable summary. */
export function coverageLine(counts: ArrayLike<number>): string {
  const reached = COVERAGE_POINTS_COUNT - unreachedPoints(counts).length;
  return `coverage: ${reached} of ${COVERAGE_POINTS_COUNT} points reached (--json lists them)`;
}
