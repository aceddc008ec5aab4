// jsonl.ts: the raw-corpus reader, SlimPajama/RedPajama shards (.jsonl and .jsonl.zst) -> documents.
//
// A shard holds one JSON object per line, {"text": "...", "meta": {"redpajama_set_name": "RedPajamaC4"}};
// .jsonl.zst shards are zstd-compressed (any number of frames, decompressed with fzstd's streaming Decompress).
// Memory stays constant: files are read in chunks of `chunkBytes`, lines are cut at the byte 0x0A (which
// never occurs inside a multi-byte UTF-8 character, so no character is ever split) and only the line being
// assembled is held, up to `maxLineBytes`. Each line is UTF-8-validated and decoded whole. A "\r" before the
// "\n" is dropped, a final line without "\n" is read, a UTF-8 byte order mark at the start of a file is
// dropped, and whitespace-only lines are counted and ignored.
//
// Inputs are files, folders (searched recursively for *.jsonl and *.jsonl.zst) and globs (see globToRegExp).
// The file list is resolved to absolute paths, de-duplicated and sorted by path, so the order of documents
// does not depend on the order or overlap of the inputs. An input that matches no shard file is an error.
//
// A document's source is, in this order of precedence:
//   1. the first entry of `sources` (a glob, folder or file, in the object's key order) that matches the file;
//   2. the record's meta.redpajama_set_name;
//   3. `defaultSource`.
// A mapping is for corpora without RedPajama's meta and for overriding it; it is decided per file, so a
// mapped file's records need no meta at all.
//
// A malformed line (invalid UTF-8 or JSON, not an object, no string "text", no source, too long) is counted,
// reported with its file, line and reason, and skipped; with `strict` it is a PajamaDataError instead. A
// truncated or corrupt .zst file is reported the same way, naming the line where reading stopped: the
// complete lines before it are kept, the rest of the file is skipped (with `strict`, a PajamaDataError).
// fzstd does not check zstd's content checksums, and a flipped byte in compressed text often decodes to other
// text without an error; so the reader follows the frame structure itself (ZstdFrameScanner) and checks each
// frame's content size and XXH64 checksum (`verifyChecksums`). The check is made at the end of a frame,
// after its documents were yielded: a consumer that must not use them reads with `strict`. A 0-byte .zst
// file is truncated, as `zstd -d` says. Read errors from the file system are thrown as they are.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isUtf8 } from 'node:buffer';
import { Decompress } from 'fzstd';
import { invalidArg } from '../../core/errors';
import { PajamaDataError } from '../errors';

/** One document of a shard. */
export interface SourceDocument {
  text: string;
  /** Where the document comes from, e.g. 'RedPajamaC4' (see the precedence at the top of jsonl.ts). */
  source: string;
  /** The absolute path of the shard file. */
  file: string;
  /** The 1-based line of the document in the (decompressed) file. */
  line: number;
  /** The 0-based ordinal of the document among all documents this reader yielded. */
  index: number;
}

/** A skipped line, or a file whose reading stopped early. */
export interface MalformedInput {
  file: string;
  /** The 1-based line at fault; for a corrupt .zst file, the line at which reading stopped. */
  line: number;
  reason: string;
}

export interface SourceCounts {
  documents: number;
  /** UTF-8 bytes of the documents' text. */
  bytes: number;
}

export interface JsonlReadStats {
  /** Files read to their end, or to their corruption. */
  files: number;
  /** Lines read, blank and malformed ones included. */
  lines: number;
  /** Whitespace-only lines (ignored). */
  blankLines: number;
  documents: number;
  /** Uncompressed bytes read, all files. */
  bytes: number;
  /** Bytes read from .zst files as stored. */
  compressedBytes: number;
  /** Malformed lines skipped. */
  malformed: number;
  /** Truncated or corrupt .zst files. */
  corruptFiles: number;
  /** The first `maxMalformedSamples` malformed lines and corrupt files, in reading order. */
  malformedSamples: MalformedInput[];
  /** Documents and text bytes per source, in order of first appearance. */
  sources: Record<string, SourceCounts>;
}

export interface JsonlReadProgress {
  /** The file being read. */
  file: string;
  /** Files finished so far, and in all. */
  filesDone: number;
  files: number;
  /** Bytes read from disk so far (compressed for .zst), and the sizes of all files as listed. */
  diskBytes: number;
  diskBytesTotal: number;
  /** Uncompressed bytes read so far. */
  bytes: number;
  documents: number;
}

export interface JsonlReadOptions {
  /** Shard files, folders to search for them, and globs. */
  inputs: string[];
  /** Source names by glob, folder or file; the first match wins, and a match wins over meta. */
  sources?: Record<string, string>;
  /** The source of records with neither a mapping nor meta.redpajama_set_name. Defaults to none (malformed). */
  defaultSource?: string;
  /** Throw a PajamaDataError at the first malformed line or corrupt file. Defaults to false. */
  strict?: boolean;
  /** Bytes read from disk at a time. Defaults to 1 MiB; small in tests. */
  chunkBytes?: number;
  /** A longer line is malformed, and is skipped without being held in memory. Defaults to 256 MiB. */
  maxLineBytes?: number;
  /**
   * Check each zstd frame's content checksum (XXH64), which fzstd does not. A mismatch is found at the end of
   * its frame, after the frame's documents were yielded. Defaults to true.
   */
  verifyChecksums?: boolean;
  /** Malformed lines and files kept as samples in the stats (all are counted). Defaults to 20. */
  maxMalformedSamples?: number;
  /** Called after every chunk read from disk and after every file. */
  onProgress?: (p: JsonlReadProgress) => void;
  /** Called for every malformed line and corrupt file (not in strict mode, which throws instead). */
  onMalformed?: (m: MalformedInput) => void;
}

const SHARD_FILE = /\.jsonl(\.zst)?$/;
const ZSTD_FILE = /\.zst$/;

/**
 * The shard files (*.jsonl, *.jsonl.zst) named by `inputs`: files, folders searched recursively, and globs.
 * Absolute paths, de-duplicated, sorted by path. Throws a TypeError naming an input that matches no shard
 * file, does not exist, or is a file of another kind.
 */
export function listShardFiles(inputs: readonly string[]): string[] {
  if (!Array.isArray(inputs) || inputs.length === 0) throw invalidArg('listShardFiles: inputs must be a non-empty array of paths or globs');
  const found = new Set<string>();
  for (const input of inputs) {
    if (typeof input !== 'string' || input === '') throw invalidArg('listShardFiles: every input must be a non-empty string');
    let matched = 0;
    if (isGlob(input)) {
      matched = expandGlob(input, found);
      if (matched === 0) throw invalidArg(`listShardFiles: the glob ${input} matches no .jsonl or .jsonl.zst file`);
    } else {
      const p = path.resolve(input);
      let st: fs.Stats;
      try {
        st = fs.statSync(p);
      } catch {
        throw invalidArg(`listShardFiles: input ${p} does not exist`);
      }
      if (st.isDirectory()) {
        walkFolder(p, Infinity, (f) => {
          found.add(f);
          matched++;
        });
        if (matched === 0) throw invalidArg(`listShardFiles: the folder ${p} holds no .jsonl or .jsonl.zst file`);
      } else if (SHARD_FILE.test(p)) found.add(p);
      else throw invalidArg(`listShardFiles: input ${p} is neither a folder nor a .jsonl or .jsonl.zst file`);
    }
  }
  return [...found].sort(comparePaths);
}

function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether `s` is a glob: it holds `*` or `?`. */
export function isGlob(s: string): boolean {
  return s.includes('*') || s.includes('?');
}

/**
 * A RegExp matching the absolute paths a glob names. The glob is resolved against the working directory;
 * `*` matches any characters but '/' (leading dots included), `?` one such character, and a `**` path
 * segment any number of folders (none included), or any depth of files when it ends the glob. Every other
 * character matches itself. Paths are compared with '/' separators.
 */
export function globToRegExp(glob: string): RegExp {
  const segments = toSlashes(path.resolve(glob)).split('/');
  let re = '';
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    const last = i === segments.length - 1;
    if (seg === '**') {
      re += last ? '.+' : '(?:[^/]+/)*';
      continue;
    }
    for (let j = 0; j < seg.length; j++) {
      const c = seg[j];
      if (c === '*') {
        while (seg[j + 1] === '*') j++;
        re += '[^/]*';
      } else if (c === '?') re += '[^/]';
      else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
    if (!last) re += '/';
  }
  return new RegExp(`^${re}$`);
}

function toSlashes(p: string): string {
  return path.sep === '/' ? p : p.split(path.sep).join('/');
}

/** Adds the shard files matching `glob` to `found`; returns how many matched (before de-duplication). */
function expandGlob(glob: string, found: Set<string>): number {
  const abs = path.resolve(glob);
  const segments = abs.split(path.sep);
  const firstMagic = segments.findIndex(isGlob);
  const base = segments.slice(0, firstMagic).join(path.sep) || path.sep;
  const rest = segments.slice(firstMagic);
  const depth = rest.includes('**') ? Infinity : rest.length;
  const re = globToRegExp(glob);
  let matched = 0;
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(base);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return 0;
  walkFolder(base, depth, (f) => {
    if (re.test(toSlashes(f))) {
      found.add(f);
      matched++;
    }
  });
  return matched;
}

/**
 * Calls `onFile` for every shard file under `dir` at most `depth` levels down (1: `dir`'s own files), in
 * name order. Links are followed; a folder already being walked (a link loop) is not entered again.
 */
function walkFolder(dir: string, depth: number, onFile: (file: string) => void, active = new Set<string>()): void {
  const real = fs.realpathSync(dir);
  if (active.has(real)) return;
  active.add(real);
  const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => comparePaths(a.name, b.name));
  for (const e of entries) {
    const p = path.join(dir, e.name);
    let st: fs.Stats | fs.Dirent = e;
    if (e.isSymbolicLink()) {
      try {
        st = fs.statSync(p);
      } catch {
        continue; // a dangling link names nothing
      }
    }
    if (st.isDirectory()) {
      if (depth > 1) walkFolder(p, depth - 1, onFile, active);
    } else if (st.isFile() && SHARD_FILE.test(e.name)) onFile(p);
  }
  active.delete(real);
}

/** Decides a file's source from the `sources` option: the first matching entry wins. */
class SourceMapping {
  private readonly entries: { name: string; matches: (file: string) => boolean }[] = [];

  constructor(sources: Record<string, string> | undefined) {
    if (sources === undefined) return;
    if (sources === null || typeof sources !== 'object' || Array.isArray(sources)) {
      throw invalidArg('JsonlDocumentReader: sources must be an object mapping globs or folders to source names');
    }
    for (const [key, name] of Object.entries(sources)) {
      if (key === '') throw invalidArg('JsonlDocumentReader: a sources key must be a non-empty glob, folder or file');
      if (typeof name !== 'string' || name === '') {
        throw invalidArg(`JsonlDocumentReader: sources["${key}"] must be a non-empty source name, got ${JSON.stringify(name)}`);
      }
      if (isGlob(key)) {
        const re = globToRegExp(key);
        this.entries.push({ name, matches: (f) => re.test(toSlashes(f)) });
      } else {
        const p = path.resolve(key);
        const under = p.endsWith(path.sep) ? p : p + path.sep;
        this.entries.push({ name, matches: (f) => f === p || f.startsWith(under) });
      }
    }
  }

  sourceOf(file: string): string | undefined {
    for (const e of this.entries) if (e.matches(file)) return e.name;
    return undefined;
  }
}

/** Thrown by zstdChunks and ZstdFrameScanner when the compressed data ends early or is not valid zstd. */
class ZstdFailure extends Error {}

const DEFAULT_CHUNK_BYTES = 1 << 20;
const DEFAULT_MAX_LINE_BYTES = 256 << 20;
const DEFAULT_MAX_MALFORMED_SAMPLES = 20;

/**
 * Reads the documents of SlimPajama/RedPajama shards, in file order then line order. Iterate it once with
 * `for await`; `stats` is live while reading and complete afterwards. The file list is resolved (and a bad
 * input thrown) by the constructor.
 */
export class JsonlDocumentReader implements AsyncIterable<SourceDocument> {
  /** The shard files, in reading order. */
  readonly files: readonly string[];
  readonly stats: JsonlReadStats = {
    files: 0,
    lines: 0,
    blankLines: 0,
    documents: 0,
    bytes: 0,
    compressedBytes: 0,
    malformed: 0,
    corruptFiles: 0,
    malformedSamples: [],
    sources: Object.create(null) as Record<string, SourceCounts>,
  };
  private readonly mapping: SourceMapping;
  private readonly defaultSource: string | undefined;
  private readonly strict: boolean;
  private readonly verifyChecksums: boolean;
  private readonly chunkBytes: number;
  private readonly maxLineBytes: number;
  private readonly maxSamples: number;
  private readonly onProgress: ((p: JsonlReadProgress) => void) | undefined;
  private readonly onMalformed: ((m: MalformedInput) => void) | undefined;
  private started = false;
  private diskBytes = 0;
  private diskBytesTotal = 0;

  constructor(options: JsonlReadOptions) {
    if (options === null || typeof options !== 'object') throw invalidArg('JsonlDocumentReader: options must be an object');
    const known = new Set(['inputs', 'sources', 'defaultSource', 'strict', 'chunkBytes', 'maxLineBytes', 'verifyChecksums', 'maxMalformedSamples', 'onProgress', 'onMalformed']);
    for (const k of Object.keys(options)) if (!known.has(k)) throw invalidArg(`JsonlDocumentReader: unknown option "${k}"`);
    const { defaultSource, strict = false, verifyChecksums = true, onProgress, onMalformed } = options;
    if (defaultSource !== undefined && (typeof defaultSource !== 'string' || defaultSource === '')) {
      throw invalidArg(`JsonlDocumentReader: defaultSource must be a non-empty string, got ${JSON.stringify(defaultSource)}`);
    }
    if (typeof strict !== 'boolean') throw invalidArg(`JsonlDocumentReader: strict must be a boolean, got ${JSON.stringify(strict)}`);
    if (typeof verifyChecksums !== 'boolean') throw invalidArg(`JsonlDocumentReader: verifyChecksums must be a boolean, got ${JSON.stringify(verifyChecksums)}`);
    if (onProgress !== undefined && typeof onProgress !== 'function') throw invalidArg('JsonlDocumentReader: onProgress must be a function');
    if (onMalformed !== undefined && typeof onMalformed !== 'function') throw invalidArg('JsonlDocumentReader: onMalformed must be a function');
    this.chunkBytes = positiveInteger('chunkBytes', options.chunkBytes, DEFAULT_CHUNK_BYTES);
    this.maxLineBytes = positiveInteger('maxLineBytes', options.maxLineBytes, DEFAULT_MAX_LINE_BYTES);
    this.maxSamples = positiveInteger('maxMalformedSamples', options.maxMalformedSamples, DEFAULT_MAX_MALFORMED_SAMPLES, true);
    this.mapping = new SourceMapping(options.sources);
    this.defaultSource = defaultSource;
    this.strict = strict;
    this.verifyChecksums = verifyChecksums;
    this.onProgress = onProgress;
    this.onMalformed = onMalformed;
    this.files = listShardFiles(options.inputs);
  }

  /** Starts reading. A reader reads once; the generator's return value is the final stats. */
  [Symbol.asyncIterator](): AsyncGenerator<SourceDocument, JsonlReadStats> {
    if (this.started) throw invalidArg('JsonlDocumentReader: a reader is iterated once; create a new one to read again');
    this.started = true;
    return this.read();
  }

  private async *read(): AsyncGenerator<SourceDocument, JsonlReadStats> {
    for (const f of this.files) this.diskBytesTotal += fs.statSync(f).size;
    for (const file of this.files) {
      yield* this.readFile(file);
      this.stats.files++;
      this.progress(file);
    }
    return this.stats;
  }

  private progress(file: string): void {
    this.onProgress?.({
      file,
      filesDone: this.stats.files,
      files: this.files.length,
      diskBytes: this.diskBytes,
      diskBytesTotal: this.diskBytesTotal,
      bytes: this.stats.bytes,
      documents: this.stats.documents,
    });
  }

  /** Counts a malformed line or corrupt file, or throws it in strict mode. */
  private malformed(file: string, line: number, reason: string, corruptFile = false): void {
    if (this.strict) throw new PajamaDataError(file, `line ${line}: ${reason}`);
    if (corruptFile) this.stats.corruptFiles++;
    else this.stats.malformed++;
    const m = { file, line, reason };
    if (this.stats.malformedSamples.length < this.maxSamples) this.stats.malformedSamples.push(m);
    this.onMalformed?.(m);
  }

  private async *readFile(file: string): AsyncGenerator<SourceDocument> {
    const stats = this.stats;
    const mapped = this.mapping.sourceOf(file);
    const handle = await fs.promises.open(file, 'r');
    let lineNo = 0;
    let pending: Buffer[] = []; // the pieces of the line being assembled
    let pendingBytes = 0;
    let tooLong = false; // the line being assembled passed maxLineBytes: its bytes are counted, not kept

    // The document on a complete line (given without its "\n"), or undefined for a blank or malformed one.
    const takeLine = (raw: Buffer): SourceDocument | undefined => {
      lineNo++;
      stats.lines++;
      let end = raw.length;
      if (end > 0 && raw[end - 1] === 0x0d) end--;
      const start = lineNo === 1 && end >= 3 && raw[0] === 0xef && raw[1] === 0xbb && raw[2] === 0xbf ? 3 : 0;
      if (isBlank(raw, start, end)) {
        stats.blankLines++;
        return undefined;
      }
      const record = this.parseRecord(raw.subarray(start, end), mapped);
      if (typeof record === 'string') {
        this.malformed(file, lineNo, record);
        return undefined;
      }
      const counts = (stats.sources[record.source] ??= { documents: 0, bytes: 0 });
      counts.documents++;
      counts.bytes += Buffer.byteLength(record.text, 'utf8');
      return { text: record.text, source: record.source, file, line: lineNo, index: stats.documents++ };
    };
    const skipLongLine = (bytes: number): void => {
      lineNo++;
      stats.lines++;
      this.malformed(file, lineNo, `line of ${bytes} bytes is longer than maxLineBytes (${this.maxLineBytes})`);
    };

    try {
      const chunks = ZSTD_FILE.test(file) ? this.zstdChunks(file, handle) : this.diskChunks(file, handle);
      try {
        for await (const chunk of chunks) {
          stats.bytes += chunk.length;
          let start = 0;
          for (;;) {
            const nl = chunk.indexOf(0x0a, start);
            const pieceEnd = nl < 0 ? chunk.length : nl;
            pendingBytes += pieceEnd - start;
            if (!tooLong && pendingBytes > this.maxLineBytes) {
              tooLong = true;
              pending = [];
            }
            if (nl < 0) {
              if (!tooLong && start < chunk.length) pending.push(chunk.subarray(start));
              break;
            }
            let doc: SourceDocument | undefined;
            if (tooLong) skipLongLine(pendingBytes);
            else {
              const piece = chunk.subarray(start, nl);
              doc = takeLine(pending.length === 0 ? piece : Buffer.concat([...pending, piece]));
            }
            pending = [];
            pendingBytes = 0;
            tooLong = false;
            if (doc !== undefined) yield doc;
            start = nl + 1;
          }
        }
      } catch (e) {
        if (!(e instanceof ZstdFailure)) throw e;
        // The complete lines before the failure were read; the partial line after them is dropped.
        this.malformed(file, lineNo + 1, e.message, true);
        return;
      }
      if (pendingBytes > 0) {
        // A final line without "\n".
        if (tooLong) skipLongLine(pendingBytes);
        else {
          const doc = takeLine(Buffer.concat(pending));
          if (doc !== undefined) yield doc;
        }
      }
    } finally {
      await handle.close();
    }
  }

  /** A line's text and source, or why it is malformed. */
  private parseRecord(bytes: Buffer, mapped: string | undefined): { text: string; source: string } | string {
    if (!isUtf8(bytes)) return 'invalid UTF-8';
    let record: unknown;
    try {
      record = JSON.parse(bytes.toString('utf8'));
    } catch (e) {
      return `invalid JSON: ${(e as Error).message}`;
    }
    if (record === null || typeof record !== 'object' || Array.isArray(record)) return 'not a JSON object';
    const { text, meta } = record as { text?: unknown; meta?: unknown };
    if (typeof text !== 'string') return 'no string "text" field';
    if (mapped !== undefined) return { text, source: mapped };
    let source: string | undefined;
    if (meta !== undefined && meta !== null) {
      if (typeof meta !== 'object' || Array.isArray(meta)) return '"meta" is not an object';
      const name = (meta as { redpajama_set_name?: unknown }).redpajama_set_name;
      if (name !== undefined && (typeof name !== 'string' || name === '')) {
        return `meta.redpajama_set_name is not a non-empty string: ${JSON.stringify(name)}`;
      }
      source = name;
    }
    source ??= this.defaultSource;
    if (source === undefined) return 'no source: no meta.redpajama_set_name, no sources entry for this file and no defaultSource';
    return { text, source };
  }

  /**
   * The file's bytes in chunks of up to chunkBytes, each a fresh buffer (fzstd keeps references to input it
   * has not consumed yet). The next read is under way while the caller works on a chunk.
   */
  private async *diskChunks(file: string, handle: fs.promises.FileHandle): AsyncGenerator<Buffer> {
    const readNext = async (): Promise<Buffer> => {
      const buf = Buffer.allocUnsafe(this.chunkBytes);
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      return buf.subarray(0, bytesRead);
    };
    let next = readNext();
    try {
      for (;;) {
        const chunk = await next;
        if (chunk.length === 0) return;
        next = readNext();
        this.diskBytes += chunk.length;
        this.progress(file);
        yield chunk;
      }
    } finally {
      await next.catch(() => undefined); // a read still in flight when the caller stops (its error was seen, or is moot)
    }
  }

  /**
   * The decompressed bytes of a .zst file, frame after frame, as fzstd hands out its blocks. Each frame gets
   * a fresh decompressor and is pushed with final = true at its end (found by ZstdFrameScanner), so a frame
   * is decoded completely before its content size and checksum are checked. Throws a ZstdFailure, after the
   * blocks decompressed before it, when the data is not zstd, ends early or fails its checks.
   */
  private async *zstdChunks(file: string, handle: fs.promises.FileHandle): AsyncGenerator<Buffer> {
    const blocks: Uint8Array[] = [];
    const hash = new Xxh64();
    let frameBytes = 0; // decompressed bytes of the current frame
    const onData = (data: Uint8Array): void => {
      if (data.length === 0) return;
      blocks.push(data);
      frameBytes += data.length;
      if (this.verifyChecksums) hash.update(data);
    };
    const scanner = new ZstdFrameScanner();
    let decompressor: Decompress | undefined;
    let compressed = 0; // bytes pushed, or scanned up to a failure
    for await (const chunk of this.diskChunks(file, handle)) {
      this.stats.compressedBytes += chunk.length;
      let failure: string | undefined;
      let pos = 0;
      try {
        while (pos < chunk.length) {
          const frameEnd = scanner.scan(chunk, pos, chunk.length);
          const end = frameEnd < 0 ? chunk.length : frameEnd;
          decompressor ??= new Decompress(onData);
          decompressor.push(chunk.subarray(pos, end), frameEnd >= 0);
          compressed += end - pos;
          pos = end;
          if (frameEnd < 0) break;
          decompressor = undefined;
          if (!scanner.skippable) {
            if (scanner.contentSize >= 0 && scanner.contentSize !== frameBytes) {
              throw new ZstdFailure(`frame ${scanner.frames} decompressed to ${frameBytes} bytes, its header says ${scanner.contentSize}`);
            }
            if (this.verifyChecksums && scanner.hasChecksum && hash.digestLow32() !== scanner.checksum) {
              throw new ZstdFailure(`frame ${scanner.frames} fails its content checksum`);
            }
          }
          frameBytes = 0;
          hash.reset();
        }
      } catch (e) {
        compressed += chunk.length - pos;
        const why = e instanceof ZstdFailure ? e.message : (e as { code?: unknown }).code === 5 ? 'unexpected end of data' : (e as Error).message;
        failure = `corrupt zstd data: ${why} (in the first ${compressed} compressed bytes)`;
      }
      for (const b of blocks) yield Buffer.from(b.buffer, b.byteOffset, b.length);
      blocks.length = 0;
      if (failure !== undefined) throw new ZstdFailure(failure);
    }
    if (compressed === 0) throw new ZstdFailure('truncated zstd file: it is empty (0 bytes), not even a frame header');
    if (!scanner.atFrameStart) throw new ZstdFailure(`truncated zstd data: the file ends inside frame ${scanner.frames}, after ${compressed} bytes`);
  }
}

/**
 * Follows the frame structure of a zstd stream (RFC 8878 section 3.1) without decompressing: frame headers,
 * block headers, block sizes and checksums, across chunk boundaries. It finds where each frame ends, and
 * reads the frame's content size and checksum for the caller to check.
 */
class ZstdFrameScanner {
  /** Frames started so far, skippable ones included. */
  frames = 0;
  /** The current (or just finished) frame is a skippable frame. */
  skippable = false;
  hasChecksum = false;
  /** The frame header's content size; -1 when the header has none. */
  contentSize = -1;
  /** The frame's checksum, the low 32 bits of the XXH64 of its content, once its end was scanned. */
  checksum = 0;
  private state = ScanState.Magic;
  private readonly field = new Uint8Array(14); // the bytes of the header field being collected
  private fieldLength = 0;
  private need = 4; // bytes of the field, or of the block or skippable body left to skip
  private singleSegment = false;
  private dictionaryBytes = 0;
  private contentSizeBytes = 0;
  private lastBlock = false;

  /** Between frames: the end of the stream is allowed here. */
  get atFrameStart(): boolean {
    return this.state === ScanState.Magic && this.fieldLength === 0;
  }

  /** Scans chunk[start, end); returns the offset just past the frame that ends in it, or -1 if none does. */
  scan(chunk: Uint8Array, start: number, end: number): number {
    let i = start;
    for (;;) {
      if (this.state === ScanState.BlockBody || this.state === ScanState.SkippableBody) {
        const k = Math.min(this.need, end - i);
        i += k;
        this.need -= k;
        if (this.need > 0) return -1;
        if (this.state === ScanState.SkippableBody) return this.frameDone(i);
        if (!this.lastBlock) this.expect(ScanState.BlockHeader, 3);
        else if (this.hasChecksum) this.expect(ScanState.Checksum, 4);
        else return this.frameDone(i);
        continue;
      }
      const k = Math.min(this.need - this.fieldLength, end - i);
      this.field.set(chunk.subarray(i, i + k), this.fieldLength);
      this.fieldLength += k;
      i += k;
      if (this.fieldLength < this.need) return -1;
      const f = this.field;
      switch (this.state) {
        case ScanState.Magic: {
          const magic = readU32(f, 0);
          this.frames++;
          if (magic === 0xfd2fb528) {
            this.skippable = false;
            this.expect(ScanState.FrameHeader, 1);
          } else if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
            this.skippable = true;
            this.expect(ScanState.SkippableSize, 4);
          } else throw new ZstdFailure(`frame ${this.frames} does not start with a zstd magic number (0x${magic.toString(16).padStart(8, '0')})`);
          break;
        }
        case ScanState.FrameHeader: {
          const descriptor = f[0];
          if (descriptor & 0x08) throw new ZstdFailure(`frame ${this.frames} sets the reserved bit of its header`);
          this.singleSegment = ((descriptor >> 5) & 1) === 1;
          this.hasChecksum = ((descriptor >> 2) & 1) === 1;
          this.dictionaryBytes = [0, 1, 2, 4][descriptor & 3];
          const sizeFlag = descriptor >> 6;
          this.contentSizeBytes = sizeFlag === 0 ? (this.singleSegment ? 1 : 0) : [0, 2, 4, 8][sizeFlag];
          const rest = (this.singleSegment ? 0 : 1) + this.dictionaryBytes + this.contentSizeBytes;
          this.contentSize = -1;
          if (rest > 0) this.expect(ScanState.FrameHeaderRest, rest);
          else this.expect(ScanState.BlockHeader, 3);
          break;
        }
        case ScanState.FrameHeaderRest: {
          const at = (this.singleSegment ? 0 : 1) + this.dictionaryBytes;
          const n = this.contentSizeBytes;
          if (n === 1) this.contentSize = f[at];
          else if (n === 2) this.contentSize = (f[at] | (f[at + 1] << 8)) + 256;
          else if (n === 4) this.contentSize = readU32(f, at);
          else if (n === 8) this.contentSize = readU32(f, at) + readU32(f, at + 4) * 2 ** 32;
          // Checked here, before fzstd sees the whole header (the scan of a chunk runs before its push).
          const windowLog = 10 + (f[0] >> 3);
          const window = this.singleSegment ? this.contentSize : 2 ** windowLog + (2 ** windowLog / 8) * (f[0] & 7);
          if (window > ZSTD_MAX_WINDOW_BYTES) {
            throw new ZstdFailure(
              `frame ${this.frames} needs a ${window}-byte ${this.singleSegment ? 'buffer (its content size)' : 'window'}, ` +
                `more than the ${ZSTD_MAX_WINDOW_BYTES} bytes (128 MiB) that zstd -d decodes without --memory`,
            );
          }
          this.expect(ScanState.BlockHeader, 3);
          break;
        }
        case ScanState.BlockHeader: {
          const header = f[0] | (f[1] << 8) | (f[2] << 16);
          this.lastBlock = (header & 1) === 1;
          const type = (header >> 1) & 3;
          const size = header >>> 3;
          if (type === 3) throw new ZstdFailure(`frame ${this.frames} has a block of the reserved type 3`);
          if (size > ZSTD_MAX_BLOCK_BYTES) throw new ZstdFailure(`frame ${this.frames} has a block of ${size} bytes, more than zstd allows`);
          this.state = ScanState.BlockBody;
          this.need = type === 1 ? 1 : size; // an RLE block stores one byte
          this.fieldLength = 0;
          break;
        }
        case ScanState.Checksum:
          this.checksum = readU32(f, 0);
          return this.frameDone(i);
        case ScanState.SkippableSize:
          this.state = ScanState.SkippableBody;
          this.need = readU32(f, 0);
          this.fieldLength = 0;
          break;
      }
    }
  }

  private expect(state: ScanState, bytes: number): void {
    this.state = state;
    this.need = bytes;
    this.fieldLength = 0;
  }

  private frameDone(at: number): number {
    this.expect(ScanState.Magic, 4);
    return at;
  }
}

const enum ScanState {
  Magic,
  FrameHeader,
  FrameHeaderRest,
  BlockHeader,
  BlockBody,
  Checksum,
  SkippableSize,
  SkippableBody,
}

/** zstd's largest block (Block_Maximum_Size). */
const ZSTD_MAX_BLOCK_BYTES = 128 << 10;
/**
 * The largest window (for a single-segment frame, content size) a frame may ask for: fzstd allocates it up
 * front, so a 24-byte file claiming a 1.5 GiB window would cost 1.5 GiB. 128 MiB is what `zstd -d` decodes
 * without --memory or --long, and what every level of `zstd` up to --ultra -22 writes.
 */
const ZSTD_MAX_WINDOW_BYTES = 1 << 27;

function readU32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

// XXH64 (seed 0), the hash of zstd's content checksum. 64-bit words are (high, low) pairs of uint32; the
// helpers return their result in rh and rl, so the hot loop allocates nothing.
let rh = 0;
let rl = 0;

/** (ah, al) * (bh, bl) mod 2^64. */
function mul64(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  const lo = a0 * b0;
  const m1 = a1 * b0;
  const m2 = a0 * b1;
  const t = (lo >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
  rl = (((t & 0xffff) << 16) | (lo & 0xffff)) >>> 0;
  rh = (a1 * b1 + (m1 >>> 16) + (m2 >>> 16) + (t >>> 16) + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
}

/** (ah, al) + (bh, bl) mod 2^64. */
function add64(ah: number, al: number, bh: number, bl: number): void {
  const l = al + bl;
  rl = l >>> 0;
  rh = (ah + bh + (l > 0xffffffff ? 1 : 0)) >>> 0;
}

/** (h, l) rotated left by r, 0 < r < 32. */
function rotl64(h: number, l: number, r: number): void {
  rh = ((h << r) | (l >>> (32 - r))) >>> 0;
  rl = ((l << r) | (h >>> (32 - r))) >>> 0;
}

const P1H = 0x9e3779b1, P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d, P2L = 0x27d4eb4f;
const P3H = 0x165667b1, P3L = 0x9e3779f9;
const P4H = 0x85ebca77, P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f, P5L = 0x165667c5;
const P1L0 = P1L & 0xffff, P1L1 = P1L >>> 16;
const P2L0 = P2L & 0xffff, P2L1 = P2L >>> 16;

/** XXH64's round: acc = rotl(acc + input * P2, 31) * P1. */
function round64(acch: number, accl: number, inh: number, inl: number): void {
  mul64(inh, inl, P2H, P2L);
  add64(acch, accl, rh, rl);
  rotl64(rh, rl, 31);
  mul64(rh, rl, P1H, P1L);
}

/** Streaming XXH64 with seed 0; digestLow32 gives the 32 bits zstd stores. */
class Xxh64 {
  private readonly acc = new Uint32Array(8); // v1..v4 as (high, low)
  private readonly stripe = new Uint8Array(32); // a partial 32-byte stripe
  private stripeLength = 0;
  private total = 0;

  constructor() {
    this.reset();
  }

  reset(): void {
    const a = this.acc;
    add64(P1H, P1L, P2H, P2L);
    a[0] = rh;
    a[1] = rl;
    a[2] = P2H;
    a[3] = P2L;
    a[4] = 0;
    a[5] = 0;
    add64(0, 0, ~P1H >>> 0, ~P1L >>> 0); // -P1 = ~P1 + 1
    add64(rh, rl, 0, 1);
    a[6] = rh;
    a[7] = rl;
    this.stripeLength = 0;
    this.total = 0;
  }

  update(data: Uint8Array): void {
    this.total += data.length;
    let i = 0;
    if (this.stripeLength > 0) {
      const k = Math.min(32 - this.stripeLength, data.length);
      this.stripe.set(data.subarray(0, k), this.stripeLength);
      this.stripeLength += k;
      i = k;
      if (this.stripeLength < 32) return;
      this.stripes(this.stripe, 0, 32);
      this.stripeLength = 0;
    }
    const whole = i + ((data.length - i) & ~31);
    this.stripes(data, i, whole);
    if (whole < data.length) {
      this.stripe.set(data.subarray(whole), 0);
      this.stripeLength = data.length - whole;
    }
  }

  /**
   * XXH64's round on each 32-byte stripe of d[start, end), for the four lanes: lane = rotl(lane + input * P2,
   * 31) * P1. The 64-bit products are written out here (the low word from Math.imul, the high word from
   * 16-bit limbs, exact in doubles) because this loop is the checksum's whole cost.
   */
  private stripes(d: Uint8Array, start: number, end: number): void {
    const a = this.acc;
    for (let i = start; i < end; i += 32) {
      for (let lane = 0; lane < 4; lane++) {
        const o = i + lane * 8;
        const inl = readU32(d, o);
        const inh = readU32(d, o + 4);
        // (ph, pl) = input * P2
        let x0 = inl & 0xffff;
        let x1 = inl >>> 16;
        let lo = x0 * P2L0;
        let m1 = x1 * P2L0;
        let m2 = x0 * P2L1;
        let t = (lo >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
        const pl = Math.imul(inl, P2L) >>> 0;
        const ph = x1 * P2L1 + (m1 >>> 16) + (m2 >>> 16) + (t >>> 16) + Math.imul(inh, P2L) + Math.imul(inl, P2H);
        // (sh, sl) = lane + p
        const sum = a[2 * lane + 1] + pl;
        const sl = sum >>> 0;
        const sh = (a[2 * lane] + ph + (sum > 0xffffffff ? 1 : 0)) >>> 0;
        // (qh, ql) = rotl(s, 31)
        const qh = ((sh << 31) | (sl >>> 1)) >>> 0;
        const ql = ((sl << 31) | (sh >>> 1)) >>> 0;
        // lane = q * P1
        x0 = ql & 0xffff;
        x1 = ql >>> 16;
        lo = x0 * P1L0;
        m1 = x1 * P1L0;
        m2 = x0 * P1L1;
        t = (lo >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
        a[2 * lane + 1] = Math.imul(ql, P1L);
        a[2 * lane] = x1 * P1L1 + (m1 >>> 16) + (m2 >>> 16) + (t >>> 16) + Math.imul(qh, P1L) + Math.imul(ql, P1H);
      }
    }
  }

  /** The low 32 bits of the digest of everything updated since the last reset. */
  digestLow32(): number {
    const a = this.acc;
    let hh: number, hl: number;
    if (this.total >= 32) {
      rotl64(a[0], a[1], 1);
      let sh = rh, sl = rl;
      rotl64(a[2], a[3], 7);
      add64(sh, sl, rh, rl);
      sh = rh;
      sl = rl;
      rotl64(a[4], a[5], 12);
      add64(sh, sl, rh, rl);
      sh = rh;
      sl = rl;
      rotl64(a[6], a[7], 18);
      add64(sh, sl, rh, rl);
      hh = rh;
      hl = rl;
      for (let v = 0; v < 8; v += 2) {
        round64(0, 0, a[v], a[v + 1]);
        hh = (hh ^ rh) >>> 0;
        hl = (hl ^ rl) >>> 0;
        mul64(hh, hl, P1H, P1L);
        add64(rh, rl, P4H, P4L);
        hh = rh;
        hl = rl;
      }
    } else {
      hh = P5H;
      hl = P5L;
    }
    add64(hh, hl, Math.floor(this.total / 2 ** 32), this.total >>> 0);
    hh = rh;
    hl = rl;
    const s = this.stripe;
    const n = this.stripeLength;
    let i = 0;
    for (; i + 8 <= n; i += 8) {
      round64(0, 0, readU32(s, i + 4), readU32(s, i));
      hh = (hh ^ rh) >>> 0;
      hl = (hl ^ rl) >>> 0;
      rotl64(hh, hl, 27);
      mul64(rh, rl, P1H, P1L);
      add64(rh, rl, P4H, P4L);
      hh = rh;
      hl = rl;
    }
    if (i + 4 <= n) {
      mul64(0, readU32(s, i), P1H, P1L);
      hh = (hh ^ rh) >>> 0;
      hl = (hl ^ rl) >>> 0;
      rotl64(hh, hl, 23);
      mul64(rh, rl, P2H, P2L);
      add64(rh, rl, P3H, P3L);
      hh = rh;
      hl = rl;
      i += 4;
    }
    for (; i < n; i++) {
      mul64(0, s[i], P5H, P5L);
      hh = (hh ^ rh) >>> 0;
      hl = (hl ^ rl) >>> 0;
      rotl64(hh, hl, 11);
      mul64(rh, rl, P1H, P1L);
      hh = rh;
      hl = rl;
    }
    // avalanche
    hl = (hl ^ (hh >>> 1)) >>> 0; // h ^= h >> 33
    mul64(hh, hl, P2H, P2L);
    hh = rh;
    hl = rl;
    hl = (hl ^ ((hl >>> 29) | (hh << 3))) >>> 0; // h ^= h >> 29
    hh = (hh ^ (hh >>> 29)) >>> 0;
    mul64(hh, hl, P3H, P3L);
    hh = rh;
    hl = rl;
    return (hl ^ hh) >>> 0; // h ^= h >> 32, low half
  }
}

/** Reads shards like JsonlDocumentReader; the generator's return value (not seen by for-await) is the stats. */
export function readDocuments(options: JsonlReadOptions): AsyncGenerator<SourceDocument, JsonlReadStats> {
  return new JsonlDocumentReader(options)[Symbol.asyncIterator]();
}

/** `file:line: reason`, the way editors and compilers name a place. */
export function formatMalformed(m: MalformedInput): string {
  return `${m.file}:${m.line}: ${m.reason}`;
}

/** Whether raw[start, end) holds only spaces, tabs and carriage returns. */
function isBlank(raw: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const b = raw[i];
    if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  }
  return true;
}

function positiveInteger(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    throw invalidArg(`JsonlDocumentReader: ${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${value}`);
  }
  return value;
}
