/**
 * A repro's story told under the step time limit, as `mapfuzz show` tells it: walkStory runs
 * on a worker thread and hands each step over as it runs; a step that runs past the limit
 * ends the story there — the steps before it told, then which step hung — and the worker is
 * terminated, so a `hang` repro (or any repro that hangs) is reported, never waited on.
 * The worker stays at most WINDOW steps ahead of what the caller has taken, so a long story
 * streams in bounded memory however fast it is told.
 */
import { MessageChannel, receiveMessageOnPort, Worker, workerData, type MessagePort } from 'node:worker_threads';
import type { Repro } from './repro.ts';
import type { Hung, StoryEnd, StoryStep } from './story.ts';
import { formatOp, storyHeader } from './story.ts';

/** Shared counters: steps told, steps the caller took, whether the worker waits for the caller, whether it started. */
const TOLD = 0;
const TAKEN = 1;
const WAITING = 2;
const STARTED = 3;
/** Steps the worker may run ahead of the caller. */
const WINDOW = 256;

type Boot = { entry: './story-limited.ts'; flag: SharedArrayBuffer; port: MessagePort; repro: Repro; keepMachine: boolean };
type Message = { step: StoryStep } | { end: StoryEnd } | { error: string };

export type LimitedStoryEnd = StoryEnd & { hung: Hung | null };

/** What a story told in text needs of a step: not the machine after it (`keepMachine` false drops it before it is sent). */
const NO_MACHINE = { processes: [], framesInUse: 0, swapSlotsInUse: 0 };

/**
 * Tell `r`'s story under a step time limit, handing each step to `onStep`; resolves with how
 * it ended, `hung` naming the step that ran past the limit (1-based) when one did.
 */
export function walkStoryLimited(r: Repro, stepTimeoutMs: number, onStep: (step: StoryStep) => void, keepMachine = true): Promise<LimitedStoryEnd> {
  const flag = new Int32Array(new SharedArrayBuffer(16));
  const channel = new MessageChannel();
  const boot: Boot = { entry: './story-limited.ts', flag: flag.buffer as SharedArrayBuffer, port: channel.port2, repro: r, keepMachine };
  const worker = new Worker(new URL('./worker-boot.mjs', import.meta.url), { workerData: boot, transferList: [channel.port2] });
  return new Promise<LimitedStoryEnd>((resolve, reject) => {
    let settled = false;
    let told = -1;
    let lastMoveMs = performance.now();
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearInterval(timer);
      channel.port1.close();
      void worker.terminate();
      f();
    };
    const take = (m: Message) => {
      if ('step' in m) {
        onStep(m.step);
        Atomics.add(flag, TAKEN, 1);
        Atomics.notify(flag, TAKEN);
      } else if ('end' in m) finish(() => resolve({ ...m.end, hung: null }));
      else finish(() => reject(new Error(m.error)));
    };
    channel.port1.on('message', (m: Message) => { if (!settled) take(m); });
    worker.on('error', (e) => finish(() => reject(e)));
    const timer = setInterval(() => {
      const now = performance.now();
      const count = Atomics.load(flag, TOLD);
      // The clock runs from the first step, and not while the worker waits for this thread to catch up.
      if (count !== told || Atomics.load(flag, STARTED) === 0 || Atomics.load(flag, WAITING) === 1) {
        told = count;
        lastMoveMs = now;
        return;
      }
      if (now - lastMoveMs < stepTimeoutMs) return;
      // Past the limit: every step told before it is taken first, in order.
      for (let m = receiveMessageOnPort(channel.port1); m !== undefined && !settled; m = receiveMessageOnPort(channel.port1)) take(m.message as Message);
      const step = Atomics.load(flag, TOLD) + 1;
      const message = `step ${step} (${formatOp(r.ops[step - 1])}) ran longer than the step time limit of ${stepTimeoutMs} ms`;
      finish(() => resolve({ header: storyHeader(r), before: NO_MACHINE, broken: null, length: step - 1, hung: { step, message } }));
    }, Math.max(10, Math.min(250, stepTimeoutMs / 4)));
  });
}

/** The worker's side: the story walked, each step sent as it is told, at most WINDOW ahead of the caller. */
async function tell(boot: Boot): Promise<void> {
  const flag = new Int32Array(boot.flag);
  try {
    const { walkStory } = await import('./story.ts');
    Atomics.store(flag, STARTED, 1);
    const end = walkStory(boot.repro, (step) => {
      boot.port.postMessage({ step: boot.keepMachine ? step : { ...step, after: NO_MACHINE } } satisfies Message);
      const told = Atomics.add(flag, TOLD, 1) + 1;
      for (let taken = Atomics.load(flag, TAKEN); told - taken > WINDOW; taken = Atomics.load(flag, TAKEN)) {
        Atomics.store(flag, WAITING, 1);
        Atomics.wait(flag, TAKEN, taken, 1000);
        Atomics.store(flag, WAITING, 0);
      }
    });
    boot.port.postMessage({ end: { ...end, before: boot.keepMachine ? end.before : NO_MACHINE } } satisfies Message);
  } catch (e) {
    boot.port.postMessage({ error: (e as Error).message ?? String(e) } satisfies Message);
  }
}

if ((workerData as Boot | undefined)?.entry === './story-limited.ts') await tell(workerData as Boot);
