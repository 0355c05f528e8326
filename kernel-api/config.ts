/**
 * The emulated machine's configuration: sysctls and limits. Every structure has a named
 * maximum; generators respect it and the kernels assert it.
 */
export type KernelConfig = {
  /** TASK_SIZE in pages: user space is [0, taskSizePages). */
  taskSizePages: number;
  /** mm->mmap_base in pages: top-down allocation starts below it. */
  mmapBasePages: number;
  /** vm.mmap_min_addr in pages. */
  mmapMinAddrPages: number;
  /** vm.max_map_count. */
  maxMapCount: number;
  /** kernel.yama.ptrace_scope: 0 classic ptrace permissions, 1 restricted to descendants. */
  yamaPtraceScope: 0 | 1;
  /** Live processes (running) at most; spawn and fork give EAGAIN past it. */
  processesMax: number;
  /** Physical frames at most (an assertion: generators stay far below it). */
  framesMax: number;
  /** Swap slots; allocation fails (the page stays resident) past it. */
  swapSlotsMax: number;
  /**
   * CONFIG_MEM_SOFT_DIRTY; absent means on. Off (as on a kernel built without it), pagemap
   * and PAGEMAP_SCAN report no soft-dirty bit and clear_refs 4 leaves the PTEs alone.
   */
  softDirty?: boolean;
};

export const DEFAULT_CONFIG: Readonly<KernelConfig> = Object.freeze({
  taskSizePages: 2 ** 36,
  mmapBasePages: 2 ** 35,
  mmapMinAddrPages: 16,
  maxMapCount: 65530,
  yamaPtraceScope: 1,
  processesMax: 64,
  framesMax: 1 << 22,
  swapSlotsMax: 1 << 22,
});
