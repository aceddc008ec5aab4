// chat-fixtures.ts: what the instruction-tuning tests share: a byte-level tokenizer.json (every byte its own
// token, no merges, '<|endoftext|>' = 256, so token counts are byte counts), ShareGPT files in both formats,
// and a handful of conversations.
import * as fs from 'node:fs';
import { loadHfTokenizer } from '../../lib/data/tokenizers/hf';
import type { Tokenizer } from '../../lib/data/tokenizers/base';

/** Writes a byte-level BPE tokenizer.json without merges: ids 0-255 are the bytes, 256 is '<|endoftext|>' (vocab 257). */
export function writeByteTokenizer(file: string): string {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let extra = 0;
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[String.fromCharCode(printable(b) ? b : 256 + extra++)] = b;
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
  fs.writeFileSync(file, JSON.stringify(json));
  return file;
}

export function byteTokenizer(file: string): Tokenizer {
  return loadHfTokenizer(fs.existsSync(file) ? file : writeByteTokenizer(file));
}

export type ShareGpt = { conversations: { from: string; value: string }[] };

/** Writes conversations as JSON Lines (format 'jsonl') or as one JSON array ('json'). */
export function writeShareGpt(file: string, conversations: ShareGpt[], format: 'jsonl' | 'json' = 'jsonl'): string {
  fs.writeFileSync(file, format === 'json' ? JSON.stringify(conversations, null, 1) : conversations.map((c) => JSON.stringify(c)).join('\n') + '\n');
  return file;
}

/** `n` short conversations of one to three exchanges (deterministic), some with a system turn. */
export function sampleConversations(n: number): ShareGpt[] {
  const out: ShareGpt[] = [];
  for (let i = 0; i < n; i++) {
    const turns: { from: string; value: string }[] = [];
    if (i % 3 === 0) turns.push({ from: 'system', value: `Be brief ${i}.` });
    for (let k = 0; k <= i % 3; k++) {
      turns.push({ from: 'human', value: `What is ${i} plus ${k}?` });
      turns.push({ from: 'gpt', value: `${i} plus ${k} is ${i + k}.` });
    }
    out.push({ conversations: turns });
  }
  return out;
}
