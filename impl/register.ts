/**
 * Registers the optimised kernel with properties/kernels.ts, so that properties and the
 * harness can build it without importing impl/ statically. Import this file for its effect.
 */
import { registerImpl } from '../properties/kernels.ts';
import { ImplKernel } from './kernel.ts';

registerImpl(ImplKernel);
