// base.ts: what the data pipeline needs of a tokenizer (the Tokenizer interface), and the byte-table decoder
// both tokenizers share. It sits below gpt2.ts (GPT-2) and hf.ts (tokenizer.json), so neither imports the other.
import { invalidArg } from '../../core/errors';

export interface Tokenizer {
  /** A short name, e.g. 'gpt2'. */
  readonly name: string;
  /** Number of token ids, special tokens included: every id is in [0, vocabSize). */
  readonly vocabSize: number;
  /** The end-of-text id written between documents. */
  readonly eosId: number;
  /** Token ids of `text`, special-token strings encoded as plain text. */
  encode(text: string): number[] | Uint32Array;
  /** The text of `ids`; bytes that are not valid UTF-8 (half a character) become U+FFFD. */
  decode(ids: ArrayLike<number>): string;
  /**
   * True when encode(a + b) equals encode(a) followed by encode(b) whenever `a` ends with a non-whitespace
   * character and then '\n' and `b` begins with a non-whitespace character. Regex pre-tokenised byte-level
   * BPE (GPT-2, GPT-NeoX) has this property; it lets tokenizeFiles encode a large .txt document piece by
   * piece in constant memory. Leave it unset when unsure: the document is then encoded whole.
   */
  readonly splitsAtLineBreaks?: boolean;
}

/** Every token's bytes, concatenated, and where each starts: built on first decode. */
export interface ByteTable {
  bytes: Uint8Array;
  starts: Uint32Array; // (vocabSize + 1)
}

/** The text of `ids` from a table of every token's bytes; ids are checked against vocabSize (`where` names the caller). */
export function decodeWith(table: ByteTable, ids: ArrayLike<number>, vocabSize: number, where: string): string {
  const { bytes, starts } = table;
  let n = 0;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id >>> 0 !== id || id >= vocabSize) throw invalidArg(`${where}: ids[${i}] = ${id} is not a token id in [0, ${vocabSize})`);
    n += starts[id + 1] - starts[id];
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    out.set(bytes.subarray(starts[id], starts[id + 1]), at);
    at += starts[id + 1] - starts[id];
  }
  return new TextDecoder('utf-8').decode(out);
}
