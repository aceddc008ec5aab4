// byte-tokenizer.ts: a Tokenizer for tests whose ids are the UTF-8 bytes of the text (0..255) and 256 the
// end of text: every string has an obvious encoding, and a model over it is small.
import type { Tokenizer } from '../../lib/data/tokenizers/base';

export const byteTokenizer: Tokenizer = {
  name: 'bytes',
  vocabSize: 257,
  eosId: 256,
  encode: (text: string) => Array.from(new TextEncoder().encode(text)),
  decode: (ids: ArrayLike<number>) => new TextDecoder().decode(Uint8Array.from(Array.from(ids).filter((id) => id < 256))),
};
