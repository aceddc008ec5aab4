// hf.ts: byte-level BPE tokenizers (GPT-NeoX-20B, GPT-2, RoBERTa, Llama-3 style) read from a Hugging Face
// tokenizer.json. encode() gives id for id what @huggingface/tokenizers 0.2.0 (the JS port of HF tokenizers)
// gives for encode(text, { add_special_tokens: false }); the parity tests run against it.
//
// The parts, each in its file: hf-json.ts reads and validates tokenizer.json (what is supported is listed
// there), regex.ts translates its Split regexes from Oniguruma to JS, pretokenize.ts cuts text into pieces, and
// bpe.ts encodes each piece. This file assembles them (HfTokenizer, loadHfTokenizer): it matches added tokens,
// normalizes, hands the text between added tokens to the pre-tokenizer, and decodes (HF's ByteLevel decoder).
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
// treats them as Isolated).
//
// Speed (benchmarks/tokenizer.ts): added tokens are found with one regex, and a stretch that cannot be an added
// token as a whole is told apart by its first character; NFC runs only on stretches from U+0300 on (nfc in
// hf-json.ts); GPT-2's pattern is a hand-written scanner (pretokenize.ts); BPE works on integer symbol ids
// behind a piece cache (bpe.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArg } from '../../core/errors';
import { PajamaDataError } from '../errors';
import { decodeWith, type ByteTable, type Tokenizer } from './base';
import { BpeEncoder, CHAR_BYTES, type BpeModel } from './bpe';
import { FileCheck, describe, readTokenizerJson, type AddedToken, type Normalize } from './hf-json';
import { gpt2Pieces, isJsSpace, isLowSurrogate, splitPieces, type PreTokenizerPlan } from './pretokenize';
import { escapeRegExp } from './regex';

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

/** Rust regex's \w, used by HF for single_word. */
const RE_WORD_CHAR = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]/u;

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
    this.regex = new RegExp(contents.map(escapeRegExp).join('|'), 'g');
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
  /** The BPE engine, with its piece cache and the ids of the encode() under way. */
  private readonly bpe: BpeEncoder;
  /** Byte pieces of every id, for decode; built on first use. */
  private decodeTable: ByteTable | null = null;

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

    const { added, normalize, plan, model } = readTokenizerJson(check, json);
    this.normalize = normalize;
    this.plan = plan;
    this.model = model;

    this.file = file;
    this.allowSpecial = allowSpecial;
    this.name = `hf:${path.basename(file).replace(/\.json$/, '')}`;
    this.bpe = new BpeEncoder(this.model, cacheSize);
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
    this.bpe.reset();
    if (this.rawMatcher) this.encodeAround(text, this.rawMatcher, true);
    else this.encodeRaw(text);
    return this.bpe.take();
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
      this.bpe.push(token!.id);
      stripStart = token!.rstrip;
      pos = matcher.end;
    }
  }

  /** Raw text between raw-matched added tokens: normalized, then split around normalized added tokens. */
  private encodeRaw(s: string): void {
    if (s.length <= this.keyLongest && this.keyFirst[s.charCodeAt(0)] === 1) {
      const id = this.keys.get(s);
      if (id !== undefined) return this.bpe.push(id);
    }
    const t = this.normalize ? this.normalize(s) : s;
    this.encodeAround(t, this.normalizedMatcher, false);
  }

  /** Normalized text s[a, b) free of added tokens: pre-tokenised, each piece through BPE. */
  private encodeNormalized(s: string, a: number, b: number): void {
    if (b - a <= this.keyLongest && this.keyFirst[s.charCodeAt(a)] === 1) {
      const id = this.keys.get(s.slice(a, b));
      if (id !== undefined) return this.bpe.push(id);
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
    if (this.plan.useRegex) gpt2Pieces(s, a, b, this.bpe);
    else this.bpe.piece(s, a, b);
  }
}

/** Reads a Hugging Face tokenizer.json with a byte-level BPE model (what is supported: the top of hf-json.ts). */
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
