/**
 * The strategies: every remote-mapping design the harness can load, in a fixed order.
 * A new strategy is one file in this folder plus one line here.
 */
import type { StrategyDefinition } from '../kernel-api/strategy.ts';
import { procMemMmap } from './proc-mem-mmap.ts';
import { pidfdMem } from './pidfd-mem.ts';
import { kbufFault } from './kbuf-fault.ts';
import { kbufRemap } from './kbuf-remap.ts';
import { mapFiles } from './map-files.ts';
import { procMemNotify } from './proc-mem-notify.ts';
import { pinBuffers } from './pin-buffers.ts';
import { kbufInsert, kbufInsertKmalloc } from './kbuf-insert.ts';

export const STRATEGIES: readonly StrategyDefinition[] = [procMemMmap, pidfdMem, kbufFault, kbufRemap, mapFiles, procMemNotify, pinBuffers, kbufInsert, kbufInsertKmalloc];

/** The strategy called `name`, or undefined. */
export function strategyByName(name: string): StrategyDefinition | undefined {
  return STRATEGIES.find((s) => s.name === name);
}

export { procMemMmap, pidfdMem, kbufFault, kbufRemap, mapFiles, procMemNotify, pinBuffers, kbufInsert, kbufInsertKmalloc };
