// Entry of a harness worker thread: TypeScript through tsx, then the module named in
// workerData.entry (harness/worker.ts, the campaign worker, by default).
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(new URL(workerData?.entry ?? './worker.ts', import.meta.url).href);
