/**
 * Assertions for programmer errors: a broken one is a bug in a kernel or a driver, never an
 * outcome. Where the broken state is one an invariant describes (a frame freed while
 * mapped), the error names that invariant so the harness reports it as such.
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
