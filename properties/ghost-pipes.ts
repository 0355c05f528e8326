/**
 * What a pipe read must return, for ghost memory (properties/ghost.ts). vmsplice puts a
 * reference to the *page* in the pipe (FOLL_GET), so a read returns what the page holds when
 * it is read: the value at vmsplice time, or one stored later that reached that same page.
 * Which later stores may reach it is stated from Linux's COW rules, never from the kernels'
 * page tables:
 * - A private page (anonymous, or a private file page's COW copy) is reached only by the
 *   vmsplicing process's own stores at that address (a load/store, /proc/<pid>/mem,
 *   process_vm_writev), and only until it forks: dup_mmap write-protects the page in both
 *   and clears PageAnonExclusive, and from then on do_wp_page copies for either side, as the
 *   pipe's reference keeps the refcount above what wp_can_reuse_anon_folio reuses. (Not so
 *   where fork leaves the parent's page alone: a VM_DONTCOPY or VM_WIPEONFORK range, or a
 *   FOLL_PIN-pinned page, which copy_present_page copies for the child.) A store after
 *   that reaching the pipe is the CVE-2020-29374 flaw.
 * - A page-cache or shmem page is reached by every store to that object page (pwrite, a
 *   store through any shared mapping); a private file page not yet copied also by the
 *   process's own stores there (they COW, so never do; allowing them is merely lenient).
 * Where that cannot be stated — an unknown value at vmsplice time, a driver mapping, a store
 * through a driver mapping or a driver call (its stores reach pages the ghost does not
 * follow), a mremap of the process (its pages move) — the buffer is not judged.
 */

/** Where later stores that may reach a buffer's page come from. */
type Source =
  | { kind: 'private'; pid: number; addr: number; open: boolean }
  | { kind: 'object'; key: string; pid: number; addr: number };

/** One buffer: the values its page may hold (null: not judged) and where stores come from. */
type GhostBuffer = { allowed: Set<number> | null; source: Source | null };

export class GhostPipes {
  private readonly pipes = new Map<number, GhostBuffer[]>();
  /** The buffers each pipe_read of the current step consumed, by operation. */
  private reads = new Map<object, (Set<number> | null)[]>();

  clone(): GhostPipes {
    const g = new GhostPipes();
    for (const [id, bufs] of this.pipes) {
      g.pipes.set(id, bufs.map((b) => ({ allowed: b.allowed === null ? null : new Set(b.allowed), source: b.source === null ? null : { ...b.source } })));
    }
    g.reads = new Map(this.reads);
    return g;
  }

  /** A new step: the previous one's reads are forgotten. */
  beginStep(): void {
    if (this.reads.size > 0) this.reads = new Map();
  }

  get empty(): boolean {
    return this.pipes.size === 0;
  }

  /** vmsplice put one page in pipe `id`: `values` its possible contents (null: unknown), `source` the stores that may reach it. */
  spliced(id: number, values: number[] | null, source: Source | null): void {
    let bufs = this.pipes.get(id);
    if (bufs === undefined) this.pipes.set(id, (bufs = []));
    bufs.push({ allowed: values === null ? null : new Set(values), source: values === null ? null : source });
  }

  /** pipe_read `op` of pipe `id` consumed `count` buffers. */
  consumed(op: object, id: number, count: number): void {
    const bufs = this.pipes.get(id) ?? [];
    const taken = bufs.splice(0, count);
    const sets = taken.map((b) => b.allowed);
    while (sets.length < count) sets.push(null);
    this.reads.set(op, sets);
  }

  /**
   * The values each of the first `count` buffers `op` reads from pipe `id` may hold (null:
   * not judged): those it consumed, once the ghost took it; before, the pipe's first ones.
   */
  expectRead(op: object, id: number, count: number): (Set<number> | null)[] {
    const done = this.reads.get(op);
    if (done !== undefined) return done;
    const bufs = this.pipes.get(id) ?? [];
    const out: (Set<number> | null)[] = [];
    for (let i = 0; i < count; i++) out.push(bufs[i]?.allowed ?? null);
    return out;
  }

  /** A store by `pid` at `addr` to its own logical page (private: anonymous or a COW copy). */
  privateStore(pid: number, addr: number, value: number): void {
    for (const b of this.buffers()) {
      const s = b.source;
      if (s === null || s.pid !== pid || s.addr !== addr) continue;
      if (s.kind === 'object' || s.open) b.allowed!.add(value);
    }
  }

  /** A store to object page `key` ('f<id>:<index>', 'shm<n>:<index>'), by any path. */
  objectStore(key: string, value: number): void {
    for (const b of this.buffers()) if (b.source?.kind === 'object' && b.source.key === key) b.allowed!.add(value);
  }

  /** `pid` forked: its private pages are write-protected and shared, except where `keptOpen` says fork left them. */
  forked(pid: number, keptOpen: (addr: number) => boolean): void {
    for (const b of this.buffers()) {
      const s = b.source;
      if (s?.kind === 'private' && s.pid === pid && s.open && !keptOpen(s.addr)) s.open = false;
    }
  }

  /** The pages of `pid` may have moved (mremap): its buffers are no longer judged. */
  unknownFor(pid: number): void {
    for (const b of this.buffers()) {
      if (b.source !== null && b.source.pid === pid) {
        b.allowed = null;
        b.source = null;
      }
    }
  }

  /** A store the ghost does not follow reached some page: no buffer is judged any more. */
  unknownAll(): void {
    for (const b of this.buffers()) {
      b.allowed = null;
      b.source = null;
    }
  }

  private *buffers(): Iterable<GhostBuffer> {
    for (const bufs of this.pipes.values()) yield* bufs.filter((b) => b.allowed !== null);
  }
}
