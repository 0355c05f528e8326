// The ablated tree of bench/lockcost.ts --ablate: `--import` this after tsx, and every
// import of kernel-api/locks.ts gets bench/ablate/locks.ts instead (hooks.mjs).
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
