// dedup.ts: near-duplicate clusters from MinHash-LSH band keys, in bounded memory.
//
// Every document that enters deduplication gets an id (its ordinal in the corpus's reading order) and
// `bands` 64-bit band keys (minhash.ts). Two documents are candidates when they share a key in the same
// band; candidates are joined with union-find, and a cluster keeps its smallest id: the document read
// first, whatever order the unions happened in. So the kept set is a pure function of the corpus, its
// reading order and the MinHash parameters.
//
// Memory: the index buffers (key, id) records up to `memoryBytes` (12 bytes a record), then sorts each band
// natively and spills it to a run file; clustering merges each band's sorted runs (k-way, in chunks) and
// unions equal keys as they stream by. What stays in memory is the union-find parent array (4 bytes per
// document) and one chunk per run. Local mode (dedup within each source) folds the source's index into
// every key, so documents of different sources never share one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArg } from '../../core/errors';
import { writeAll, writeFileAtomic } from '../../core/atomic';
import { PajamaDataError } from '../errors';
import { EMPTY_BAND_KEY, minhashDocumentsAsync, sortKeyIdsAsync, type MinHashOptions } from './minhash';

export type DedupMode = 'global' | 'local' | 'none';

export const DEDUP_MODES: readonly DedupMode[] = ['global', 'local', 'none'];

/** Union-find over document ids whose roots are always the smallest id of their set. */
export class UnionFind {
  #parent: Uint32Array;
  #size = 0;

  constructor(capacity = 1024) {
    this.#parent = new Uint32Array(Math.max(1, capacity));
  }

  /** Ids in use: [0, size). */
  get size(): number {
    return this.#size;
  }

  /** Makes ids [size, n) singletons. */
  grow(n: number): void {
    if (n <= this.#size) return;
    if (n > 2 ** 32 - 1) throw invalidArg(`UnionFind.grow: at most 2^32 - 1 documents, got ${n}`);
    if (n > this.#parent.length) {
      const next = new Uint32Array(Math.min(2 ** 32 - 1, Math.max(n, this.#parent.length * 2)));
      next.set(this.#parent.subarray(0, this.#size));
      this.#parent = next;
    }
    for (let i = this.#size; i < n; i++) this.#parent[i] = i;
    this.#size = n;
  }

  find(x: number): number {
    const p = this.#parent;
    let root = x;
    while (p[root] !== root) root = p[root];
    while (p[x] !== root) {
      const next = p[x];
      p[x] = root;
      x = next;
    }
    return root;
  }

  /** Joins the sets of a and b; returns true when they were apart. The smaller root becomes the root. */
  union(a: number, b: number): boolean {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return false;
    if (ra < rb) this.#parent[rb] = ra;
    else this.#parent[ra] = rb;
    return true;
  }
}

/** 64-bit mixer (splitmix64's finaliser) for folding a source index into band keys. */
function mix64(x: bigint): bigint {
  const M = 0xffffffffffffffffn;
  x = (x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n & M;
  x = (x ^ (x >> 27n)) * 0x94d049bb133111ebn & M;
  return x ^ (x >> 31n);
}

/** Local mode: makes `keys` (n * bands) of documents from `sources` (n) distinct across sources. */
export function foldSourceIntoKeys(keys: BigUint64Array, sources: ArrayLike<number>, bands: number): void {
  if (keys.length !== sources.length * bands) {
    throw invalidArg(`foldSourceIntoKeys: keys holds ${keys.length} values, expected sources (${sources.length}) * bands (${bands})`);
  }
  const salts = new Map<number, bigint>();
  for (let i = 0; i < sources.length; i++) {
    const s = sources[i];
    let salt = salts.get(s);
    if (salt === undefined) {
      salt = mix64(BigInt(s) + 0x9e3779b97f4a7c15n);
      salts.set(s, salt);
    }
    for (let b = 0; b < bands; b++) keys[i * bands + b] ^= salt;
  }
}

export interface LshIndexOptions {
  /** Bands per document (keys per document). */
  bands: number;
  /** Folder for the sorted runs; created if missing. */
  dir: string;
  /** Record buffer budget in bytes (12 bytes a record) before sorting and spilling. Defaults to 256 MiB. */
  memoryBytes?: number;
}

export interface ClusterStats {
  /** Documents added. */
  documents: number;
  /** Groups of two or more documents sharing a band key, summed over bands. */
  buckets: number;
  /** Pairs of documents sharing a band key, summed over bands (a pair sharing two bands counts twice). */
  candidatePairs: number;
  /** Unions that joined two different clusters. */
  merges: number;
  /** Run files written. */
  runs: number;
}

const RECORD_BYTES = 12;
const MERGE_CHUNK = 1 << 16; // records read from a run at a time

/** Band-key records of one band, buffered until spilled. */
class BandBuffer {
  keys: BigUint64Array;
  ids: Uint32Array;
  length = 0;
  constructor(capacity: number) {
    this.keys = new BigUint64Array(capacity);
    this.ids = new Uint32Array(capacity);
  }
}

/**
 * The LSH index: add(ids, keys) while scanning, spill() to leave everything on disk (a scan stage's end),
 * cluster(uf) to join candidates. Runs are named band-<b>-<k>.run: keys (8 bytes each) then ids.
 */
export class LshIndex {
  readonly bands: number;
  readonly dir: string;
  readonly memoryBytes: number;
  #buffers: BandBuffer[];
  #capacity: number; // records per band buffer
  #runs: string[][]; // per band
  #documents = 0;
  #maxId = -1;

  constructor(options: LshIndexOptions) {
    const { bands, dir } = options;
    if (!Number.isInteger(bands) || bands < 1) throw invalidArg(`LshIndex: bands must be a positive integer, got ${bands}`);
    const memoryBytes = options.memoryBytes ?? 256 * 2 ** 20;
    if (!Number.isFinite(memoryBytes) || memoryBytes < RECORD_BYTES * bands * 1024) {
      throw invalidArg(`LshIndex: memoryBytes must be at least ${RECORD_BYTES * bands * 1024} (1024 records a band), got ${memoryBytes}`);
    }
    this.bands = bands;
    this.dir = dir;
    this.memoryBytes = memoryBytes;
    this.#capacity = Math.floor(memoryBytes / RECORD_BYTES / bands);
    this.#buffers = [];
    this.#runs = Array.from({ length: bands }, () => []);
    fs.mkdirSync(dir, { recursive: true });
  }

  /** Reopens the runs an earlier index left in `dir` (for a resumed clustering stage). */
  static open(options: LshIndexOptions & { documents: number }): LshIndex {
    const index = new LshIndex(options);
    const names = fs.readdirSync(options.dir).filter((f) => /^band-\d+-\d+\.run$/.test(f));
    for (const f of names.sort()) {
      const band = Number(f.split('-')[1]);
      if (band >= index.bands) throw new PajamaDataError(path.join(options.dir, f), `is a run of band ${band}, but the index has ${index.bands} bands`);
      index.#runs[band].push(path.join(options.dir, f));
    }
    index.#documents = options.documents;
    index.#maxId = options.documents - 1;
    return index;
  }

  get documents(): number {
    return this.#documents;
  }

  /** Run files written so far, all bands. */
  get runCount(): number {
    return this.#runs.reduce((n, r) => n + r.length, 0);
  }

  /**
   * Adds documents `ids` (n, increasing across calls) with their keys (n * bands, document-major).
   * Spills when the buffers are full; await it so memory stays bounded.
   */
  async add(ids: Uint32Array, keys: BigUint64Array): Promise<void> {
    const n = ids.length;
    if (keys.length !== n * this.bands) {
      throw invalidArg(`LshIndex.add: keys holds ${keys.length} values, expected ids (${n}) * bands (${this.bands})`);
    }
    for (let i = 0; i < n; i++) {
      const prev = i === 0 ? this.#maxId : ids[i - 1];
      if (ids[i] <= prev) throw invalidArg(`LshIndex.add: ids must increase across calls, got ${ids[i]} after ${prev}`);
    }
    if (n > 0) this.#maxId = ids[n - 1];
    if (this.#buffers.length === 0) {
      const cap = Math.min(this.#capacity, Math.max(1024, n * 4));
      this.#buffers = Array.from({ length: this.bands }, () => new BandBuffer(cap));
    }
    let done = 0;
    while (done < n) {
      const buf0 = this.#buffers[0];
      if (buf0.length === buf0.keys.length) {
        if (buf0.keys.length < this.#capacity) this.#growBuffers();
        else await this.#spill();
      }
      const room = this.#buffers[0].keys.length - this.#buffers[0].length;
      const take = Math.min(room, n - done);
      for (let b = 0; b < this.bands; b++) {
        const buf = this.#buffers[b];
        for (let i = 0; i < take; i++) {
          const d = done + i;
          buf.keys[buf.length + i] = keys[d * this.bands + b];
          buf.ids[buf.length + i] = ids[d];
        }
        buf.length += take;
      }
      done += take;
    }
    this.#documents += n;
  }

  #growBuffers(): void {
    for (let b = 0; b < this.bands; b++) {
      const old = this.#buffers[b];
      const next = new BandBuffer(Math.min(this.#capacity, old.keys.length * 2));
      next.keys.set(old.keys.subarray(0, old.length));
      next.ids.set(old.ids.subarray(0, old.length));
      next.length = old.length;
      this.#buffers[b] = next;
    }
  }

  /** Sorts and writes every non-empty band buffer as a run. */
  async #spill(): Promise<void> {
    for (let b = 0; b < this.bands; b++) {
      const buf = this.#buffers[b];
      if (buf.length === 0) continue;
      const keys = buf.keys.subarray(0, buf.length);
      const ids = buf.ids.subarray(0, buf.length);
      await sortKeyIdsAsync(keys, ids);
      const file = path.join(this.dir, `band-${String(b).padStart(3, '0')}-${String(this.#runs[b].length).padStart(6, '0')}.run`);
      writeFileAtomic(file, (fd) => {
        writeAll(fd, new Uint8Array(keys.buffer, keys.byteOffset, keys.byteLength));
        writeAll(fd, new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
      });
      this.#runs[b].push(file);
      buf.length = 0;
    }
  }

  /** Writes whatever is buffered, so the whole index lives in `dir`. */
  async spill(): Promise<void> {
    if (this.#buffers.length > 0) await this.#spill();
  }

  /** Unions every pair of documents sharing a band key into `uf` (grown to cover every id). */
  async cluster(uf: UnionFind): Promise<ClusterStats> {
    await this.spill();
    uf.grow(this.#maxId + 1);
    const stats: ClusterStats = { documents: this.#documents, buckets: 0, candidatePairs: 0, merges: 0, runs: this.runCount };
    for (let b = 0; b < this.bands; b++) {
      let groupKey = -1n;
      let groupFirst = 0;
      let groupSize = 0;
      const endGroup = (): void => {
        if (groupSize > 1) {
          stats.buckets++;
          stats.candidatePairs += (groupSize * (groupSize - 1)) / 2;
        }
      };
      for (const chunk of mergeRuns(this.#runs[b])) {
        const { keys, ids, length } = chunk;
        for (let i = 0; i < length; i++) {
          const k = keys[i];
          if (k === EMPTY_BAND_KEY) continue; // empty documents: no shingles, never candidates
          if (k === groupKey && groupSize > 0) {
            if (uf.union(groupFirst, ids[i])) stats.merges++;
            groupSize++;
          } else {
            endGroup();
            groupKey = k;
            groupFirst = ids[i];
            groupSize = 1;
          }
        }
      }
      endGroup();
    }
    return stats;
  }

  /**
   * After cluster(uf): for every document d that is not its cluster's root r = uf.find(d), how many bands
   * hold the same key for d and r (`shared[d]`, 0 when d joined r's cluster through other documents), and the
   * smallest other id d shares a band key with (`via[d]`: r itself when shared[d] > 0; 2^32 - 1 for a root).
   * A band agrees with probability J^rows for documents of Jaccard similarity J, so shared / bands estimates
   * J^rows. Reads the runs once more; memory is 6 bytes a document.
   */
  async agreementWithRoots(uf: UnionFind): Promise<{ shared: Uint16Array; via: Uint32Array }> {
    await this.spill();
    const n = uf.size;
    const shared = new Uint16Array(n);
    const via = new Uint32Array(n).fill(0xffffffff);
    for (let b = 0; b < this.bands; b++) {
      let groupKey = -1n;
      let groupFirst = 0; // runs merge in (key, id) order: the first id of a group is its smallest
      for (const chunk of mergeRuns(this.#runs[b])) {
        const { keys, ids, length } = chunk;
        for (let i = 0; i < length; i++) {
          const k = keys[i];
          if (k === EMPTY_BAND_KEY) continue;
          const id = ids[i];
          if (k !== groupKey) {
            groupKey = k;
            groupFirst = id;
            continue;
          }
          if (groupFirst < via[id]) via[id] = groupFirst;
          if (uf.find(id) === groupFirst) shared[id]++;
        }
      }
    }
    return { shared, via };
  }

  /** Deletes the run files. */
  removeRuns(): void {
    for (const runs of this.#runs) for (const f of runs) fs.rmSync(f, { force: true });
    this.#runs = Array.from({ length: this.bands }, () => []);
  }
}

function readAt(fd: number, bytes: Uint8Array, position: number, file: string): void {
  let at = 0;
  while (at < bytes.length) {
    const n = fs.readSync(fd, bytes, at, bytes.length - at, position + at);
    if (n === 0) throw new PajamaDataError(file, `ended early at byte ${position + at} (a truncated run file)`);
    at += n;
  }
}

/** A sorted run read a chunk at a time. */
class RunCursor {
  readonly file: string;
  readonly records: number;
  #fd: number;
  #next = 0; // next record to load
  keys: BigUint64Array;
  ids: Uint32Array;
  length = 0;
  pos = 0;

  constructor(file: string) {
    this.file = file;
    const bytes = fs.statSync(file).size;
    if (bytes % RECORD_BYTES !== 0) throw new PajamaDataError(file, `is ${bytes} bytes, not a whole number of ${RECORD_BYTES}-byte records`);
    this.records = bytes / RECORD_BYTES;
    this.#fd = fs.openSync(file, 'r');
    const cap = Math.min(MERGE_CHUNK, Math.max(1, this.records));
    this.keys = new BigUint64Array(cap);
    this.ids = new Uint32Array(cap);
    this.load();
  }

  /** Loads the next chunk; false at the end (and the file is closed). */
  load(): boolean {
    const n = Math.min(this.keys.length, this.records - this.#next);
    this.pos = 0;
    this.length = n;
    if (n === 0) {
      this.close();
      return false;
    }
    readAt(this.#fd, new Uint8Array(this.keys.buffer, 0, n * 8), this.#next * 8, this.file);
    readAt(this.#fd, new Uint8Array(this.ids.buffer, 0, n * 4), this.records * 8 + this.#next * 4, this.file);
    this.#next += n;
    return true;
  }

  close(): void {
    if (this.#fd >= 0) fs.closeSync(this.#fd);
    this.#fd = -1;
  }
}

/** The records of sorted runs, merged in (key, id) order, in chunks. */
function* mergeRuns(files: string[]): Generator<{ keys: BigUint64Array; ids: Uint32Array; length: number }> {
  if (files.length === 0) return;
  const cursors = files.map((f) => new RunCursor(f));
  try {
    if (cursors.length === 1) {
      const c = cursors[0];
      while (c.length > 0) {
        yield { keys: c.keys, ids: c.ids, length: c.length };
        if (!c.load()) break;
      }
      return;
    }
    // A binary heap of cursors ordered by their current (key, id).
    const less = (a: RunCursor, b: RunCursor): boolean => {
      const ka = a.keys[a.pos];
      const kb = b.keys[b.pos];
      return ka < kb || (ka === kb && a.ids[a.pos] < b.ids[b.pos]);
    };
    const heap = cursors.filter((c) => c.length > 0);
    const siftDown = (i: number): void => {
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && less(heap[l], heap[m])) m = l;
        if (r < heap.length && less(heap[r], heap[m])) m = r;
        if (m === i) return;
        [heap[i], heap[m]] = [heap[m], heap[i]];
        i = m;
      }
    };
    for (let i = (heap.length >> 1) - 1; i >= 0; i--) siftDown(i);
    const out = { keys: new BigUint64Array(MERGE_CHUNK), ids: new Uint32Array(MERGE_CHUNK), length: 0 };
    while (heap.length > 0) {
      const c = heap[0];
      out.keys[out.length] = c.keys[c.pos];
      out.ids[out.length] = c.ids[c.pos];
      out.length++;
      c.pos++;
      if (c.pos === c.length && !c.load()) {
        heap[0] = heap[heap.length - 1];
        heap.pop();
      }
      if (heap.length > 0) siftDown(0);
      if (out.length === MERGE_CHUNK) {
        yield out;
        out.length = 0;
      }
    }
    if (out.length > 0) yield out;
  } finally {
    for (const c of cursors) c.close();
  }
}

/** The exact check of LSH on a sample: every pair's Jaccard by brute force against the LSH decision. */
export interface LshVerification {
  documents: number;
  /** Pairs of sampled documents. */
  pairs: number;
  threshold: number;
  /** Pairs with exact Jaccard >= threshold, and how many of them LSH made candidates (share a band key). */
  pairsAbove: number;
  recalled: number;
  /** recalled / pairsAbove; null when no pair is above the threshold. */
  recall: number | null;
  /** Pairs LSH made candidates, and how many of them are below the threshold. */
  candidates: number;
  falseCandidates: number;
  /** falseCandidates / candidates; null without candidates. */
  falsePositiveRate: number | null;
}

/** 53-bit hash of a string (two 32-bit multiply-xorshift lanes). */
function stringHash53(s: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/**
 * The shingles of `text` (every run of `k` code points; a shorter non-empty text is one shingle), hashed
 * to 53 bits, sorted and unique: exact Jaccard up to 53-bit hash collisions.
 */
export function shingleHashes(text: string, k: number): Float64Array {
  const cps = Array.from(text);
  const out: number[] = [];
  if (cps.length > 0 && cps.length < k) out.push(stringHash53(text));
  for (let i = 0; i + k <= cps.length; i++) out.push(stringHash53(cps.slice(i, i + k).join('')));
  const sorted = Float64Array.from(out).sort();
  let m = 0;
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[m - 1]) sorted[m++] = sorted[i];
  return sorted.slice(0, m);
}

/** Jaccard of two sorted unique hash sets. */
export function sortedJaccard(a: Float64Array, b: Float64Array): number {
  if (a.length === 0 && b.length === 0) return 1;
  let i = 0;
  let j = 0;
  let inter = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      inter++;
      i++;
      j++;
    } else if (a[i] < b[j]) i++;
    else j++;
  }
  return inter / (a.length + b.length - inter);
}

/**
 * Compares LSH with exact Jaccard on every pair of `texts` (normalised documents): recall of pairs at or
 * above `threshold`, and the share of candidate pairs below it. Pairs whose set sizes alone bound the
 * Jaccard below the threshold are not candidates' business unless LSH picked them, so they are skipped.
 */
export async function verifyLshSample(texts: string[], options: MinHashOptions, threshold = 0.8): Promise<LshVerification> {
  const n = texts.length;
  const { bandKeys } = await minhashDocumentsAsync(texts, options);
  const sets = texts.map((t) => shingleHashes(t, options.shingleChars));
  const v: LshVerification = { documents: n, pairs: (n * (n - 1)) / 2, threshold, pairsAbove: 0, recalled: 0, recall: null, candidates: 0, falseCandidates: 0, falsePositiveRate: null };
  const B = options.bands;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let candidate = false;
      for (let b = 0; b < B && !candidate; b++) candidate = bandKeys[i * B + b] === bandKeys[j * B + b];
      const a = sets[i];
      const c = sets[j];
      const bound = Math.min(a.length, c.length) / Math.max(a.length, c.length, 1);
      if (!candidate && bound < threshold) continue;
      const jac = sortedJaccard(a, c);
      if (jac >= threshold) {
        v.pairsAbove++;
        if (candidate) v.recalled++;
      }
      if (candidate) {
        v.candidates++;
        if (jac < threshold) v.falseCandidates++;
      }
    }
  }
  v.recall = v.pairsAbove > 0 ? v.recalled / v.pairsAbove : null;
  v.falsePositiveRate = v.candidates > 0 ? v.falseCandidates / v.candidates : null;
  return v;
}
