// config-schema.ts: one declarative description of a configuration tree, and the one validator that reads
// it. The training config (train/config.ts), the prepare config (data/corpus/prepare/config.ts) and the
// optimizer's option objects (optim/adamw.ts, schedule.ts, clip.ts, resolved through optim/options.ts) are
// each a schema of fields built here; every field states
// its kind, range, default and a one-line doc once, and `resolveConfig` turns a user's partial JSON into the
// complete typed object:
//  - unknown keys are errors (hasOwnProperty, never `in`, which also finds 'constructor' and '__proto__'),
//    checked over the whole tree before any value, so a misspelt key is reported as such;
//  - each value is checked for its kind and range, and a failure names its full key path
//    ('optimizer.lr', 'data.validation.web', 'weightDecay.stages');
//  - relative paths resolve against a base folder (the config file's) when one is given;
//  - cross-field rules are a field's `check`, run once the field has its value; the fields declared before
//    it (in its object, `parent`, and in the whole tree, `root`) already hold theirs.
// How a message reads is the caller's `ConfigDialect`: each config keeps the exact wording its users and
// tests know, while the rules behind it are shared. `configFields` lists the fields (key, type, default,
// doc) for documentation, and `configTable` renders them as the README's Markdown table.
//
// Types: `Fields<T>` maps an interface to the field each of its keys must have, so a schema and the
// interface it describes cannot drift apart (a missing, extra or mistyped field does not compile).
import * as path from 'node:path';
import { invalidArg } from './errors';

/** How one config words its errors. Keys are full dotted paths ('' for the root). */
export interface ConfigDialect {
  /** `key` must `must` (for example 'be a positive integer'), but holds `value`. */
  mismatch(key: string, must: string, value: unknown): string;
  /** `key` is not a field of `parent` ('' for the root), whose fields are `known`. */
  unknownKey(key: string, parent: string, known: readonly string[]): string;
  /** An object was expected at `key` ('' for the root). */
  notObject(key: string, value: unknown): string;
  /** A cross-field rule failed; `message` names the keys involved. */
  fail(message: string): string;
  /** Words for a number or integer range in this dialect; undefined falls back to the shared wording. */
  describe?(field: AnyField): string | undefined;
}

/** A numeric range: [min, max], open at either end when asked. */
export interface NumberRange {
  min?: number;
  max?: number;
  minOpen?: boolean;
  maxOpen?: boolean;
}

/** What a field's `check` and a custom field's `parse` may use. */
export interface CheckContext {
  /** The field's full key path. */
  readonly key: string;
  /** The object holding this field: every field declared before this one holds its resolved value. */
  readonly parent: Record<string, unknown>;
  /** The whole config being resolved, likewise filled in declaration order. */
  readonly root: Record<string, unknown>;
  /** The folder relative paths resolve against, if any. */
  readonly baseDir: string | undefined;
  /** Throws the dialect's mismatch for this field (or for `key`). */
  mismatch(must: string, value: unknown, key?: string): never;
  /** Throws a cross-field error worded by the caller. */
  fail(message: string): never;
}

interface Common<T> {
  /** One line for the documentation table (every key of a config has one; elements of arrays need none). */
  readonly doc?: string;
  /** The value a missing key takes. A field without one is required (objects default to their fields'). */
  readonly default?: T;
  /** The noun phrase a mismatch uses ('a shard path'); by default it is derived from the kind and range. */
  readonly expected?: string | ((parent: Record<string, unknown>) => string);
  /** The whole predicate instead ('map paths to source names'), for messages that do not read "must be". */
  readonly must?: string;
  /** A rule over the resolved value (and the fields before it); throws through the context. */
  readonly check?: (value: T, ctx: CheckContext) => void;
  /** Shown in the documentation's default column instead of the default value. */
  readonly defaultDoc?: string;
  /** Phantom: makes Field<T> invariant in T, so Field<number> is not a Field<number | null>. */
  readonly __type?: (t: T) => T;
}

export type FieldKind =
  | ({ kind: 'number' } & NumberRange)
  | { kind: 'integer'; min?: number; max?: number; maxOpen?: boolean; safe?: boolean }
  | { kind: 'boolean' }
  | { kind: 'string'; nonEmpty?: boolean }
  | { kind: 'path'; nonEmpty?: boolean; literals?: readonly string[] }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'nullable'; inner: AnyField }
  | { kind: 'array'; items: AnyField; minLength?: number; each?: boolean }
  | { kind: 'record'; values: AnyField; pathKeys?: boolean; each?: boolean }
  | { kind: 'object'; fields: Readonly<Record<string, AnyField>>; order?: readonly string[] }
  | { kind: 'custom'; typeName: string; parse: (value: unknown, ctx: CheckContext) => unknown; freeForm?: boolean };

/** A field whose resolved value has type T. */
export type Field<T> = Common<T> & FieldKind;
/** A field of any value type (the schema's own walk, and containers' elements). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Field<unknown> would reject every Field<T>: Field is invariant
export type AnyField = Field<any>;

/** The field each key of T must have: no key missing, none extra, each of T's value type. */
export type Fields<T> = { readonly [K in keyof T]-?: Field<T[K]> };

export type ObjectField<T> = Field<T> & { kind: 'object'; fields: Fields<T> };

/**
 * `true` when A and B have the same keys, else `never`: ties a schema's value type to the options interface
 * whose values it completes (`const _: SameKeys<Resolved, Options> = true`).
 */
export type SameKeys<A, B> = [keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? true : never) : never;

type Opts<T> = Omit<Common<T>, '__type'>;

// ---------------------------------------------------------------------------------------------------------
// Builders

/** A finite number in a range. */
export function number(o: Opts<number> & NumberRange): Field<number> {
  return { kind: 'number', ...o };
}

/** An integer (a safe integer with `safe`) >= min, and <= max (or < max when maxOpen). */
export function integer(o: Opts<number> & { min?: number; max?: number; maxOpen?: boolean; safe?: boolean }): Field<number> {
  return { kind: 'integer', ...o };
}

export function boolean(o: Opts<boolean>): Field<boolean> {
  return { kind: 'boolean', ...o };
}

export function string(o: Opts<string> & { nonEmpty?: boolean }): Field<string> {
  return { kind: 'string', ...o };
}

/** A file or folder path, resolved against the base folder when one is given; `literals` are kept as written. */
export function pathField(o: Opts<string> & { nonEmpty?: boolean; literals?: readonly string[] }): Field<string> {
  return { kind: 'path', ...o };
}

export function oneOf<const V extends string>(values: readonly V[], o: Opts<V>): Field<V> {
  return { kind: 'enum', values, ...o };
}

/** `inner` or null; a mismatch reads "<inner's words> or null". */
export function nullable<T>(inner: Field<T>, o: Opts<T | null>): Field<T | null> {
  return { kind: 'nullable', inner, ...o };
}

/** An array of `items`. A bad element is reported for the whole array unless `each` names it by index. */
export function array<T>(items: Field<T>, o: Opts<T[]> & { minLength?: number; each?: boolean }): Field<T[]> {
  return { kind: 'array', items, ...o };
}

/**
 * A map of the user's own keys to `values` (keys resolved as paths with `pathKeys`). A bad value is reported
 * by its own key ('data.validation.web') unless `each` is false, which reports the whole map.
 */
export function record<T>(values: Field<T>, o: Opts<Record<string, T>> & { pathKeys?: boolean; each?: boolean }): Field<Record<string, T>> {
  return { kind: 'record', values, ...o };
}

/**
 * A nested object of named fields; its default is its fields' defaults. The resolved object has the fields'
 * declaration order; `order` (every field once) is the order they are checked in when that differs.
 */
export function object<T>(fields: Fields<T>, o: Omit<Opts<T>, 'default'> & { order?: readonly (keyof T & string)[] }): ObjectField<T> {
  return { kind: 'object', fields: fields as Readonly<Record<string, AnyField>>, ...o } as ObjectField<T>;
}

/**
 * Anything else: `parse` checks the raw value (undefined when the key is absent) and returns the resolved one.
 * `freeForm`: the value is an object of the user's own keys (checked by `parse`); that it is an object at
 * all is checked with the tree's shape, before any value, as for a record.
 */
export function custom<T>(o: Opts<T> & { typeName: string; parse: (value: unknown, ctx: CheckContext) => T; freeForm?: boolean }): Field<T> {
  return { kind: 'custom', ...o };
}

// ---------------------------------------------------------------------------------------------------------
// Ranges, shared with optim/options.ts's scalar checks

export function inRange(x: number, r: NumberRange): boolean {
  const { min = -Infinity, max = Infinity, minOpen = false, maxOpen = false } = r;
  return (minOpen ? x > min : x >= min) && (maxOpen ? x < max : x <= max);
}

/** ' in [0, 1)', ' > 0', ' >= 1', ' <= 5' or '' : the range as the optimizer's messages write it. */
export function rangeSuffix(r: NumberRange): string {
  const { min = -Infinity, max = Infinity, minOpen = false, maxOpen = false } = r;
  const lo = min === -Infinity ? '' : `${minOpen ? '(' : '['}${min}`;
  const hi = max === Infinity ? '' : `${max}${maxOpen ? ')' : ']'}`;
  if (lo && hi) return ` in ${lo}, ${hi}`;
  if (lo) return minOpen ? ` > ${min}` : ` >= ${min}`;
  if (hi) return maxOpen ? ` < ${max}` : ` <= ${max}`;
  return '';
}

/** The shared wording of what a field expects: 'a positive integer', 'a number in [0, 1]', "'a' or 'b'"... */
function describeKind(f: AnyField, dialect: ConfigDialect): string {
  const own = dialect.describe?.(f);
  if (own !== undefined) return own;
  switch (f.kind) {
    case 'number': {
      if (f.min === 0 && f.max === undefined) return f.minOpen ? 'a positive number' : 'a non-negative number';
      return `a number${rangeSuffix(f)}`;
    }
    case 'integer': {
      const min = f.min ?? -Infinity;
      if (f.max !== undefined) return `an integer${rangeSuffix({ min, max: f.max, maxOpen: f.maxOpen })}`;
      if (min === 0) return 'a non-negative integer';
      if (min === 1) return 'a positive integer';
      return min === -Infinity ? 'an integer' : `an integer >= ${min}`;
    }
    case 'boolean':
      return 'a boolean';
    case 'string':
      return f.nonEmpty ? 'a non-empty string' : 'a string';
    case 'path':
      return 'a path';
    case 'enum':
      return `one of ${f.values.join(', ')}`;
    case 'nullable':
      return `${expectedOf(f.inner, {}, dialect)} or null`;
    case 'array':
      return 'an array';
    case 'record':
    case 'object':
      return 'an object';
    case 'custom':
      return f.freeForm ? 'an object' : f.typeName;
  }
}

function expectedOf(f: AnyField, parent: Record<string, unknown>, dialect: ConfigDialect): string {
  if (typeof f.expected === 'function') return f.expected(parent);
  return f.expected ?? describeKind(f, dialect);
}

function mustOf(f: AnyField, parent: Record<string, unknown>, dialect: ConfigDialect): string {
  return f.must ?? `be ${expectedOf(f, parent, dialect)}`;
}

// ---------------------------------------------------------------------------------------------------------
// Resolution

export interface ResolveOptions {
  dialect: ConfigDialect;
  /** The folder relative `path` fields resolve against; without it paths are kept as written. */
  baseDir?: string;
  /** The key path of the value being resolved, when it is part of something larger ('plateau'). */
  at?: string;
  /** A null where the field has a default takes the default, as `options.x ?? default` does (API options). */
  nullIsDefault?: boolean;
  /**
   * Check every object's keys (and every map's object-ness) over the whole tree before any value: the
   * default. false checks each object's keys when its turn comes, in declaration order.
   */
  shapeFirst?: boolean;
}

/** Where a mismatch inside a container is reported: the container itself, as a whole. */
interface ReportAs {
  key: string;
  must: string;
  value: unknown;
}

interface State {
  dialect: ConfigDialect;
  baseDir: string | undefined;
  nullIsDefault: boolean;
  shapeFirst: boolean;
  /** The root object as it is being filled in. */
  root: Record<string, unknown> | undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
const join = (parent: string, k: string) => (parent ? `${parent}.${k}` : k);

/**
 * The complete, checked value of `schema` from the user's `input` (a partial object; undefined is {}).
 * Throws a TypeError with code ERR_PAJAMA_INVALID_ARG worded by `options.dialect`.
 */
export function resolveConfig<T>(schema: ObjectField<T>, input: unknown, options: ResolveOptions): T {
  const s: State = { dialect: options.dialect, baseDir: options.baseDir, nullIsDefault: options.nullIsDefault ?? false, shapeFirst: options.shapeFirst ?? true, root: undefined };
  const at = options.at ?? '';
  const value = input === undefined ? {} : input;
  if (s.shapeFirst) checkShape(schema, value, at, s);
  return resolveField(schema, value, at, {}, s, undefined) as T;
}

/** Every object in the tree is an object and has only known keys, and every map is an object: checked before any value. */
function checkShape(f: AnyField, v: unknown, key: string, s: State): void {
  if (v === undefined) return;
  if (f.kind === 'record' || (f.kind === 'custom' && f.freeForm)) {
    if (!isPlainObject(v)) throw invalidArg(s.dialect.mismatch(key, mustOf(f, {}, s.dialect), v));
    return;
  }
  if (f.kind !== 'object') return;
  checkKeys(f, v, key, s);
  for (const k of Object.keys(f.fields)) checkShape(f.fields[k], (v as Record<string, unknown>)[k], join(key, k), s);
}

/** `v` is an object whose keys are all fields of `f`. */
function checkKeys(f: AnyField & { kind: 'object' }, v: unknown, key: string, s: State): void {
  if (!isPlainObject(v)) throw invalidArg(s.dialect.notObject(key, v));
  for (const k of Object.keys(v)) {
    if (!hasOwn(f.fields, k)) throw invalidArg(s.dialect.unknownKey(join(key, k), key, Object.keys(f.fields)));
  }
}

function contextFor(key: string, parent: Record<string, unknown>, s: State, as: ReportAs | undefined): CheckContext {
  return {
    key,
    parent,
    root: s.root ?? parent,
    baseDir: s.baseDir,
    mismatch(must: string, value: unknown, otherKey?: string): never {
      if (as && otherKey === undefined) throw invalidArg(s.dialect.mismatch(as.key, as.must, as.value));
      throw invalidArg(s.dialect.mismatch(otherKey ?? key, must, value));
    },
    fail(message: string): never {
      throw invalidArg(s.dialect.fail(message));
    },
  };
}

function resolveField(
  f: AnyField,
  given: unknown,
  key: string,
  parent: Record<string, unknown>,
  s: State,
  as: ReportAs | undefined,
): unknown {
  const absent = given === undefined || (given === null && s.nullIsDefault && f.default !== undefined);
  const v = !absent ? given : f.kind === 'object' ? {} : fresh(f.default);
  const ctx = () => contextFor(key, parent, s, as);
  const must = () => mustOf(f, parent, s.dialect);
  const bad = (): never => ctx().mismatch(must(), v);
  let out: unknown;
  switch (f.kind) {
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v) || !inRange(v, f)) bad();
      out = v;
      break;
    case 'integer': {
      const ok =
        typeof v === 'number' &&
        (f.safe ? Number.isSafeInteger(v) : Number.isInteger(v)) &&
        inRange(v, { min: f.min, max: f.max, maxOpen: f.maxOpen });
      if (!ok) bad();
      out = v;
      break;
    }
    case 'boolean':
      if (typeof v !== 'boolean') bad();
      out = v;
      break;
    case 'string':
      if (typeof v !== 'string' || (f.nonEmpty && v === '')) bad();
      out = v;
      break;
    case 'path':
      if (typeof v !== 'string' || (f.nonEmpty && v === '')) bad();
      out = resolvePath(v as string, s.baseDir, f.literals);
      break;
    case 'enum':
      if (typeof v !== 'string' || !f.values.includes(v)) bad();
      out = v;
      break;
    case 'nullable':
      out = v === null ? null : resolveField(f.inner, v, key, parent, s, as ?? { key, must: must(), value: v });
      break;
    case 'array': {
      if (!Array.isArray(v) || v.length < (f.minLength ?? 0)) bad();
      const whole = as ?? (f.each ? undefined : { key, must: must(), value: v });
      out = (v as unknown[]).map((x, i) => resolveField(f.items, x, `${key}[${i}]`, parent, s, whole));
      break;
    }
    case 'record': {
      if (!isPlainObject(v)) bad();
      const whole = as ?? (f.each === false ? { key, must: must(), value: v } : undefined);
      // fromEntries defines own properties: a user's '__proto__' key stays a key.
      out = Object.fromEntries(
        Object.entries(v as Record<string, unknown>).map(([k, x]) => [
          f.pathKeys ? resolvePath(k, s.baseDir) : k,
          resolveField(f.values, x, join(key, k), parent, s, whole),
        ]),
      );
      break;
    }
    case 'object': {
      if (!s.shapeFirst) checkKeys(f, v, key, s);
      const input = v as Record<string, unknown>;
      const o: Record<string, unknown> = {};
      s.root ??= o;
      for (const k of f.order ?? Object.keys(f.fields)) o[k] = resolveField(f.fields[k], input[k], join(key, k), o, s, undefined);
      out = f.order ? Object.fromEntries(Object.keys(f.fields).map((k) => [k, o[k]])) : o;
      break;
    }
    case 'custom':
      out = f.parse(v, ctx());
      break;
  }
  f.check?.(out, ctx());
  return out;
}

/** A default the caller may change without changing the schema's. */
function fresh<T>(d: T): T {
  return typeof d === 'object' && d !== null ? structuredClone(d) : d;
}

function resolvePath(p: string, baseDir: string | undefined, literals: readonly string[] = []): string {
  if (baseDir === undefined || literals.includes(p) || path.isAbsolute(p)) return p;
  return path.join(baseDir, p);
}

/** The defaults of every field: what resolving {} gives, without checking cross-field rules. */
export function defaultsOf<T>(schema: ObjectField<T>): T {
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(schema.fields as Record<string, AnyField>)) {
    out[k] = f.kind === 'object' ? defaultsOf(f as ObjectField<unknown>) : structuredClone(f.default);
  }
  return out as T;
}

// ---------------------------------------------------------------------------------------------------------
// Documentation

export interface ConfigFieldDoc {
  /** The dotted key path. */
  key: string;
  /** The kind and range, as the table shows it: 'integer >= 1', "'fp32' \| 'bf16'", 'path \| null'. */
  type: string;
  /** The default as JSON, or the field's defaultDoc in words; 'required' when the key must be given. */
  default: string;
  /** Whether `default` is a JSON value (not words). */
  defaultIsJson: boolean;
  doc: string;
}

function typeName(f: AnyField): string {
  switch (f.kind) {
    case 'number':
      return `number${rangeSuffix(f)}`;
    case 'integer':
      return `integer${rangeSuffix({ min: f.min, max: f.max, maxOpen: f.maxOpen })}`;
    case 'boolean':
      return 'boolean';
    case 'string':
      return 'string';
    case 'path':
      return f.literals?.length ? `${f.literals.map((l) => JSON.stringify(l)).join(' | ')} | path` : 'path';
    case 'enum':
      return f.values.map((v) => JSON.stringify(v)).join(' | ');
    case 'nullable':
      return `${typeName(f.inner)} | null`;
    case 'array':
      return / /.test(typeName(f.items)) ? `(${typeName(f.items)})[]` : `${typeName(f.items)}[]`;
    case 'record':
      return `{ [${f.pathKeys ? 'path' : 'name'}]: ${typeName(f.values)} }`;
    case 'object':
      return 'object';
    case 'custom':
      return f.typeName;
  }
}

/** Every leaf field of `schema` in declaration order (nested objects flattened to dotted keys). */
export function configFields<T>(schema: ObjectField<T>, prefix = ''): ConfigFieldDoc[] {
  const rows: ConfigFieldDoc[] = [];
  for (const [k, f] of Object.entries(schema.fields as Record<string, AnyField>)) {
    const key = join(prefix, k);
    if (f.kind === 'object') {
      rows.push(...configFields(f as ObjectField<unknown>, key));
      continue;
    }
    const json = f.defaultDoc === undefined && f.default !== undefined;
    const def = json ? JSON.stringify(f.default) : f.defaultDoc ?? 'required';
    rows.push({ key, type: typeName(f), default: def, defaultIsJson: json, doc: f.doc ?? '' });
  }
  return rows;
}

/** The fields as a Markdown table (key, type, default, meaning); '|' inside a cell is escaped. */
export function configTable<T>(schema: ObjectField<T>): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const lines = ['| key | type | default | meaning |', '| --- | --- | --- | --- |'];
  for (const r of configFields(schema)) {
    lines.push(`| \`${r.key}\` | ${cell(r.type)} | ${cell(r.defaultIsJson ? `\`${r.default}\`` : r.default)} | ${cell(r.doc)} |`);
  }
  return lines.join('\n');
}
