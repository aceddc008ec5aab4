// safetensors.ts: the Hugging Face safetensors format, streamed both ways so a 7B model (28 GB in f32) never
// sits in one JavaScript buffer.
//
// Layout of a file:  u64 N (little-endian) | N bytes of UTF-8 JSON header, space-padded so 8 + N is a multiple
// of 8 | the data buffer. The header maps each tensor name to { dtype, shape, data_offsets: [begin, end) } in
// bytes from the start of the data buffer, plus an optional "__metadata__" map of strings. Tensors are
// little-endian, row-major, and tile the data buffer exactly: no overlaps, no holes, nothing after the last.
//
// Contracts:
//  - Writes are atomic (temporary file, fsync, rename): a crash leaves the old file or the new one, never half.
//  - Reads validate the whole header before touching any tensor, and every tensor needed (presence, shape,
//    dtype) before copying any byte into an arena, so a rejected file leaves the arena as it was. Errors are
//    SafetensorsError (code ERR_PAJAMA_SAFETENSORS) naming the file and the tensor.
//  - Conversions into an arena: F32 or BF16 into an f32 or bf16 arena (BF16 -> f32 widens exactly, F32 -> bf16
//    rounds to nearest even, as the native cast does), I32 into an i32 arena. Saving from an f32 arena may
//    write BF16 (same rounding); from a bf16 arena, F32 (exact).
//  - Native memory is copied in chunks of `chunkBytes` (64 MiB by default) through views of the arena buffer.
//  - The host must be little-endian (every platform Node.js ships for is).
import * as fs from 'node:fs';
import * as os from 'node:os';
import { Arena, Tensor, numelOf, type ArenaEntry, type DType } from '../core/tensor';
import { ops } from '../core/ops';
import { invalidArg } from '../core/errors';
import { writeAll, writeFileAtomic } from '../core/atomic';

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
const METADATA_KEY = '__metadata__';

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

function isDType(d: unknown): d is SafetensorsDType {
  return typeof d === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_SIZES, d);
}

function requireLittleEndian(): void {
  if (os.endianness() !== 'LE') throw new Error('pajama-train: safetensors I/O needs a little-endian host');
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function checkChunkBytes(chunkBytes: number | undefined, where: string): number {
  const c = chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isSafeInteger(c) || c < 1) throw invalidArg(`${where}: chunkBytes must be a positive integer, got ${c}`);
  return c;
}

// ---------------------------------------------------------------------------------------------------------
// Writing

/** One tensor to write. */
export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  /**
   * Its bytes, little-endian and row-major: one view, or a function returning the bytes in pieces (streamed
   * to the file, never joined). Pieces may reuse one buffer: each is written before the next is asked for.
   */
  data: ArrayBufferView | (() => Iterable<ArrayBufferView>);
}

function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function checkMetadata(metadata: unknown, where: string): Record<string, string> | undefined {
  if (metadata === undefined) return undefined;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw invalidArg(`${where}: metadata must be an object of strings`);
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw invalidArg(`${where}: metadata '${k}' must be a string, got ${typeof v}`);
  }
  return metadata as Record<string, string>;
}

/**
 * Writes `tensors` (in the order given, contiguous) to `file` atomically, with an optional "__metadata__".
 * Tensor data is streamed: a function-valued `data` is consumed piece by piece.
 */
export function writeSafetensors(file: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): void {
  requireLittleEndian();
  const where = `writeSafetensors(${file})`;
  if (typeof file !== 'string' || file === '') throw invalidArg('writeSafetensors: file must be a non-empty path');
  if (!Array.isArray(tensors as unknown)) throw invalidArg(`${where}: tensors must be an array`);
  const meta = checkMetadata(metadata, where);

  const names = new Set<string>();
  const sizes: number[] = [];
  const parts: string[] = [];
  if (meta) parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(meta)}`);
  let offset = 0;
  for (const t of tensors) {
    if (typeof t?.name !== 'string' || t.name === '') throw invalidArg(`${where}: every tensor needs a non-empty name`);
    if (t.name === METADATA_KEY) throw invalidArg(`${where}: '${METADATA_KEY}' is reserved and cannot name a tensor`);
    if (names.has(t.name)) throw invalidArg(`${where}: tensor '${t.name}' appears twice`);
    names.add(t.name);
    if (!isDType(t.dtype)) throw invalidArg(`${where}: tensor '${t.name}': unknown dtype ${JSON.stringify(t.dtype)}`);
    const shape: unknown = t.shape;
    if (!Array.isArray(shape) || !shape.every((d: unknown) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw invalidArg(`${where}: tensor '${t.name}': shape must be an array of non-negative integers, got ${JSON.stringify(t.shape)}`);
    }
    const nbytes = numelOf(t.shape) * SAFETENSORS_DTYPE_SIZES[t.dtype];
    if (ArrayBuffer.isView(t.data)) {
      if (t.data.byteLength !== nbytes) {
        throw invalidArg(
          `${where}: tensor '${t.name}': data has ${t.data.byteLength} bytes, ${t.dtype} ${fmtShape(t.shape)} needs ${nbytes}`,
        );
      }
    } else if (typeof t.data !== 'function') {
      throw invalidArg(`${where}: tensor '${t.name}': data must be an ArrayBufferView or a function returning pieces`);
    }
    // Key order dtype, shape, data_offsets as the reference writer; built by hand so a numeric-looking name
    // cannot be reordered by JSON.stringify.
    const info = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + nbytes] };
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify(info)}`);
    sizes.push(nbytes);
    offset += nbytes;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const headerLength = Math.ceil(json.length / 8) * 8;
  const head = Buffer.alloc(8 + headerLength, 0x20);
  head.writeBigUInt64LE(BigInt(headerLength), 0);
  json.copy(head, 8);

  writeFileAtomic(file, (fd) => {
    writeAll(fd, head);
    tensors.forEach((t, i) => {
      if (ArrayBuffer.isView(t.data)) {
        writeAll(fd, bytesOf(t.data));
        return;
      }
      let written = 0;
      for (const piece of t.data()) {
        if (!ArrayBuffer.isView(piece)) throw invalidArg(`${where}: tensor '${t.name}': a piece is not an ArrayBufferView`);
        if (written + piece.byteLength > sizes[i]) {
          throw invalidArg(`${where}: tensor '${t.name}': pieces exceed the ${sizes[i]} bytes its dtype and shape need`);
        }
        writeAll(fd, bytesOf(piece));
        written += piece.byteLength;
      }
      if (written !== sizes[i]) {
        throw invalidArg(`${where}: tensor '${t.name}': pieces gave ${written} bytes, its dtype and shape need ${sizes[i]}`);
      }
    });
  });
}

/** The arena dtype each safetensors dtype is saved from and loaded into without a conversion. */
const NATIVE_STDTYPE: Record<DType, SafetensorsDType> = { f32: 'F32', bf16: 'BF16', i32: 'I32' };

function convertible(file: SafetensorsDType, arena: DType): boolean {
  if (arena === 'i32') return file === 'I32';
  return file === 'F32' || file === 'BF16';
}

export interface ArenaWriteOptions {
  /** The dtype written. Defaults to the arena's own (f32 -> F32, bf16 -> BF16, i32 -> I32). */
  dtype?: 'F32' | 'BF16' | 'I32';
  /** Prepended to every entry name in the file, e.g. 'm.' for a first moment. Defaults to ''. */
  prefix?: string;
  /** Native memory is copied out in pieces of at most this many bytes. Defaults to 64 MiB. */
  chunkBytes?: number;
}

/** Pieces of one arena entry in `out` dtype, read through views of the arena buffer. */
function* entryPieces(arena: Arena, e: ArenaEntry, out: SafetensorsDType, chunkBytes: number): Generator<ArrayBufferView> {
  if (e.numel === 0) return;
  const size = SAFETENSORS_DTYPE_SIZES[out];
  const perChunk = Math.max(1, Math.min(e.numel, Math.floor(chunkBytes / size)));
  const raw = new ArrayBuffer(perChunk * size);
  const narrow = arena.dtype === 'f32' && out === 'BF16';
  const scratch = narrow ? Tensor.zeros('bf16', [perChunk]) : null;
  try {
    for (let done = 0; done < e.numel; done += perChunk) {
      const n = Math.min(perChunk, e.numel - done);
      const src = arena.buffer.view(e.offset + done, [n]);
      try {
        if (scratch) {
          const s = n === perChunk ? scratch : scratch.view(0, [n]);
          ops.cast(s, src);
          s.copyTo(new Uint16Array(raw, 0, n));
          if (s !== scratch) s.dispose();
        } else if (out === 'F32') {
          src.copyTo(new Float32Array(raw, 0, n)); // f32 as is, bf16 widened exactly
        } else if (out === 'BF16') {
          src.copyTo(new Uint16Array(raw, 0, n));
        } else {
          src.copyTo(new Int32Array(raw, 0, n));
        }
      } finally {
        src.dispose();
      }
      yield new Uint8Array(raw, 0, n * size);
    }
  } finally {
    scratch?.dispose();
  }
}

/** The entries of `arena` as tensors for writeSafetensors (streamed out of native memory when written). */
export function arenaTensorsToWrite(arena: Arena, options: ArenaWriteOptions = {}): TensorToWrite[] {
  if (!(arena instanceof Arena)) throw invalidArg('arenaTensorsToWrite: expected an Arena');
  if (arena.disposed) throw invalidArg('arenaTensorsToWrite: the arena was disposed');
  const out = options.dtype ?? NATIVE_STDTYPE[arena.dtype];
  const prefix = options.prefix ?? '';
  const chunkBytes = checkChunkBytes(options.chunkBytes, 'arenaTensorsToWrite');
  if (out !== 'F32' && out !== 'BF16' && out !== 'I32') {
    throw invalidArg(`arenaTensorsToWrite: dtype must be 'F32', 'BF16' or 'I32', got ${JSON.stringify(out)}`);
  }
  if (!convertible(out, arena.dtype)) throw invalidArg(`arenaTensorsToWrite: cannot write a ${arena.dtype} arena as ${out}`);
  return arena.entries.map((e) => ({
    name: prefix + e.name,
    dtype: out,
    shape: e.shape,
    data: () => entryPieces(arena, e, out, chunkBytes),
  }));
}

/**
 * Saves every entry of `arena` under its name (plus `prefix`). Metadata defaults to { format: 'pt' }, which
 * transformers requires of a model file; given metadata is merged over it.
 */
export function saveArenaSafetensors(
  file: string,
  arena: Arena,
  options: ArenaWriteOptions & { metadata?: Record<string, string> } = {},
): void {
  const metadata = { format: 'pt', ...checkMetadata(options.metadata, 'saveArenaSafetensors') };
  writeSafetensors(file, arenaTensorsToWrite(arena, options), metadata);
}

// ---------------------------------------------------------------------------------------------------------
// Reading

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

/** Reads exactly `into.byteLength` bytes at `position`, or throws naming what was being read. */
function readExact(fd: number, into: Uint8Array, position: number, file: string, what: string, tensor?: string): void {
  let got = 0;
  while (got < into.byteLength) {
    const n = fs.readSync(fd, into, got, into.byteLength - got, position + got);
    if (n === 0) {
      throw new SafetensorsError(
        file,
        `the file ended after ${position + got} bytes while reading ${what} (it is truncated or changed while read)`,
        tensor,
      );
    }
    got += n;
  }
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

function readHeaderFd(fd: number, file: string): SafetensorsHeader {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 8) throw new SafetensorsError(file, `file is ${fileSize} bytes, shorter than the 8-byte header length`);
  const lenBytes = Buffer.alloc(8);
  readExact(fd, lenBytes, 0, file, 'the header length');
  const n = lenBytes.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(file, `header length ${n} is absurd (the limit is ${MAX_HEADER_BYTES} bytes); not a safetensors file?`);
  }
  const headerLength = Number(n);
  if (8 + headerLength > fileSize) {
    throw new SafetensorsError(file, `header length ${headerLength} runs past the end of the ${fileSize}-byte file (truncated?)`);
  }
  const headBytes = Buffer.alloc(headerLength);
  readExact(fd, headBytes, 8, file, 'the header');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headBytes);
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

function openForRead(file: string): number {
  if (typeof file !== 'string' || file === '') throw invalidArg('safetensors: file must be a non-empty path');
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new SafetensorsError(file, 'no such file');
    throw e;
  }
  if (fs.fstatSync(fd).isDirectory()) {
    fs.closeSync(fd);
    throw new SafetensorsError(file, 'is a directory, not a safetensors file');
  }
  return fd;
}

/** Reads and fully validates the header of `file` (the data buffer's extent included, not its contents). */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = openForRead(file);
  try {
    return readHeaderFd(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}

/** An arena to fill, with the prefix its entry names carry in the file. */
export interface ArenaTarget {
  arena: Arena;
  /** Defaults to ''. */
  prefix?: string;
}

export interface ArenaLoadOptions {
  /** Tensors in the file(s) that no arena takes are an error when true (the default), ignored when false. */
  strict?: boolean;
  /** Bytes read per piece. Defaults to 64 MiB. */
  chunkBytes?: number;
}

export interface ArenaLoadResult {
  /** File tensor names copied into an arena. */
  loaded: string[];
  /** File tensor names no arena takes (empty in strict mode). */
  ignored: string[];
  /** The header of each file, in the order given. */
  headers: SafetensorsHeader[];
}

interface Planned {
  fd: number;
  header: SafetensorsHeader;
  info: SafetensorsTensorInfo;
  arena: Arena;
  entry: ArenaEntry;
}

/** Copies one tensor from the file into its arena entry, `chunkBytes` at a time. */
function copyIn(p: Planned, chunkBytes: number): void {
  const { fd, header, info, arena, entry } = p;
  if (info.numel === 0) return;
  const size = SAFETENSORS_DTYPE_SIZES[info.dtype];
  const perChunk = Math.max(1, Math.min(info.numel, Math.floor(chunkBytes / size)));
  const raw = new ArrayBuffer(perChunk * size);
  const widen = info.dtype === 'BF16' && arena.dtype === 'f32';
  const scratch = widen ? Tensor.zeros('bf16', [perChunk]) : null;
  try {
    for (let done = 0; done < info.numel; done += perChunk) {
      const n = Math.min(perChunk, info.numel - done);
      readExact(fd, new Uint8Array(raw, 0, n * size), header.dataStart + info.dataOffsets[0] + done * size, header.file, 'its data', info.name);
      const dst = arena.buffer.view(entry.offset + done, [n]);
      try {
        if (scratch) {
          const s = n === perChunk ? scratch : scratch.view(0, [n]);
          s.copyFrom(new Uint16Array(raw, 0, n));
          ops.cast(dst, s); // exact
          if (s !== scratch) s.dispose();
        } else if (info.dtype === 'F32') {
          dst.copyFrom(new Float32Array(raw, 0, n)); // into bf16: rounded to nearest even
        } else if (info.dtype === 'BF16') {
          dst.copyFrom(new Uint16Array(raw, 0, n));
        } else {
          dst.copyFrom(new Int32Array(raw, 0, n));
        }
      } finally {
        dst.dispose();
      }
    }
  } finally {
    scratch?.dispose();
  }
}

function describeFiles(files: readonly string[]): string {
  return files.length === 1 ? files[0] : `${files[0]} (and ${files.length - 1} more shard${files.length > 2 ? 's' : ''})`;
}

/**
 * Fills every entry of every target arena from `files` (one file, or the shards of one model: each tensor
 * in exactly one of them). Everything is validated before any byte is copied.
 */
export function loadArenasSafetensors(
  files: string | readonly string[],
  targets: readonly ArenaTarget[],
  options: ArenaLoadOptions = {},
): ArenaLoadResult {
  requireLittleEndian();
  const fileList = typeof files === 'string' ? [files] : [...files];
  if (fileList.length === 0) throw invalidArg('loadArenasSafetensors: no files given');
  const strict = options.strict ?? true;
  const chunkBytes = checkChunkBytes(options.chunkBytes, 'loadArenasSafetensors');

  const wanted = new Map<string, { arena: Arena; entry: ArenaEntry }>();
  for (const { arena, prefix = '' } of targets) {
    if (!(arena instanceof Arena)) throw invalidArg('loadArenasSafetensors: every target needs an Arena');
    if (arena.disposed) throw invalidArg('loadArenasSafetensors: a target arena was disposed');
    for (const entry of arena.entries) {
      const name = prefix + entry.name;
      if (wanted.has(name)) throw invalidArg(`loadArenasSafetensors: two targets both take tensor '${name}'`);
      wanted.set(name, { arena, entry });
    }
  }

  const fds: number[] = [];
  try {
    const headers: SafetensorsHeader[] = [];
    const planned = new Map<string, Planned>();
    const ignored: string[] = [];
    const problems: { file: string; tensor?: string; msg: string }[] = [];
    for (const file of fileList) {
      const fd = openForRead(file);
      fds.push(fd);
      const header = readHeaderFd(fd, file);
      headers.push(header);
      for (const info of header.tensors) {
        const w = wanted.get(info.name);
        if (!w) {
          if (strict) problems.push({ file, tensor: info.name, msg: 'in the file but not in the arena (strict load; strict: false ignores it)' });
          else ignored.push(info.name);
          continue;
        }
        const seen = planned.get(info.name);
        if (seen) {
          problems.push({ file, tensor: info.name, msg: `also in ${seen.header.file}` });
          continue;
        }
        planned.set(info.name, { fd, header, info, ...w });
        if (!sameShape(info.shape, w.entry.shape)) {
          problems.push({ file, tensor: info.name, msg: `shape ${fmtShape(info.shape)} in the file, the arena wants ${fmtShape(w.entry.shape)}` });
        }
        if (!convertible(info.dtype, w.arena.dtype)) {
          problems.push({
            file,
            tensor: info.name,
            msg: `${info.dtype} in the file; a ${w.arena.dtype} arena loads only ${w.arena.dtype === 'i32' ? 'I32' : 'F32 or BF16'}`,
          });
        }
      }
    }
    for (const [name, w] of wanted) {
      if (!planned.has(name)) {
        problems.push({
          file: describeFiles(fileList),
          tensor: name,
          msg: `missing from the file${fileList.length > 1 ? 's' : ''} (the arena needs ${w.arena.dtype} ${fmtShape(w.entry.shape)})`,
        });
      }
    }
    if (problems.length > 0) {
      const [first] = problems;
      const more = problems.slice(1, 10).map((p) => `tensor '${p.tensor}': ${p.msg}`);
      const rest = problems.length > 10 ? `; and ${problems.length - 10} more` : '';
      throw new SafetensorsError(
        first.file,
        `${first.msg}${more.length ? `; also ${more.join('; ')}${rest}` : ''}`,
        first.tensor,
      );
    }

    // Read each file front to back.
    const order = [...planned.values()].sort(
      (a, b) => fds.indexOf(a.fd) - fds.indexOf(b.fd) || a.info.dataOffsets[0] - b.info.dataOffsets[0],
    );
    for (const p of order) copyIn(p, chunkBytes);
    return { loaded: order.map((p) => p.info.name), ignored, headers };
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}

/** Fills every entry of `arena` from `file`, each under `prefix` + its name. See loadArenasSafetensors. */
export function loadArenaSafetensors(
  file: string,
  arena: Arena,
  options: ArenaLoadOptions & { prefix?: string } = {},
): ArenaLoadResult {
  return loadArenasSafetensors(file, [{ arena, prefix: options.prefix }], options);
}
