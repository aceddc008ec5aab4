// pretokenize.ts: cutting normalized text into the pieces BPE encodes (HF's pre-tokenizers).
//
// Two kinds, in the order a tokenizer.json's Sequence applies them:
//   Split steps     a regex (translated by regex.ts) or string pattern, with HF's five behaviors for the
//                   matches (splitPieces); empty matches and empty pieces are dropped, as HF drops them.
//   ByteLevel       GPT-2's pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ with
//                   JS's \s (as the ByteLevel pre-tokenizer of the reference uses), as a hand-written scanner
//                   (gpt2Pieces) over a per-character class table; the table is filled lazily by the same JS
//                   regexes, so the scanner agrees with the pattern.
// The scanner is the hot loop of encode (benchmarks/tokenizer.ts): it hands each piece straight to a PieceSink
// (the BPE engine) instead of building strings or arrays. Reading the pre_tokenizer section is hf-json.ts's.

export type SplitBehavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';
export const SPLIT_BEHAVIORS: readonly SplitBehavior[] = ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'];

export interface SplitStep {
  regex: RegExp;
  behavior: SplitBehavior;
}

/** A tokenizer.json's pre-tokenizer, as read by hf-json.ts. */
export interface PreTokenizerPlan {
  /** Split steps applied in order before the byte-level step. */
  splits: SplitStep[];
  addPrefixSpace: boolean;
  /** Split each piece with GPT-2's pattern before mapping it to bytes. */
  useRegex: boolean;
}

/** Where gpt2Pieces hands its pieces. */
export interface PieceSink {
  /** Takes the piece s[a, b). */
  piece(s: string, a: number, b: number): void;
}

// ---------------------------------------------------------------------------------------------------------------
// Character classes of GPT-2's pattern  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (JS \s, as the ByteLevel pre-tokenizer of the reference uses). Filled on first sight of each BMP code unit.

const LETTER = 1;
const NUMBER = 2;
const SPACE = 3;
const OTHER = 4;
const RE_LETTER = /^\p{L}$/u;
const RE_NUMBER = /^\p{N}$/u;
const RE_SPACE = /^\s$/u;
const bmpClasses = new Uint8Array(0x10000);
const astralClasses = new Map<number, number>();

function classifyCodePoint(cp: number): number {
  const ch = String.fromCodePoint(cp);
  return RE_LETTER.test(ch) ? LETTER : RE_NUMBER.test(ch) ? NUMBER : RE_SPACE.test(ch) ? SPACE : OTHER;
}

function bmpClass(c: number): number {
  const k = bmpClasses[c];
  if (k !== 0) return k;
  // A lone surrogate is one code point to a /u regex: not a letter, number or space.
  return (bmpClasses[c] = c >= 0xd800 && c <= 0xdfff ? OTHER : classifyCodePoint(c));
}

function astralClass(cp: number): number {
  let k = astralClasses.get(cp);
  if (k === undefined) astralClasses.set(cp, (k = classifyCodePoint(cp)));
  return k;
}

/** JS whitespace (the \s set, and what String.prototype.trim strips); all of it is in the BMP. */
export function isJsSpace(c: number): boolean {
  return bmpClass(c) === SPACE;
}

export function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/**
 * Splits s[start, end) as 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ (a /u
 * regex) does, with `end` as the end of the text, handing each piece to `sink` in order.
 */
export function gpt2Pieces(s: string, start: number, end: number, sink: PieceSink): void {
  let i = start;
  while (i < end) {
    const c = s.charCodeAt(i);
    let j = c === 0x27 ? contractionEnd(s, i, end) : -1;
    if (j < 0) {
      let k = i; // where the run of one class starts: after an optional leading space
      let cls: number;
      if (c < 0xd800 || c > 0xdbff) cls = bmpClass(c);
      else cls = i + 1 < end && isLowSurrogate(s.charCodeAt(i + 1)) ? astralClass(s.codePointAt(i)!) : OTHER;
      if (c === 0x20 && i + 1 < end) {
        const c1 = s.charCodeAt(i + 1);
        const next = c1 < 0xd800 || c1 > 0xdbff ? bmpClass(c1) : i + 2 < end && isLowSurrogate(s.charCodeAt(i + 2)) ? astralClass(s.codePointAt(i + 1)!) : OTHER;
        if (next !== SPACE) {
          k = i + 1;
          cls = next;
        }
      }
      if (cls === SPACE) {
        // \s+(?!\S) leaves the last space to the word after it; a single space before a word is \s+ alone.
        let r = i + 1;
        while (r < end && isJsSpace(s.charCodeAt(r))) r++;
        j = r === end || r - i === 1 ? r : r - 1;
      } else {
        j = k;
        while (j < end) {
          const d = s.charCodeAt(j);
          if (d < 0xd800 || d > 0xdbff) {
            if (bmpClass(d) !== cls) break;
            j++;
          } else if (j + 1 < end && isLowSurrogate(s.charCodeAt(j + 1))) {
            if (astralClass(s.codePointAt(j)!) !== cls) break;
            j += 2;
          } else {
            if (cls !== OTHER) break;
            j++;
          }
        }
      }
    }
    sink.piece(s, i, j);
    i = j;
  }
}

/** The end of a contraction ('s 't 're 've 'm 'll 'd, lower case only) at s[i] = "'", or -1. */
function contractionEnd(s: string, i: number, end: number): number {
  if (i + 1 >= end) return -1;
  const c1 = s.charCodeAt(i + 1);
  if (c1 === 0x73 || c1 === 0x74 || c1 === 0x6d || c1 === 0x64) return i + 2; // s t m d
  if (i + 2 >= end) return -1;
  const c2 = s.charCodeAt(i + 2);
  if ((c1 === 0x72 && c2 === 0x65) || (c1 === 0x76 && c2 === 0x65) || (c1 === 0x6c && c2 === 0x6c)) return i + 3; // re ve ll
  return -1;
}

/** The pieces of `s` for one Split step, HF's way (empty matches and empty pieces dropped). */
export function splitPieces(s: string, step: SplitStep, out: string[]): void {
  const { regex, behavior } = step;
  // Alternating gaps and matches, as [start, end, isMatch] triples.
  const parts: number[] = [];
  let prev = 0;
  regex.lastIndex = 0;
  for (let m = regex.exec(s); m !== null; m = regex.exec(s)) {
    const start = m.index;
    const end = start + m[0].length;
    if (end === start) {
      regex.lastIndex = start + (s.codePointAt(start)! > 0xffff ? 2 : 1);
      continue;
    }
    if (prev < start) parts.push(prev, start, 0);
    parts.push(start, end, 1);
    prev = end;
  }
  if (prev < s.length) parts.push(prev, s.length, 0);
  const merged: number[] = []; // [start, end] pairs
  const n = parts.length / 3;
  if (behavior === 'Isolated' || behavior === 'Removed') {
    for (let k = 0; k < n; k++) if (behavior === 'Isolated' || parts[3 * k + 2] === 0) merged.push(parts[3 * k], parts[3 * k + 1]);
  } else if (behavior === 'MergedWithPrevious') {
    // A match joins the piece before it, unless that piece is a match too.
    for (let k = 0; k < n; k++) {
      const isMatch = parts[3 * k + 2] === 1;
      const prevMatch = k > 0 && parts[3 * k - 1] === 1;
      if (isMatch && !prevMatch && merged.length > 0) merged[merged.length - 1] = parts[3 * k + 1];
      else merged.push(parts[3 * k], parts[3 * k + 1]);
    }
  } else if (behavior === 'MergedWithNext') {
    // A match joins the piece after it, unless that piece is a match too.
    const rev: number[] = [];
    for (let k = n - 1; k >= 0; k--) {
      const isMatch = parts[3 * k + 2] === 1;
      const nextMatch = k < n - 1 && parts[3 * k + 5] === 1;
      if (isMatch && !nextMatch && rev.length > 0) rev[rev.length - 2] = parts[3 * k];
      else rev.push(parts[3 * k], parts[3 * k + 1]);
    }
    for (let k = rev.length - 2; k >= 0; k -= 2) merged.push(rev[k], rev[k + 1]);
  } else {
    // Contiguous: runs of adjacent matches become one piece.
    for (let k = 0; k < n; k++) {
      const same = k > 0 && parts[3 * k + 2] === 1 && parts[3 * k - 1] === 1;
      if (same) merged[merged.length - 1] = parts[3 * k + 1];
      else merged.push(parts[3 * k], parts[3 * k + 1]);
    }
  }
  for (let k = 0; k < merged.length; k += 2) if (merged[k] < merged[k + 1]) out.push(s.slice(merged[k], merged[k + 1]));
}
