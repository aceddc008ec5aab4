// hf-tokenizer.ts: byte-level BPE tokenizers (GPT-NeoX-20B, GPT-2, RoBERTa, Llama-3 style) read from a Hugging
// Face tokenizer.json. encode() gives id for id what @huggingface/tokenizers 0.2.0 (the JS port of HF tokenizers)
// gives for encode(text, { add_special_tokens: false }); the parity tests run against it.
//
// Supported; anything else is a PajamaDataError naming the file and the JSON path of the component:
//   normalizer      null, NFC, NFD, NFKC, NFKD, Lowercase, or a Sequence of these
//   pre_tokenizer   ByteLevel (add_prefix_space, use_regex), or a Sequence of Split steps (Regex or String
//                   pattern, invert false, any behavior) ending in one ByteLevel
//   model           BPE over the byte symbols: vocab, merges ("a b" strings or [a, b] pairs), ignore_merges;
//                   no dropout, byte_fallback, continuing_subword_prefix or end_of_word_suffix
//   added_tokens    special or not, normalized, lstrip, rstrip, single_word
//   decoder         ByteLevel
// post_processor, truncation and padding are read past: encode never adds template tokens, truncates or pads.
//
// Added tokens are matched as HF does, before pre-tokenisation: leftmost-longest, first the ones that are not
// `normalized` against the raw text, then the normalized ones against each normalized stretch between those.
// GPT-NeoX's runs of 2-24 spaces are such normalized added tokens, so "a   b" is [a, "   ", b].
// Special tokens ("<|endoftext|>") are matched only with allowSpecial: by default their text is ordinary text,
// as in gpt2Tokenizer, because only the pipeline writes EOS, between documents. That is HF's own
// encode_special_tokens mode, and gives what HF gives for the same file with the special ones left out of
// added_tokens (the parity tests compare exactly that).
//
// Where HF tokenizers (Rust) and its JS port differ, we follow the port except in three places, which the port
// does not implement: single_word (a match next to a \w character is skipped), lstrip/rstrip never strip into a
// neighbouring added token, and the Split behaviors MergedWithPrevious, MergedWithNext and Contiguous (the port
// treats them as Isolated). Split regexes are Oniguruma, translated to JS as the port translates them: \s is
// White_Space, \d is Nd, (?i:...) folds ASCII letters. Unsupported constructs (\w, \b, anchors, possessive or
// atomic groups, nested classes) are errors.
//
// Speed (benchmarks/tokenizer.ts): GPT-2's pre-tokenisation pattern is a hand-written scanner over a
// per-character class table (filled lazily by the same JS regexes, so it agrees with them); each piece's ids
// come from a bounded cache keyed by its code units (no string made per lookup), or from BPE over integer
// symbol ids with the merges in an open-addressing table keyed by the pair (a linear scan for short words, a
// heap for long ones); added tokens are found with one regex; NFC runs only on stretches from U+0300 on.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArg } from '../../core/errors';
import { PajamaDataError } from '../errors';
import { decodeWith, type ByteTable, type Tokenizer } from './base';

export interface HfTokenizerOptions {
  /**
   * Match added tokens marked special (GPT-NeoX: "<|endoftext|>", "<|padding|>") in the text and encode them as
   * their ids, as HF's encode does. Defaults to false: their text is encoded as ordinary text. Added tokens that
   * are not special (GPT-NeoX's runs of spaces) are matched either way.
   */
  allowSpecial?: boolean;
  /** The content of the end-of-text token. Defaults to '<|endoftext|>'. */
  eosToken?: string;
  /** Most pieces remembered with their ids between calls. Defaults to 65536; 0 turns the cache off. */
  cacheSize?: number;
}

export const HF_DEFAULT_EOS_TOKEN = '<|endoftext|>';
const DEFAULT_CACHE_SIZE = 65536;
/** Pieces longer than this (characters) are not cached: they are rare and would crowd out the rest. */
const MAX_CACHED_PIECE = 256;
/** Words with more byte symbols than this are merged with a heap instead of a linear scan. */
const SCAN_MERGE_MAX = 48;
const NO_RANK = 0x7fffffff;

// ---------------------------------------------------------------------------------------------------------------
// The byte-level alphabet: byte b is written as BYTE_CHARS[b] in vocab and merges. Printable Latin-1 bytes stand
// for themselves; the others, in byte order, take the characters from U+0100 on.

const BYTE_CHARS: string[] = (() => {
  const chars = new Array<string>(256);
  let next = 0x100;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars[b] = String.fromCharCode(printable ? b : next++);
  }
  return chars;
})();

/** char code -> byte for the byte-level alphabet; -1 elsewhere. */
const CHAR_BYTES: Int16Array = (() => {
  const t = new Int16Array(0x144).fill(-1);
  for (let b = 0; b < 256; b++) t[BYTE_CHARS[b].charCodeAt(0)] = b;
  return t;
})();

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
function isJsSpace(c: number): boolean {
  return bmpClass(c) === SPACE;
}

/** Rust regex's \w, used by HF for single_word. */
const RE_WORD_CHAR = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]/u;

// ---------------------------------------------------------------------------------------------------------------
// Reading the file: every check names the JSON path of what it checks.

type Json = Record<string, unknown>;

class FileCheck {
  constructor(readonly file: string) {}

  fail(where: string, message: string): PajamaDataError {
    return new PajamaDataError(this.file, `${where}: ${message}`);
  }

  object(v: unknown, where: string): Json {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw this.fail(where, `expected an object, got ${describe(v)}`);
    return v as Json;
  }

  array(v: unknown, where: string): unknown[] {
    if (!Array.isArray(v)) throw this.fail(where, `expected an array, got ${describe(v)}`);
    return v;
  }

  /** `obj` has a string "type" among `types`, and no keys but `keys` (type included). */
  component(obj: Json, where: string, kind: string, types: Record<string, readonly string[]>): string {
    const type = obj.type;
    if (typeof type !== 'string') throw this.fail(where, `${kind} without a string "type"`);
    const keys = types[type];
    if (!keys) throw this.fail(`${where}.type`, `unsupported ${kind} "${type}" (supported: ${Object.keys(types).join(', ')})`);
    for (const k of Object.keys(obj)) {
      if (k !== 'type' && !keys.includes(k)) throw this.fail(`${where}.${k}`, `unsupported key of a ${type} ${kind}`);
    }
    return type;
  }

  bool(obj: Json, key: string, where: string, fallback: boolean): boolean {
    const v = obj[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw this.fail(`${where}.${key}`, `expected true or false, got ${describe(v)}`);
    return v;
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v);
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Normalizers

type Normalize = (s: string) => string;

const NORMALIZERS: Record<string, readonly string[]> = { NFC: [], NFD: [], NFKC: [], NFKD: [], Lowercase: [], Sequence: ['normalizers'] };

/** Runs of characters from U+0300 on: below that, nothing decomposes, and nothing composes with what precedes it. */
const NFC_CANDIDATES = /[^\u0000-\u02ff]+/g;

/**
 * s.normalize('NFC'), normalizing only around the characters that may change: each run of characters from U+0300
 * on, with the character before it (which they may compose with). The text between runs is left as it is.
 */
export function nfc(s: string): string {
  let parts: string[] | null = null;
  let done = 0; // s[0, done) is in parts
  NFC_CANDIDATES.lastIndex = 0;
  for (let m = NFC_CANDIDATES.exec(s); m !== null; m = NFC_CANDIDATES.exec(s)) {
    const start = m.index > 0 ? m.index - 1 : 0;
    const end = m.index + m[0].length;
    const run = s.slice(start, end);
    const normalized = run.normalize('NFC');
    if (normalized !== run) {
      (parts ??= []).push(s.slice(done, start), normalized);
      done = end;
    }
  }
  if (parts === null) return s;
  parts.push(s.slice(done));
  return parts.join('');
}

function readNormalizer(check: FileCheck, v: unknown, where: string): Normalize | null {
  if (v === null || v === undefined) return null;
  const obj = check.object(v, where);
  const type = check.component(obj, where, 'normalizer', NORMALIZERS);
  switch (type) {
    case 'NFC':
      return nfc;
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
      return (s) => s.normalize(type);
    case 'Lowercase':
      return (s) => s.toLowerCase();
    default: {
      const steps = check.array(obj.normalizers, `${where}.normalizers`).map((n, i) => {
        const step = readNormalizer(check, n, `${where}.normalizers[${i}]`);
        if (!step) throw check.fail(`${where}.normalizers[${i}]`, 'expected a normalizer, got null');
        return step;
      });
      if (steps.length === 1) return steps[0];
      return (s) => {
        for (const step of steps) s = step(s);
        return s;
      };
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Pre-tokenizers

export type SplitBehavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';
const SPLIT_BEHAVIORS: readonly SplitBehavior[] = ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'];

interface SplitStep {
  regex: RegExp;
  behavior: SplitBehavior;
}

interface PreTokenizerPlan {
  /** Split steps applied in order before the byte-level step. */
  splits: SplitStep[];
  addPrefixSpace: boolean;
  /** Split each piece with GPT-2's pattern before mapping it to bytes. */
  useRegex: boolean;
}

const BYTE_LEVEL_KEYS = ['add_prefix_space', 'trim_offsets', 'use_regex'] as const;
const PRE_TOKENIZERS: Record<string, readonly string[]> = {
  ByteLevel: BYTE_LEVEL_KEYS,
  Sequence: ['pretokenizers'],
};
const SEQUENCE_STEPS: Record<string, readonly string[]> = {
  Split: ['pattern', 'behavior', 'invert'],
  ByteLevel: BYTE_LEVEL_KEYS,
};

function readPreTokenizer(check: FileCheck, v: unknown): PreTokenizerPlan {
  const where = 'pre_tokenizer';
  if (v === null || v === undefined) throw check.fail(where, 'a byte-level BPE needs a ByteLevel pre-tokenizer, got none');
  const obj = check.object(v, where);
  const type = check.component(obj, where, 'pre-tokenizer', PRE_TOKENIZERS);
  if (type === 'ByteLevel') return { splits: [], ...readByteLevel(check, obj, where) };
  const steps = check.array(obj.pretokenizers, `${where}.pretokenizers`);
  const splits: SplitStep[] = [];
  for (let i = 0; i < steps.length; i++) {
    const at = `${where}.pretokenizers[${i}]`;
    const step = check.object(steps[i], at);
    const stepType = check.component(step, at, 'pre-tokenizer in a Sequence', SEQUENCE_STEPS);
    if (stepType === 'ByteLevel') {
      if (i !== steps.length - 1) throw check.fail(at, 'ByteLevel must be the last step of the Sequence');
      return { splits, ...readByteLevel(check, step, at) };
    }
    splits.push(readSplit(check, step, at));
  }
  throw check.fail(`${where}.pretokenizers`, 'a byte-level BPE needs a Sequence that ends with a ByteLevel step');
}

function readByteLevel(check: FileCheck, obj: Json, where: string): { addPrefixSpace: boolean; useRegex: boolean } {
  check.bool(obj, 'trim_offsets', where, false); // offsets only
  return { addPrefixSpace: check.bool(obj, 'add_prefix_space', where, false), useRegex: check.bool(obj, 'use_regex', where, true) };
}

function readSplit(check: FileCheck, obj: Json, where: string): SplitStep {
  if (check.bool(obj, 'invert', where, false)) throw check.fail(`${where}.invert`, 'invert: true is not supported');
  const behavior = obj.behavior;
  if (!SPLIT_BEHAVIORS.includes(behavior as SplitBehavior)) {
    throw check.fail(`${where}.behavior`, `expected one of ${SPLIT_BEHAVIORS.join(', ')}, got ${describe(behavior)}`);
  }
  const pattern = check.object(obj.pattern, `${where}.pattern`);
  const keys = Object.keys(pattern);
  if (keys.length !== 1 || (keys[0] !== 'Regex' && keys[0] !== 'String') || typeof pattern[keys[0]] !== 'string') {
    throw check.fail(`${where}.pattern`, 'expected {"Regex": string} or {"String": string}');
  }
  const source = pattern[keys[0]] as string;
  const at = `${where}.pattern.${keys[0]}`;
  if (source === '') throw check.fail(at, 'empty pattern');
  const js = keys[0] === 'Regex' ? translateOniguruma(source, (i, m) => check.fail(at, `${m} at index ${i} of ${JSON.stringify(source)}`)) : escapeRegExp(source);
  try {
    return { regex: new RegExp(js, 'gu'), behavior: behavior as SplitBehavior };
  } catch (e) {
    throw check.fail(at, `cannot compile ${JSON.stringify(source)} as a JS regex (${js}): ${(e as Error).message}`);
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

/** Characters that must be escaped to stand for themselves in a /u regex (outside and inside a class). */
const JS_SYNTAX = '^$\\.*+?()[]{}|/';
const JS_CLASS_SYNTAX = '^$\\.*+?()[]{}|/-';

/**
 * The JS (/u) regex for an Oniguruma one, as the reference translates it: \s -> \p{White_Space}, \d -> \p{Nd},
 * '.' -> [^\n], {,n} -> {0,n}, (?i:...) folds ASCII letters. `fail(index, message)` makes the error for
 * anything not supported.
 */
export function translateOniguruma(src: string, fail: (index: number, message: string) => Error): string {
  let out = '';
  let i = 0;
  const folds: boolean[] = []; // per open group: case-insensitive?
  let fold = false;

  const hexEscape = (at: number): { text: string; end: number } | null => {
    const braced = /^\\x\{([0-9A-Fa-f]{1,6})\}/.exec(src.slice(at));
    if (braced) return { text: `\\u{${braced[1]}}`, end: at + braced[0].length };
    const short = /^\\x([0-9A-Fa-f]{2})/.exec(src.slice(at));
    if (short) return { text: `\\x${short[1]}`, end: at + short[0].length };
    const u = /^\\u([0-9A-Fa-f]{4})/.exec(src.slice(at));
    if (u) return { text: `\\u${u[1]}`, end: at + u[0].length };
    return null;
  };

  /** One escape at `at` (src[at] is the backslash); `inClass` picks the escaping rules. */
  const escape = (at: number, inClass: boolean): { text: string; end: number } => {
    if (at + 1 >= src.length) throw fail(at, 'a lone backslash at the end');
    const hex = hexEscape(at);
    if (hex) return hex;
    const c = src[at + 1];
    switch (c) {
      case 's':
        return { text: '\\p{White_Space}', end: at + 2 };
      case 'S':
        return { text: '\\P{White_Space}', end: at + 2 };
      case 'd':
        return { text: '\\p{Nd}', end: at + 2 };
      case 'D':
        return { text: '\\P{Nd}', end: at + 2 };
      case 'n':
      case 'r':
      case 't':
      case 'f':
      case 'v':
        return { text: `\\${c}`, end: at + 2 };
      case 'p':
      case 'P': {
        const m = /^\\[pP]\{(\^?)([A-Za-z_][A-Za-z0-9_=]*)\}/.exec(src.slice(at));
        if (!m || m[1] === '^') throw fail(at, 'unsupported property escape');
        return { text: `\\${c}{${propertyName(m[2], () => fail(at, `unknown Unicode property ${m[2]}`))}}`, end: at + m[0].length };
      }
    }
    if (/[A-Za-z0-9]/.test(c)) throw fail(at, `unsupported escape \\${c}`);
    const cp = src.codePointAt(at + 1)!;
    const ch = String.fromCodePoint(cp);
    const syntax = inClass ? JS_CLASS_SYNTAX : JS_SYNTAX;
    return { text: syntax.includes(ch) ? `\\${ch}` : ch, end: at + 1 + ch.length };
  };

  const quantifierSuffix = (): void => {
    if (src[i] === '?') {
      out += '?';
      i++;
    } else if (src[i] === '+') {
      throw fail(i, 'possessive quantifiers are not supported');
    }
  };

  while (i < src.length) {
    const c = src[i];
    switch (c) {
      case '\\': {
        const e = escape(i, false);
        out += e.text;
        i = e.end;
        break;
      }
      case '[': {
        const start = i;
        let cls = '[';
        i++;
        if (src[i] === '^') {
          cls += '^';
          i++;
        }
        if (src[i] === ']') throw fail(i, 'a "]" first in a character class is not supported');
        while (i < src.length && src[i] !== ']') {
          if (src[i] === '[') throw fail(i, 'nested character classes are not supported');
          if (src[i] === '&' && src[i + 1] === '&') throw fail(i, 'character class intersection is not supported');
          if (src[i] === '\\') {
            const e = escape(i, true);
            cls += e.text;
            i = e.end;
            continue;
          }
          const ch = String.fromCodePoint(src.codePointAt(i)!);
          if (fold && /[A-Za-z]/.test(ch)) throw fail(i, 'letters in a character class inside (?i:...) are not supported');
          cls += ch === '/' ? '\\/' : ch;
          i += ch.length;
        }
        if (i >= src.length) throw fail(start, 'unterminated character class');
        out += cls + ']';
        i++;
        break;
      }
      case '(': {
        const rest = src.slice(i);
        let open: string;
        let len: number;
        let groupFold: boolean = fold;
        if (rest.startsWith('(?i:')) {
          open = '(?:';
          len = 4;
          groupFold = true;
        } else {
          const m = /^\((?:\?(?:<[=!]|[:=!]|<[A-Za-z_][A-Za-z0-9_]*>))?/.exec(rest)!;
          if (m[0] === '(' && rest[1] === '?') throw fail(i, `unsupported group ${rest.slice(0, 3)}`);
          open = m[0];
          len = m[0].length;
        }
        folds.push(fold);
        fold = groupFold;
        out += open;
        i += len;
        break;
      }
      case ')':
        if (folds.length === 0) throw fail(i, 'unbalanced ")"');
        fold = folds.pop()!;
        out += ')';
        i++;
        break;
      case '.':
        out += '[^\\n]';
        i++;
        break;
      case '^':
      case '$':
        throw fail(i, `anchor ${c} is not supported`);
      case '*':
      case '+':
      case '?':
        out += c;
        i++;
        quantifierSuffix();
        break;
      case '{': {
        const m = /^\{(\d*)(,?)(\d*)\}/.exec(src.slice(i));
        if (!m || (m[1] === '' && (m[2] === '' || m[3] === ''))) {
          out += '\\{';
          i++;
          break;
        }
        out += `{${m[1] === '' ? '0' : m[1]}${m[2]}${m[3]}}`;
        i += m[0].length;
        quantifierSuffix();
        break;
      }
      case '}':
      case ']':
      case '/':
        out += `\\${c}`;
        i++;
        break;
      default: {
        const ch = String.fromCodePoint(src.codePointAt(i)!);
        out += fold && /[A-Za-z]/.test(ch) ? `[${ch.toLowerCase()}${ch.toUpperCase()}]` : ch;
        i += ch.length;
      }
    }
  }
  if (folds.length > 0) throw fail(src.length, 'unbalanced "("');
  return out;
}

/** A property name valid in a /u regex: as written, or as a script (Oniguruma's \p{Han} is \p{Script=Han}). */
function propertyName(name: string, unknown: () => Error): string {
  for (const candidate of [name, `Script=${name}`]) {
    try {
      new RegExp(`\\p{${candidate}}`, 'u');
      return candidate;
    } catch {
      // try the next spelling
    }
  }
  throw unknown();
}

/** The pieces of `s` for one Split step, HF's way (empty matches and empty pieces dropped). */
function splitPieces(s: string, step: SplitStep, out: string[]): void {
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

// ---------------------------------------------------------------------------------------------------------------
// Added tokens

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  normalized: boolean;
  lstrip: boolean;
  rstrip: boolean;
  singleWord: boolean;
}

const ADDED_TOKEN_KEYS = ['id', 'content', 'special', 'normalized', 'lstrip', 'rstrip', 'single_word'];

function readAddedTokens(check: FileCheck, v: unknown): AddedToken[] {
  if (v === undefined || v === null) return [];
  return check.array(v, 'added_tokens').map((t, i) => {
    const where = `added_tokens[${i}]`;
    const obj = check.object(t, where);
    for (const k of Object.keys(obj)) if (!ADDED_TOKEN_KEYS.includes(k)) throw check.fail(`${where}.${k}`, 'unsupported key of an added token');
    const id = obj.id;
    if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= 2 ** 31) throw check.fail(`${where}.id`, `expected a token id, got ${describe(id)}`);
    const content = obj.content;
    if (typeof content !== 'string' || content === '') throw check.fail(`${where}.content`, `expected a non-empty string, got ${describe(content)}`);
    const special = check.bool(obj, 'special', where, false);
    return {
      id: id as number,
      content,
      special,
      normalized: check.bool(obj, 'normalized', where, !special),
      lstrip: check.bool(obj, 'lstrip', where, false),
      rstrip: check.bool(obj, 'rstrip', where, false),
      singleWord: check.bool(obj, 'single_word', where, false),
    };
  });
}

/**
 * Finds added tokens in a text: leftmost, and the longest at that place, by UTF-16 code units. One regex of the
 * contents, longest first (a JS alternation takes the first alternative that matches at the leftmost place).
 */
class AddedTokenMatcher {
  private readonly regex: RegExp;
  private readonly byContent: Map<string, AddedToken>;
  /** Set by find(): the match [start, end) and its token. */
  start = 0;
  end = 0;
  token: AddedToken | null = null;

  /** `tokens` maps each content to match to the token it stands for. */
  constructor(tokens: Map<string, AddedToken>) {
    this.byContent = tokens;
    const contents = [...tokens.keys()].sort((a, b) => b.length - a.length);
    this.regex = new RegExp(contents.map((c) => c.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')).join('|'), 'g');
  }

  /** The first match in s from `from` on that counts (single_word ones next to a word character do not); false if none. */
  find(s: string, from: number): boolean {
    const regex = this.regex;
    regex.lastIndex = from;
    for (let m = regex.exec(s); m !== null; m = regex.exec(s)) {
      const token = this.byContent.get(m[0])!;
      const end = m.index + m[0].length;
      // HF's matcher consumes a single_word match next to a word character: its text stays ordinary text.
      if (token.singleWord && !isSingleWord(s, m.index, end)) continue;
      this.start = m.index;
      this.end = end;
      this.token = token;
      return true;
    }
    return false;
  }
}

function isSingleWord(s: string, start: number, end: number): boolean {
  if (start > 0) {
    const lo = s.charCodeAt(start - 1);
    const before = isLowSurrogate(lo) && start >= 2 ? s.slice(start - 2, start) : s[start - 1];
    if (RE_WORD_CHAR.test(before)) return false;
  }
  return end === s.length || !RE_WORD_CHAR.test(String.fromCodePoint(s.codePointAt(end)!));
}

// ---------------------------------------------------------------------------------------------------------------
// The BPE model

/** Unused ids tolerated below a tokenizer's largest id (or a tenth of its entries, if more). */
const MAX_UNUSED_IDS = 1024;

const BPE_KEYS = ['dropout', 'unk_token', 'continuing_subword_prefix', 'end_of_word_suffix', 'fuse_unk', 'byte_fallback', 'ignore_merges', 'vocab', 'merges'];

/** Merges in an open-addressing table keyed by the pair of symbol ids. */
class MergeTable {
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

interface BpeModel {
  /** content -> id: the vocab with the added tokens over it (the reference puts them into the model's vocab). */
  ids: Map<string, number>;
  /** id -> content, the added tokens' included; holes are undefined. */
  tokens: (string | undefined)[];
  byteIds: Int32Array; // (256) the id of each byte's symbol
  merges: MergeTable;
  ignoreMerges: boolean;
}

function readModel(check: FileCheck, v: unknown, added: readonly AddedToken[]): BpeModel {
  const where = 'model';
  const obj = check.object(v, where);
  check.component(obj, where, 'model', { BPE: BPE_KEYS });
  if (obj.dropout !== undefined && obj.dropout !== null && obj.dropout !== 0) throw check.fail(`${where}.dropout`, `BPE dropout is not supported (got ${describe(obj.dropout)}); expected null`);
  if (check.bool(obj, 'byte_fallback', where, false)) throw check.fail(`${where}.byte_fallback`, 'byte_fallback is not supported (a byte-level BPE has every byte already)');
  for (const k of ['continuing_subword_prefix', 'end_of_word_suffix']) {
    if (obj[k] !== undefined && obj[k] !== null && obj[k] !== '') throw check.fail(`${where}.${k}`, `not supported in a byte-level BPE (got ${describe(obj[k])}); expected null`);
  }
  check.bool(obj, 'fuse_unk', where, false); // no unknown symbols: every byte is in the vocab
  const ignoreMerges = check.bool(obj, 'ignore_merges', where, false);

  const vocab = check.object(obj.vocab, `${where}.vocab`);
  let maxId = -1;
  let maxAt = '';
  added.forEach((t, i) => {
    if (t.id > maxId) [maxId, maxAt] = [t.id, `added_tokens[${i}].id`];
  });
  let entries = 0;
  for (const content in vocab) {
    const id = vocab[content];
    if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= 2 ** 31) {
      throw check.fail(`${where}.vocab[${JSON.stringify(content)}]`, `expected a token id, got ${describe(id)}`);
    }
    entries++;
    if ((id as number) > maxId) [maxId, maxAt] = [id as number, `${where}.vocab[${JSON.stringify(content)}]`];
  }
  // Ids index the embedding matrix: the vocabulary size is the largest id + 1, so ids must be (nearly) dense.
  // A stray large id (a typo, 99999999) would otherwise make a model with a 100M-row embedding.
  const named = entries + added.length; // an upper bound on the distinct ids
  const maxHoles = Math.max(MAX_UNUSED_IDS, Math.ceil(named / 10));
  if (maxId + 1 - named > maxHoles) {
    throw check.fail(
      maxAt,
      `id ${maxId} leaves at least ${maxId + 1 - named} of the ids below it unused (${entries} vocab entries and ${added.length} added tokens); ` +
        `ids must be dense, with at most ${maxHoles} unused below the largest (a typo in the id?)`,
    );
  }
  const ids = new Map<string, number>();
  const tokens = new Array<string | undefined>(maxId + 1);
  for (const content in vocab) {
    const id = vocab[content] as number;
    const other = tokens[id];
    if (other !== undefined) throw check.fail(`${where}.vocab`, `id ${id} is given to both ${JSON.stringify(other)} and ${JSON.stringify(content)}`);
    tokens[id] = content;
    ids.set(content, id);
  }
  // An added token may repeat a vocab entry (GPT-NeoX's "<|endoftext|>" is both), but with the same id: HF and
  // its JS port would disagree about which id the text gets otherwise.
  added.forEach((t, i) => {
    const inVocab = ids.get(t.content);
    if (inVocab !== undefined && inVocab !== t.id) throw check.fail(`added_tokens[${i}]`, `${JSON.stringify(t.content)} is token ${inVocab} of model.vocab, not ${t.id}`);
    const other = tokens[t.id];
    if (other !== undefined && other !== t.content) throw check.fail(`added_tokens[${i}]`, `id ${t.id} is already ${JSON.stringify(other)}`);
  });
  for (const t of added) {
    ids.set(t.content, t.id);
    tokens[t.id] = t.content;
  }
  if (obj.unk_token !== undefined && obj.unk_token !== null) {
    if (typeof obj.unk_token !== 'string' || !ids.has(obj.unk_token)) throw check.fail(`${where}.unk_token`, `${describe(obj.unk_token)} is not in the vocab`);
  }
  // Bytes C0, C1 and F5-FF never occur in UTF-8 (GPT-NeoX's vocab leaves them out); every other byte must be there.
  const byteIds = new Int32Array(256).fill(-1);
  for (let b = 0; b < 256; b++) {
    const id = ids.get(BYTE_CHARS[b]);
    if (id !== undefined) byteIds[b] = id;
    else if (b !== 0xc0 && b !== 0xc1 && b < 0xf5) {
      const hex = b.toString(16).padStart(2, '0');
      throw check.fail(`${where}.vocab`, `a byte-level BPE needs a symbol for every byte of UTF-8; ${JSON.stringify(BYTE_CHARS[b])} (byte 0x${hex}) is missing`);
    }
  }

  const list = check.array(obj.merges, `${where}.merges`);
  const merges = new MergeTable(list.length);
  for (let r = 0; r < list.length; r++) {
    const m = list[r];
    let a: unknown;
    let b: unknown;
    if (typeof m === 'string') {
      const sp = m.indexOf(' ');
      if (sp <= 0 || sp === m.length - 1 || m.indexOf(' ', sp + 1) >= 0) throw check.fail(`${where}.merges[${r}]`, `expected "a b" (two symbols, one space), got ${describe(m)}`);
      a = m.slice(0, sp);
      b = m.slice(sp + 1);
    } else if (Array.isArray(m) && m.length === 2) {
      [a, b] = m;
    }
    if (typeof a !== 'string' || typeof b !== 'string' || a === '' || b === '') {
      throw check.fail(`${where}.merges[${r}]`, `expected "a b" or ["a", "b"], got ${describe(m)}`);
    }
    const ia = ids.get(a);
    const ib = ids.get(b);
    const im = ids.get(a + b);
    if (ia === undefined || ib === undefined || im === undefined) {
      const missing = ia === undefined ? a : ib === undefined ? b : a + b;
      throw check.fail(`${where}.merges[${r}]`, `${JSON.stringify(missing)} (of the merge ${JSON.stringify(a)} + ${JSON.stringify(b)}) is not in the vocab`);
    }
    merges.set(ia, ib, r, im);
  }
  return { ids, tokens, byteIds, merges, ignoreMerges };
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
// The tokenizer

const TOP_LEVEL_KEYS = ['version', 'truncation', 'padding', 'added_tokens', 'normalizer', 'pre_tokenizer', 'post_processor', 'decoder', 'model'];

export class HfTokenizer implements Tokenizer {
  readonly name: string;
  readonly vocabSize: number;
  readonly eosId: number;
  readonly splitsAtLineBreaks: boolean;
  /** The tokenizer.json it was read from. */
  readonly file: string;
  /** Whether special tokens in the text are encoded as their ids (see HfTokenizerOptions.allowSpecial). */
  readonly allowSpecial: boolean;

  private readonly normalize: Normalize | null;
  private readonly plan: PreTokenizerPlan;
  private readonly model: BpeModel;
  /** Added tokens matched in the raw text, and in normalized text; null when there are none. */
  private readonly rawMatcher: AddedTokenMatcher | null;
  private readonly normalizedMatcher: AddedTokenMatcher | null;
  /**
   * Text that is an added token as a whole: content (and normalized content) -> id. The reference looks every
   * stretch of text up here before pre-tokenising it; keyFirst/keyLongest make that cheap to skip.
   */
  private readonly keys: Map<string, number>;
  private readonly keyFirst = new Uint8Array(0x10000);
  private readonly keyLongest: number;
  private readonly addedIds: Set<number>;
  private readonly cache: PieceCache | null;
  /** Byte pieces of every id, for decode; built on first use. */
  private decodeTable: ByteTable | null = null;

  // Scratch, reused across calls: the ids being written, and the symbols of the word being merged.
  private out = new Uint32Array(4096);
  private n = 0;
  private sym = new Int32Array(256);
  private pairRank = new Int32Array(256);
  private pairMerged = new Int32Array(256);

  constructor(json: unknown, file: string, options: HfTokenizerOptions = {}) {
    const check = new FileCheck(file);
    if (options === null || typeof options !== 'object') throw invalidArg(`loadHfTokenizer: options must be an object, got ${describe(options)}`);
    for (const k of Object.keys(options)) {
      if (!['allowSpecial', 'eosToken', 'cacheSize'].includes(k)) throw invalidArg(`loadHfTokenizer: unknown option "${k}"`);
    }
    const { allowSpecial = false, eosToken = HF_DEFAULT_EOS_TOKEN, cacheSize = DEFAULT_CACHE_SIZE } = options;
    if (typeof allowSpecial !== 'boolean') throw invalidArg(`loadHfTokenizer: allowSpecial must be a boolean, got ${describe(allowSpecial)}`);
    if (typeof eosToken !== 'string' || eosToken === '') throw invalidArg(`loadHfTokenizer: eosToken must be a non-empty string, got ${describe(eosToken)}`);
    if (!Number.isInteger(cacheSize) || cacheSize < 0) throw invalidArg(`loadHfTokenizer: cacheSize must be a non-negative integer, got ${describe(cacheSize)}`);

    const root = check.object(json, '(top level)');
    for (const k of Object.keys(root)) if (!TOP_LEVEL_KEYS.includes(k)) throw check.fail(k, 'unsupported top-level key');
    const added = readAddedTokens(check, root.added_tokens);
    this.normalize = readNormalizer(check, root.normalizer, 'normalizer');
    this.plan = readPreTokenizer(check, root.pre_tokenizer);
    this.model = readModel(check, root.model, added);
    if (root.decoder === null || root.decoder === undefined) throw check.fail('decoder', 'a byte-level BPE needs a ByteLevel decoder, got none');
    const decoder = check.object(root.decoder, 'decoder');
    check.component(decoder, 'decoder', 'decoder', { ByteLevel: BYTE_LEVEL_KEYS });

    this.file = file;
    this.allowSpecial = allowSpecial;
    this.name = `hf:${path.basename(file).replace(/\.json$/, '')}`;
    this.cache = cacheSize > 0 ? new PieceCache(cacheSize) : null;
    this.vocabSize = this.model.tokens.length;
    const eosId = this.model.ids.get(eosToken);
    if (eosId === undefined) throw check.fail('added_tokens', `no end-of-text token ${JSON.stringify(eosToken)} (name another with the eosToken option)`);
    this.eosId = eosId;
    this.addedIds = new Set(added.map((t) => t.id));

    // The token a text stretch stands for: content first, then normalized content, later tokens winning.
    const matched = added.filter((t) => allowSpecial || !t.special);
    const normalizedTokens = this.normalize ? matched.filter((t) => t.normalized) : [];
    const normalizedContents = normalizedTokens.map((t) => this.normalize!(t.content));
    const keyToken = new Map<string, AddedToken>();
    for (const t of matched) {
      keyToken.set(t.content, t);
      if (t.normalized && this.normalize) keyToken.set(this.normalize(t.content), t);
    }
    keyToken.delete(''); // a token the normalizer empties never matches
    this.keys = new Map([...keyToken].map(([k, t]) => [k, t.id]));
    let longest = 0;
    for (const k of this.keys.keys()) {
      this.keyFirst[k.charCodeAt(0)] = 1;
      longest = Math.max(longest, k.length);
    }
    this.keyLongest = longest;
    const matcher = (contents: string[]): AddedTokenMatcher | null => {
      const live = new Map(contents.filter((c) => c !== '').map((c) => [c, keyToken.get(c)!]));
      return live.size === 0 ? null : new AddedTokenMatcher(live);
    };
    this.rawMatcher = matcher(matched.filter((t) => !(t.normalized && this.normalize)).map((t) => t.content));
    this.normalizedMatcher = matcher(normalizedContents);

    // See Tokenizer.splitsAtLineBreaks: GPT-2's pattern never joins across "\n" followed by a non-space, and no
    // added token may match across the cut or strip the "\n" before it.
    this.splitsAtLineBreaks =
      this.plan.splits.length === 0 && this.plan.useRegex && !this.plan.addPrefixSpace && matched.every((t) => !t.lstrip && !/\n[^]/.test(t.content)) && normalizedContents.every((c) => !/\n[^]/.test(c));
  }

  encode(text: string): Uint32Array {
    if (typeof text !== 'string') throw invalidArg(`${this.name}.encode: text must be a string, got ${describe(text)}`);
    this.n = 0;
    if (this.rawMatcher) this.encodeAround(text, this.rawMatcher, true);
    else this.encodeRaw(text);
    return this.out.slice(0, this.n);
  }

  decode(ids: ArrayLike<number>): string {
    return decodeWith((this.decodeTable ??= this.buildDecodeTable()), ids, this.vocabSize, `${this.name}.decode`);
  }

  /** The id of a token's content (vocab or added), or undefined. */
  tokenId(content: string): number | undefined {
    return this.model.ids.get(content);
  }

  /** Added tokens decode to their content; vocab tokens map each character back to its byte. */
  private buildDecodeTable(): ByteTable {
    const utf8 = new TextEncoder();
    const { tokens } = this.model;
    const pieces: Uint8Array[] = [];
    let total = 0;
    for (let id = 0; id < this.vocabSize; id++) {
      const t = tokens[id];
      let b: Uint8Array;
      if (t === undefined) b = new Uint8Array(0);
      else if (this.addedIds.has(id)) b = utf8.encode(t);
      else {
        const bytes: number[] = [];
        for (const ch of t) {
          const c = ch.charCodeAt(0);
          const byte = ch.length === 1 && c < CHAR_BYTES.length ? CHAR_BYTES[c] : -1;
          if (byte >= 0) bytes.push(byte);
          else bytes.push(...utf8.encode(ch)); // not a byte symbol: kept as its UTF-8, as HF does
        }
        b = Uint8Array.from(bytes);
      }
      pieces.push(b);
      total += b.length;
    }
    const bytes = new Uint8Array(total);
    const starts = new Uint32Array(this.vocabSize + 1);
    let at = 0;
    for (let id = 0; id < this.vocabSize; id++) {
      starts[id] = at;
      bytes.set(pieces[id], at);
      at += pieces[id].length;
    }
    starts[this.vocabSize] = at;
    return { bytes, starts };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Added tokens, normalization

  /**
   * Encodes s: the added tokens `matcher` finds, and the text around them (its whitespace next to an
   * lstrip/rstrip token stripped), raw text through encodeRaw, normalized text through encodeNormalized.
   */
  private encodeAround(s: string, matcher: AddedTokenMatcher | null, raw: boolean): void {
    const to = s.length;
    let pos = 0;
    let stripStart = false;
    while (pos < to) {
      const found = matcher !== null && matcher.find(s, pos);
      const gapEnd = found ? matcher.start : to;
      const token = found ? matcher.token : null;
      let a = pos;
      let b = gapEnd;
      if (stripStart) while (a < b && isJsSpace(s.charCodeAt(a))) a++;
      if (token?.lstrip) while (b > a && isJsSpace(s.charCodeAt(b - 1))) b--;
      if (a < b) {
        if (raw) this.encodeRaw(a === 0 && b === s.length ? s : s.slice(a, b));
        else this.encodeNormalized(s, a, b);
      }
      if (!found) break;
      this.push(token!.id);
      stripStart = token!.rstrip;
      pos = matcher.end;
    }
  }

  /** Raw text between raw-matched added tokens: normalized, then split around normalized added tokens. */
  private encodeRaw(s: string): void {
    if (s.length <= this.keyLongest && this.keyFirst[s.charCodeAt(0)] === 1) {
      const id = this.keys.get(s);
      if (id !== undefined) return this.push(id);
    }
    const t = this.normalize ? this.normalize(s) : s;
    this.encodeAround(t, this.normalizedMatcher, false);
  }

  /** Normalized text s[a, b) free of added tokens: pre-tokenised, each piece through BPE. */
  private encodeNormalized(s: string, a: number, b: number): void {
    if (b - a <= this.keyLongest && this.keyFirst[s.charCodeAt(a)] === 1) {
      const id = this.keys.get(s.slice(a, b));
      if (id !== undefined) return this.push(id);
    }
    const { splits } = this.plan;
    if (splits.length === 0) return this.byteLevel(s, a, b);
    let pieces = [s.slice(a, b)];
    for (const step of splits) {
      const next: string[] = [];
      for (const p of pieces) splitPieces(p, step, next);
      pieces = next;
    }
    for (const p of pieces) this.byteLevel(p, 0, p.length);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Pre-tokenisation

  /** The ByteLevel pre-tokenizer over s[a, b): optional prefix space, GPT-2's pattern, then each piece's ids. */
  private byteLevel(s: string, a: number, b: number): void {
    if (this.plan.addPrefixSpace && s.charCodeAt(a) !== 0x20) {
      s = ' ' + s.slice(a, b);
      a = 0;
      b = s.length;
    }
    if (this.plan.useRegex) this.gpt2Pieces(s, a, b);
    else this.piece(s, a, b);
  }

  /**
   * Splits s[start, end) as 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ (a /u
   * regex) does, with `end` as the end of the text.
   */
  private gpt2Pieces(s: string, start: number, end: number): void {
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
      this.piece(s, i, j);
      i = j;
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // BPE

  /** Appends the ids of the piece s[a, b). */
  private piece(s: string, a: number, b: number): void {
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
    const n = this.bpe(s, a, b);
    this.pushAll(this.sym, 0, n);
    if (cache !== null) cache.add(s, a, b, h, this.sym, n);
  }

  /** Writes the ids of s[a, b) to this.sym[0, n) and returns n. */
  private bpe(s: string, a: number, b: number): number {
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
        if (c <= 0xdbff && isLowSurrogate(lo)) {
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

  private push(id: number): void {
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

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
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

/** Reads a Hugging Face tokenizer.json with a byte-level BPE model (see the top of this file). */
export function loadHfTokenizer(file: string, options: HfTokenizerOptions = {}): HfTokenizer {
  if (typeof file !== 'string' || file === '') throw invalidArg(`loadHfTokenizer: path must be a non-empty string, got ${describe(file)}`);
  const resolved = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(resolved, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw invalidArg(`loadHfTokenizer: ${resolved} does not exist`);
    throw new PajamaDataError(resolved, `cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new PajamaDataError(resolved, `not valid JSON: ${(e as Error).message}`);
  }
  return new HfTokenizer(json, resolved, options);
}
