/** Types for build.mjs (the oracle's on-demand build). */
export declare const ORACLE_SOURCE: string;
export declare const ORACLE_BINARY: string;
export declare function compileC(source: string, binary: string): { ok: true; warnings: string } | { ok: false; reason: string };
export declare function buildOracle(opts?: { force?: boolean }): { ok: true; binary: string } | { ok: false; reason: string };
