/**
 * Invariants over contents: what a process reads equals what ghost memory says it must
 * (cow-isolation), files change only through write paths (file-integrity), and every
 * remote view shows its target's current page (remote-coherence).
 */
import type { Cause, Invariant } from './types.ts';
import type { KernelInspect, PteView, VmaView } from '../../kernel-api/state.ts';
import type { RemoteView } from '../../kernel-api/driver.ts';
import type { Advice, Op } from '../../kernel-api/op.ts';
import { hex } from '../../kernel-api/format.ts';

/**
 * How a read went wrong (cow-isolation causes). The access path (a load, /proc/<pid>/mem,
 * process_vm_readv, pread) is not part of it: one flaw shows through each of them.
 */
const READ_WRONGS = {
  'wrong-value': 'read returned another value than was stored (a store reached a page it must not)',
  'no-sigbus': 'read returned a value past the end of its file',
  unmapped: 'read returned a value where nothing is mapped',
  sigbus: 'read raised SIGBUS on a page that holds a value',
} as const;

export const cowIsolation: Invariant = {
  id: 'cow-isolation',
  holds: 'what a process reads equals what ghost memory says it must read',
  causes: Object.entries(READ_WRONGS).map(([id, title]) => ({ id, title })),
  judges: 'outcome',
  check({ op, outcome, ghost }) {
    let pid: number;
    let addr: number;
    let how: string;
    switch (op.op) {
      case 'read': pid = op.pid; addr = op.addr; how = 'read'; break;
      case 'proc_mem_read': pid = op.target; addr = op.addr; how = `/proc/${op.target}/mem read by P${op.pid}`; break;
      case 'process_vm_readv': pid = op.target; addr = op.addr; how = `process_vm_readv by P${op.pid}`; break;
      case 'pipe_read': {
        if (outcome.kind !== 'ok' || outcome.values === undefined) return null;
        const sets = ghost.pipeReadExpect(op, outcome.values.length);
        for (const [i, value] of outcome.values.entries()) {
          const allowed = sets[i];
          if (allowed === null || allowed === undefined || allowed.has(value)) continue;
          return {
            invariant: 'cow-isolation', cause: 'wrong-value', pid: op.pid,
            message: `read of pipe ${op.pipe} by P${op.pid} returned ${value} from its buffer ${i + 1}, but the page vmsplice put there can hold only ` +
              `${[...allowed].join(' or ')} (what it held then, or a later store that could reach it: after a fork, COW gives the writer another page)`,
          };
        }
        return null;
      }
      case 'pread': {
        if (outcome.kind !== 'ok') return null;
        const size = ghost.fileSizePages(op.file) ?? 0;
        const want = op.index >= size ? -1 : ghost.fileValue(op.file, op.index);
        return outcome.value === want ? null
          : { invariant: 'cow-isolation', cause: 'wrong-value', message: `pread of file ${op.file} page ${op.index} returned ${outcome.value}, ghost memory says ${want}` };
      }
      default: return null;
    }
    const want = ghost.expect(pid, addr);
    if (outcome.kind === 'ok') {
      if (want.kind === 'value' && want.value !== outcome.value) return { invariant: 'cow-isolation', cause: 'wrong-value', pid, addr, message: `${how} of P${pid} at ${hex(addr)} returned ${outcome.value}, ghost memory says ${want.value}` };
      if (want.kind === 'lazyfree' && want.value !== outcome.value && outcome.value !== 0) {
        return { invariant: 'cow-isolation', cause: 'wrong-value', pid, addr, message: `${how} of P${pid} at ${hex(addr)} returned ${outcome.value}, ghost memory says ${want.value} (or 0 once reclaim discards the page MADV_FREE freed lazily)` };
      }
      if (want.kind === 'sigbus' && op.op === 'read') return { invariant: 'cow-isolation', cause: 'no-sigbus', pid, addr, message: `${how} of P${pid} at ${hex(addr)} returned ${outcome.value}, but the page lies past the end of its file (SIGBUS)` };
      if (want.kind === 'unmapped') return { invariant: 'cow-isolation', cause: 'unmapped', pid, addr, message: `${how} of P${pid} at ${hex(addr)} returned ${outcome.value}, but nothing is mapped there` };
    }
    if (outcome.kind === 'signal' && outcome.signal === 'SIGBUS' && (want.kind === 'value' || want.kind === 'lazyfree')) {
      return { invariant: 'cow-isolation', cause: 'sigbus', pid, addr, message: `${how} of P${pid} at ${hex(addr)} raised SIGBUS, ghost memory says it holds ${want.value}` };
    }
    return null;
  },
};

export const fileIntegrity: Invariant = {
  id: 'file-integrity',
  holds: "a file's contents change only through write/pwrite or a shared writable mapping",
  causes: [
    { id: 'size', title: 'file size changed without a write or truncate' },
    { id: 'store-through-mirror', title: 'file page changed by a store through a driver mapping' },
    { id: 'content', title: 'file page changed without a write path', unexplained: true },
  ],
  check({ k, ghost, op, opVma }) {
    for (const f of k.files()) {
      if (f.shmem) continue;
      const size = ghost.fileSizePages(f.id);
      if (size !== f.sizePages) return { invariant: 'file-integrity', cause: 'size', message: `file ${f.id} has ${f.sizePages} pages, ghost memory says ${size}` };
      const values = new Map<number, number>(k.backing(f.id));
      for (const [index, pfn] of k.pagecache(f.id)) values.set(index, k.frame(pfn)?.value ?? NaN);
      for (const [index, value] of values) {
        if (index < size && value !== ghost.fileValue(f.id, index)) {
          // A store through a PFN map (a strategy's mirror) reaches the frame, not the file's write path.
          // In a concurrent step, the VMA as the store completed: its process may have exited since.
          const mirror = op.op === 'write' && (opVma !== undefined ? [opVma] : [...k.vmas(op.pid)])
            .some((v) => v.start <= op.addr && op.addr < v.end && (v.pfnmap || v.driver !== ''));
          return {
            invariant: 'file-integrity', cause: mirror ? 'store-through-mirror' : 'content',
            message: `file ${f.id} page ${index} holds ${value}, but only ${ghost.fileValue(f.id, index)} was ever written there` +
              (mirror && op.op === 'write' ? ` (P${op.pid} stored ${op.value >>> 0} through its driver mapping at ${hex(op.addr)}, not a write path of the file)` : ''),
          };
        }
      }
    }
    return null;
  },
};

/**
 * What a process has at a page, as its next access would find it: the frame its PTE maps,
 * or, with no present PTE, the frame the swap cache (behind its swap entry, or a shmem
 * slot) or the page cache (of the file its VMA maps) still holds there: the next fault maps
 * that same frame (do_swap_page's swap_cache_get_folio, filemap_fault's filemap_get_folio).
 * `gone`: the process has exited (its mm is torn down).
 */
export type Residency =
  | { kind: 'present'; pfn: number }
  | { kind: 'cached'; pfn: number; where: 'swap cache' | 'page cache' }
  | { kind: 'none' }
  | { kind: 'gone' };

export function residency(k: KernelInspect, pid: number, addr: number): Residency {
  let running = false;
  for (const p of k.processes()) if (p.pid === pid) running = p.state === 'running';
  if (!running) return { kind: 'gone' };
  let pte: PteView | undefined;
  for (const [a, x] of k.ptes(pid)) if (a === addr) pte = x;
  if (pte?.kind === 'present') return { kind: 'present', pfn: pte.pfn };
  const swapCache = (slot: number): Residency => {
    for (const s of k.swapSlots()) if (s.slot === slot && s.cachePfn !== -1) return { kind: 'cached', pfn: s.cachePfn, where: 'swap cache' };
    return { kind: 'none' };
  };
  if (pte?.kind === 'swap') return swapCache(pte.slot);
  let vma: VmaView | undefined;
  for (const v of k.vmas(pid)) if (v.start <= addr && addr < v.end) vma = v;
  if (vma === undefined || vma.file === -1 || vma.driver !== '' || vma.pfnmap) return { kind: 'none' };
  const index = vma.pgoff + (addr - vma.start);
  for (const [i, pfn] of k.pagecache(vma.file)) if (i === index) return { kind: 'cached', pfn, where: 'page cache' };
  if (vma.shared) for (const [i, slot] of k.shmemSwap(vma.file)) if (i === index) return swapCache(slot);
  return { kind: 'none' };
}

/** Which side of a remote view changed, by the step that broke it (remote-coherence causes, first part). */
const SIDES = {
  'cow-break': 'the target broke COW',
  unmap: 'the target unmapped the page',
  dontneed: 'the target zapped the page with MADV_DONTNEED',
  free: 'the target freed the page with MADV_FREE',
  mremap: 'the target moved the page with mremap',
  exit: 'the target exited',
  'oom-kill': 'the target was OOM-killed',
  reclaim: 'reclaim took the page from the target',
  truncate: 'the file was truncated under the target',
  'never-resident': 'the page was not resident when it was mapped',
  'gup-error': 'get_user_pages_remote failed on a resident page',
  other: 'the target changed otherwise',
} as const;
type Side = keyof typeof SIDES;
/** How the view is wrong (second part). */
const HOWS = {
  'old-frame': 'the view maps the old frame',
  'zero-page': 'the view maps the zero page',
  'dead-mm': 'the view outlives the mm',
  'missing-sigbus': 'the view maps a page where SIGBUS is promised',
} as const;
type How = keyof typeof HOWS;

const REMOTE_COHERENCE_CAUSES: Cause[] = Object.entries(SIDES).flatMap(([side, s]) =>
  Object.entries(HOWS).map(([how, h]) => ({ id: `${side}:${how}`, title: `remote view incoherent: ${s}, ${h}`, ...(side === 'other' ? { unexplained: true as const } : {}) })));
// A store through the view's special PTE dirtied no page (vm_normal_page() is NULL, so
// zap_present_folio_ptes / try_to_unmap_one never move its dirty bit to the folio), and
// reclaim dropped the clean page-cache page: the target reads the backing store's old value.
REMOTE_COHERENCE_CAUSES.push({ id: 'reclaim:lost-write', title: 'remote view incoherent: a store through the view dirtied no page, and reclaim dropped the clean page (the write is lost)' });

/** Which side changed: the step just taken, as it touched the view's target. */
function sideOf(op: Op, view: RemoteView, shownZero: boolean, atSetup: boolean): Side {
  if (atSetup) return shownZero ? 'gup-error' : 'other';
  const t = view.target;
  const byTarget = 'pid' in op && op.pid === t;
  switch (op.op) {
    case 'exit': return byTarget ? 'exit' : 'other';
    case 'oom': return byTarget ? 'oom-kill' : 'other';
    case 'write': case 'read': if (!byTarget) break; return shownZero ? 'never-resident' : op.op === 'write' ? 'cow-break' : 'other';
    case 'proc_mem_write': case 'process_vm_writev': case 'proc_mem_read': case 'process_vm_readv':
      if (op.target !== t) break;
      // process_vm_readv pins (FOLL_PIN): on a COW-shared anonymous page that is an unshare, a COW break.
      return shownZero ? 'never-resident' : op.op === 'proc_mem_read' ? 'other' : 'cow-break';
    case 'munmap': return byTarget ? 'unmap' : 'other';
    case 'mmap': return byTarget ? 'unmap' : 'other';
    case 'madvise':
      // A hole punched in the file drops its page from every mapping, whoever punched it.
      if (op.advice === 'REMOVE') return 'truncate';
      if (!byTarget) break;
      return madviseSide(op.advice, shownZero);
    case 'mremap': return byTarget ? 'mremap' : 'other';
    // populate_vma_page_range of a VM_LOCKED range (mlock, mlockall(MCL_CURRENT), and mprotect
    // making a locked private VMA writable): a write fault on a private writable VMA breaks
    // COW as a store would, a read fault maps a page that was not resident.
    case 'mlock': case 'mlockall': case 'mprotect': if (!byTarget) break; return shownZero ? 'never-resident' : 'cow-break';
    case 'reclaim': return 'reclaim';
    case 'truncate': return 'truncate';
    default: break;
  }
  return 'other';
}

/** The side an madvise of the target's own range changed, by what the advice does to its pages. */
function madviseSide(advice: Advice, shownZero: boolean): Side {
  switch (advice) {
    case 'DONTNEED': return 'dontneed';
    // madvise_free_pte_range drops a swap entry at once (free_swap_and_cache); a present page
    // goes lazily, at reclaim (that step is the reclaim side).
    case 'FREE': return 'free';
    case 'PAGEOUT': case 'COLD': return 'reclaim';
    // madvise_populate: a write fault (FAULT_FLAG_WRITE) breaks COW as a store would; a read
    // fault maps a page that was not resident. Either way the same flaw as the store or the read.
    case 'POPULATE_WRITE': return shownZero ? 'never-resident' : 'cow-break';
    case 'POPULATE_READ': return shownZero ? 'never-resident' : 'other';
    // madvise_remove punches a hole (vfs_fallocate FALLOC_FL_PUNCH_HOLE): the page cache drops
    // the page and every mapping of it is zapped, as truncate does.
    case 'REMOVE': return 'truncate';
    default: return 'other';
  }
}

export const remoteCoherence: Invariant = {
  id: 'remote-coherence',
  holds: "a remote view shows the target's current page, or faults as its design promises; never an old copy",
  causes: REMOTE_COHERENCE_CAUSES,
  check({ k, remoteViews, op, step, ghost }) {
    const lost = ghost.lost[0];
    if (lost !== undefined) {
      return {
        invariant: 'remote-coherence', cause: 'reclaim:lost-write', pid: lost.pid, addr: lost.addr,
        message: `P${lost.pid} stored ${lost.value} at ${hex(lost.addr)} through its view of file ${lost.file} page ${lost.index}; ` +
          `a special PTE dirties no page, so ${op.op} at step ${(step ?? 0) + 1} dropped the clean page and the file reads ${lost.durable} again: the write is lost`,
      };
    }
    if (remoteViews.length === 0) return null; // nothing to judge; spares building the lookups
    const ptesOf = new Map<number, Map<number, { present: boolean; pfn: number; special: boolean }>>();
    const pteAt = (pid: number, addr: number) => {
      let m = ptesOf.get(pid);
      if (m === undefined) {
        m = new Map();
        for (const [a, pte] of k.ptes(pid)) m.set(a, pte.kind === 'present' ? { present: true, pfn: pte.pfn, special: pte.special } : { present: false, pfn: -1, special: false });
        ptesOf.set(pid, m);
      }
      return m.get(addr);
    };
    const vmaAt = (pid: number, addr: number) => {
      for (const v of k.vmas(pid)) if (v.start <= addr && addr < v.end) return v;
      return undefined;
    };
    for (const view of remoteViews) {
      if (view.onMissing === 'stale-ok') continue;
      const shown = pteAt(view.pid, view.addr);
      if (shown === undefined || !shown.present) continue;
      // A MAP_PRIVATE view that was written holds its own anonymous copy: that is the copy
      // semantics the user asked for, not a view any more.
      if (!shown.special && !vmaAt(view.pid, view.addr)?.shared && k.frame(shown.pfn)?.kind === 'anon') continue;
      const target = pteAt(view.target, view.targetAddr);
      if (target?.present && target.pfn === shown.pfn) continue;
      // Not mapped, but held in the swap cache or page cache: the target's next access maps
      // this same frame, so the view still shows the target's page.
      const now = target?.present ? { kind: 'present' as const, pfn: target.pfn } : residency(k, view.target, view.targetAddr);
      if (now.kind === 'cached' && now.pfn === shown.pfn) continue;
      const resident = now.kind === 'present' || now.kind === 'cached';
      const shownZero = shown.pfn === k.zeroPfn;
      if (!resident && shownZero && view.onMissing === 'zero') continue;
      // This step set this view up (a MAP_FIXED mmap elsewhere, of another view, set up another).
      const atSetup = op.op === 'mmap' && op.pid === view.pid && op.fd !== undefined &&
        (op.fixed !== true || (op.addr <= view.addr && view.addr < op.addr + op.lengthPages));
      // The zero page while the target has a page: whatever brought the page in (a fault, a
      // pwrite, a mapping or mremap onto the address), it was not resident when the view was set up.
      const side = shownZero && resident && !atSetup ? 'never-resident' : sideOf(op, view, shownZero, atSetup);
      const how: How = now.kind === 'gone' ? 'dead-mm' : !resident && view.onMissing === 'sigbus' ? 'missing-sigbus' : shownZero ? 'zero-page' : 'old-frame';
      return {
        invariant: 'remote-coherence', cause: `${side}:${how}`, pid: view.pid, addr: view.addr, pfn: shown.pfn,
        message: `P${view.pid} at ${hex(view.addr)} shows ${shownZero ? 'the zero page' : `pfn ${shown.pfn}`} as P${view.target}'s page ${hex(view.targetAddr)}: ` +
          coherenceWords(side, how, view.target, now, op, step ?? 0),
      };
    }
    return null;
  },
};

/** What went wrong, in the words of an mm developer. */
function coherenceWords(side: Side, how: How, t: number, now: Residency, op: Op, step: number): string {
  const at = `at step ${step + 1}`;
  const has = now.kind === 'present' ? `pfn ${now.pfn}` : now.kind === 'cached' ? `pfn ${now.pfn} in the ${now.where}` : 'no page there';
  if (how === 'dead-mm') {
    return side === 'oom-kill' ? `P${t} was OOM-killed and reaped ${at}, yet the mirror still maps a frame of its torn-down mm`
      : side === 'exit' ? `P${t} exited ${at}, yet the mirror still maps a frame of its torn-down mm`
      : `P${t} has exited, yet the mirror still maps a frame of its torn-down mm (noticed after ${op.op} ${at})`;
  }
  if (how === 'missing-sigbus') return `P${t} has no page there after ${SIDES[side]} (${op.op} ${at}), where the design promises SIGBUS; the mirror still maps a frame`;
  if (how === 'zero-page') {
    if (side === 'never-resident') return `the page was not resident when the mirror was set up, so it got the zero page; P${t} has ${has} since ${op.op} ${at}`;
    if (side === 'gup-error') return `get_user_pages_remote failed ${at} on a page P${t} has resident (${has}), and the error became the zero page`;
    return `the mirror maps the zero page, while P${t} has ${has} after ${op.op} ${at}`;
  }
  switch (side) {
    case 'cow-break': return `the mirror still maps the frame the target had before its COW break ${at}${op.op === 'process_vm_readv' ? ' (FOLL_PIN unshared the page)' : ''}; P${t} now has ${has}`;
    case 'unmap': return `the mirror still maps the frame P${t} had before it unmapped the page ${at}; P${t} now has ${has}`;
    case 'dontneed': return `the mirror still maps the frame P${t} had before MADV_DONTNEED zapped it ${at}; P${t} now has ${has}`;
    case 'free': return `the mirror still maps the frame P${t} had before MADV_FREE dropped it ${at}; P${t} now has ${has}`;
    case 'mremap': return `the mirror still maps the frame P${t} had before mremap moved it away ${at}; P${t} now has ${has}`;
    case 'reclaim': return `the mirror still maps a frame reclaim took from P${t} ${at}, which is in neither the swap cache nor the page cache; P${t} now has ${has}`;
    case 'oom-kill': return `the mirror still maps the frame the OOM reaper tore down in P${t} ${at} (__oom_reap_task_mm, before the victim exits); P${t} now has ${has}`;
    case 'truncate': return `the mirror still maps the frame ${op.op === 'madvise' ? 'MADV_REMOVE punched out of' : 'truncate dropped from'} the page cache ${at}; P${t} now has ${has}`;
    default: return `the mirror maps a frame P${t} does not have after ${op.op} ${at}; P${t} has ${has}`;
  }
}
