// gpt2.ts: the GPT-2 byte-level BPE tokenizer (the Tokenizer interface is base.ts's; createTokenizer, which
// builds this one or a Hugging Face one from a spec, is create.ts's).
//
// The GPT-2 encoder is gpt-tokenizer's r50k_base ranks (the same 50,256 merges and pre-tokenisation regex
// as OpenAI's GPT-2; they ship inside the npm package, nothing is downloaded). Text that happens to contain
// "<|endoftext|>" is encoded as ordinary text: only the pipeline itself writes EOS, between documents.
// decode() is our own, over the package's byte table: the package's decoder keeps UTF-8 state across
// calls, so a call ending in half a character would corrupt the next one.
import { invalidArg } from '../../core/errors';
import { decodeWith, type ByteTable, type Tokenizer } from './base';

// Loaded on first use: the ranks are a large module that importing lib/data should not pay for.
type Gpt2Encoding = typeof import('gpt-tokenizer/cjs/encoding/gpt2');
type Gpt2Ranks = typeof import('gpt-tokenizer/cjs/bpeRanks/r50k_base');

export const GPT2_VOCAB_SIZE = 50257;
export const GPT2_EOS_ID = 50256;
const GPT2_EOS_TEXT = '<|endoftext|>';

// Special-token strings in the input are text, never control tokens.
const ENCODE_OPTIONS = { allowedSpecial: new Set<string>(), disallowedSpecial: new Set<string>() };

function buildByteTable(ranks: readonly (string | number[])[], special: ReadonlyMap<number, string>, vocabSize: number): ByteTable {
  const enc = new TextEncoder();
  const pieces: Uint8Array[] = new Array(vocabSize);
  let total = 0;
  for (let id = 0; id < vocabSize; id++) {
    const r = id < ranks.length ? ranks[id] : special.get(id);
    const b = r === undefined ? new Uint8Array(0) : typeof r === 'string' ? enc.encode(r) : Uint8Array.from(r);
    pieces[id] = b;
    total += b.length;
  }
  const bytes = new Uint8Array(total);
  const starts = new Uint32Array(vocabSize + 1);
  let at = 0;
  for (let id = 0; id < vocabSize; id++) {
    starts[id] = at;
    bytes.set(pieces[id], at);
    at += pieces[id].length;
  }
  starts[vocabSize] = at;
  return { bytes, starts };
}

let gpt2: Tokenizer | null = null;

/** The GPT-2 tokenizer: vocab 50257, EOS 50256 ("<|endoftext|>"). One shared instance. */
export function gpt2Tokenizer(): Tokenizer {
  if (gpt2) return gpt2;
  const { encode } = require('gpt-tokenizer/cjs/encoding/gpt2') as Gpt2Encoding;
  let table: ByteTable | null = null;
  gpt2 = Object.freeze({
    name: 'gpt2',
    vocabSize: GPT2_VOCAB_SIZE,
    eosId: GPT2_EOS_ID,
    splitsAtLineBreaks: true,
    encode(text: string): number[] {
      if (typeof text !== 'string') throw invalidArg(`gpt2Tokenizer.encode: text must be a string, got ${typeof text}`);
      return encode(text, ENCODE_OPTIONS);
    },
    decode(ids: ArrayLike<number>): string {
      table ??= buildByteTable((require('gpt-tokenizer/cjs/bpeRanks/r50k_base') as Gpt2Ranks).default, new Map([[GPT2_EOS_ID, GPT2_EOS_TEXT]]), GPT2_VOCAB_SIZE);
      return decodeWith(table, ids, GPT2_VOCAB_SIZE, 'gpt2Tokenizer.decode');
    },
  });
  return gpt2;
}
