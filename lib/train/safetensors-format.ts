// safetensors-format.ts: the Hugging Face safetensors format itself: its dtypes, its error, and the parsing
// and validation of a header from its bytes (reading them is safetensors-read.ts's job).
//
// Layout of a file:  u64 N (little-endian) | N bytes of UTF-8 JSON header, space-padded so 8 + N is a multiple
// of 8 | the data buffer. The header maps each tensor name to { dtype, shape, data_offsets: [begin, end) } in
// bytes from the start of the data buffer, plus an optional "__metadata__" map of strings. Tensors are
// little-endian, row-major, and tile the data buffer exactly: no overlaps, no holes, nothing after the last.
import * as os from 'node:os';
import { numelOf, type DType } from '../core/tensor';
import { invalidArg } from '../core/errors';

/** Bytes per element of every whole-byte dtype of the safetensors spec. */
export const SAFETENSORS_DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
  C64: 8,
} as const;
export type SafetensorsDType = keyof typeof SAFETENSORS_DTYPE_SIZES;

/** The largest header accepted, as in the reference implementation (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;
const DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024;
/** The header key of the optional metadata map; no tensor may take it. */
export const METADATA_KEY = '__metadata__';

/** A safetensors file that is malformed, truncated, or does not fit the arena it is loaded into. */
export class SafetensorsError extends Error {
  readonly code = 'ERR_PAJAMA_SAFETENSORS';
  constructor(
    readonly file: string,
    message: string,
    readonly tensor?: string,
  ) {
    super(`${file}: ${tensor !== undefined ? `tensor '${tensor}': ` : ''}${message}`);
    this.name = 'SafetensorsError';
  }
}

export function isDType(d: unknown): d is SafetensorsDType {
  return typeof d === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_SIZES, d);
}

/** Tensors are copied as the host lays them out, so the host must be little-endian (every platform Node.js ships for is). */
export function requireLittleEndian(): void {
  if (os.endianness() !== 'LE') throw new Error('pajama-train: safetensors I/O needs a little-endian host');
}

/** A shape as messages print it: [2, 3]. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** The chunkBytes option, defaulted (64 MiB) and checked. */
export function checkChunkBytes(chunkBytes: number | undefined, where: string): number {
  const c = chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isSafeInteger(c) || c < 1) throw invalidArg(`${where}: chunkBytes must be a positive integer, got ${c}`);
  return c;
}

/** Whether tensors of `file` dtype load into and save from an arena of `arena` dtype: F32 and BF16 go with f32 and bf16 arenas, I32 with i32. */
export function convertible(file: SafetensorsDType, arena: DType): boolean {
  if (arena === 'i32') return file === 'I32';
  return file === 'F32' || file === 'BF16';
}

export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly numel: number;
  /** [begin, end) in bytes from the start of the data buffer. */
  readonly dataOffsets: readonly [number, number];
}

export interface SafetensorsHeader {
  readonly file: string;
  readonly fileSize: number;
  /** N: the JSON header's length in bytes, padding included. */
  readonly headerLength: number;
  /** Where the data buffer starts in the file: 8 + N. */
  readonly dataStart: number;
  /** Every tensor, in data-buffer order. */
  readonly tensors: readonly SafetensorsTensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
}

function parseTensorInfo(file: string, name: string, raw: unknown): SafetensorsTensorInfo {
  const fail = (msg: string) => new SafetensorsError(file, msg, name);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw fail(`header entry must be an object { dtype, shape, data_offsets }, got ${JSON.stringify(raw)}`);
  }
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (!isDType(dtype)) {
    throw fail(`unknown or unsupported dtype ${JSON.stringify(dtype)} (known: ${Object.keys(SAFETENSORS_DTYPE_SIZES).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw fail(`shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  const numel = numelOf(shape as number[]);
  const nbytes = numel * SAFETENSORS_DTYPE_SIZES[dtype];
  if (!Number.isSafeInteger(nbytes)) throw fail(`shape ${fmtShape(shape)} is too large`);
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[1] < offsets[0]
  ) {
    throw fail(`data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end - begin !== nbytes) {
    throw fail(
      `data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${dtype} ${fmtShape(shape)} needs ${numel} x ${SAFETENSORS_DTYPE_SIZES[dtype]} = ${nbytes}`,
    );
  }
  return Object.freeze({ name, dtype, shape: Object.freeze([...(shape as number[])]), numel, dataOffsets: Object.freeze([begin, end] as [number, number]) });
}

/**
 * Parses and fully validates a header: `headerBytes` are the N bytes after the length (padding included) of a
 * `fileSize`-byte file. Checks every entry, the metadata, and that the tensors tile the data buffer exactly.
 */
export function parseHeader(file: string, fileSize: number, headerBytes: Uint8Array): SafetensorsHeader {
  const headerLength = headerBytes.byteLength;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError(file, 'header is not valid UTF-8; not a safetensors file?');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(file, `header is not valid JSON (${(e as Error).message}); not a safetensors file?`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new SafetensorsError(file, `header must be a JSON object, got ${Array.isArray(parsed) ? 'an array' : JSON.stringify(parsed)}`);
  }

  let metadata: Record<string, string> = {};
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (key === METADATA_KEY) {
      if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.values(value).every((v) => typeof v === 'string')) {
        throw new SafetensorsError(file, `"${METADATA_KEY}" must be an object of strings, got ${JSON.stringify(value)}`);
      }
      metadata = Object.freeze({ ...(value as Record<string, string>) });
      continue;
    }
    tensors.push(parseTensorInfo(file, key, value));
  }

  // The tensors must tile the data buffer: sorted by offset, each begins where the previous one ended.
  const dataStart = 8 + headerLength;
  const bufferLength = fileSize - dataStart;
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  let last: SafetensorsTensorInfo | undefined;
  for (const t of tensors) {
    const [begin, end] = t.dataOffsets;
    if (end > bufferLength) {
      throw new SafetensorsError(
        file,
        `data_offsets [${begin}, ${end}] run past the end of the file: its data buffer has ${bufferLength} bytes (truncated?)`,
        t.name,
      );
    }
    if (begin < cursor && last) {
      throw new SafetensorsError(
        file,
        `data_offsets [${begin}, ${end}] overlap tensor '${last.name}' at [${last.dataOffsets[0]}, ${last.dataOffsets[1]}]`,
        t.name,
      );
    }
    if (begin > cursor) {
      throw new SafetensorsError(file, `bytes [${cursor}, ${begin}) of the data buffer before it belong to no tensor`, t.name);
    }
    cursor = end;
    last = t;
  }
  if (cursor !== bufferLength) {
    throw new SafetensorsError(file, `${bufferLength - cursor} bytes after the last tensor belong to no tensor`);
  }
  return Object.freeze({ file, fileSize, headerLength, dataStart, tensors: Object.freeze(tensors), metadata });
}
