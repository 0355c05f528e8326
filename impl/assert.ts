/**
 * Assertions for programmer errors in the optimised kernel, as model/assert.ts does for
 * the model: a broken one is a bug, never an outcome, and names the invariant it
 * describes when there is one so the harness reports both kernels alike.
 */
export class KernelAssertionError extends Error {
  override name = 'KernelAssertionError' as const;
  constructor(message: string, readonly invariant: string = 'kernel-assert') {
    super(message);
  }
}

export function assert(condition: boolean, message: string, invariant?: string): asserts condition {
  if (!condition) throw new KernelAssertionError(message, invariant);
}

/** A failed assertion whose condition the caller tested, so the message is built only on failure. */
export function fail(message: string, invariant?: string): never {
  throw new KernelAssertionError(message, invariant);
}
