// options.ts: validation of the optimizer layer's option objects and scalars, shared by schedule.ts,
// adamw.ts and clip.ts (not exported from the package). Every failure is a TypeError with code
// ERR_PAJAMA_INVALID_ARG naming the function, the option, what was expected and what was given.
import { invalidArg } from '../core/errors';

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

/** Throws unless `opts` is a plain object whose keys are all in `known`. */
export function checkKeys(where: string, opts: unknown, known: readonly string[]): void {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw invalidArg(`${where}: options must be an object, got ${show(opts)}`);
  }
  for (const k of Object.keys(opts as object)) {
    if (!known.includes(k)) {
      throw invalidArg(`${where}: unknown option '${k}' (known: ${known.join(', ')})`);
    }
  }
}

/** A finite number within [min, max] (open at either end when asked); `what` names it in the message. */
export function checkNumber(
  where: string,
  what: string,
  x: unknown,
  range: { min?: number; max?: number; minOpen?: boolean; maxOpen?: boolean } = {},
): number {
  const { min = -Infinity, max = Infinity, minOpen = false, maxOpen = false } = range;
  const ok =
    typeof x === 'number' &&
    Number.isFinite(x) &&
    (minOpen ? x > min : x >= min) &&
    (maxOpen ? x < max : x <= max);
  if (!ok) {
    const lo = min === -Infinity ? '' : `${minOpen ? '(' : '['}${min}`;
    const hi = max === Infinity ? '' : `${max}${maxOpen ? ')' : ']'}`;
    const bounds = lo && hi ? ` in ${lo}, ${hi}` : lo ? (minOpen ? ` > ${min}` : ` >= ${min}`) : hi ? (maxOpen ? ` < ${max}` : ` <= ${max}`) : '';
    throw invalidArg(`${where}: ${what} must be a finite number${bounds}, got ${show(x)}`);
  }
  return x as number;
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
