// create.ts: a tokenizer from plain data. A TokenizerSpec names GPT-2 (gpt2.ts) or a Hugging Face tokenizer.json
// (hf.ts); createTokenizer builds it. Specs are what a prepare config holds and what TokenizerPool sends to its
// worker threads, each of which builds its own tokenizer from the spec. The Tokenizer interface is base.ts's.
import { invalidArg } from '../../core/errors';
import type { Tokenizer } from './base';
import { gpt2Tokenizer } from './gpt2';
import { loadHfTokenizer } from './hf';

/**
 * How to build a tokenizer, as plain data (worker threads build theirs from it): GPT-2, or a Hugging Face
 * tokenizer.json with a byte-level BPE model (hf.ts; allowSpecial and eosToken as there).
 */
export type TokenizerSpec = { kind: 'gpt2' } | { kind: 'hf'; path: string; allowSpecial?: boolean; eosToken?: string };

/** The tokenizer `spec` names; a relative path is resolved against the working directory. */
export function createTokenizer(spec: TokenizerSpec): Tokenizer {
  if (spec === null || typeof spec !== 'object') throw invalidArg(`createTokenizer: spec must be an object, got ${spec === null ? 'null' : typeof spec}`);
  const allowed = spec.kind === 'gpt2' ? ['kind'] : spec.kind === 'hf' ? ['kind', 'path', 'allowSpecial', 'eosToken'] : null;
  if (!allowed) throw invalidArg(`createTokenizer: spec.kind must be 'gpt2' or 'hf', got ${JSON.stringify(spec.kind)}`);
  for (const k of Object.keys(spec)) if (!allowed.includes(k)) throw invalidArg(`createTokenizer: unknown key "${k}" in a '${spec.kind}' spec`);
  if (spec.kind === 'gpt2') return gpt2Tokenizer();
  return loadHfTokenizer(spec.path, { allowSpecial: spec.allowSpecial, eosToken: spec.eosToken });
}

/** The file name a tokenizer.json gets when it is recorded next to prepared data (manifest) or weights (checkpoint), as Hugging Face names it. */
export const TOKENIZER_FILE = 'tokenizer.json';
