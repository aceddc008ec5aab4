// doc-table.ts: the document table of prepare's scan stage, one fixed-size little-endian record per
// document, in document-id order. scan.ts writes one such file per input file (`.docs`, with the file's own
// source numbering and a split draw of 0: only the merge knows the global ids); prepare.ts merges them into
// the work folder's documents.bin and streams it in the dedup and tokenize stages.
//
//   byte  type  field
//   0     u16   source      source number (by first appearance; per file in `.docs`, global in documents.bin)
//   2     u8    short       1 when the document was dropped as too short, else 0
//   3     u8    (unused)    0
//   4     u32   splitDraw   the document's holdout split draw (prepare.ts splitDraw); 0 in `.docs`
//   8     u32   bytes       UTF-8 bytes of the cleaned text, clamped to 2^32 - 1
//   12    u32   line        1-based line in its input file, clamped to 2^32 - 1
//   16    f64   hash        exact hash: 53 bits of the SHA-1 of the normalised text (scan.ts exactHash)
import * as fs from 'node:fs';
import { PajamaDataError } from '../errors';

/** Bytes per document record. */
export const DOC_RECORD_BYTES = 24;

/** Documents per chunk when writing or streaming a table. */
const TABLE_CHUNK = 1 << 16;

/** One decoded record (see the layout in the file header). */
export interface DocRecord {
  source: number;
  short: boolean;
  splitDraw: number;
  bytes: number;
  /** 1-based line in its input file. */
  line: number;
  hash: number;
}

/** Writes one record at byte `o` of `buf` (positional arguments: the scan loop calls this per document). */
export function encodeDocRecord(buf: Buffer, o: number, source: number, short: boolean, splitDraw: number, bytes: number, line: number, hash: number): void {
  buf.writeUInt16LE(source, o);
  buf[o + 2] = short ? 1 : 0;
  buf[o + 3] = 0;
  buf.writeUInt32LE(splitDraw >>> 0, o + 4);
  buf.writeUInt32LE(Math.min(bytes, 2 ** 32 - 1), o + 8);
  buf.writeUInt32LE(Math.min(line, 2 ** 32 - 1), o + 12);
  buf.writeDoubleLE(hash, o + 16);
}

/** Reads the record at byte `o` of `buf` into `into` (reused by streaming readers) and returns it. */
export function decodeDocRecord(buf: Buffer, o: number, into: DocRecord = emptyDocRecord()): DocRecord {
  into.source = buf.readUInt16LE(o);
  into.short = buf[o + 2] === 1;
  into.splitDraw = buf.readUInt32LE(o + 4);
  into.bytes = buf.readUInt32LE(o + 8);
  into.line = buf.readUInt32LE(o + 12);
  into.hash = buf.readDoubleLE(o + 16);
  return into;
}

export function emptyDocRecord(): DocRecord {
  return { source: 0, short: false, splitDraw: 0, bytes: 0, line: 0, hash: 0 };
}

/** Appends records to a table file in large writes; close() flushes and fsyncs. */
export class DocTableWriter {
  #fd: number;
  #buf = Buffer.alloc(DOC_RECORD_BYTES * TABLE_CHUNK);
  #n = 0;
  count = 0;
  constructor(file: string) {
    this.#fd = fs.openSync(file, 'w');
  }
  push(source: number, short: boolean, splitDraw: number, bytes: number, line: number, hash: number): void {
    encodeDocRecord(this.#buf, this.#n * DOC_RECORD_BYTES, source, short, splitDraw, bytes, line, hash);
    this.#n++;
    this.count++;
    if (this.#n === TABLE_CHUNK) this.#flush();
  }
  #flush(): void {
    let at = 0;
    const len = this.#n * DOC_RECORD_BYTES;
    while (at < len) at += fs.writeSync(this.#fd, this.#buf, at, len - at);
    this.#n = 0;
  }
  close(): void {
    this.#flush();
    fs.fsyncSync(this.#fd);
    fs.closeSync(this.#fd);
  }
}

/**
 * Streams a table file a chunk at a time: calls `each(id, record)` in order (the record object is reused:
 * copy what must outlive the call). Returns the number of records.
 */
export function forEachDocument(file: string, each: (id: number, r: DocRecord) => void): number {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(DOC_RECORD_BYTES * TABLE_CHUNK);
  const r = emptyDocRecord();
  let id = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      if (n % DOC_RECORD_BYTES !== 0) throw new PajamaDataError(file, `is not a whole number of ${DOC_RECORD_BYTES}-byte records (truncated)`);
      for (let o = 0; o < n; o += DOC_RECORD_BYTES) each(id++, decodeDocRecord(buf, o, r));
    }
  } finally {
    fs.closeSync(fd);
  }
  return id;
}
