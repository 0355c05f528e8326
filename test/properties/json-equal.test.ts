/**
 * jsonEqual (properties/session.ts) is how the differential property compares two
 * observations: it must agree with comparing their JSON texts, key order aside.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { jsonEqual } from '../../properties/session.ts';

/** JSON text with object keys sorted: equal texts mean equal as JSON, whatever the key order. */
const canonical = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) =>
  x !== null && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([p], [q]) => (p < q ? -1 : p > q ? 1 : 0))) : x);

const leaf = fc.oneof(
  fc.integer({ min: -3, max: 3 }), fc.boolean(), fc.constantFrom('a', 'b', ''), fc.constant(null),
  fc.constant(undefined), fc.constant(Number.NaN), fc.constant(-0),
);
const { value } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 3 }),
  object: fc.dictionary(fc.constantFrom('x', 'y', 'z'), tie('value'), { maxKeys: 3 }),
}));

describe('jsonEqual', () => {
  it('agrees with comparing JSON texts', () => {
    fc.assert(fc.property(value, value, (a, b) => {
      expect(jsonEqual([a], [b])).toBe(canonical([a]) === canonical([b]));
    }), { numRuns: 3000 });
  });

  it('holds between a value and its JSON round trip, and tells a changed page from the original', () => {
    fc.assert(fc.property(value, (a) => {
      expect(jsonEqual([a], JSON.parse(JSON.stringify([a])))).toBe(true);
    }), { numRuns: 1000 });
    const page = { addr: 5, value: 7, present: true, frame: 1, refcount: undefined };
    expect(jsonEqual(page, { ...page, refcount: 1 })).toBe(false);
    expect(jsonEqual(page, { addr: 5, value: 7, present: true, frame: 1 })).toBe(true);
    expect(jsonEqual({ pages: [page] }, { pages: [{ ...page, value: 8 }] })).toBe(false);
  });
});
