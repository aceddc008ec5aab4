// safetensors-write.ts: writing safetensors files: any tensors, streamed piece by piece so a 7B model
// (28 GB in f32) never sits in one JavaScript buffer, and whole arenas.
//
// Contracts:
//  - Writes are atomic (temporary file, fsync, rename): a crash leaves the old file or the new one, never half.
//  - Saving from an f32 arena may write BF16 (rounded to nearest even, as the native cast does); from a bf16
//    arena, F32 (exact).
//  - Native memory is copied out in pieces of `chunkBytes` (64 MiB by default) through views of the arena buffer.
import { Arena, Tensor, numelOf, type ArenaEntry, type DType } from '../core/tensor';
import { ops } from '../core/ops';
import { invalidArg } from '../core/errors';
import { writeAll, writeFileAtomic } from '../core/atomic';
import {
  METADATA_KEY,
  SAFETENSORS_DTYPE_SIZES,
  checkChunkBytes,
  convertible,
  fmtShape,
  isDType,
  requireLittleEndian,
  type SafetensorsDType,
} from './safetensors-format';

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

/** The safetensors dtype each arena dtype is saved as without a conversion. */
const NATIVE_STDTYPE: Record<DType, SafetensorsDType> = { f32: 'F32', bf16: 'BF16', i32: 'I32' };

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
  const scratch = narrow ? Tensor.zeros('bf16', [perChunk], arena.device) : null;
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
