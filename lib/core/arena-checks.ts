// arena-checks.ts: the checks that an argument is a live Arena with the layout of another, shared by the
// optimizer (adamw.ts) and checkpoint I/O (train/checkpoint.ts). Each caller keeps its own wording; the
// options below say which, so both report exactly what they did before the checks were shared.
import { DisposedError, invalidArg } from './errors';
import { Arena } from './tensor';

/** Whether `a` and `b` have the same entries (names, offsets, shapes) in the same order. */
export function sameLayout(a: Arena, b: Arena): boolean {
  return (
    a.entries.length === b.entries.length &&
    a.entries.every((e, i) => {
      const f = b.entries[i];
      return e.name === f.name && e.offset === f.offset && e.shape.length === f.shape.length && e.shape.every((d, k) => d === f.shape[k]);
    })
  );
}

export interface ArenaCheckOptions {
  /** Appends ", got <show(value)>" to the not-an-Arena message. Defaults to no suffix. */
  show?: (value: unknown) => string;
  /** A disposed arena throws a DisposedError ('disposed', the default) or a TypeError ('invalid'). */
  disposedAs?: 'disposed' | 'invalid';
}

/**
 * `a` as a live Arena. Throws a TypeError "<where>: <what> must be an Arena" when it is not one, and
 * "<where>: <what> was disposed" when it was disposed (see ArenaCheckOptions).
 */
export function checkArena(a: unknown, what: string, where: string, options: ArenaCheckOptions = {}): Arena {
  if (!(a instanceof Arena)) throw invalidArg(`${where}: ${what} must be an Arena${options.show ? `, got ${options.show(a)}` : ''}`);
  if (a.disposed) {
    const message = `${where}: ${what} was disposed`;
    throw options.disposedAs === 'invalid' ? invalidArg(message) : new DisposedError(message);
  }
  return a;
}
