// errors.ts: the three kinds of error pajama-train throws.
//  - TypeError (code ERR_PAJAMA_INVALID_ARG): API misuse: wrong shapes, dtypes, values.
//  - DisposedError (code ERR_PAJAMA_DISPOSED): a tensor or arena used after dispose().
//  - PajamaEngineError (code ERR_PAJAMA_ENGINE): the engine (oneDNN, CUDA, allocation) failed.

export class DisposedError extends Error {
  readonly code = 'ERR_PAJAMA_DISPOSED';
  constructor(message: string) {
    super(message);
    this.name = 'DisposedError';
  }
}

export class PajamaEngineError extends Error {
  readonly code = 'ERR_PAJAMA_ENGINE';
  constructor(message: string) {
    super(message);
    this.name = 'PajamaEngineError';
  }
}

export function invalidArg(message: string): TypeError {
  const e = new TypeError(message) as TypeError & { code: string };
  e.code = 'ERR_PAJAMA_INVALID_ARG';
  return e;
}

/** Turns an error from the addon into the matching class; the message is kept as the addon wrote it. */
export function fromNative(e: unknown): unknown {
  const code = (e as { code?: string })?.code;
  const msg = (e as Error)?.message ?? String(e);
  if (code === 'ERR_PAJAMA_DISPOSED') return new DisposedError(msg);
  if (code === 'ERR_PAJAMA_ENGINE') return new PajamaEngineError(msg);
  return e;
}

/** A value as an error message shows it: JSON, with Infinity (from 1e999) shown as such and a missing key named. */
export function showValue(v: unknown): string {
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return v === undefined ? 'nothing (the key is missing)' : JSON.stringify(v);
}
