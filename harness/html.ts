/**
 * A repro's story as one self-contained HTML page (no external assets): the same steps as
 * `mapfuzz show`, and after each step every process's address space drawn as a bar of
 * VMAs, each page a cell coloured by its state (present and exclusive, shared, file,
 * swapped, the zero page, not faulted in). A small inline script checks after layout that
 * every bar was drawn and records it on the page, so a browser test can read it.
 */
import type { MapRange, Observation, PageObservation, ProcessObservation } from '../kernel-api/observation.ts';
import type { Repro } from './repro.ts';
import { endsAsExpected, outsideEnding, storyOf, unexpectedEnding, type Hung, type OutsideVerdict, type StoryEnd, type StoryStep } from './story.ts';
import { hex } from '../kernel-api/format.ts';

/** Cells drawn per VMA at most; a longer VMA is drawn with its first and last pages and a gap. */
const CELLS_PER_VMA_MAX = 48;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function pageState(p: PageObservation | undefined): { cls: string; text: string } {
  if (p === undefined) return { cls: 'none', text: 'not faulted in' };
  if (p.swapped) return { cls: 'swap', text: `swapped, value ${p.value}` };
  if (p.frame === 0) return { cls: 'zero', text: 'the zero page' };
  const frame = `F${p.frame} ref=${p.refcount} map=${p.mapcount}, value ${p.value}`;
  if (p.file) return { cls: 'file', text: `file/shmem ${frame}` };
  return p.exclusive ? { cls: 'excl', text: `anon exclusive ${frame}` } : { cls: 'shared', text: `anon shared ${frame}` };
}

function cellsOf(m: MapRange): number[] {
  const n = m.end - m.start;
  if (n <= CELLS_PER_VMA_MAX) return Array.from({ length: n }, (_, i) => m.start + i);
  const half = CELLS_PER_VMA_MAX / 2;
  return [...Array.from({ length: half }, (_, i) => m.start + i), -1, ...Array.from({ length: half }, (_, i) => m.end - half + i)];
}

function vmaHtml(m: MapRange, pages: Map<number, PageObservation>): string {
  const cells = cellsOf(m).map((addr) => {
    if (addr < 0) return `<span class="gap" title="${m.end - m.start - CELLS_PER_VMA_MAX} pages not drawn">…</span>`;
    const st = pageState(pages.get(addr));
    return `<span class="pg ${st.cls}" title="${esc(`${hex(addr)}: ${st.text}`)}"></span>`;
  }).join('');
  const label = `[${hex(m.start)}-${hex(m.end)}) ${m.perms} ${m.backing}`;
  return `<div class="vma ${m.perms.endsWith('s') ? 'vshared' : 'vprivate'}" title="${esc(label)}"><div class="vlabel">${esc(label)}</div><div class="cells">${cells}</div></div>`;
}

function processHtml(p: ProcessObservation): string {
  const pages = new Map(p.pages.map((x) => [x.addr, x]));
  const vmas = p.maps.map((m) => vmaHtml(m, pages)).join('') || '<span class="empty">no mappings</span>';
  return `<div class="proc" data-pid="${p.pid}"><div class="pid">P${p.pid}<small>${esc(p.state)}</small></div><div class="bar">${vmas}</div></div>`;
}

function machineHtml(o: Observation): string {
  const procs = o.processes.map(processHtml).join('');
  return `<div class="machine">${procs || '<span class="empty">no processes</span>'}<div class="counts">frames in use ${o.framesInUse}, swap slots ${o.swapSlotsInUse}</div></div>`;
}

function stepHtml(step: StoryStep): string {
  const changes = step.changes.length === 0 ? '' : `<pre class="changes">${esc(step.changes.map((l) => l.trim()).join('\n'))}</pre>`;
  const broken = step.violation === null ? '' : ' broken';
  const nested = step.preempted === undefined ? '' : `<p class="preempted">↳ ${esc(step.preempted)}</p>`;
  return `<section class="step${broken}" data-step="${step.index}"><h2><span class="n">${step.index}.</span> <code>${esc(step.call)}</code> <span class="res">${esc(step.result)}</span></h2>` +
    `${nested}${changes}${machineHtml(step.after)}</section>`;
}

const STYLE = `
.preempted { margin: 0.2em 0 0.4em 2em; color: #7a4b00; font-style: italic; }
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:75em}
h1{font-size:1.3em} h2{font-size:1em;font-weight:normal;margin:.2em 0} code{font-size:1.05em}
.res{color:#555} .step{border-left:3px solid #ccd;padding:.3em .8em;margin:.6em 0}
.step.broken{border-color:#c22;background:#fff4f4}
.changes{margin:.2em 0;color:#444;font-size:12px;white-space:pre-wrap}
.proc{display:flex;align-items:flex-start;margin:.25em 0}
.pid{width:4em;font-weight:bold} .pid small{display:block;font-weight:normal;color:#777}
.bar{display:flex;flex-wrap:wrap;gap:6px;min-height:1.2em;min-width:2em}
.vma{border:1px solid #889;border-radius:3px;padding:2px;background:#f4f6fa}
.vma.vshared{border-style:dashed} .vlabel{font-size:10px;color:#555;white-space:nowrap}
.cells{display:flex;flex-wrap:wrap;max-width:32em}
.pg{display:inline-block;width:10px;height:14px;margin:1px;border-radius:2px;background:#e3e3e3}
.pg.excl{background:#3a7bd5} .pg.shared{background:#8e5bd0} .pg.file{background:#2f9e6e}
.pg.swap{background:#e0a030} .pg.zero{background:#fff;border:1px solid #999;width:8px;height:12px}
.gap{font-size:10px;padding:0 3px} .counts{font-size:11px;color:#777} .empty{color:#999;font-size:12px}
#broken{margin:1em 0;padding:.6em;border:2px solid #c22;color:#900;font-weight:bold}
#held{margin:1em 0;padding:.6em;border:2px solid #2a2;color:#060}
.legend span{display:inline-block;margin-right:1em} .legend .pg{vertical-align:middle}
`;

/** After layout: every drawn VMA has a size; the count of steps and bars is written on the page. */
const SCRIPT = `
addEventListener('DOMContentLoaded', () => {
  const steps = document.querySelectorAll('section.step').length;
  const vmas = [...document.querySelectorAll('.vma')];
  const drawn = vmas.every((v) => { const r = v.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
  const out = document.getElementById('rendered');
  out.dataset.steps = String(steps);
  out.dataset.vmas = String(vmas.length);
  out.dataset.drawn = drawn ? 'yes' : 'no';
  out.textContent = steps + ' steps, ' + vmas.length + ' VMAs drawn';
});
`;

/** The story as one self-contained page, and whether it ended as the repro expects (in this thread, no time limit). */
export function storyHtml(r: Repro): { html: string; asExpected: boolean } {
  const story = storyOf(r);
  return storyPage(r, story.steps, { ...story, length: story.steps.length });
}

/** The page of the steps told, ending as `end` says, or at the step that ran past the time limit (`hung`). */
export function storyPage(r: Repro, steps: readonly StoryStep[], end: StoryEnd, hung: Hung | null = null, outside?: OutsideVerdict): { html: string; asExpected: boolean } {
  const asExpected = hung === null && outside !== undefined ? outsideEnding(outside).asExpected : endsAsExpected(r, end, hung);
  const legend = [['excl', 'anon, exclusive'], ['shared', 'anon, shared'], ['file', 'file or shmem'], ['swap', 'swapped'], ['zero', 'zero page'], ['none', 'not faulted in']]
    .map(([c, t]) => `<span><span class="pg ${c}"></span> ${t}</span>`).join('');
  const ending = hung !== null
    ? `<div id="broken" data-invariant="hang">HANG at step ${hung.step}: ${esc(hung.message)}</div>`
    : outside !== undefined
      ? `<div id="held">${esc(outsideEnding(outside).line)}</div>`
      : end.broken === null
      ? '<div id="held">every invariant held</div>'
      : `<div id="broken" data-invariant="${esc(end.broken.invariant)}">BROKEN ${esc(end.broken.invariant)}: ${esc(end.broken.message)}</div>`;
  const verdict = asExpected ? '' : `\n<div id="unexpected">${esc(unexpectedEnding(r))}</div>`;
  const html = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(r.title)}</title><style>${STYLE}</style></head>
<body>
<h1>${esc(r.title)}</h1>
<p>${esc(end.header[1])}; ${r.ops.length} operations, seed ${r.seed}.</p>
<p class="legend">${legend}</p>
${steps.map(stepHtml).join('\n')}
${ending}${verdict}
<p id="rendered" class="counts"></p>
<script>${SCRIPT}</script>
</body></html>
`;
  return { html, asExpected };
}
