/**
 * Time-boxed measurement: an operation runs in timed batches, the untimed reset between
 * batches restoring the state it consumed, until a round's budget of timed work is spent;
 * the result is the median ops/s of several rounds. Batches grow until one takes about a
 * millisecond, so the clock's cost stays out of fast operations and slow ones run once.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { readFileSync } from 'node:fs';

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

/**
 * One benchmarked operation: `run()` does the next op; `refill()`, untimed after every
 * batch, makes room for `batchMax` more (fresh pages to fault, a new child to COW against).
 */
export type Bench = {
  batchMax: number;
  run: () => void;
  refill: () => void;
};

export type Budget = { roundMs: number; rounds: number };

export type Measured = { opsPerSec: number; ops: number; rounds: number };

const BATCH_TARGET_MS = 1;

export function measure(b: Bench, budget: Budget): Measured {
  const rates: number[] = [];
  let batch = 1;
  let ops = 0;
  b.refill();
  for (let r = 0; r < budget.rounds; r++) {
    collectGarbage();
    let ns = 0;
    let done = 0;
    while (ns < budget.roundMs * 1e6) {
      const n = Math.min(batch, b.batchMax);
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) b.run();
      const dt = Number(process.hrtime.bigint() - t0);
      ns += dt;
      done += n;
      b.refill();
      if (dt < BATCH_TARGET_MS * 1e6) batch *= 2;
    }
    rates.push(done / (ns / 1e9));
    ops += done;
  }
  rates.sort((x, y) => x - y);
  return { opsPerSec: rates[Math.floor(rates.length / 2)], ops, rounds: budget.rounds };
}

/** The main thread's CPU time in ms: Linux's schedstat (ns on the CPU), else the process's user + system time. */
export function mainThreadCpuMs(): number {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }
}
