/** The machine a campaign fuzzes: the default kernel configuration with a small process limit, so processes collide. */
import { DEFAULT_CONFIG, type KernelConfig } from '../kernel-api/config.ts';

export const FUZZ_CONFIG: Readonly<KernelConfig> = Object.freeze({ ...DEFAULT_CONFIG, processesMax: 8 });

/** Steps a generated trace has at most (before its teardown). */
export const STEPS_MAX = 300;
