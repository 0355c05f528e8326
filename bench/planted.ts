/**
 * Planted bugs: does the default campaign find a bug nobody told it about, and how fast?
 * Each bug below is a one-line mistake of the kind a kernel developer makes — an off-by-one
 * split, a missed rmap update, a skipped notifier, a wrong reuse decision — planted alone in
 * a copy of this tree, which then runs `mapfuzz fuzz` on its defaults (diff kernel, core
 * operations and every strategy, two workers) for 30 s, seed 1 unless told, with a copy of corpus/ so the
 * designs' known flaws are recognised. Reported per bug: the new failures, when each was
 * found, its repro's length, and the files written (one bug should give one).
 *
 *     npx tsx bench/planted.ts            # every bug, about 35 s each
 *     npx tsx bench/planted.ts rmap-zap   # some of them, by name
 *     npx tsx bench/planted.ts --seed 2   # another campaign seed (default 1)
 *
 * A bug that no longer applies (the line it edits has changed) is reported as such, not
 * skipped in silence. Nothing in this tree is modified.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { jsonFilesBelow } from '../harness/merge.ts';

type Edit = { file: string; from: string; to: string };
type Bug = { what: string; edits: Edit[] };

/** Where both kernels share a mistake, it is planted in both (else `differential` finds it at once). */
const BUGS: Record<string, Bug> = {
  'split-pgoff': { what: 'VMA split: upper half pgoff off by one', edits: [{ file: 'impl/vma.ts', from: 'upper.pgoff = vma.pgoff + (addr - vma.start);', to: 'upper.pgoff = vma.pgoff + (addr - vma.start) - 1;' }] },
  'mprotect-no-end-split': { what: 'mprotect does not split at the end of the range', edits: [{ file: 'impl/mmap.ts', from: 'const e = splitAround(s, proc.mm, start, end);\n  if (e !== 0) return e;\n  const target', to: 'const e = splitAround(s, proc.mm, start, start);\n  if (e !== 0) return e;\n  const target' }] },
  'rmap-fork': { what: 'fork forgets the child\'s rmap entry', edits: [{ file: 'impl/fork.ts', from: '    s.rmap.add(pfn, child.pid, addr);\n', to: '' }] },
  'rmap-zap': { what: 'zap forgets page_remove_rmap', edits: [{ file: 'impl/zap.ts', from: '  s.rmap.remove(pfn, mm.pid, addr);\n', to: '' }] },
  'notify-cow': { what: 'COW break skips the MMU notifiers', edits: [{ file: 'impl/fault.ts', from: "  invalidateRange(s, proc.pid, addr, addr + 1, 'clear');\n  pt.clear(addr);", to: '  pt.clear(addr);' }] },
  'notify-mprotect': { what: 'mprotect skips the MMU notifiers', edits: [{ file: 'impl/mmap.ts', from: "    invalidateRange(s, proc.pid, start, end, 'protection'); // change_protection\n", to: '' }] },
  'cow-reuse': { what: 'COW reuse decided on mapcount, not refcount', edits: [{ file: 'impl/fault.ts', from: '  return s.pool.refcount[pfn] === 1;\n}', to: '  return s.pool.mapcount[pfn] === 1;\n}' }] },
  'fork-swap-dup': { what: 'fork of a swap PTE does not take a swap count', edits: [{ file: 'impl/fork.ts', from: '      swapDuplicate(s, idx);\n', to: '' }] },
  'pt-free-early': { what: 'a page directory freed with an entry left', edits: [{ file: 'impl/pagetable.ts', from: '    if (d2.count > 0) return;', to: '    if (d2.count > 1) return;' }] },
  'reclaim-pinned': { what: 'reclaim evicts a pinned page', edits: [{ file: 'impl/reclaim.ts', from: '    if (pool.pins(pfn) > 0) return false;\n', to: '' }] },
  'reclaim-rss': { what: 'reclaim forgets the RSS counter', edits: [{ file: 'impl/reclaim.ts', from: '  proc.mm.rss[rssCounterOf(s, pfn)] -= 1;\n  putPage(s, pfn);\n}', to: '  putPage(s, pfn);\n}' }] },
  'munmap-short': { what: 'munmap zaps one page short', edits: [{ file: 'impl/mmap.ts', from: "zapRange(s, proc, vma.start, vma.end, 'unmap');", to: "zapRange(s, proc, vma.start, vma.end - 1, 'unmap');" }] },
  'pfn-reuse': { what: 'a pfn a PFN map exposed is reused', edits: [{ file: 'impl/framepool.ts', from: '    if ((this.flags[pfn] & F_EXPOSED) !== 0) return;\n    this.lruNext[pfn] = this.freeHead;', to: '    this.lruNext[pfn] = this.freeHead;' }] },
  'leaf-cache': { what: 'the page table\'s leaf cache outlives the leaf', edits: [{ file: 'impl/pagetable.ts', from: '    if (hi === this.cacheBase) {\n      this.cacheBase = -1;\n      this.cacheLeaf = null;\n    }\n', to: '' }] },
  'mremap-rmap': { what: 'mremap does not move the rmap entries', edits: [{ file: 'impl/mremap.ts', from: '    if ((flags & PTE_PRESENT) !== 0 && (flags & PTE_SPECIAL) === 0) s.rmap.move(idx, proc.pid, at, to);\n', to: '' }] },
  'swapin-reuse': { what: 'swap-in reuses a page another reference holds', edits: [{ file: 'impl/fault.ts', from: 'const reuse = (pteFlags & PTE_EXCLUSIVE) !== 0 || pool.refcount[pfn] === 1;', to: 'const reuse = (pteFlags & PTE_EXCLUSIVE) !== 0 || pool.refcount[pfn] <= 2;' }] },
  'notify-reclaim': { what: 'reclaim skips the MMU notifiers', edits: [{ file: 'impl/reclaim.ts', from: "    if ((pool.flags[pfn] & F_ANON_EXCLUSIVE) !== 0 && pool.pins(pfn) > 0) return false;\n    invalidateRange(s, pid, addr, addr + 1, 'clear');\n", to: '    if ((pool.flags[pfn] & F_ANON_EXCLUSIVE) !== 0 && pool.pins(pfn) > 0) return false;\n' }] },
  'notify-dontneed': { what: 'MADV_DONTNEED skips the MMU notifiers', edits: [{ file: 'impl/zap.ts', from: '  invalidateRange(s, proc.pid, start, end, event);\n  const mm', to: "  if (event !== 'clear') invalidateRange(s, proc.pid, start, end, event);\n  const mm" }] },
  'notify-fork': { what: 'fork write-protects the parent without the MMU notifiers', edits: [{ file: 'impl/fork.ts', from: "  if (isCowMapping(vma)) invalidateRange(s, parent.pid, vma.start, vma.end, 'protection');\n", to: '' }] },
  'notify-mremap': { what: 'mremap moves PTEs without the MMU notifiers', edits: [{ file: 'impl/mremap.ts', from: "  invalidateRange(s, proc.pid, addr, addr + oldPages, 'unmap');\n", to: '' }] },
  'notify-soft-dirty': { what: 'clear_refs (soft-dirty) write-protects without the MMU notifiers', edits: [{ file: 'impl/pagemap.ts', from: "  for (const vma of vmas) vma.softDirty = false;\n  invalidateRange(s, target.pid, 0, s.config.taskSizePages, 'protection'); // MMU_NOTIFY_SOFT_DIRTY\n", to: '  for (const vma of vmas) vma.softDirty = false;\n' }] },
  'itree-edge': { what: 'the notifier interval tree misses an interval ending one page into the range', edits: [{ file: 'impl/intervaltree.ts', from: '    if (n.end > start) out.push(n.item);', to: '    if (n.end > start + 1) out.push(n.item);' }] },
  'driver-put-page': { what: 'a fault handler forgets put_page (proc-mem-notify)', edits: [{ file: 'strategies/proc-mem-notify.ts', from: '      const r = this.k.vmf_insert_pfn(vma, addr, pfn);\n      this.k.put_page(pfn);\n      return r;', to: '      const r = this.k.vmf_insert_pfn(vma, addr, pfn);\n      return r;' }] },
  'wp-copy-mapcount': { what: 'wp_page_copy keeps the old page\'s mapcount (both kernels)', edits: [
    { file: 'model/fault.ts', from: '    old.mapcount -= 1;\n    proc.mm.rss[rssCounterOf(old)] -= 1;\n', to: '    proc.mm.rss[rssCounterOf(old)] -= 1;\n' },
    { file: 'impl/fault.ts', from: '    pool.mapcount[old] -= 1;\n', to: '' },
  ] },
  'zap-swap-slot': { what: 'zapping a swap PTE keeps its slot (both kernels)', edits: [
    { file: 'model/zap.ts', from: '    mm.rss.swap -= 1;\n    freeSwapAndCache(s, pte.slot);\n    return;', to: '    mm.rss.swap -= 1;\n    return;' },
    { file: 'impl/zap.ts', from: '    mm.rss.swap -= 1;\n    freeSwapAndCache(s, idx);\n    return;', to: '    mm.rss.swap -= 1;\n    return;' },
  ] },
};

const ROOT = join(import.meta.dirname, '..');
const SECONDS = 30;

/** This tree, as files on disk (node_modules linked, .git left out). */
function copyTree(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mapfuzz-planted-'));
  for (const name of readdirSync(ROOT)) {
    if (name === 'node_modules' || name === '.git' || name === 'scratch') continue;
    cpSync(join(ROOT, name), join(dir, name), { recursive: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

/** The repro files of a corpus, relative to it. */
const corpusFiles = (dir: string): string[] => jsonFilesBelow([dir]).map((f) => relative(dir, f));

function plant(name: string): string {
  const dir = copyTree();
  try {
    for (const edit of BUGS[name].edits) {
      const path = join(dir, edit.file);
      const text = readFileSync(path, 'utf8');
      const places = text.split(edit.from).length - 1;
      if (places !== 1) return `${name}: does not apply (${edit.file} has the line it edits ${places} times, not once)`;
      writeFileSync(path, text.replace(edit.from, edit.to));
    }
    const json = join(dir, 'planted.json');
    const before = new Set(corpusFiles(join(dir, 'corpus')));
    const r = spawnSync(process.execPath, [join(dir, 'bin', 'mapfuzz.mjs'), 'fuzz', '--time', String(SECONDS), '--seed', SEED, '--json', json], { cwd: dir, encoding: 'utf8' });
    if (r.status === 2) return `${name}: fuzz refused to run: ${r.stderr.trim()}`;
    const report = JSON.parse(readFileSync(json, 'utf8')) as { runs: number; failures: { strategy: string; invariant: string; ops: unknown[]; known: boolean; held: boolean; foundAfterMs: number }[] };
    const fresh = report.failures.filter((f) => !f.known);
    const written = corpusFiles(join(dir, 'corpus')).filter((f) => !before.has(f));
    const found = fresh.length === 0 ? `not found in ${SECONDS} s (${report.runs} traces)`
      : fresh.map((f) => `${f.held ? 'held back: ' : ''}${f.strategy} ${f.invariant}, ${f.ops.length} steps, at ${(f.foundAfterMs / 1000).toFixed(1)} s`).join('; ');
    return `${name} (${BUGS[name].what}): ${found}; files written: ${written.length === 0 ? 'none' : written.join(', ')}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const args = process.argv.slice(2);
const seedAt = args.indexOf('--seed');
const SEED = seedAt === -1 ? '1' : args.splice(seedAt, 2)[1];
if (!/^\d+$/.test(SEED ?? '')) {
  console.error('planted: --seed takes an integer');
  process.exit(2);
}
const asked = args;
const unknown = asked.find((name) => !(name in BUGS));
if (unknown !== undefined) {
  console.error(`planted: no bug called ${unknown} (known: ${Object.keys(BUGS).join(', ')})`);
  process.exit(2);
}
const count = asked.length > 0 ? asked.length : Object.keys(BUGS).length;
console.log(`planting ${count} bug${count === 1 ? '' : 's'}, one at a time, in copies of ${relative(process.cwd(), ROOT) || '.'}; git ${execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()}`);
for (const name of asked.length > 0 ? asked : Object.keys(BUGS)) console.log(plant(name));
