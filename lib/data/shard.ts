// shard.ts: the token shard, the file that tokenisation writes and the loader reads.
//
// Layout (all integers little-endian):
//
//   offset  size  field
//        0     8  magic "PJTOKSHD" (ASCII)
//        8     4  version, u32 = 1
//       12     4  token byte width, u32: 2 (uint16 tokens) or 4 (uint32 tokens)
//       16     8  token count, u64
//       24     4  vocab size, u32: the tokenizer's real vocabulary; every token id is below it
//       28     4  EOS id, u32
//       32    32  reserved, zero
//       64     -  token count tokens of the given width
//
// Every document is followed by the EOS token, so documents are separated by EOS and the shard ends with
// one. A shard's file size is exactly 64 + count * width; anything else is a truncated or corrupted shard.
// ShardWriter streams documents to a temporary file next to the target and renames it into place on
// close(), so a shard path either holds a complete shard or nothing. ShardReader reads any window of tokens
// with positioned reads: shards may be far larger than memory.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tmpPathFor } from '../core/atomic';
import { DisposedError, invalidArg } from '../core/errors';
import { PajamaDataError } from './errors';
import { removeStaleTempFiles } from '../core/outputs';

export const SHARD_MAGIC = 'PJTOKSHD';
export const SHARD_VERSION = 1;
export const SHARD_HEADER_BYTES = 64;

export type TokenWidth = 2 | 4;

/** What a shard's header says. */
export interface ShardHeader {
  version: number;
  /** Bytes per token: 2 (uint16) or 4 (uint32). */
  tokenBytes: TokenWidth;
  /** Tokens in the shard, EOS separators included. */
  tokenCount: number;
  vocabSize: number;
  eosId: number;
}

const LITTLE_ENDIAN_HOST = os.endianness() === 'LE';

/** The 64 header bytes for `h`. */
export function encodeShardHeader(h: Omit<ShardHeader, 'version'>): Uint8Array {
  const bytes = new Uint8Array(SHARD_HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  bytes.set(Buffer.from(SHARD_MAGIC, 'ascii'), 0);
  view.setUint32(8, SHARD_VERSION, true);
  view.setUint32(12, h.tokenBytes, true);
  view.setBigUint64(16, BigInt(h.tokenCount), true);
  view.setUint32(24, h.vocabSize, true);
  view.setUint32(28, h.eosId, true);
  return bytes;
}

/** The narrowest width that holds every id below `vocabSize`. */
export function tokenWidthFor(vocabSize: number): TokenWidth {
  return vocabSize <= 65536 ? 2 : 4;
}

function checkVocab(vocabSize: number, eosId: number, where: string): void {
  if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > 2 ** 32) {
    throw invalidArg(`${where}: vocabSize must be an integer in [1, 2^32], got ${vocabSize}`);
  }
  if (!Number.isInteger(eosId) || eosId < 0 || eosId >= vocabSize) {
    throw invalidArg(`${where}: eosId must be an integer in [0, vocabSize = ${vocabSize}), got ${eosId}`);
  }
}

export interface ShardWriterOptions {
  /** The tokenizer's vocabulary size; every token must be below it. */
  vocabSize: number;
  /** The id written after every document. */
  eosId: number;
  /** Bytes per token. Defaults to 2 when vocabSize <= 65536, else 4. */
  tokenBytes?: TokenWidth;
  /** Bytes buffered before each write. Defaults to 1 MiB. */
  bufferBytes?: number;
}

/**
 * Streams documents into a new shard. Tokens go to `<path>.tmp-<pid>-<random>` in the target's folder;
 * close() writes the header, syncs and renames it to `path`; abort() (or any error in close) removes it.
 * Temporary files of this path left by processes no longer running (killed mid-write) are removed first.
 */
export class ShardWriter {
  readonly path: string;
  readonly tokenBytes: TokenWidth;
  readonly vocabSize: number;
  readonly eosId: number;
  #tmpPath: string;
  #fd: number | null;
  #buf: Uint8Array;
  #u16: Uint16Array | null;
  #u32: Uint32Array | null;
  #view: DataView;
  #used = 0; // tokens in #buf
  #tokens = 0;
  #documents = 0;

  constructor(filePath: string, options: ShardWriterOptions) {
    if (typeof filePath !== 'string' || filePath === '') throw invalidArg('ShardWriter: path must be a non-empty string');
    const { vocabSize, eosId } = options ?? ({} as ShardWriterOptions);
    checkVocab(vocabSize, eosId, 'ShardWriter');
    const width = options.tokenBytes ?? tokenWidthFor(vocabSize);
    if (width !== 2 && width !== 4) throw invalidArg(`ShardWriter: tokenBytes must be 2 or 4, got ${width}`);
    if (width === 2 && vocabSize > 65536) {
      throw invalidArg(`ShardWriter: tokenBytes 2 holds ids below 65536, but vocabSize is ${vocabSize}`);
    }
    const bufferBytes = options.bufferBytes ?? 1 << 20;
    if (!Number.isInteger(bufferBytes) || bufferBytes < 4) throw invalidArg(`ShardWriter: bufferBytes must be an integer >= 4, got ${bufferBytes}`);
    this.path = path.resolve(filePath);
    this.tokenBytes = width;
    this.vocabSize = vocabSize;
    this.eosId = eosId;
    this.#buf = new Uint8Array(bufferBytes - (bufferBytes % width));
    this.#u16 = LITTLE_ENDIAN_HOST && width === 2 ? new Uint16Array(this.#buf.buffer) : null;
    this.#u32 = LITTLE_ENDIAN_HOST && width === 4 ? new Uint32Array(this.#buf.buffer) : null;
    this.#view = new DataView(this.#buf.buffer);
    fs.mkdirSync(path.dirname(this.path), { recursive: true });
    removeStaleTempFiles(this.path); // what a killed earlier writer of this shard left behind
    this.#tmpPath = tmpPathFor(this.path);
    this.#fd = fs.openSync(this.#tmpPath, 'w');
    try {
      // A placeholder header: the real one, with the count, is written by close().
      fs.writeSync(this.#fd, new Uint8Array(SHARD_HEADER_BYTES), 0, SHARD_HEADER_BYTES, 0);
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** Tokens written so far, EOS separators included. */
  get tokens(): number {
    return this.#tokens;
  }

  /** Documents written so far. */
  get documents(): number {
    return this.#documents;
  }

  /**
   * Appends one document and the EOS after it. Every id must be an integer below vocabSize and must not be
   * the EOS id itself (EOS is the document separator).
   */
  appendDocument(tokens: ArrayLike<number>): void {
    this.appendTokens(tokens);
    this.endDocument();
  }

  /** Appends tokens to the current document, for documents encoded piece by piece; ids checked as above. */
  appendTokens(tokens: ArrayLike<number>): void {
    const fd = this.#open('appendTokens');
    const vocab = this.vocabSize;
    const eos = this.eosId;
    const n = tokens.length;
    for (let i = 0; i < n; i++) {
      const id = tokens[i];
      if (id >>> 0 !== id || id >= vocab || id === eos) {
        throw invalidArg(
          `ShardWriter: token ${i} of a piece of document ${this.#documents} is ${id}; ids must be integers in ` +
            `[0, ${vocab}) other than the EOS id ${eos}`,
        );
      }
    }
    for (let i = 0; i < n; i++) this.#push(fd, tokens[i]);
  }

  /** Ends the current document: writes the EOS. */
  endDocument(): void {
    this.#push(this.#open('endDocument'), this.eosId);
    this.#documents++;
  }

  #push(fd: number, id: number): void {
    if (this.#used * this.tokenBytes === this.#buf.length) this.#flush(fd);
    if (this.#u16) this.#u16[this.#used] = id;
    else if (this.#u32) this.#u32[this.#used] = id;
    else if (this.tokenBytes === 2) this.#view.setUint16(this.#used * 2, id, true);
    else this.#view.setUint32(this.#used * 4, id, true);
    this.#used++;
    this.#tokens++;
  }

  #flush(fd: number): void {
    const bytes = this.#used * this.tokenBytes;
    let done = 0;
    // Explicit positions throughout: the header is written with pwrite, which leaves the file position be.
    const at = SHARD_HEADER_BYTES + (this.#tokens - this.#used) * this.tokenBytes;
    while (done < bytes) done += fs.writeSync(fd, this.#buf, done, bytes - done, at + done);
    this.#used = 0;
  }

  #open(where: string): number {
    if (this.#fd === null) throw new DisposedError(`ShardWriter.${where}: ${this.path} is already closed or aborted`);
    return this.#fd;
  }

  /** Writes the header, syncs and renames the shard into place. Returns its header. */
  close(): ShardHeader {
    const fd = this.#open('close');
    const header: ShardHeader = {
      version: SHARD_VERSION,
      tokenBytes: this.tokenBytes,
      tokenCount: this.#tokens,
      vocabSize: this.vocabSize,
      eosId: this.eosId,
    };
    try {
      this.#flush(fd);
      fs.writeSync(fd, encodeShardHeader(header), 0, SHARD_HEADER_BYTES, 0);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      this.#fd = null;
      fs.renameSync(this.#tmpPath, this.path);
    } catch (e) {
      this.abort();
      throw e;
    }
    return header;
  }

  /** Drops the partial shard. Idempotent; does nothing after a successful close(). */
  abort(): void {
    if (this.#fd !== null) {
      try {
        fs.closeSync(this.#fd);
      } catch {
        // already unusable; removing the file is what matters
      }
      this.#fd = null;
    }
    fs.rmSync(this.#tmpPath, { force: true });
  }
}

/** Parses and checks a shard header. `file` and `fileBytes` are for the checks and messages. */
export function decodeShardHeader(bytes: Uint8Array, file: string, fileBytes: number): ShardHeader {
  if (fileBytes < SHARD_HEADER_BYTES) {
    throw new PajamaDataError(file, `truncated shard: ${fileBytes} bytes is shorter than the ${SHARD_HEADER_BYTES}-byte header`);
  }
  const magic = Buffer.from(bytes.subarray(0, 8));
  if (magic.toString('latin1') !== SHARD_MAGIC) {
    throw new PajamaDataError(
      file,
      `not a token shard: bad magic ${JSON.stringify(magic.toString('latin1'))} (hex ${magic.toString('hex')}), expected "${SHARD_MAGIC}"`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, SHARD_HEADER_BYTES);
  const version = view.getUint32(8, true);
  if (version !== SHARD_VERSION) {
    throw new PajamaDataError(file, `unsupported shard version ${version}; this reader reads version ${SHARD_VERSION}`);
  }
  const tokenBytes = view.getUint32(12, true);
  if (tokenBytes !== 2 && tokenBytes !== 4) {
    throw new PajamaDataError(file, `bad token byte width ${tokenBytes} in header; expected 2 or 4`);
  }
  const count = view.getBigUint64(16, true);
  if (count > BigInt(Number.MAX_SAFE_INTEGER)) throw new PajamaDataError(file, `token count ${count} in header is not plausible`);
  const tokenCount = Number(count);
  const vocabSize = view.getUint32(24, true);
  const eosId = view.getUint32(28, true);
  if (vocabSize === 0) throw new PajamaDataError(file, 'vocab size 0 in header');
  if (tokenBytes === 2 && vocabSize > 65536) {
    throw new PajamaDataError(file, `header says 2-byte tokens but vocab size ${vocabSize}, which needs 4`);
  }
  if (eosId >= vocabSize) throw new PajamaDataError(file, `EOS id ${eosId} in header is not below the vocab size ${vocabSize}`);
  for (let i = 32; i < SHARD_HEADER_BYTES; i++) {
    if (bytes[i] !== 0) throw new PajamaDataError(file, `reserved header byte ${i} is ${bytes[i]}, expected 0 (corrupted header?)`);
  }
  const expected = SHARD_HEADER_BYTES + tokenCount * tokenBytes;
  if (fileBytes !== expected) {
    const what = fileBytes < expected ? 'truncated shard' : 'size mismatch';
    throw new PajamaDataError(
      file,
      `${what}: header says ${tokenCount} tokens x ${tokenBytes} bytes + ${SHARD_HEADER_BYTES}-byte header = ${expected} bytes, ` +
        `but the file is ${fileBytes} bytes`,
    );
  }
  return { version, tokenBytes, tokenCount, vocabSize, eosId };
}

/**
 * An open shard. read() returns any window of tokens, checked against the header's vocab size, with
 * positioned reads; nothing else of the file is kept in memory. close() is idempotent.
 */
export class ShardReader implements ShardHeader {
  readonly path: string;
  readonly version: number;
  readonly tokenBytes: TokenWidth;
  readonly tokenCount: number;
  readonly vocabSize: number;
  readonly eosId: number;
  #fd: number | null;
  #scratch = new Uint8Array(0);

  /** Opens and checks `filePath`; see openShard. */
  constructor(filePath: string) {
    if (typeof filePath !== 'string' || filePath === '') throw invalidArg('openShard: path must be a non-empty string');
    this.path = path.resolve(filePath);
    let fd: number;
    try {
      fd = fs.openSync(this.path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such token shard' : code === 'EISDIR' ? 'is a folder, not a token shard' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
      throw new PajamaDataError(this.path, `cannot open: ${why}${code ? ` (${code})` : ''}`);
    }
    try {
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) throw new PajamaDataError(this.path, 'cannot open: is a folder, not a token shard (EISDIR)');
      const size = st.size;
      const head = new Uint8Array(SHARD_HEADER_BYTES);
      if (size >= SHARD_HEADER_BYTES) readFully(fd, head, SHARD_HEADER_BYTES, 0, this.path);
      const h = decodeShardHeader(head, this.path, size);
      this.version = h.version;
      this.tokenBytes = h.tokenBytes;
      this.tokenCount = h.tokenCount;
      this.vocabSize = h.vocabSize;
      this.eosId = h.eosId;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    this.#fd = fd;
  }

  get closed(): boolean {
    return this.#fd === null;
  }

  /**
   * Tokens [offset, offset + length) as a new Uint32Array (or into `out`, which must hold `length`).
   * Throws a PajamaDataError naming the file and offset if an id is not below the vocab size.
   */
  read(offset: number, length: number, out?: Uint32Array): Uint32Array {
    if (this.#fd === null) throw new DisposedError(`ShardReader.read: ${this.path} is closed`);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || offset + length > this.tokenCount) {
      throw invalidArg(`ShardReader.read: window [${offset}, ${offset} + ${length}) is outside ${this.path}'s ${this.tokenCount} tokens`);
    }
    if (out !== undefined && (!(out instanceof Uint32Array) || out.length < length)) {
      throw invalidArg(`ShardReader.read: out must be a Uint32Array of at least ${length} elements`);
    }
    const result = out ?? new Uint32Array(length);
    const w = this.tokenBytes;
    const bytes = length * w;
    if (this.#scratch.length < bytes) this.#scratch = new Uint8Array(Math.max(bytes, 2 * this.#scratch.length));
    const buf = this.#scratch;
    readFully(this.#fd, buf, bytes, SHARD_HEADER_BYTES + offset * w, this.path);
    if (LITTLE_ENDIAN_HOST) {
      result.set(w === 2 ? new Uint16Array(buf.buffer, 0, length) : new Uint32Array(buf.buffer, 0, length));
    } else {
      const view = new DataView(buf.buffer);
      for (let i = 0; i < length; i++) result[i] = w === 2 ? view.getUint16(2 * i, true) : view.getUint32(4 * i, true);
    }
    const vocab = this.vocabSize;
    for (let i = 0; i < length; i++) {
      if (result[i] >= vocab) {
        throw new PajamaDataError(
          this.path,
          `token id ${result[i]} at token offset ${offset + i} is not below the header's vocab size ${vocab} (corrupted shard?)`,
          offset + i,
        );
      }
    }
    return out === undefined ? result : result.subarray(0, length);
  }

  close(): void {
    if (this.#fd !== null) fs.closeSync(this.#fd);
    this.#fd = null;
  }
}

/** Opens a shard, checking magic, version, width, header fields and that the file size matches the count. */
export function openShard(filePath: string): ShardReader {
  return new ShardReader(filePath);
}

function readFully(fd: number, buf: Uint8Array, bytes: number, position: number, file: string): void {
  let done = 0;
  while (done < bytes) {
    const n = fs.readSync(fd, buf, done, bytes - done, position + done);
    if (n === 0) throw new PajamaDataError(file, `unexpected end of file at byte ${position + done} (the shard shrank while open?)`);
    done += n;
  }
}
