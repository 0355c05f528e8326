/**
 * The observation: what a user could see of the machine after a step, in a form that does
 * not depend on how a kernel is built. Two kernels agree when their observations are equal
 * as JSON. Frames are renamed to canonical numbers by first appearance in a fixed walk
 * (pid order, then address), so physical frame numbers never leak into a comparison.
 */

/** One VMA, as a line of /proc/<pid>/maps shows it: adjacent VMAs are never coalesced. */
export type MapRange = {
  start: number;
  end: number;
  /** `rwxs`/`rw-p` as in /proc/<pid>/maps */
  perms: string;
  /** `anon`, `file:<id>@<pgoff>` or `shmem:<id>@<pgoff>`, `drv:<name>` */
  backing: string;
};

export type PageObservation = {
  addr: number;
  /** Value a read would return now (undefined if not present and not swapped: no fault is taken). */
  value?: number;
  /** /proc/<pid>/pagemap bits: present, swapped, file-page/shared-anon, exclusively mapped, soft-dirty. */
  present: boolean;
  swapped: boolean;
  file: boolean;
  exclusive: boolean;
  softDirty: boolean;
  /** Canonical frame number, its refcount and mapcount; absent for swap entries. */
  frame?: number;
  refcount?: number;
  mapcount?: number;
};

export type ProcessObservation = {
  pid: number;
  state: string;
  maps: MapRange[];
  pages: PageObservation[];
  rss: [anon: number, file: number, shmem: number, swap: number];
};

export type Observation = {
  processes: ProcessObservation[];
  /** Live frames other than the zero page, and swap slots in use. */
  framesInUse: number;
  swapSlotsInUse: number;
};
