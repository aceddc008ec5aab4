// chunked-encode.ts: encoding a text the way tokenizeFiles reads a .txt file: chunks of `piece` characters
// arrive, the text up to the last safe cut (lastLineBreakCut) is encoded, the rest waits for the next chunk.
// The tokenizer tests compare the result with encoding the text whole.
import { lastLineBreakCut } from '../../lib/data/corpus/tokenize';
import type { Tokenizer } from '../../lib/data/tokenizers/base';

/** The ids of `text` encoded in cut pieces, and how many cuts were made. */
export function encodeInChunks(tok: Tokenizer, text: string, piece: number): { ids: number[]; cuts: number } {
  const ids: number[] = [];
  let cuts = 0;
  let pending = '';
  for (let i = 0; i < text.length; i += piece) {
    pending += text.slice(i, i + piece);
    const cut = lastLineBreakCut(pending);
    if (cut > 0) {
      ids.push(...tok.encode(pending.slice(0, cut)));
      pending = pending.slice(cut);
      cuts++;
    }
  }
  ids.push(...tok.encode(pending));
  return { ids, cuts };
}
