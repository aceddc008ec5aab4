// clean.ts: SlimPajama's text normalisation and short-document filter.
//
// SlimPajama compares documents after a normalisation (its normalize_text: remove string.punctuation,
// lower-case, collapse whitespace runs, strip), and drops a document whose normalised text is shorter than
// 200 characters. Here the text is first put in Unicode NFC, so that "é" typed as e + U+0301 and as U+00E9
// normalise (and count) the same; whitespace is JavaScript's \s (Unicode White_Space plus U+FEFF), and
// lengths are in code points, as Python's len counts them. The text kept for training is the NFC text,
// case and punctuation untouched; the normalised text is what deduplication compares.
import { invalidArg } from '../../core/errors';

/** SlimPajama's threshold: documents with fewer normalised characters are dropped. */
export const SLIMPAJAMA_MIN_CHARS = 200;

/** Python's string.punctuation: the 32 ASCII punctuation characters that normalisation removes. */
export const ASCII_PUNCTUATION = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';

const KEEP = 0;
const PUNCTUATION = 1;
const WHITESPACE = 2;

/** The class of every UTF-16 code unit; \s has no character outside the BMP, so surrogates are kept. */
const CHAR_CLASS = (() => {
  const table = new Uint8Array(0x10000);
  const ws = /\s/;
  for (let c = 0; c < 0x10000; c++) if (ws.test(String.fromCharCode(c))) table[c] = WHITESPACE;
  for (let i = 0; i < ASCII_PUNCTUATION.length; i++) table[ASCII_PUNCTUATION.charCodeAt(i)] = PUNCTUATION;
  return table;
})();

// The text's UTF-16 code units are copied into a scratch buffer (a memcpy), compacted there in place and
// decoded back in one call: several times faster than regex replaces or string concatenation. The buffer
// grows on demand up to LARGE_UNITS; a longer document gets its own.
const LARGE_UNITS = 1 << 22;
let scratch = Buffer.allocUnsafe(1 << 17);

/** The normalised text of an NFC text, and its length in code points. */
function normalizeNfc(nfc: string): { normalized: string; chars: number } {
  const s = nfc.toLowerCase();
  const n = s.length;
  let buf = scratch;
  if (buf.length < 2 * n) {
    buf = Buffer.allocUnsafe(2 * n);
    if (n <= LARGE_UNITS) scratch = buf;
  }
  buf.write(s, 0, 'utf16le');
  const units = new Uint16Array(buf.buffer, buf.byteOffset, n); // byteOffset is even: allocUnsafe aligns to 8
  let o = 0; // units kept so far; o <= i, so the compaction never overwrites a unit not yet read
  let chars = 0;
  let space = false; // whitespace seen since the last kept unit
  let highSurrogate = false; // the last kept unit is a high surrogate
  for (let i = 0; i < n; i++) {
    const c = units[i];
    const k = CHAR_CLASS[c];
    if (k === KEEP) {
      if (space) {
        if (o > 0) {
          units[o++] = 0x20;
          chars++;
          highSurrogate = false;
        }
        space = false;
      }
      units[o++] = c;
      // A low surrogate right after a high one completes a code point that was already counted.
      if (!(highSurrogate && (c & 0xfc00) === 0xdc00)) chars++;
      highSurrogate = (c & 0xfc00) === 0xd800;
    } else if (k === WHITESPACE) space = true;
  }
  return { normalized: buf.toString('utf16le', 0, 2 * o), chars };
}

/**
 * SlimPajama's normalisation: NFC, lower case, ASCII punctuation removed, every whitespace run made one
 * space, no space at either end.
 */
export function normalizeForDedup(text: string): string {
  if (typeof text !== 'string') throw invalidArg(`normalizeForDedup: text must be a string, got ${typeof text}`);
  return normalizeNfc(text.normalize('NFC')).normalized;
}

/** Code points in `s` (a lone surrogate counts as one). */
export function countCodePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    n++;
    if ((c & 0xfc00) === 0xd800 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) i++;
  }
  return n;
}

export interface CleanOptions {
  /** Documents whose normalised text has fewer code points are dropped. Defaults to 200 (SlimPajama). */
  minChars?: number;
}

export interface CleanedDocument {
  /** The text kept for training: the input in NFC, case and punctuation untouched. */
  text: string;
  /** normalizeForDedup of the text: what deduplication compares. */
  normalized: string;
  /** Code points in `normalized`. */
  chars: number;
  /** Whether the document passes the short-document filter (chars >= minChars). */
  keep: boolean;
}

function minCharsOf(options: CleanOptions | undefined, caller: string): number {
  const minChars = options?.minChars ?? SLIMPAJAMA_MIN_CHARS;
  if (!Number.isInteger(minChars) || minChars < 0) throw invalidArg(`${caller}: minChars must be a non-negative integer, got ${minChars}`);
  return minChars;
}

/** A document's training text, normalised text, normalised length and the short-document filter's verdict. */
export function cleanDocument(text: string, options?: CleanOptions): CleanedDocument {
  if (typeof text !== 'string') throw invalidArg(`cleanDocument: text must be a string, got ${typeof text}`);
  const minChars = minCharsOf(options, 'cleanDocument');
  const nfc = text.normalize('NFC');
  const { normalized, chars } = normalizeNfc(nfc);
  return { text: nfc, normalized, chars, keep: chars >= minChars };
}

/**
 * SlimPajama's short-document filter as a predicate on raw text: true (keep) when the normalised text has at
 * least minChars code points.
 */
export function shortDocumentFilter(options?: CleanOptions): (text: string) => boolean {
  const minChars = minCharsOf(options, 'shortDocumentFilter');
  return (text) => normalizeNfc(text.normalize('NFC')).chars >= minChars;
}

export interface SourceFilterCounts {
  /** Documents and UTF-8 bytes seen. */
  documents: number;
  bytes: number;
  /** Documents and bytes the filter dropped. */
  droppedDocuments: number;
  droppedBytes: number;
  /** droppedDocuments / documents, and droppedBytes / bytes (0 when nothing was seen). */
  filterRate: number;
  byteFilterRate: number;
}

export interface FilterReport {
  total: SourceFilterCounts;
  /** Per source, by name. */
  sources: Record<string, SourceFilterCounts>;
}

/** Counts, per source, the documents and bytes the short-document filter saw and dropped. */
export class FilterStats {
  private readonly counts = new Map<string, { documents: number; bytes: number; droppedDocuments: number; droppedBytes: number }>();

  /** Records one document of `bytes` UTF-8 bytes from `source`, kept or dropped. */
  add(source: string, bytes: number, kept: boolean): void {
    if (typeof source !== 'string') throw invalidArg(`FilterStats.add: source must be a string, got ${typeof source}`);
    if (!Number.isInteger(bytes) || bytes < 0) throw invalidArg(`FilterStats.add: bytes must be a non-negative integer, got ${bytes}`);
    let c = this.counts.get(source);
    if (c === undefined) this.counts.set(source, (c = { documents: 0, bytes: 0, droppedDocuments: 0, droppedBytes: 0 }));
    c.documents++;
    c.bytes += bytes;
    if (!kept) {
      c.droppedDocuments++;
      c.droppedBytes += bytes;
    }
  }

  /** Records a cleaned document: its NFC text's bytes and the filter's verdict. */
  addDocument(source: string, doc: CleanedDocument): void {
    this.add(source, Buffer.byteLength(doc.text, 'utf8'), doc.keep);
  }

  /** The counts of one source (zeros for a source never seen). */
  source(name: string): SourceFilterCounts {
    return withRates(this.counts.get(name) ?? { documents: 0, bytes: 0, droppedDocuments: 0, droppedBytes: 0 });
  }

  /** The counts over all sources. */
  total(): SourceFilterCounts {
    const t = { documents: 0, bytes: 0, droppedDocuments: 0, droppedBytes: 0 };
    for (const c of this.counts.values()) {
      t.documents += c.documents;
      t.bytes += c.bytes;
      t.droppedDocuments += c.droppedDocuments;
      t.droppedBytes += c.droppedBytes;
    }
    return withRates(t);
  }

  /** Totals and per-source counts with rates, sources sorted by name. */
  report(): FilterReport {
    const sources = Object.create(null) as Record<string, SourceFilterCounts>;
    for (const name of [...this.counts.keys()].sort()) sources[name] = this.source(name);
    return { total: this.total(), sources };
  }

  toJSON(): FilterReport {
    return this.report();
  }
}

function withRates(c: { documents: number; bytes: number; droppedDocuments: number; droppedBytes: number }): SourceFilterCounts {
  return {
    ...c,
    filterRate: c.documents > 0 ? c.droppedDocuments / c.documents : 0,
    byteFilterRate: c.bytes > 0 ? c.droppedBytes / c.bytes : 0,
  };
}
