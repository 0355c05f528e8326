/**
 * The operation schema: for every operation of the trace language (op.ts), the fields it
 * takes, which of them are optional and what JSON each holds. Repro files are checked
 * against it on load (harness/repro.ts), so that a malformed operation is refused with its
 * field named instead of reaching a kernel, the shrinker or the story printer.
 *
 * It checks form, not sense. Any safe integer passes, negative ones too: the emulated
 * kernels answer a bad pid, address or length with the errno Linux gives, and a repro may
 * test exactly that. A field the operation does not take is refused, since the kernels
 * would silently ignore it: it is a typo. A driver call's arguments are checked for form
 * only (integers and booleans), because strategies do not declare their argument names.
 */
import type { Advice, Op, OpCommon, OpName, OpenMode } from './op.ts';
import type { StrategyDefinition } from './strategy.ts';
import { isWholeBytes } from './bytes.ts';

/** What JSON a field holds. */
export type FieldType =
  /** A safe integer (Number.isSafeInteger), negative ones too. */
  | 'integer'
  /** A number of pages within the safe-integer range holding a whole number of bytes (k/4096): a fraction stands for a byte address or length. */
  | 'number'
  | 'boolean'
  /** One string of a fixed set. */
  | readonly string[]
  /** `drv` only: the name of a strategy the repro loads. */
  | 'strategy'
  /** `drv` only: the name of one of that strategy's calls. */
  | 'call'
  /** `drv` only: an object whose values are safe integers or booleans. */
  | 'driver-args';

export type FieldSpec = { readonly type: FieldType; readonly optional?: boolean };

/** A field error: the field's path inside the operation ('' for the operation itself) and why. */
export type OpError = { field: string; reason: string };

// The table below is typed from the Op union, so that the compiler checks it: every
// operation is listed, each with exactly the fields of its type, optional exactly where
// the type's field is optional, and with a field type that fits the TypeScript type.
type Present<V> = Exclude<V, undefined>;
type TypeFor<V> =
  [Present<V>] extends [boolean] ? 'boolean'
  : [Present<V>] extends [number] ? 'integer' | 'number'
  : [Present<V>] extends [string] ? readonly Present<V>[] | 'strategy' | 'call'
  : 'driver-args';
type FieldsOf<T> = {
  readonly [K in Exclude<keyof T, 'op' | keyof OpCommon>]-?: {} extends Pick<T, K>
    ? { readonly type: TypeFor<T[K]>; readonly optional: true }
    : { readonly type: TypeFor<T[K]>; readonly optional?: never };
};
/** One field table per member of the operation's type; `reclaim` has two shapes. */
type Shape<T> = T extends unknown ? FieldsOf<T> : never;
type OpSchema = { readonly [N in OpName]: Shape<Extract<Op, { op: N }>> | readonly Shape<Extract<Op, { op: N }>>[] };

const int = { type: 'integer' } as const;
const optInt = { type: 'integer', optional: true } as const;
const bool = { type: 'boolean' } as const;
const optBool = { type: 'boolean', optional: true } as const;
/** An address or length in pages that may hold a byte value: k/4096 of a page (kernel-api/bytes.ts). */
const bytes = { type: 'number' } as const;
const optBytes = { type: 'number', optional: true } as const;

/** Every member of a string union, listed as the keys of a record so that none is missed. */
function oneOf<T extends string>(members: Record<T, true>): readonly T[] {
  return Object.keys(members) as T[];
}
const ADVICES = oneOf<Advice>({ DONTNEED: true, PAGEOUT: true, COLD: true, DONTFORK: true, DOFORK: true,
  WILLNEED: true, WIPEONFORK: true, KEEPONFORK: true, POPULATE_READ: true, POPULATE_WRITE: true, REMOVE: true, FREE: true });
const OPEN_MODES = oneOf<OpenMode>({ r: true, rw: true });

export const OP_SCHEMA: OpSchema = {
  spawn: { uid: optInt },
  clone: { pid: int },
  mmap: {
    pid: int, addr: bytes, lengthPages: bytes, prot: int, shared: bool, fixed: optBool, noreplace: optBool,
    file: optInt, pgoff: optBytes, mode: { type: OPEN_MODES, optional: true }, fd: optInt, locked: optBool,
  },
  munmap: { pid: int, addr: bytes, lengthPages: bytes },
  mprotect: { pid: int, addr: bytes, lengthPages: bytes, prot: int },
  mremap: { pid: int, addr: bytes, oldPages: bytes, newPages: bytes, maymove: optBool, fixed: optBool, newAddr: optBytes, dontunmap: optBool },
  madvise: { pid: int, addr: bytes, lengthPages: bytes, advice: { type: ADVICES } },
  read: { pid: int, addr: int },
  write: { pid: int, addr: int, value: int },
  fork: { pid: int },
  exit: { pid: int },
  // The shape with `count` comes first: an op with both is read as it and `pid` is refused.
  reclaim: [{ count: int }, { pid: int, addr: int }],
  oom: { pid: int },
  creat: { sizePages: int },
  pread: { file: int, index: int },
  pwrite: { file: int, index: int, value: int },
  truncate: { file: int, sizePages: int },
  proc_mem_read: { pid: int, target: int, addr: int },
  proc_mem_write: { pid: int, target: int, addr: int, value: int },
  process_vm_readv: { pid: int, target: int, addr: int },
  process_vm_writev: { pid: int, target: int, addr: int, value: int },
  set_dumpable: { pid: int, dumpable: bool },
  fail_nth: { nth: int },
  close: { pid: int, fd: int },
  drv: { strategy: { type: 'strategy' }, call: { type: 'call' }, args: { type: 'driver-args' } },
  pagemap_read: { pid: int, target: int, addr: int, count: optInt },
  mincore: { pid: int, addr: bytes, lengthPages: bytes },
  mlock: { pid: int, addr: bytes, lengthPages: bytes, onfault: optBool },
  munlock: { pid: int, addr: bytes, lengthPages: bytes },
  mlockall: { pid: int, flags: int },
  munlockall: { pid: int },
  msync: { pid: int, addr: bytes, lengthPages: bytes, flags: int },
  vmsplice: { pid: int, pipe: optInt, addr: int, lengthPages: int },
  pipe_read: { pid: int, pipe: int, pages: int },
  clear_refs: { pid: int, target: int, mode: int },
  // The type says `async: true`; false is accepted as the kernels answer it with EINVAL.
  uffd_register_wp: { pid: int, addr: bytes, lengthPages: bytes, async: bool },
  pagemap_scan: {
    pid: int, target: optInt, start: { type: 'number' }, end: { type: 'number' }, flags: int, max_pages: int,
    category_inverted: int, category_mask: int, category_anyof_mask: int, return_mask: int, vec_len: int,
    vecNull: optBool, size: optInt,
  },
  map_files_readdir: { pid: int, target: int },
};

type Fields = Readonly<Record<string, FieldSpec>>;
type Strategies = readonly Pick<StrategyDefinition, 'name' | 'calls'>[];

/**
 * Check one operation of a repro file against the schema. `strategies` are the strategies
 * the repro loads (none for a `core` repro): a `drv` op must call one of them. Returns null
 * when the operation is well formed, else the first field at fault and why.
 */
export function validateOp(op: unknown, strategies: Strategies): OpError | null {
  if (!isObject(op)) return { field: '', reason: `not an operation: ${found(op)}` };
  if (typeof op.op !== 'string' || !Object.hasOwn(OP_SCHEMA, op.op)) {
    return { field: 'op', reason: `unknown operation ${found(op.op)}` };
  }
  const name = op.op as OpName;
  const shapes: readonly Fields[] = Array.isArray(OP_SCHEMA[name]) ? OP_SCHEMA[name] as Fields[] : [OP_SCHEMA[name] as Fields];
  // The first shape the op has a field of; an op with none of them gets the first shape's
  // "missing" when it has one shape, and a list of the shapes when it has several.
  const matched = shapes.find((s) => Object.keys(s).some((k) => Object.hasOwn(op, k)));
  if (matched === undefined && shapes.length > 1) {
    return { field: '', reason: `${name} takes ${shapes.map((s) => Object.keys(s).join(' and ')).join(', or ')}` };
  }
  const shape = matched ?? shapes[0];
  const common = checkCommon(op);
  if (common !== null) return common;
  for (const key of Object.keys(op)) {
    if (key !== 'op' && key !== 'tid' && key !== 'switches' && !Object.hasOwn(shape, key)) {
      return { field: key, reason: `unknown field (${name} takes ${Object.keys(shape).join(', ') || 'no fields'})` };
    }
  }
  for (const [key, spec] of Object.entries(shape)) {
    if (!Object.hasOwn(op, key)) {
      if (spec.optional) continue;
      return { field: key, reason: `missing (${expected(spec.type, op, strategies)})` };
    }
    const e = checkField(key, spec.type, op[key], op, strategies);
    if (e !== null) return e;
  }
  return null;
}

/** The fields every operation may carry (OpCommon): `tid`, an integer; `switches`, a list of {at, to} integers. */
function checkCommon(op: Record<string, unknown>): OpError | null {
  if (Object.hasOwn(op, 'tid') && !Number.isSafeInteger(op.tid)) return { field: 'tid', reason: `must be an integer, found ${found(op.tid)}` };
  if (!Object.hasOwn(op, 'switches')) return null;
  const sw = op.switches;
  if (!Array.isArray(sw)) return { field: 'switches', reason: `must be a list of {at, to}, found ${found(sw)}` };
  for (let i = 0; i < sw.length; i++) {
    const x: unknown = sw[i];
    if (!isObject(x) || Object.keys(x).some((k) => k !== 'at' && k !== 'to') || !Number.isSafeInteger(x.at) || !Number.isSafeInteger(x.to) || (x.at as number) < 0) {
      return { field: `switches[${i}]`, reason: `must be {at, to} with a scheduling point at >= 0 and a tid to, found ${found(x)}` };
    }
  }
  return null;
}

/** One present field's value against its type. */
function checkField(key: string, type: FieldType, v: unknown, op: Record<string, unknown>, strategies: Strategies): OpError | null {
  const bad = (): OpError => ({ field: key, reason: `${expected(type, op, strategies)}, found ${found(v)}` });
  if (type === 'integer') return Number.isSafeInteger(v) ? null : bad();
  if (type === 'number') return isPages(v) ? null : bad();
  if (type === 'boolean') return typeof v === 'boolean' ? null : bad();
  if (type === 'strategy') return strategies.some((s) => s.name === v) ? null : bad();
  if (type === 'call') return strategyOf(op, strategies)?.calls.some((c) => c.name === v) ? null : bad();
  if (type === 'driver-args') {
    if (!isObject(v)) return bad();
    for (const [arg, x] of Object.entries(v)) {
      if (!Number.isSafeInteger(x) && typeof x !== 'boolean') {
        return { field: `${key}.${arg}`, reason: `must be an integer or a boolean, found ${found(x)}` };
      }
    }
    return null;
  }
  return typeof v === 'string' && type.includes(v) ? null : bad();
}

/** What a field of this type must be, as the first half of a reason. */
function expected(type: FieldType, op: Record<string, unknown>, strategies: Strategies): string {
  if (type === 'integer') return 'must be an integer';
  if (type === 'number') return 'must be a number of pages, a fraction k/4096 for a byte address or length';
  if (type === 'boolean') return 'must be true or false';
  if (type === 'strategy') {
    return `must name a strategy the repro loads (${strategies.map((s) => s.name).join(', ') || 'none: its strategy is core'})`;
  }
  if (type === 'call') {
    const s = strategyOf(op, strategies);
    return s === undefined ? 'must be a call of the strategy' : `must be a call of ${s.name} (${s.calls.map((c) => c.name).join(', ')})`;
  }
  if (type === 'driver-args') return 'must be an object of integer and boolean arguments';
  return `must be one of ${type.map((x) => JSON.stringify(x)).join(', ')}`;
}

function strategyOf(op: Record<string, unknown>, strategies: Strategies) {
  return strategies.find((s) => s.name === op.strategy);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isPages(v: unknown): boolean {
  return typeof v === 'number' && Math.abs(v) <= Number.MAX_SAFE_INTEGER && isWholeBytes(v);
}

/** A value as a reason quotes it: JSON, cut short, and `nothing` for a missing one. */
function found(v: unknown): string {
  if (v === undefined) return 'nothing';
  const text = JSON.stringify(v);
  return text.length <= 40 ? text : `${text.slice(0, 37)}...`;
}
