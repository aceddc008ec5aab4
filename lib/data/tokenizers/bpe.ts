// bpe.ts: the byte-level BPE engine: the byte alphabet, the merge table, the piece cache and the merging.
//
// A piece (from pretokenize.ts) is written as UTF-8 bytes, each byte a symbol id (byteIds), then merged as HF's
// BPE merges: always the adjacent pair of lowest rank, the leftmost among equals, until no pair merges. Speed
// (benchmarks/tokenizer.ts): symbols are integer ids, the merges sit in an open-addressing table keyed by the
// pair (MergeTable), short words are merged by a linear scan and long ones with a heap, and each piece's ids
// come from a bounded cache keyed by its code units (PieceCache: no string made per lookup) when it was seen
// before. Reading the model section of a tokenizer.json into a BpeModel is hf-json.ts's.

/** Pieces longer than this (characters) are not cached: they are rare and would crowd out the rest. */
const MAX_CACHED_PIECE = 256;
/** Words with more byte symbols than this are merged with a heap instead of a linear scan. */
const SCAN_MERGE_MAX = 48;
const NO_RANK = 0x7fffffff;

// ---------------------------------------------------------------------------------------------------------------
// The byte-level alphabet: byte b is written as BYTE_CHARS[b] in vocab and merges. Printable Latin-1 bytes stand
// for themselves; the others, in byte order, take the characters from U+0100 on.

export const BYTE_CHARS: string[] = (() => {
  const chars = new Array<string>(256);
  let next = 0x100;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars[b] = String.fromCharCode(printable ? b : next++);
  }
  return chars;
})();

/** char code -> byte for the byte-level alphabet; -1 elsewhere. */
export const CHAR_BYTES: Int16Array = (() => {
  const t = new Int16Array(0x144).fill(-1);
  for (let b = 0; b < 256; b++) t[BYTE_CHARS[b].charCodeAt(0)] = b;
  return t;
})();

// ---------------------------------------------------------------------------------------------------------------
// The model

/** Merges in an open-addressing table keyed by the pair of symbol ids. */
export class MergeTable {
  private readonly mask: number;
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  readonly rank: Int32Array;
  readonly merged: Int32Array;

  constructor(count: number) {
    let size = 1024;
    while (size < count * 2) size *= 2;
    this.mask = size - 1;
    this.left = new Int32Array(size).fill(-1);
    this.right = new Int32Array(size);
    this.rank = new Int32Array(size);
    this.merged = new Int32Array(size);
  }

  /** Later merges of the same pair replace earlier ones, as in HF. */
  set(a: number, b: number, rank: number, merged: number): void {
    let h = pairHash(a, b) & this.mask;
    while (this.left[h] !== -1 && (this.left[h] !== a || this.right[h] !== b)) h = (h + 1) & this.mask;
    this.left[h] = a;
    this.right[h] = b;
    this.rank[h] = rank;
    this.merged[h] = merged;
  }

  /** The slot of pair (a, b), or -1 if they do not merge. */
  slot(a: number, b: number): number {
    const left = this.left;
    let h = pairHash(a, b) & this.mask;
    for (;;) {
      const l = left[h];
      if (l === a && this.right[h] === b) return h;
      if (l === -1) return -1;
      h = (h + 1) & this.mask;
    }
  }
}

function pairHash(a: number, b: number): number {
  return Math.imul(Math.imul(a, 0x9e3779b1) ^ b, 0x85ebca77) >>> 13;
}

export interface BpeModel {
  /** content -> id: the vocab with the added tokens over it (the reference puts them into the model's vocab). */
  ids: Map<string, number>;
  /** id -> content, the added tokens' included; holes are undefined. */
  tokens: (string | undefined)[];
  byteIds: Int32Array; // (256) the id of each byte's symbol
  merges: MergeTable;
  ignoreMerges: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// The piece cache

/** FNV-1a over the UTF-16 code units of s[a, b). */
function pieceHash(s: string, a: number, b: number): number {
  let h = 0x811c9dc5;
  for (let i = a; i < b; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}

/**
 * Pieces and their ids in flat typed arrays, keyed by the piece's code units, so that a lookup makes no string
 * and no garbage. Bounded: when an entry or its characters or ids no longer fit, everything is dropped.
 */
class PieceCache {
  private readonly mask: number;
  private readonly slots: Int32Array; // entry + 1, 0 when empty
  private readonly hashes: Int32Array; // (capacity) per entry
  private readonly charStart: Int32Array;
  private readonly charLen: Int32Array;
  private readonly idStart: Int32Array;
  readonly idCount: Int32Array;
  private readonly chars: Uint16Array;
  readonly ids: Uint32Array;
  private count = 0;
  private charsUsed = 0;
  private idsUsed = 0;

  constructor(readonly capacity: number) {
    let size = 16;
    while (size < 2 * capacity) size *= 2;
    this.mask = size - 1;
    this.slots = new Int32Array(size);
    this.hashes = new Int32Array(capacity);
    this.charStart = new Int32Array(capacity);
    this.charLen = new Int32Array(capacity);
    this.idStart = new Int32Array(capacity);
    this.idCount = new Int32Array(capacity);
    this.chars = new Uint16Array(16 * capacity);
    this.ids = new Uint32Array(8 * capacity);
  }

  /** Where the ids of s[a, b) (hash h) start in `ids`, their count in idCount[entry]; the entry, or -1. */
  find(s: string, a: number, b: number, h: number): number {
    const len = b - a;
    let slot = h & this.mask;
    for (;;) {
      const e = this.slots[slot] - 1;
      if (e < 0) return -1;
      if (this.hashes[e] === h && this.charLen[e] === len) {
        const at = this.charStart[e];
        let i = 0;
        while (i < len && this.chars[at + i] === s.charCodeAt(a + i)) i++;
        if (i === len) return e;
      }
      slot = (slot + 1) & this.mask;
    }
  }

  idsAt(e: number): number {
    return this.idStart[e];
  }

  add(s: string, a: number, b: number, h: number, ids: Int32Array, n: number): void {
    const len = b - a;
    if (this.count === this.capacity || this.charsUsed + len > this.chars.length || this.idsUsed + n > this.ids.length) {
      if (len > this.chars.length || n > this.ids.length) return;
      this.slots.fill(0);
      this.count = this.charsUsed = this.idsUsed = 0;
    }
    const e = this.count++;
    this.hashes[e] = h;
    this.charStart[e] = this.charsUsed;
    this.charLen[e] = len;
    for (let i = 0; i < len; i++) this.chars[this.charsUsed + i] = s.charCodeAt(a + i);
    this.charsUsed += len;
    this.idStart[e] = this.idsUsed;
    this.idCount[e] = n;
    for (let i = 0; i < n; i++) this.ids[this.idsUsed + i] = ids[i];
    this.idsUsed += n;
    let slot = h & this.mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & this.mask;
    this.slots[slot] = e + 1;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The engine

/**
 * Byte-level BPE over a BpeModel: pieces in, ids out. The ids of one encode() call are appended to a growing
 * buffer (reset, then piece/push, then take); the symbols of the word being merged live in scratch arrays
 * reused across calls, so a piece that hits the cache allocates nothing. Not re-entrant: one per tokenizer.
 * It is the PieceSink that pretokenize.ts's scanner hands its pieces to.
 */
export class BpeEncoder {
  private readonly model: BpeModel;
  private readonly cache: PieceCache | null;
  // Scratch, reused across calls: the ids being written, and the symbols of the word being merged.
  private out = new Uint32Array(4096);
  private n = 0;
  private sym = new Int32Array(256);
  private pairRank = new Int32Array(256);
  private pairMerged = new Int32Array(256);

  /** `cacheSize`: most pieces remembered with their ids (0: no cache). */
  constructor(model: BpeModel, cacheSize: number) {
    this.model = model;
    this.cache = cacheSize > 0 ? new PieceCache(cacheSize) : null;
  }

  /** Starts a new output. */
  reset(): void {
    this.n = 0;
  }

  /** The ids appended since reset(), as a fresh array. */
  take(): Uint32Array {
    return this.out.slice(0, this.n);
  }

  /** Appends the ids of the piece s[a, b). */
  piece(s: string, a: number, b: number): void {
    if (b - a === 1) {
      const c = s.charCodeAt(a);
      if (c < 0x80 && !this.model.ignoreMerges) return this.push(this.model.byteIds[c]);
    }
    const cache = b - a <= MAX_CACHED_PIECE ? this.cache : null;
    let h = 0;
    if (cache !== null) {
      h = pieceHash(s, a, b);
      const e = cache.find(s, a, b, h);
      if (e >= 0) return this.pushAll(cache.ids, cache.idsAt(e), cache.idCount[e]);
    }
    const n = this.mergePiece(s, a, b);
    this.pushAll(this.sym, 0, n);
    if (cache !== null) cache.add(s, a, b, h, this.sym, n);
  }

  /** Writes the ids of s[a, b) to this.sym[0, n) and returns n. */
  private mergePiece(s: string, a: number, b: number): number {
    let n = this.utf8Symbols(s, a, b);
    const { model } = this;
    if (model.ignoreMerges) {
      let chars = '';
      for (let i = 0; i < n; i++) chars += BYTE_CHARS[this.sym[i]];
      const whole = model.ids.get(chars);
      if (whole !== undefined) {
        this.sym[0] = whole;
        return 1;
      }
    }
    const byteIds = model.byteIds;
    for (let i = 0; i < n; i++) this.sym[i] = byteIds[this.sym[i]];
    if (n < 2) return n;
    n = n <= SCAN_MERGE_MAX ? this.mergeByScan(n) : this.mergeByHeap(n);
    return n;
  }

  /** UTF-8 bytes of s[a, b) into this.sym (a lone surrogate is U+FFFD, as TextEncoder writes it); their count. */
  private utf8Symbols(s: string, a: number, b: number): number {
    if (this.sym.length < 4 * (b - a)) this.growSymbols(4 * (b - a));
    const sym = this.sym;
    let n = 0;
    for (let i = a; i < b; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x80) sym[n++] = c;
      else if (c < 0x800) {
        sym[n++] = 0xc0 | (c >> 6);
        sym[n++] = 0x80 | (c & 0x3f);
      } else if (c >= 0xd800 && c <= 0xdfff) {
        const lo = i + 1 < b ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
          sym[n++] = 0xf0 | (cp >> 18);
          sym[n++] = 0x80 | ((cp >> 12) & 0x3f);
          sym[n++] = 0x80 | ((cp >> 6) & 0x3f);
          sym[n++] = 0x80 | (cp & 0x3f);
          i++;
        } else {
          sym[n++] = 0xef;
          sym[n++] = 0xbf;
          sym[n++] = 0xbd;
        }
      } else {
        sym[n++] = 0xe0 | (c >> 12);
        sym[n++] = 0x80 | ((c >> 6) & 0x3f);
        sym[n++] = 0x80 | (c & 0x3f);
      }
    }
    return n;
  }

  private growSymbols(size: number): void {
    let cap = this.sym.length;
    while (cap < size) cap *= 2;
    this.sym = new Int32Array(cap);
    this.pairRank = new Int32Array(cap);
    this.pairMerged = new Int32Array(cap);
  }

  /**
   * Merges this.sym[0, n) in place: always the pair of lowest rank, the leftmost among equals, until no pair
   * merges. Short words: a linear scan over the ranks of adjacent pairs, updated next to each merge.
   */
  private mergeByScan(n: number): number {
    const { sym, pairRank, pairMerged } = this;
    const merges = this.model.merges;
    for (let i = 0; i + 1 < n; i++) {
      const slot = merges.slot(sym[i], sym[i + 1]);
      pairRank[i] = slot < 0 ? NO_RANK : merges.rank[slot];
      pairMerged[i] = slot < 0 ? -1 : merges.merged[slot];
    }
    for (;;) {
      let best = NO_RANK;
      let at = -1;
      for (let i = 0; i + 1 < n; i++) {
        if (pairRank[i] < best) {
          best = pairRank[i];
          at = i;
        }
      }
      if (at < 0) return n;
      sym[at] = pairMerged[at];
      for (let i = at + 1; i + 1 < n; i++) {
        sym[i] = sym[i + 1];
        pairRank[i] = pairRank[i + 1];
        pairMerged[i] = pairMerged[i + 1];
      }
      n--;
      if (at > 0) {
        const slot = merges.slot(sym[at - 1], sym[at]);
        pairRank[at - 1] = slot < 0 ? NO_RANK : merges.rank[slot];
        pairMerged[at - 1] = slot < 0 ? -1 : merges.merged[slot];
      }
      if (at + 1 < n) {
        const slot = merges.slot(sym[at], sym[at + 1]);
        pairRank[at] = slot < 0 ? NO_RANK : merges.rank[slot];
        pairMerged[at] = slot < 0 ? -1 : merges.merged[slot];
      }
    }
  }

  /**
   * The same merges for long words, in O(n log n): symbols in a linked list indexed by their first byte's
   * position, candidate pairs in a binary heap ordered by (rank, position); a popped pair whose symbols have
   * changed since it was pushed is stale and dropped.
   */
  private mergeByHeap(n: number): number {
    const sym = this.sym;
    const merges = this.model.merges;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    // Heap entries: rank, left position, and the left and right symbol ids when pushed.
    const cap = 2 * n;
    const hRank = new Int32Array(cap);
    const hPos = new Int32Array(cap);
    const hLeft = new Int32Array(cap);
    const hRight = new Int32Array(cap);
    let size = 0;
    const less = (x: number, y: number) => hRank[x] < hRank[y] || (hRank[x] === hRank[y] && hPos[x] < hPos[y]);
    const swap = (x: number, y: number) => {
      let t = hRank[x];
      hRank[x] = hRank[y];
      hRank[y] = t;
      t = hPos[x];
      hPos[x] = hPos[y];
      hPos[y] = t;
      t = hLeft[x];
      hLeft[x] = hLeft[y];
      hLeft[y] = t;
      t = hRight[x];
      hRight[x] = hRight[y];
      hRight[y] = t;
    };
    const push = (pos: number) => {
      const r = next[pos];
      const slot = merges.slot(sym[pos], sym[r]);
      if (slot < 0) return;
      let k = size++;
      hRank[k] = merges.rank[slot];
      hPos[k] = pos;
      hLeft[k] = sym[pos];
      hRight[k] = sym[r];
      while (k > 0) {
        const parent = (k - 1) >> 1;
        if (!less(k, parent)) break;
        swap(k, parent);
        k = parent;
      }
    };
    const pop = () => {
      size--;
      swap(0, size);
      let k = 0;
      for (;;) {
        const l = 2 * k + 1;
        if (l >= size) break;
        const c = l + 1 < size && less(l + 1, l) ? l + 1 : l;
        if (!less(c, k)) break;
        swap(c, k);
        k = c;
      }
    };
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i + 1 < n; i++) push(i);
    let count = n;
    while (size > 0) {
      const pos = hPos[0];
      const left = hLeft[0];
      const right = hRight[0];
      const rank = hRank[0];
      pop();
      const r = next[pos];
      if (!alive[pos] || r < 0 || sym[pos] !== left || sym[r] !== right) continue;
      const slot = merges.slot(left, right);
      if (merges.rank[slot] !== rank) continue;
      sym[pos] = merges.merged[slot];
      alive[r] = 0;
      next[pos] = next[r];
      if (next[r] >= 0) prev[next[r]] = pos;
      count--;
      if (prev[pos] >= 0) push(prev[pos]);
      if (next[pos] >= 0) push(pos);
    }
    let k = 0;
    for (let i = 0; i >= 0; i = next[i]) sym[k++] = sym[i];
    return count;
  }

  /** Appends one id. */
  push(id: number): void {
    if (this.n === this.out.length) this.growOut(this.n + 1);
    this.out[this.n++] = id;
  }

  /** Appends ids[at, at + count). */
  private pushAll(ids: Uint32Array | Int32Array, at: number, count: number): void {
    if (this.n + count > this.out.length) this.growOut(this.n + count);
    const out = this.out;
    let n = this.n;
    for (let i = 0; i < count; i++) out[n++] = ids[at + i];
    this.n = n;
  }

  private growOut(size: number): void {
    let cap = this.out.length;
    while (cap < size) cap *= 2;
    const out = new Uint32Array(cap);
    out.set(this.out.subarray(0, this.n));
    this.out = out;
  }
}
