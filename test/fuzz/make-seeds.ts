// make-seeds.ts: writes the seed corpora of test/fuzz/corpus/<target>/ from small valid (and a few slightly
// broken) files made with the project's own writers and the zstd command-line tool. The seeds are committed;
// rerun this (`node scripts/fuzz.js --make-seeds`) only when a format changes. Seed files are named seed-*,
// so inputs the fuzzer adds (named by their SHA-1) are kept apart.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ShardWriter } from '../../lib/data/shard';
import { writeSafetensors } from '../../lib/train/safetensors';
import { DEFAULT_TRAIN_CONFIG } from '../../lib/train/config';
import { DEFAULT_PREPARE_CONFIG } from '../../lib/data/corpus/prepare/prepare';

const corpusRoot = path.resolve(process.argv[2] ?? path.join(__dirname, 'corpus'));
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-seeds-'));

function put(target: string, name: string, data: Uint8Array | string): void {
  const dir = path.join(corpusRoot, target);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `seed-${name}`), data);
}

/** The jsonl targets take a flag byte before the file (see targets.ts). */
const flagged = (flags: number, body: Uint8Array | string) => Buffer.concat([Buffer.from([flags]), Buffer.from(body)]);

const line = (text: string, set = 'RedPajamaC4') => JSON.stringify({ text, meta: { redpajama_set_name: set } });
const jsonlText = [line('Hello world.'), line('Zwei\nZeilen, "quoted" \\ and \u00e9 \ud83d\ude42', 'RedPajamaWikipedia'), JSON.stringify({ text: 'no meta' }), ''].join('\n');

// jsonl
put('jsonl', 'basic', flagged(0x07, jsonlText));
put('jsonl', 'crlf-bom', flagged(0x03, `\ufeff${line('a')}\r\n   \r\n${line('b')}`));
put('jsonl', 'malformed', flagged(0x10, `{"text": 1}\n[1]\nnot json\n{"text":"x","meta":{"redpajama_set_name":""}}\n{"text":"ok","meta":null}\n\xff\xfe\n`));
put('jsonl', 'strict', flagged(0x45, `${line('first')}\n{"text": "x", "meta": []}\n`));
put('jsonl', 'long-line', flagged(0x80 | 0x05, `${line('x'.repeat(100))}\n${line('short')}`));

// jsonl.zst: frames made by the zstd tool, and a skippable frame made by hand
function zstd(text: string, ...args: string[]): Buffer {
  const src = path.join(work, 'in.jsonl');
  fs.writeFileSync(src, text);
  return execFileSync('zstd', ['-q', '-c', ...args, src]);
}
const skippable = (payload: Buffer) => {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(0x184d2a53, 0);
  h.writeUInt32LE(payload.length, 4);
  return Buffer.concat([h, payload]);
};
put('jsonl-zst', 'level3', flagged(0x3f, zstd(jsonlText, '-3')));
put('jsonl-zst', 'level19-no-check', flagged(0x05, zstd(jsonlText.repeat(3), '-19', '--no-check')));
put('jsonl-zst', 'two-frames', flagged(0x10, Buffer.concat([zstd(`${line('one')}\n`), zstd(`${line('two')}\n`)])));
put('jsonl-zst', 'skippable', flagged(0x08, Buffer.concat([skippable(Buffer.from('meta')), zstd(`${line('after skip')}\n`)])));
put('jsonl-zst', 'empty-frame', flagged(0x20, zstd('')));
put('jsonl-zst', 'strict-truncated', flagged(0x41, zstd(jsonlText).subarray(0, 20)));

// safetensors, written by the project's writer
function safetensors(name: string, tensors: Parameters<typeof writeSafetensors>[1], metadata?: Record<string, string>): void {
  const file = path.join(work, `${name}.safetensors`);
  writeSafetensors(file, tensors, metadata);
  put('safetensors', name, fs.readFileSync(file));
}
safetensors('f32', [{ name: 'w', dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }], { format: 'pt' });
safetensors('mixed', [
  { name: 'a.bias', dtype: 'BF16', shape: [3], data: new Uint16Array([1, 2, 3]) },
  { name: 'b', dtype: 'I64', shape: [1, 1], data: new BigInt64Array([7n]) },
  { name: 'scalar', dtype: 'F32', shape: [], data: new Float32Array([0.5]) },
  { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
]);

// token shards, written by the project's writer
function shard(name: string, vocabSize: number, eosId: number, docs: number[][], tokenBytes?: 2 | 4): void {
  const file = path.join(work, `${name}.bin`);
  const w = new ShardWriter(file, { vocabSize, eosId, tokenBytes });
  for (const d of docs) w.appendDocument(Uint32Array.from(d));
  w.close();
  put('shard', name, fs.readFileSync(file));
}
shard('u16', 50277, 0, [[10, 20, 30], [40]]);
shard('u32', 100000, 99999, [[70000, 1], [2, 3, 4]], 4);
shard('empty', 300, 299, []);

// configs
const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
put('train-config', 'defaults', json(DEFAULT_TRAIN_CONFIG));
put('train-config', 'empty', '{}\n');
put('train-config', 'tiny-run', json({
  model: { preset: 'tiny', overrides: { nLayers: 2 }, precision: 'fp32' },
  batch: { seqLen: 64, microBatchSize: 2, globalBatchTokens: 256 },
  optimizer: { lr: 1e-3, warmupSteps: 10 },
  weightDecay: { mode: 'constant', value: 0.01 },
  steps: 100,
  data: { manifest: 'data/prepared/manifest.json', mixture: 'DC-6' },
  eval: { every: 10, batches: 2 },
  checkpoint: { every: 50, keepLast: 1 },
  divergence: { maxConsecutiveSkips: 3 },
}));
put('train-config', 'bad-lr', '{"optimizer": {"lr": 1e999}}\n');
put('prepare-config', 'defaults', json({ ...DEFAULT_PREPARE_CONFIG, inputs: ['raw/'] }));
put('prepare-config', 'readme', json({
  inputs: ['raw/**/*.jsonl.zst', 'extra/'],
  sources: { 'extra/markdown': 'Markdown' },
  output: 'data/prepared',
  filter: { minChars: 200 },
  dedup: { mode: 'global', numPerm: 128, shingleChars: 13, bands: 9, rows: 13, memoryMiB: 512 },
  split: { validation: 0.001, test: 0, minValidationDocuments: 1, seed: 1234 },
  decontaminate: true,
  tokenizer: 'tokenizer.json',
}));
put('prepare-config', 'local', '{"inputs": ["a.jsonl"], "dedup": {"mode": "local"}, "tokenizer": "gpt2", "workers": 2}\n');

// tokenizer.json: GPT-2's byte alphabet, a few merges and <|endoftext|>, in the layouts HF writes
function byteSymbols(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(printable(b) ? b : 256 + extra++));
}
const MERGES: [string, string][] = [['h', 'e'], ['l', 'l'], ['he', 'll'], ['hell', 'o'], ['Ġ', 'w'], ['o', 'r'], ['Ġw', 'or'], ['Ġ', 'Ġ'], ['Ã', '©']];
function tokenizer(o: { normalizer?: unknown; preTokenizer?: unknown; pairs?: boolean } = {}): string {
  const vocab: Record<string, number> = {};
  byteSymbols().forEach((c, b) => (vocab[c] = b));
  for (const [a, b] of MERGES) vocab[a + b] ??= Object.keys(vocab).length;
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 300, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: o.normalizer ?? null,
    pre_tokenizer: o.preTokenizer ?? { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab,
      merges: MERGES.map(([a, b]) => (o.pairs ? [a, b] : `${a} ${b}`)),
    },
  });
}
put('tokenizer', 'bytelevel', tokenizer());
put('tokenizer', 'nfc-pairs', tokenizer({ normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Lowercase' }] }, pairs: true }));
put('tokenizer', 'split-regex', tokenizer({
  preTokenizer: {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+" }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  },
}));

// manifest.json: names the two shards the manifest target writes beside it (vocab 300, EOS 299)
const manifest = {
  version: 1,
  kind: 'pajama-data-manifest',
  tokenizer: { name: 'fuzz', vocabSize: 300, eosId: 299 },
  sources: {
    RedPajamaC4: {
      train: ['manifest-train-0.bin'],
      validation: 'manifest-validation.bin',
      test: null,
      documents: { train: 2, validation: 1, test: 0 },
      tokens: { train: 7, validation: 3, test: 0 },
      bytes: { train: 20, validation: 4 },
    },
  },
  created: '2026-01-01T00:00:00.000Z',
  config: { dedup: { mode: 'global' } },
};
put('manifest', 'two-shards', json(manifest));
put('manifest', 'no-validation', json({ ...manifest, sources: { Books: { ...manifest.sources.RedPajamaC4, validation: null, tokens: { train: 7, validation: 0, test: 0 } } } }));

fs.rmSync(work, { recursive: true, force: true });
console.log(`seeds written under ${corpusRoot}`);
