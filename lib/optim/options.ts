// options.ts: validation of the optimizer layer's option objects and scalars, shared by schedule.ts,
// adamw.ts and clip.ts (not exported from the package). The option objects are schemas of
// core/config-schema.ts (ADAMW_OPTIONS_SCHEMA, COSINE_OPTIONS_SCHEMA, ... beside the functions that take
// them), resolved by `resolveOptions` in this layer's dialect; the scalar checks below use the same ranges.
// Every failure is a TypeError with code ERR_PAJAMA_INVALID_ARG naming the function, the option, what was
// expected and what was given: "AdamW: option 'beta2' must be a finite number in [0, 1), got 1".
import { invalidArg } from '../core/errors';
import { inRange, rangeSuffix, resolveConfig, type ConfigDialect, type NumberRange, type ObjectField } from '../core/config-schema';

/** A value as an error message shows it: numbers as written (NaN, -1), strings quoted, arrays by element, objects by class. */
export function show(x: unknown): string {
  if (typeof x === 'number' || typeof x === 'boolean' || typeof x === 'bigint' || x === undefined || x === null) {
    return String(x);
  }
  if (typeof x === 'string') return JSON.stringify(x);
  if (Array.isArray(x)) return `[${x.map(show).join(', ')}]`;
  if (typeof x === 'function') return 'a function';
  const name = (x as object).constructor?.name;
  return name && name !== 'Object' ? `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}` : 'an object';
}

const dialects = new Map<string, ConfigDialect>();

/**
 * The optimizer's wording for the function `where`: options are named "option 'key'" (nested ones
 * "option 'plateau.window'"), numbers are "a finite number" with their range, integers "an integer >= min".
 */
export function optimDialect(where: string): ConfigDialect {
  let d = dialects.get(where);
  if (d === undefined) {
    const at = (key: string) => (key ? `${where}: option '${key}'` : where);
    d = {
      mismatch: (key, must, value) => `${at(key)} must ${must}, got ${show(value)}`,
      unknownKey: (key, parent, known) => `${at(parent)}: unknown option '${parent ? key.slice(parent.length + 1) : key}' (known: ${known.join(', ')})`,
      notObject: (key, value) => `${at(key)}: options must be an object, got ${show(value)}`,
      fail: (message) => `${where}: ${message}`,
      describe: (f) =>
        f.kind === 'number' ? `a finite number${rangeSuffix(f)}` : f.kind === 'integer' ? `an integer >= ${f.min ?? -Infinity}` : undefined,
    };
    dialects.set(where, d);
  }
  return d;
}

/**
 * `options` checked against `schema` and completed with its defaults. `at` names the option the object is
 * (e.g. 'plateau') when it is nested in another. Unlike a config file, the options object itself is required,
 * and an option given as null takes its default, as `options.x ?? default` would.
 */
export function resolveOptions<T>(where: string, schema: ObjectField<T>, options: unknown, at?: string): T {
  const dialect = optimDialect(where);
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw invalidArg(dialect.notObject(at ?? '', options));
  return resolveConfig(schema, options, { dialect, at, nullIsDefault: true });
}

/** Throws unless `opts` is a plain object whose keys are all in `known`. */
export function checkKeys(where: string, opts: unknown, known: readonly string[]): void {
  const dialect = optimDialect(where);
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) throw invalidArg(dialect.notObject('', opts));
  for (const k of Object.keys(opts as object)) {
    if (!known.includes(k)) throw invalidArg(dialect.unknownKey(k, '', known));
  }
}

/** A finite number within [min, max] (open at either end when asked); `what` names it in the message. */
export function checkNumber(where: string, what: string, x: unknown, range: NumberRange = {}): number {
  if (typeof x !== 'number' || !Number.isFinite(x) || !inRange(x, range)) {
    throw invalidArg(`${where}: ${what} must be a finite number${rangeSuffix(range)}, got ${show(x)}`);
  }
  return x;
}

/** A safe integer >= min. */
export function checkInteger(where: string, what: string, x: unknown, min = 0): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min) {
    throw invalidArg(`${where}: ${what} must be an integer >= ${min}, got ${show(x)}`);
  }
  return x;
}

/** The optimizer step index every schedule takes: a non-negative integer. */
export function checkStep(where: string, step: unknown): number {
  return checkInteger(where, 'step', step, 0);
}
