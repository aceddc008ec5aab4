// safetensors-read.ts: reading safetensors files: a header (validated whole by parseHeader), and whole
// arenas streamed in from one file or the shards of one model.
//
// Contracts:
//  - Every header is validated whole, and every tensor needed (presence, shape, dtype) checked, before any
//    byte is copied into an arena, so a rejected file leaves the arena as it was. Errors are SafetensorsError
//    (code ERR_PAJAMA_SAFETENSORS) naming the file and the tensor.
//  - Conversions into an arena: F32 or BF16 into an f32 or bf16 arena (BF16 -> f32 widens exactly, F32 -> bf16
//    rounds to nearest even, as the native cast does), I32 into an i32 arena.
//  - The file is read in pieces of `chunkBytes` (64 MiB by default), copied through views of the arena buffer.
import * as fs from 'node:fs';
import { Arena, Tensor, type ArenaEntry } from '../core/tensor';
import { ops } from '../core/ops';
import { invalidArg } from '../core/errors';
import {
  MAX_HEADER_BYTES,
  SAFETENSORS_DTYPE_SIZES,
  SafetensorsError,
  checkChunkBytes,
  convertible,
  fmtShape,
  parseHeader,
  requireLittleEndian,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
} from './safetensors-format';

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
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

/** Reads the header of the open file `fd` and validates it whole (parseHeader). */
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
  return parseHeader(file, fileSize, headBytes);
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
  const scratch = widen ? Tensor.zeros('bf16', [perChunk], arena.device) : null;
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
