/** Which kernels a run uses: the model, the implementation, or both side by side (diff). */
import type { Kernel, StrategyFactory } from '../kernel-api/kernel.ts';
import type { KernelConfig } from '../kernel-api/config.ts';
import { ModelKernel } from '../model/kernel.ts';

export type KernelChoice = 'model' | 'impl' | 'diff';
export const KERNEL_CHOICES: readonly KernelChoice[] = ['model', 'impl', 'diff'];

type KernelCtor = new (config: Readonly<KernelConfig>, strategies: readonly StrategyFactory[]) => Kernel;

/** The implementation registers itself here (impl/register.ts), so properties need not import it statically. */
const registry: { impl?: KernelCtor } = {};

export function registerImpl(ctor: KernelCtor): void {
  registry.impl = ctor;
}

export function implAvailable(): boolean {
  return registry.impl !== undefined;
}

export function createKernel(kind: 'model' | 'impl', config: Readonly<KernelConfig>, strategies: readonly StrategyFactory[]): Kernel {
  if (kind === 'model') return new ModelKernel(config, strategies);
  if (registry.impl === undefined) throw new Error('the optimised implementation (impl/) is not available');
  return new registry.impl(config, strategies);
}
