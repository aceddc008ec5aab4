// jsonl.ts: the raw-corpus reader, SlimPajama/RedPajama shards (.jsonl and .jsonl.zst) -> documents.
//
// A shard holds one JSON object per line, {"text": "...", "meta": {"redpajama_set_name": "RedPajamaC4"}};
// .jsonl.zst shards are zstd-compressed (any number of frames; decompressed and checked by zstd-frames.ts).
// Memory stays constant: files are read in chunks of `chunkBytes`, lines are cut at the byte 0x0A (which
// never occurs inside a multi-byte UTF-8 character, so no character is ever split) and only the line being
// assembled is held, up to `maxLineBytes`. Each line is UTF-8-validated and decoded whole. A "\r" before the
// "\n" is dropped, a final line without "\n" is read, a UTF-8 byte order mark at the start of a file is
// dropped, and whitespace-only lines are counted and ignored.
//
// The inputs (files, folders and globs) are resolved to a sorted, de-duplicated file list by files.ts.
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
// Each zstd frame's content size and XXH64 checksum are checked (`verifyChecksums`) at the end of the frame,
// after its documents were yielded: a consumer that must not use them reads with `strict`. A 0-byte .zst
// file is truncated, as `zstd -d` says. Read errors from the file system are thrown as they are.
import * as fs from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { invalidArg } from '../../core/errors';
import { PajamaDataError } from '../errors';
import { listShardFiles, SourceMapping } from './files';
import { decompressZstd, ZstdFailure } from './zstd-frames';

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

const ZSTD_FILE = /\.zst$/;

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

  /** The decompressed bytes of a .zst file (see decompressZstd), its compressed bytes counted in the stats. */
  private zstdChunks(file: string, handle: fs.promises.FileHandle): AsyncGenerator<Buffer> {
    return decompressZstd(this.diskChunks(file, handle), {
      verifyChecksums: this.verifyChecksums,
      onInput: (bytes) => {
        this.stats.compressedBytes += bytes;
      },
    });
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
