// tokenize.ts: text files -> one token shard.
//
// Inputs are files or folders (searched recursively, in name order, for .txt and .jsonl files). A .txt file
// is one document; a .jsonl file holds one JSON object per line whose string field "text" is a document.
// Each document is encoded and written followed by EOS, straight to the shard. Memory stays constant:
// .jsonl files are read line by line, and a .txt document is encoded in pieces cut at line breaks when the
// tokenizer allows it (Tokenizer.splitsAtLineBreaks), giving the same tokens as encoding it whole; with
// other tokenizers a .txt document is held whole while it is encoded.
// A malformed .jsonl line (invalid UTF-8, not JSON, not an object, no string "text") is skipped and reported
// with its file and line, as prepare's reader (jsonl.ts) does; a .txt file with invalid UTF-8 is skipped
// whole, reported with the line of the first bad byte. Text is never repaired (no U+FFFD stands in for
// bad bytes). With `strict`, the first malformed line is a PajamaDataError instead. An empty document is
// skipped and reported. A missing input or an unreadable file is an error, and then no shard is written.
// The output must not be one of the inputs (compared as files: links count), and is written under a
// temporary name and renamed into place when complete (ShardWriter).
import { isUtf8 } from 'node:buffer';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArg } from '../../core/errors';
import { PajamaDataError } from '../errors';
import { checkOutputsAreNotInputs } from '../../core/outputs';
import { ShardWriter } from '../shard';
import type { Tokenizer } from '../tokenizers/base';

export interface SkippedLine {
  file: string;
  /** 1-based line of a .jsonl file; 0 for a whole .txt file. */
  line: number;
  reason: string;
}

export interface TokenizeProgress {
  /** The file being read. */
  file: string;
  /** Files finished so far, and in all. */
  filesDone: number;
  files: number;
  documents: number;
  tokens: number;
  bytes: number;
}

export interface TokenizeOptions {
  /** Files (.txt, .jsonl) and folders to search for them. */
  inputs: string[];
  /** The shard to write (replaced atomically when done). */
  output: string;
  tokenizer: Tokenizer;
  /** Called after every file and every 10,000 documents. */
  onProgress?: (p: TokenizeProgress) => void;
  /** The .jsonl field holding the text. Defaults to 'text'. */
  textField?: string;
  /** Most skipped lines listed in the summary (all are counted). Defaults to 1000. */
  maxSkippedListed?: number;
  /** Characters of a .txt document gathered before encoding a piece. Defaults to 4 Mi; small in tests. */
  txtPieceChars?: number;
  /** Throw a PajamaDataError at the first malformed line instead of skipping it. Defaults to false. */
  strict?: boolean;
}

export interface TokenizeSummary {
  output: string;
  /** The input files read, in order. */
  files: string[];
  documents: number;
  /** Tokens written, the EOS after each document included. */
  tokens: number;
  /** UTF-8 bytes of the documents' text. */
  bytes: number;
  /** The first maxSkippedListed skipped lines or files. */
  skipped: SkippedLine[];
  /** Every skipped line or file, listed or not. */
  skippedTotal: number;
}

const PROGRESS_EVERY_DOCUMENTS = 10_000;

/** The .txt and .jsonl files named by `inputs`, folders expanded recursively in name order. */
export function listInputFiles(inputs: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = path.join(dir, e.name);
      const st = e.isSymbolicLink() ? fs.statSync(p) : e; // follow links to files and folders
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && /\.(txt|jsonl)$/.test(e.name)) out.push(p);
    }
  };
  for (const input of inputs) {
    if (typeof input !== 'string' || input === '') throw invalidArg('tokenizeFiles: every input must be a non-empty string');
    const p = path.resolve(input);
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      throw invalidArg(`tokenizeFiles: input ${p} does not exist`);
    }
    if (st.isDirectory()) walk(p);
    else if (/\.(txt|jsonl)$/.test(p)) out.push(p);
    else throw invalidArg(`tokenizeFiles: input ${p} is neither a folder nor a .txt or .jsonl file`);
  }
  return out;
}

export async function tokenizeFiles(options: TokenizeOptions): Promise<TokenizeSummary> {
  const { inputs, output, tokenizer, onProgress } = options ?? ({} as TokenizeOptions);
  if (!Array.isArray(inputs) || inputs.length === 0) throw invalidArg('tokenizeFiles: inputs must be a non-empty array of paths');
  if (typeof output !== 'string' || output === '') throw invalidArg('tokenizeFiles: output must be a shard path');
  if (!tokenizer || typeof tokenizer.encode !== 'function') throw invalidArg('tokenizeFiles: tokenizer must implement Tokenizer');
  const textField = options.textField ?? 'text';
  const maxListed = options.maxSkippedListed ?? 1000;
  const pieceChars = options.txtPieceChars ?? 4 << 20;
  if (!Number.isInteger(pieceChars) || pieceChars < 1) throw invalidArg(`tokenizeFiles: txtPieceChars must be a positive integer, got ${pieceChars}`);
  const files = listInputFiles(inputs);
  if (files.length === 0) throw invalidArg(`tokenizeFiles: no .txt or .jsonl files in ${inputs.join(', ')}`);
  checkOutputsAreNotInputs('tokenizeFiles', [output], files);
  const strict = options.strict ?? false;

  const writer = new ShardWriter(output, { vocabSize: tokenizer.vocabSize, eosId: tokenizer.eosId });
  const summary: TokenizeSummary = { output: writer.path, files, documents: 0, tokens: 0, bytes: 0, skipped: [], skippedTotal: 0 };
  const skip = (file: string, line: number, reason: string): void => {
    if (strict && reason !== 'empty document') throw new PajamaDataError(file, `line ${line}: ${reason}`);
    summary.skippedTotal++;
    if (summary.skipped.length < maxListed) summary.skipped.push({ file, line, reason });
  };
  let filesDone = 0;
  const progress = (file: string): void => {
    summary.documents = writer.documents;
    summary.tokens = writer.tokens;
    onProgress?.({ file, filesDone, files: files.length, documents: summary.documents, tokens: summary.tokens, bytes: summary.bytes });
  };

  try {
    for (const file of files) {
      if (file.endsWith('.jsonl')) {
        const input = fs.createReadStream(file);
        let lineNo = 0;
        try {
          for await (const bytes of byteLines(input)) {
            lineNo++;
            if (!isUtf8(bytes)) {
              skip(file, lineNo, 'invalid UTF-8');
              continue;
            }
            let line = bytes.toString('utf8');
            if (line.endsWith('\r')) line = line.slice(0, -1);
            if (lineNo === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
            if (line.trim() === '') continue;
            let doc: unknown;
            try {
              doc = JSON.parse(line);
            } catch (e) {
              skip(file, lineNo, `invalid JSON: ${(e as Error).message}`);
              continue;
            }
            if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
              skip(file, lineNo, 'not a JSON object');
              continue;
            }
            const text = (doc as Record<string, unknown>)[textField];
            if (typeof text !== 'string') {
              skip(file, lineNo, `no string "${textField}" field`);
              continue;
            }
            if (text === '') {
              skip(file, lineNo, 'empty document');
              continue;
            }
            withPlace(`${file}:${lineNo}`, () => writer.appendDocument(tokenizer.encode(text)));
            summary.bytes += Buffer.byteLength(text, 'utf8');
            if (writer.documents % PROGRESS_EVERY_DOCUMENTS === 0) progress(file);
          }
        } finally {
          input.destroy();
        }
      } else {
        const badLine = await firstInvalidUtf8Line(file);
        if (badLine > 0) {
          skip(file, badLine, 'invalid UTF-8 (the whole .txt document is skipped)');
          filesDone++;
          progress(file);
          continue;
        }
        const bytes = await withPlaceAsync(file, () => encodeTextFile(file, tokenizer, pieceChars, writer));
        if (bytes === 0) skip(file, 0, 'empty document');
        else {
          writer.endDocument();
          summary.bytes += bytes;
          if (writer.documents % PROGRESS_EVERY_DOCUMENTS === 0) progress(file);
        }
      }
      filesDone++;
      progress(file);
    }
    writer.close();
  } catch (e) {
    writer.abort();
    throw e;
  }
  summary.documents = writer.documents;
  summary.tokens = writer.tokens;
  return summary;
}

/** Runs `fn`; an error it throws gets `place` (file or file:line) in front of its message. */
function withPlace<T>(place: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Error && !e.message.startsWith(place)) e.message = `${place}: ${e.message}`;
    throw e;
  }
}

async function withPlaceAsync<T>(place: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof Error && !e.message.startsWith(place)) e.message = `${place}: ${e.message}`;
    throw e;
  }
}

/**
 * Writes a .txt document's ids (without the EOS) and returns its UTF-8 byte count. With a tokenizer that
 * splitsAtLineBreaks, the text is encoded in pieces of about `pieceChars` characters, each ending at a line
 * break between two non-whitespace characters; otherwise it is gathered and encoded whole.
 */
async function encodeTextFile(file: string, tokenizer: Tokenizer, pieceChars: number, writer: ShardWriter): Promise<number> {
  let bytes = 0;
  let pending = '';
  let scanned = 0; // no cut point below this index of `pending`
  let first = true;
  const stream = fs.createReadStream(file, { encoding: 'utf8', highWaterMark: Math.min(1 << 20, pieceChars) });
  for await (const chunk of stream as AsyncIterable<string>) {
    let text = chunk;
    if (first && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    first = false;
    bytes += Buffer.byteLength(text, 'utf8');
    pending += text;
    if (!tokenizer.splitsAtLineBreaks || pending.length < pieceChars) continue;
    const cut = lastLineBreakCut(pending, scanned);
    if (cut > 0) {
      writer.appendTokens(tokenizer.encode(pending.slice(0, cut)));
      pending = pending.slice(cut);
      scanned = 0;
    } else {
      scanned = Math.max(0, pending.length - 2);
    }
  }
  if (pending !== '') writer.appendTokens(tokenizer.encode(pending));
  return bytes;
}

const WHITESPACE = /\s/;

/**
 * The last index p >= max(2, lowest) with s[p-1] = '\n' and s[p-2], s[p] not whitespace, so that s[0, p)
 * and s[p, end) tokenise as s does (see Tokenizer.splitsAtLineBreaks); -1 if there is none.
 */
export function lastLineBreakCut(s: string, lowest = 0): number {
  for (let p = s.length - 1; p >= Math.max(2, lowest); p--) {
    if (s.charCodeAt(p - 1) === 10 && !WHITESPACE.test(s[p - 2]) && !WHITESPACE.test(s[p])) return p;
  }
  return -1;
}

/** The lines of a byte stream, cut at 0x0A (never part of a multi-byte UTF-8 character), without the "\n". */
async function* byteLines(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  for await (const chunk of input) {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      yield pending.length === 0 ? piece : Buffer.concat([...pending, piece]);
      pending = [];
      start = nl + 1;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
  if (pending.length > 0) yield Buffer.concat(pending);
}

/**
 * The 1-based line holding the first byte of `file` that is not valid UTF-8, or 0 when the file is valid.
 * Reads the file once with a fatal streaming decoder, a line at a time, so memory stays constant.
 */
export async function firstInvalidUtf8Line(file: string): Promise<number> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let line = 1;
  const stream = fs.createReadStream(file);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(10, start); ; nl = chunk.indexOf(10, start)) {
        try {
          if (nl < 0) {
            decoder.decode(chunk.subarray(start), { stream: true });
            break;
          }
          decoder.decode(chunk.subarray(start, nl)); // ends the line: a character cut by it is invalid
        } catch {
          return line;
        }
        line++;
        start = nl + 1;
      }
    }
    try {
      decoder.decode();
    } catch {
      return line;
    }
    return 0;
  } finally {
    stream.destroy();
  }
}
