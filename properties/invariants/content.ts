/**
 * Invariants over contents: what a process reads equals what ghost memory says it must
 * (cow-isolation), files change only through write paths (file-integrity), and every
 * remote view shows its target's current page (remote-coherence).
 */
import type { Invariant, Violation } from './types.ts';
import { hex } from '../../kernel-api/format.ts';

export const cowIsolation: Invariant = {
  id: 'cow-isolation',
  holds: 'what a process reads equals what ghost memory says it must read',
  check({ op, outcome, ghost }) {
    let pid: number;
    let addr: number;
    let how: string;
    switch (op.op) {
      case 'read': pid = op.pid; addr = op.addr; how = 'read'; break;
      case 'proc_mem_read': pid = op.target; addr = op.addr; how = `/proc/${op.target}/mem read by P${op.pid}`; break;
      case 'process_vm_readv': pid = op.target; addr = op.addr; how = `process_vm_readv by P${op.pid}`; break;
      case 'pread': {
        if (outcome.kind !== 'ok') return null;
        const size = ghost.fileSizePages(op.file) ?? 0;
        const want = op.index >= size ? -1 : ghost.fileValue(op.file, op.index);
        return outcome.value === want ? null
          : { invariant: 'cow-isolation', message: `pread of file ${op.file} page ${op.index} returned ${outcome.value}, ghost memory says ${want}` };
      }
      default: return null;
    }
    const want = ghost.expect(pid, addr);
    const v: Violation = { invariant: 'cow-isolation', pid, addr, message: '' };
    if (outcome.kind === 'ok') {
      if (want.kind === 'value' && want.value !== outcome.value) return { ...v, message: `${how} of P${pid} at ${hex(addr)} returned ${outcome.value}, ghost memory says ${want.value}` };
      if (want.kind === 'sigbus' && op.op === 'read') return { ...v, message: `${how} of P${pid} at ${hex(addr)} returned ${outcome.value}, but the page lies past the end of its file (SIGBUS)` };
      if (want.kind === 'unmapped') return { ...v, message: `${how} of P${pid} at ${hex(addr)} returned ${outcome.value}, but nothing is mapped there` };
    }
    if (outcome.kind === 'signal' && outcome.signal === 'SIGBUS' && want.kind === 'value') {
      return { ...v, message: `${how} of P${pid} at ${hex(addr)} raised SIGBUS, ghost memory says it holds ${want.value}` };
    }
    return null;
  },
};

export const fileIntegrity: Invariant = {
  id: 'file-integrity',
  holds: "a file's contents change only through write/pwrite or a shared writable mapping",
  check({ k, ghost }) {
    for (const f of k.files()) {
      if (f.shmem) continue;
      const size = ghost.fileSizePages(f.id);
      if (size !== f.sizePages) return { invariant: 'file-integrity', message: `file ${f.id} has ${f.sizePages} pages, ghost memory says ${size}` };
      const values = new Map<number, number>(k.backing(f.id));
      for (const [index, pfn] of k.pagecache(f.id)) values.set(index, k.frame(pfn)?.value ?? NaN);
      for (const [index, value] of values) {
        if (index < size && value !== ghost.fileValue(f.id, index)) {
          return { invariant: 'file-integrity', message: `file ${f.id} page ${index} holds ${value}, but only ${ghost.fileValue(f.id, index)} was ever written there` };
        }
      }
    }
    return null;
  },
};

export const remoteCoherence: Invariant = {
  id: 'remote-coherence',
  holds: "a remote view shows the target's current page, or faults as its design promises; never an old copy",
  check({ k, remoteViews }) {
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
      if (!target?.present && shown.pfn === k.zeroPfn && view.onMissing === 'zero') continue;
      const now = target?.present ? `pfn ${target.pfn}` : 'no resident page';
      return {
        invariant: 'remote-coherence', pid: view.pid, addr: view.addr, pfn: shown.pfn,
        message: `P${view.pid} at ${hex(view.addr)} shows pfn ${shown.pfn} as P${view.target}'s page ${hex(view.targetAddr)}, which now has ${now}`,
      };
    }
    return null;
  },
};
