// data/: text -> token shards -> batches. tokenize.ts writes shards (shard.ts) with a Tokenizer
// (tokenizer.ts); loader.ts draws seeded, resumable, rank-disjoint training batches and sequential
// validation batches from them. demo.ts builds the default corpus of `npm start` from text shipped in npm
// packages.
export { PajamaDataError } from './errors';
export {
  ShardWriter,
  ShardReader,
  openShard,
  encodeShardHeader,
  decodeShardHeader,
  tokenWidthFor,
  SHARD_MAGIC,
  SHARD_VERSION,
  SHARD_HEADER_BYTES,
  type ShardHeader,
  type ShardWriterOptions,
  type TokenWidth,
} from './shard';
export { gpt2Tokenizer, GPT2_VOCAB_SIZE, GPT2_EOS_ID, type Tokenizer } from './tokenizer';
export {
  tokenizeFiles,
  listInputFiles,
  lastLineBreakCut,
  type TokenizeOptions,
  type TokenizeProgress,
  type TokenizeSummary,
  type SkippedLine,
} from './tokenize';
export { Xoshiro128, splitMix64, type RngState } from './rng';
export {
  TokenLoader,
  evalBatches,
  evalBatchCount,
  type TokenLoaderOptions,
  type TokenLoaderState,
  type SequenceDraw,
  type Batch,
  type TrainBatch,
  type EvalBatch,
} from './loader';
export {
  buildDemoCorpus,
  demoDataConfig,
  splitDemoDocuments,
  DEMO_SOURCES,
  DEMO_MAX_BYTES_PER_SOURCE,
  DEMO_MANIFEST_VERSION,
  type DemoCorpus,
  type DemoCorpusOptions,
  type DemoManifest,
  type DemoProgress,
  type DemoSourceInfo,
  type DemoSourceManifest,
  type DemoSourceName,
} from './demo';
