/** Types for swap.mjs (a swap file for the oracle's runs). */
export declare const SWAP_DIR: string;
export declare const SWAP_MIB: number;
export declare function swapAreas(): string[] | null;
export declare function cleanupStale(dir?: string): string[];
export declare function enableSwap(opts?: { dir?: string; mib?: number }):
  | { ok: true; made: string | null; areas: string[]; teardown: () => string | null }
  | { ok: false; reason: string };
