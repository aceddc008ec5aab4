// errors.ts: the data pipeline's domain error. Bad arguments stay TypeErrors (invalidArg, code
// ERR_PAJAMA_INVALID_ARG); a file whose contents are wrong (bad magic, truncated, token ids out of range, a
// shard too short for the sequence length) is a PajamaDataError that names the file and, where it helps,
// the token offset.

export class PajamaDataError extends Error {
  readonly code = 'ERR_PAJAMA_DATA';
  /** The file at fault. */
  readonly file: string;
  /** The token offset in the file at fault, when there is one. */
  readonly offset: number | undefined;
  constructor(file: string, message: string, offset?: number) {
    super(`${file}: ${message}`);
    this.name = 'PajamaDataError';
    this.file = file;
    this.offset = offset;
  }
}
