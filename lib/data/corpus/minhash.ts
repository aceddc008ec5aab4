// minhash.ts: MinHash signatures and LSH band keys of normalised documents, for near-duplicate removal as
// SlimPajama-DC did it: shingles of 13 Unicode code points, 128 permutations, 9 bands of 13 rows, so that a
// pair at Jaccard similarity s becomes an LSH candidate with probability 1 - (1 - s^13)^9 (0.40 at s = 0.8,
// 0.93 at s = 0.9, 0.001 at s = 0.5). The work is native (minhash.cc: multithreaded over documents, the
// permutations vectorised); this file types it, packs strings into UTF-8, and holds the JS references the
// tests and the dedup verification compare against.
//
// Contract of the signatures (a stored format; minhash.cc's header has the exact algorithm):
//  - The input is text already normalised by the caller (dedup's cleanDocument: NFC, lower case, ASCII
//    punctuation removed, whitespace collapsed); shingles are windows of `shingleChars` code points, and a
//    document with fewer code points is one shingle of all of it.
//  - Each shingle is hashed to 64 bits with a keyed hash of its UTF-8 bytes; permutation i is
//    a_i * h + b_i mod 2^64 (a_i odd) and keeps the high 32 bits of the minimum. All keys come from `seed`.
//  - The same documents, options and seed give the same bits on every machine, ISA level and thread count.
//  - An empty document has the signature EMPTY_SIGNATURE_VALUE everywhere and every band key EMPTY_BAND_KEY,
//    a key that no non-empty document gets. It is never a duplicate of anything: estimateJaccard and
//    exactJaccard give 0 for it, and LSH consumers must put records keyed EMPTY_BAND_KEY in no bucket.
import { constants as bufferConstants } from 'node:buffer';
import { invalidArg } from '../../core/errors';
import { ops } from '../../core/ops';

export interface MinHashOptions {
  /** Permutations, i.e. values per signature, in [1, 1024]. Defaults to 128. */
  numPerm: number;
  /** Shingle length in Unicode code points, in [1, 1024]. Defaults to 13. */
  shingleChars: number;
  /** LSH bands. Defaults to 9. */
  bands: number;
  /** Signature values per band; bands * rows must not exceed numPerm. Defaults to 13. */
  rows: number;
  /** Seeds the shingle hash and the permutations; any safe integer (negative ones taken mod 2^64). Defaults to 1. */
  seed: number;
}

export const DEFAULT_MINHASH: Readonly<MinHashOptions> = Object.freeze({
  numPerm: 128,
  shingleChars: 13,
  bands: 9,
  rows: 13,
  seed: 1,
});

/** Every value of an empty document's signature (the minimum over no shingles). */
export const EMPTY_SIGNATURE_VALUE = 0xffffffff;
/** Every band key of an empty document; no non-empty document has it. LSH must bucket it nowhere. */
export const EMPTY_BAND_KEY = 0xffffffffffffffffn;

export const MAX_NUM_PERM = 1024;
export const MAX_SHINGLE_CHARS = 1024;

/**
 * Documents as one UTF-8 buffer: document i is text[offsets[i], offsets[i + 1]). offsets holds n + 1
 * non-decreasing byte offsets: a Uint32Array when the text is under 4 GiB, else a Float64Array (exact integers).
 * Offsets should fall on code point boundaries; a continuation byte at a document's start counts as a code
 * point of its own.
 */
export interface PackedDocuments {
  text: Uint8Array;
  offsets: Uint32Array | Float64Array;
}

export interface MinHashResult {
  /** Documents. */
  count: number;
  numPerm: number;
  bands: number;
  /** (count, numPerm): document i's signature is signatures[i * numPerm, (i + 1) * numPerm). */
  signatures: Uint32Array;
  /** (count, bands): document i's key for band b is bandKeys[i * bands + b]. */
  bandKeys: BigUint64Array;
}

/** Buffers to write into instead of allocating: sized (count * numPerm) and (count * bands). */
export interface MinHashOutput {
  signatures?: Uint32Array;
  bandKeys?: BigUint64Array;
}

const OPTION_KEYS: readonly (keyof MinHashOptions)[] = ['numPerm', 'shingleChars', 'bands', 'rows', 'seed'];

/** DEFAULT_MINHASH overridden by `options`, checked; unknown keys are errors. */
export function resolveMinHashOptions(options: Partial<MinHashOptions> = {}, where = 'minhash'): MinHashOptions {
  if (options === null || typeof options !== 'object') throw invalidArg(`${where}: options must be an object, got ${options}`);
  for (const k of Object.keys(options)) {
    if (!OPTION_KEYS.includes(k as keyof MinHashOptions)) {
      throw invalidArg(`${where}: unknown option '${k}' (expected ${OPTION_KEYS.join(', ')})`);
    }
  }
  const o: MinHashOptions = { ...DEFAULT_MINHASH };
  for (const k of OPTION_KEYS) if (options[k] !== undefined) o[k] = options[k] as number;
  const intIn = (name: keyof MinHashOptions, lo: number, hi: number): void => {
    const v = o[name];
    if (!Number.isInteger(v) || v < lo || v > hi) throw invalidArg(`${where}: ${name} must be an integer in [${lo}, ${hi}], got ${v}`);
  };
  intIn('numPerm', 1, MAX_NUM_PERM);
  intIn('shingleChars', 1, MAX_SHINGLE_CHARS);
  intIn('bands', 1, o.numPerm);
  intIn('rows', 1, o.numPerm);
  if (o.bands * o.rows > o.numPerm) {
    throw invalidArg(`${where}: bands * rows = ${o.bands} * ${o.rows} = ${o.bands * o.rows} must be at most numPerm = ${o.numPerm}`);
  }
  if (!Number.isSafeInteger(o.seed)) throw invalidArg(`${where}: seed must be a safe integer, got ${o.seed}`);
  return o;
}

/** UTF-8 of `texts` back to back, with their offsets (lone surrogates become U+FFFD, as in TextEncoder). */
export function packDocuments(texts: readonly string[]): PackedDocuments {
  if (!Array.isArray(texts)) throw invalidArg(`packDocuments: texts must be an array of strings`);
  let total = 0;
  for (let i = 0; i < texts.length; i++) {
    if (typeof texts[i] !== 'string') throw invalidArg(`packDocuments: texts[${i}] is not a string (${typeof texts[i]})`);
    total += Buffer.byteLength(texts[i], 'utf8');
  }
  const maxBytes = bufferConstants.MAX_LENGTH;
  if (total > maxBytes) throw invalidArg(`packDocuments: ${total} bytes of text exceed one buffer (${maxBytes}); hash in batches`);
  const text = new Uint8Array(total);
  const offsets = total < 2 ** 32 ? new Uint32Array(texts.length + 1) : new Float64Array(texts.length + 1);
  const writer = Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  let pos = 0;
  for (let i = 0; i < texts.length; i++) {
    pos += writer.write(texts[i], pos, 'utf8');
    offsets[i + 1] = pos;
  }
  return { text, offsets };
}

function isPacked(docs: unknown): docs is PackedDocuments {
  return typeof docs === 'object' && docs !== null && !Array.isArray(docs) && 'text' in docs && 'offsets' in docs;
}

interface Prepared {
  args: Parameters<typeof ops.minhashSignatures>;
  result: MinHashResult;
}

function prepare(where: string, docs: readonly string[] | PackedDocuments, options: Partial<MinHashOptions>, out: MinHashOutput): Prepared {
  const o = resolveMinHashOptions(options, where);
  let packed: PackedDocuments;
  if (Array.isArray(docs)) packed = packDocuments(docs);
  else if (isPacked(docs)) {
    if (!(docs.text instanceof Uint8Array)) throw invalidArg(`${where}: docs.text must be a Uint8Array of UTF-8`);
    if (!(docs.offsets instanceof Uint32Array || docs.offsets instanceof Float64Array)) {
      throw invalidArg(`${where}: docs.offsets must be a Uint32Array or Float64Array of n + 1 byte offsets`);
    }
    if (docs.offsets.length < 1) throw invalidArg(`${where}: docs.offsets must hold n + 1 >= 1 offsets, got none`);
    packed = docs;
  } else {
    throw invalidArg(`${where}: docs must be an array of strings or { text: Uint8Array, offsets }`);
  }
  const count = packed.offsets.length - 1;
  const signatures = out.signatures ?? new Uint32Array(count * o.numPerm);
  const bandKeys = out.bandKeys ?? new BigUint64Array(count * o.bands);
  if (!(signatures instanceof Uint32Array) || signatures.length !== count * o.numPerm) {
    throw invalidArg(`${where}: out.signatures must be a Uint32Array of ${count} * ${o.numPerm} values, got ${describe(signatures)}`);
  }
  if (!(bandKeys instanceof BigUint64Array) || bandKeys.length !== count * o.bands) {
    throw invalidArg(`${where}: out.bandKeys must be a BigUint64Array of ${count} * ${o.bands} keys, got ${describe(bandKeys)}`);
  }
  return {
    args: [signatures, bandKeys, packed.text, packed.offsets, o.numPerm, o.shingleChars, o.bands, o.rows, o.seed],
    result: { count, numPerm: o.numPerm, bands: o.bands, signatures, bandKeys },
  };
}

function describe(v: unknown): string {
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as unknown as { length: number }).length})`;
  return typeof v;
}

/**
 * MinHash signatures and LSH band keys of `docs` (normalised text), on the calling thread. Pass `out` to
 * reuse buffers. Options default to DEFAULT_MINHASH.
 */
export function minhashDocuments(
  docs: readonly string[] | PackedDocuments,
  options: Partial<MinHashOptions> = {},
  out: MinHashOutput = {},
): MinHashResult {
  const { args, result } = prepare('minhashDocuments', docs, options, out);
  ops.minhashSignatures(...args);
  return result;
}

/** minhashDocuments on the native worker thread; the event loop stays free. Do not touch the buffers until it resolves. */
export async function minhashDocumentsAsync(
  docs: readonly string[] | PackedDocuments,
  options: Partial<MinHashOptions> = {},
  out: MinHashOutput = {},
): Promise<MinHashResult> {
  const { args, result } = prepare('minhashDocumentsAsync', docs, options, out);
  await ops.minhashSignaturesAsync(...args);
  return result;
}

/** Document i's signature, a view into result.signatures. */
export function signatureOf(result: MinHashResult, i: number): Uint32Array {
  if (!Number.isInteger(i) || i < 0 || i >= result.count) throw invalidArg(`signatureOf: document ${i} is not in [0, ${result.count})`);
  return result.signatures.subarray(i * result.numPerm, (i + 1) * result.numPerm);
}

/** Document i's band keys, a view into result.bandKeys. */
export function bandKeysOf(result: MinHashResult, i: number): BigUint64Array {
  if (!Number.isInteger(i) || i < 0 || i >= result.count) throw invalidArg(`bandKeysOf: document ${i} is not in [0, ${result.count})`);
  return result.bandKeys.subarray(i * result.bands, (i + 1) * result.bands);
}

/** True for the signature of an empty document. */
export function isEmptySignature(sig: Uint32Array): boolean {
  return sig.length > 0 && sig.every((v) => v === EMPTY_SIGNATURE_VALUE);
}

/**
 * The MinHash estimate of two documents' Jaccard similarity: the share of permutations whose minima agree.
 * Its standard error is sqrt(J (1 - J) / numPerm), about 0.035 at J = 0.5 with 128 permutations. An empty
 * document's signature agrees with nothing (0).
 */
export function estimateJaccard(sigA: Uint32Array, sigB: Uint32Array): number {
  if (!(sigA instanceof Uint32Array) || !(sigB instanceof Uint32Array)) throw invalidArg('estimateJaccard: signatures must be Uint32Arrays');
  if (sigA.length !== sigB.length || sigA.length === 0) {
    throw invalidArg(`estimateJaccard: signatures must have the same non-zero length, got ${sigA.length} and ${sigB.length}`);
  }
  if (isEmptySignature(sigA) || isEmptySignature(sigB)) return 0;
  let same = 0;
  for (let i = 0; i < sigA.length; i++) if (sigA[i] === sigB[i]) same++;
  return same / sigA.length;
}

/** Probability that a pair at Jaccard similarity s shares at least one of `bands` keys of `rows` values each. */
export function lshCandidateProbability(s: number, bands: number, rows: number): number {
  if (!(s >= 0 && s <= 1)) throw invalidArg(`lshCandidateProbability: s must be in [0, 1], got ${s}`);
  if (!Number.isInteger(bands) || bands < 1 || !Number.isInteger(rows) || rows < 1) {
    throw invalidArg(`lshCandidateProbability: bands and rows must be positive integers, got ${bands} and ${rows}`);
  }
  return 1 - Math.pow(1 - Math.pow(s, rows), bands);
}

/** The code points of `text` as strings; lone surrogates become U+FFFD, as they do in UTF-8. */
function codePoints(text: string): string[] {
  const out: string[] = [];
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    out.push(c >= 0xd800 && c <= 0xdfff ? '\ufffd' : ch);
  }
  return out;
}

/**
 * Reference shingling (slow, for tests and verification): every window of `shingleChars` code points; a
 * text with fewer is one shingle of all of it; an empty text has none.
 */
export function shingleSet(text: string, shingleChars = DEFAULT_MINHASH.shingleChars): Set<string> {
  if (typeof text !== 'string') throw invalidArg(`shingleSet: text must be a string, got ${typeof text}`);
  if (!Number.isInteger(shingleChars) || shingleChars < 1) throw invalidArg(`shingleSet: shingleChars must be a positive integer, got ${shingleChars}`);
  const cps = codePoints(text);
  const set = new Set<string>();
  if (cps.length === 0) return set;
  if (cps.length < shingleChars) {
    set.add(cps.join(''));
    return set;
  }
  for (let i = 0; i + shingleChars <= cps.length; i++) set.add(cps.slice(i, i + shingleChars).join(''));
  return set;
}

/** Exact Jaccard similarity of the shingle sets of a and b; 0 when either text is empty. */
export function exactJaccard(a: string, b: string, shingleChars = DEFAULT_MINHASH.shingleChars): number {
  const sa = shingleSet(a, shingleChars);
  const sb = shingleSet(b, shingleChars);
  if (sa.size === 0 || sb.size === 0) return 0;
  let inter = 0;
  for (const s of sa) if (sb.has(s)) inter++;
  return inter / (sa.size + sb.size - inter);
}

function checkKeyIds(where: string, keys: BigUint64Array, ids: Uint32Array): void {
  if (!(keys instanceof BigUint64Array)) throw invalidArg(`${where}: keys must be a BigUint64Array, got ${describe(keys)}`);
  if (!(ids instanceof Uint32Array)) throw invalidArg(`${where}: ids must be a Uint32Array, got ${describe(ids)}`);
  if (keys.length !== ids.length) throw invalidArg(`${where}: keys (${keys.length}) and ids (${ids.length}) must have the same length`);
}

/** Sorts the (keys[i], ids[i]) pairs in place by key, then id (native radix sort, multithreaded). */
export function sortKeyIds(keys: BigUint64Array, ids: Uint32Array): void {
  checkKeyIds('sortKeyIds', keys, ids);
  ops.sortKeyIds(keys, ids);
}

/** sortKeyIds on the native worker thread. Do not touch the arrays until it resolves. */
export async function sortKeyIdsAsync(keys: BigUint64Array, ids: Uint32Array): Promise<void> {
  checkKeyIds('sortKeyIdsAsync', keys, ids);
  await ops.sortKeyIdsAsync(keys, ids);
}
