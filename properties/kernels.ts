/** Which kernels a run uses: the model, the implementation, or both side by side (diff). */
import type { Kernel, StrategyFactory } from '../kernel-api/kernel.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import { ModelKernel } from '../model/kernel.ts';
import { ImplKernel } from '../impl/kernel.ts';

export type KernelChoice = 'model' | 'impl' | 'diff';
export const KERNEL_CHOICES: readonly KernelChoice[] = ['model', 'impl', 'diff'];

export function createKernel(kind: 'model' | 'impl', config: Readonly<KernelConfig>, strategies: readonly StrategyFactory[]): Kernel {
  return kind === 'model' ? new ModelKernel(config, strategies) : new ImplKernel(config, strategies);
}
