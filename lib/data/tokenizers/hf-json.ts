// hf-json.ts: reading and validating a Hugging Face tokenizer.json into the parts HfTokenizer (hf.ts) assembles:
// the added tokens, the normalizer, the pre-tokenizer plan (pretokenize.ts) and the BPE model (bpe.ts).
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
// Ids must be dense (a few unused below the largest at most), every byte of UTF-8 must have its symbol, and an
// added token that repeats a vocab entry must have the same id. Split regexes are Oniguruma, translated by
// regex.ts. Sections are read in a fixed order (top-level keys, added_tokens, normalizer, pre_tokenizer, model,
// decoder), so the first problem reported is always the same one.
import { PajamaDataError } from '../errors';
import { BYTE_CHARS, MergeTable, type BpeModel } from './bpe';
import { SPLIT_BEHAVIORS, type PreTokenizerPlan, type SplitBehavior, type SplitStep } from './pretokenize';
import { escapeRegExp, translateOniguruma } from './regex';

/** What a tokenizer.json holds, checked. */
export interface TokenizerJsonParts {
  added: AddedToken[];
  normalize: Normalize | null;
  plan: PreTokenizerPlan;
  model: BpeModel;
}

const TOP_LEVEL_KEYS = ['version', 'truncation', 'padding', 'added_tokens', 'normalizer', 'pre_tokenizer', 'post_processor', 'decoder', 'model'];

/** The parts of the parsed tokenizer.json `json`; `check` names its file in every error. */
export function readTokenizerJson(check: FileCheck, json: unknown): TokenizerJsonParts {
  const root = check.object(json, '(top level)');
  for (const k of Object.keys(root)) if (!TOP_LEVEL_KEYS.includes(k)) throw check.fail(k, 'unsupported top-level key');
  const added = readAddedTokens(check, root.added_tokens);
  const normalize = readNormalizer(check, root.normalizer, 'normalizer');
  const plan = readPreTokenizer(check, root.pre_tokenizer);
  const model = readModel(check, root.model, added);
  if (root.decoder === null || root.decoder === undefined) throw check.fail('decoder', 'a byte-level BPE needs a ByteLevel decoder, got none');
  const decoder = check.object(root.decoder, 'decoder');
  check.component(decoder, 'decoder', 'decoder', { ByteLevel: BYTE_LEVEL_KEYS });
  return { added, normalize, plan, model };
}

// ---------------------------------------------------------------------------------------------------------------
// Checks: every one names the JSON path of what it checks.

type Json = Record<string, unknown>;

export class FileCheck {
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
    // (own keys only: a "type" of "__proto__" or "constructor" is unsupported, not Object.prototype's)
    const keys = Object.hasOwn(types, type) ? types[type] : undefined;
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

/** A short description of a JSON value for an error message. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v);
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Normalizers

export type Normalize = (s: string) => string;

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

// ---------------------------------------------------------------------------------------------------------------
// Added tokens

export interface AddedToken {
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

// ---------------------------------------------------------------------------------------------------------------
// The BPE model

/** Unused ids tolerated below a tokenizer's largest id (or a tenth of its entries, if more). */
const MAX_UNUSED_IDS = 1024;

const BPE_KEYS = ['dropout', 'unk_token', 'continuing_subword_prefix', 'end_of_word_suffix', 'fuse_unk', 'byte_fallback', 'ignore_merges', 'vocab', 'merges'];

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
