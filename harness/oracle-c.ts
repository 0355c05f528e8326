/**
 * C reproducers, as syzkaller gives kernel developers: `reproToC(ops)` turns a trace's
 * kernel subset into one standalone C11 file that performs it with plain syscalls on the
 * running kernel and prints, after every step, the outcome and what /proc/<pid>/maps and
 * /proc/<pid>/pagemap show. The program is the oracle's replayer (kernel-oracle/oracle.c)
 * with the trace compiled in, preceded by the trace as a numbered story of syscalls, so a
 * reader sees what happens and a compiler needs nothing but libc and Linux headers:
 *
 *   cc -std=c11 -o repro repro.c && ./repro
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Op } from '../kernel-api/op.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import { formatOutcome } from '../kernel-api/outcome.ts';
import { oracleConfig, runModel } from './oracle.ts';

const ORACLE_C = join(dirname(fileURLToPath(import.meta.url)), '..', 'kernel-oracle', 'oracle.c');
const REGION_BASE = 0x2000_0000_0000;
const PAGE_BYTES = 4096;

const hex = (page: number) => `0x${(REGION_BASE + page * PAGE_BYTES).toString(16)}`;

function protText(prot: number): string {
  const bits = [[1, 'PROT_READ'], [2, 'PROT_WRITE'], [4, 'PROT_EXEC']] as const;
  const names = bits.filter(([b]) => (prot & b) !== 0).map(([, n]) => n);
  return names.length === 0 ? 'PROT_NONE' : names.join('|');
}

/** The syscall one oracle line performs, as a reader would write it. */
function syscallText(line: string): string {
  const [name, ...w] = line.split(' ');
  const n = w.map(Number);
  switch (name) {
    case 'spawn': return `P = fork() of the replayer, setresuid(${n[0]}), prctl(PR_SET_DUMPABLE, 1)`;
    case 'creat': return `f${'#'} = open(O_CREAT|O_RDWR), ftruncate(${n[0]} pages)`;
    case 'pread': return `pread(file ${n[0]}, 4 bytes, page ${n[1]})`;
    case 'pwrite': return `pwrite(file ${n[0]}, ${n[2]}, page ${n[1]})`;
    case 'truncate': return `ftruncate(file ${n[0]}, ${n[1]} pages)`;
    case 'mmap': {
      const flags = [n[4] ? 'MAP_SHARED' : 'MAP_PRIVATE', n[6] < 0 ? 'MAP_ANONYMOUS' : '', ['', 'MAP_FIXED', 'MAP_FIXED_NOREPLACE', 'MAP_FIXED_NOREPLACE'][n[5]]].filter((x) => x !== '');
      const fd = n[6] < 0 ? '-1' : `open(file ${n[6]}, ${n[8] ? 'O_RDWR' : 'O_RDONLY'})`;
      return `P${n[0]}: mmap(${hex(n[1])}, ${n[2]} pages, ${protText(n[3])}, ${flags.join('|')}, ${fd}, page ${n[7]})`;
    }
    case 'munmap': return `P${n[0]}: munmap(${hex(n[1])}, ${n[2]} pages)`;
    case 'mprotect': return `P${n[0]}: mprotect(${hex(n[1])}, ${n[2]} pages, ${protText(n[3])})`;
    case 'madvise': return `P${n[0]}: madvise(${hex(n[1])}, ${n[2]} pages, MADV_${w[3]})`;
    case 'mremap': {
      const flags = [n[4] ? 'MREMAP_MAYMOVE' : '', n[5] ? 'MREMAP_FIXED' : ''].filter((x) => x !== '').join('|') || '0';
      return `P${n[0]}: mremap(${hex(n[1])}, ${n[2]} pages, ${n[3]} pages, ${flags}${n[5] ? `, ${hex(n[6])}` : ''})`;
    }
    case 'read': return `P${n[0]}: *(uint32_t *)${hex(n[1])}`;
    case 'write': return `P${n[0]}: *(uint32_t *)${hex(n[1])} = ${n[2]}`;
    case 'fork': return `P${n[0]}: fork()`;
    case 'exit': return `P${n[0]}: _exit(0)`;
    case 'set_dumpable': return `P${n[0]}: prctl(PR_SET_DUMPABLE, ${n[1]})`;
    case 'proc_mem_read': return `P${n[0]}: pread(open("/proc/<P${n[1]}>/mem"), 4 bytes, ${hex(n[2])})`;
    case 'proc_mem_write': return `P${n[0]}: pwrite(open("/proc/<P${n[1]}>/mem"), ${n[3]}, ${hex(n[2])})`;
    case 'process_vm_readv': return `P${n[0]}: process_vm_readv(<P${n[1]}>, 4 bytes at ${hex(n[2])})`;
    case 'process_vm_writev': return `P${n[0]}: process_vm_writev(<P${n[1]}>, ${n[3]} at ${hex(n[2])})`;
    case 'pagemap_read': return `P${n[0]}: pread(open("/proc/<P${n[1]}>/pagemap"), ${n[3]} entries, from ${hex(n[2])})`;
    case 'clear_refs': return `P${n[0]}: write(open("/proc/<P${n[1]}>/clear_refs", O_WRONLY), "${n[2]}")`;
    case 'map_files_readdir': return `P${n[0]}: readdir(opendir("/proc/<P${n[1]}>/map_files"))`;
    case 'uffd_register_wp':
      return `P${n[0]}: userfaultfd(O_CLOEXEC|UFFD_USER_MODE_ONLY), UFFDIO_API(WP_ASYNC|WP_UNPOPULATED), UFFDIO_REGISTER(${hex(n[1])}, ${n[2]} pages, MODE_WP)`;
    case 'pagemap_scan': {
      // START and END are bytes from the region's base.
      const at = (bytes: number) => `0x${(REGION_BASE + bytes).toString(16)}`;
      const flags = [n[4] & 1 ? 'PM_SCAN_WP_MATCHING' : '', n[4] & 2 ? 'PM_SCAN_CHECK_WPASYNC' : '', n[4] & ~3 ? `0x${(n[4] & ~3).toString(16)}` : '']
        .filter((x) => x !== '').join('|') || '0';
      const cat = (x: number) => `0x${x.toString(16)}`;
      return `P${n[0]}: ioctl(open("/proc/<P${n[1]}>/pagemap"), PAGEMAP_SCAN, {size ${n[12]}, start ${at(n[2])}, end ${at(n[3])}, flags ${flags}, ` +
        `vec ${n[11] ? 'NULL' : 'buf'}, vec_len ${n[10]}, max_pages ${n[5]}, inverted ${cat(n[6])}, mask ${cat(n[7])}, anyof ${cat(n[8])}, return ${cat(n[9])}})`;
    }
    default: return line;
  }
}

const cString = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/**
 * A standalone C program performing `ops` (every operation must be in the oracle's subset).
 * Non-fixed placements are resolved by the model first, so the program maps exactly where
 * the model did; the story shows the model's outcome beside each step.
 */
export function reproToC(ops: readonly Op[], config: Readonly<KernelConfig> = oracleConfig()): string {
  const model = runModel(ops, config);
  const story = model.lines.map((line, i) =>
    ` *  ${String(i + 1).padStart(3)}. ${syscallText(line).padEnd(90)} model: ${formatOutcome(model.steps[i].outcome)}`);
  const lines = model.lines.map((line, i) => `  ${cString(line)}, /* ${i + 1} */`);
  const interleaved = ops.some((op) => op.switches !== undefined);
  return [
    '/*',
    ...(interleaved ? [
      ' * CONCURRENT REPRO: in mapfuzz some of these operations started nested, at a scheduling point',
      ' * inside another (the story tells where). This program runs them one after the other, in the',
      ' * order they started; the real kernel will not follow the recorded interleaving, so it shows',
      ' * the sequential outcome, not the race.',
      ' *',
    ] : []),
    ' * mapfuzz C reproducer: replays a trace on the running Linux kernel with plain syscalls and',
    ' * prints, per step, the outcome and the observation (maps and pagemap inside the region).',
    ` * Emulated page a is address ${hex(0)} + a * 4096. Build: cc -std=c11 -o repro repro.c`,
    ' *',
    ' * The trace:',
    ...story,
    ' */',
    '#define ORACLE_TRACE 1',
    'static const char *const trace_lines[] = {',
    ...lines,
    '  0,',
    '};',
    '',
    readFileSync(ORACLE_C, 'utf8'),
  ].join('\n');
}
