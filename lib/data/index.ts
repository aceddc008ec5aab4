// data/: raw shards -> clean -> dedup -> tokenize -> token shards -> mixture -> batches, in three stages:
// corpus/ (prepare/ runs the pipeline over files.ts + jsonl.ts, clean.ts, minhash.ts + dedup.ts; tokenize.ts
// and demo.ts, the default corpus of `npm start`), tokenizers/ (GPT-2, Hugging Face tokenizer.json, the
// worker pool) and the training data here: shard.ts, manifest.ts, mixture.ts and loader.ts, which draws
// seeded, resumable, rank-disjoint training batches and sequential validation batches; chat.ts (ShareGPT
// conversations and the chat template) and chat-loader.ts (their packed, resumable batches for `pajama sft`).
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
export type { Tokenizer } from './tokenizers/base';
export { gpt2Tokenizer, GPT2_VOCAB_SIZE, GPT2_EOS_ID } from './tokenizers/gpt2';
export { createTokenizer, TOKENIZER_FILE, type TokenizerSpec } from './tokenizers/create';
export { loadHfTokenizer, HfTokenizer, type HfTokenizerOptions } from './tokenizers/hf';
export { TokenizerPool } from './tokenizers/pool';
export {
  minhashDocuments,
  minhashDocumentsAsync,
  estimateJaccard,
  exactJaccard,
  lshCandidateProbability,
  sortKeyIds,
  sortKeyIdsAsync,
  DEFAULT_MINHASH,
  type MinHashOptions,
  type MinHashResult,
} from './corpus/minhash';
export {
  tokenizeFiles,
  listInputFiles,
  lastLineBreakCut,
  type TokenizeOptions,
  type TokenizeProgress,
  type TokenizeSummary,
  type SkippedLine,
} from './corpus/tokenize';
export { Xoshiro128, splitMix64, type RngState } from '../core/rng';
export {
  TokenLoader,
  evalBatches,
  evalBatchCount,
  ALL_SHARDS_SOURCE,
  type TokenLoaderOptions,
  type TokenLoaderState,
  type TokenLoaderMixtureState,
  type MixtureSource,
  type SourceDrawReport,
  type SequenceDraw,
  type Batch,
  type TrainBatch,
  type EvalBatch,
} from './loader';
export {
  readConversations,
  readConversationsSync,
  parseConversations,
  renderConversation,
  renderChatPrompt,
  renderExchanges,
  checkTurns,
  CHAT_STOP_STRINGS,
  CHAT_USER_PREFIX,
  CHAT_ASSISTANT_PREFIX,
  DEFAULT_SYSTEM_PROMPT,
  SHAREGPT_ROLES,
  type ChatTurn,
  type ChatTokenizer,
  type ChatTemplateOptions,
  type RenderedConversation,
  type ConversationExchanges,
} from './chat';
export {
  ChatLoader,
  chatItems,
  chatItemsDigest,
  chatEvalBatches,
  IGNORE_INDEX,
  CHAT_OVERFLOW_RULES,
  CHAT_SOURCE,
  type ChatOverflow,
  type ChatItem,
  type ChatItemOptions,
  type ChatItemStats,
  type ChatLoaderOptions,
  type ChatLoaderState,
  type ChatBatch,
  type ChatRow,
} from './chat-loader';
export {
  MIXTURE_PRESETS,
  REDPAJAMA_SETS,
  REPEAT_WARNING_EPOCHS,
  resolveMixture,
  isMixturePreset,
  normaliseWeights,
  planMixture,
  formatMixturePlan,
  type MixturePreset,
  type MixturePresetName,
  type ResolvedMixture,
  type MixturePlan,
  type MixturePlanSource,
} from './mixture';
export {
  readDataManifest,
  writeDataManifest,
  DATA_MANIFEST_KIND,
  DATA_MANIFEST_VERSION,
  type DataManifest,
  type DataManifestSource,
  type DataManifestTokenizer,
  type LoadedDataManifest,
} from './manifest';
export {
  buildDemoCorpus,
  demoDataConfig,
  selectDemoDocuments,
  DEMO_SOURCES,
  DEMO_MAX_BYTES_PER_SOURCE,
  DEMO_MIXTURE,
  type DemoCorpus,
  type DemoCorpusOptions,
  type DemoSourceInfo,
  type DemoSourceSummary,
  type DemoSourceName,
} from './corpus/demo';
export {
  prepareData,
  resolvePrepareConfig,
  formatPrepareReport,
  splitDraw,
  exactHash,
  DEFAULT_PREPARE_CONFIG,
  PREPARE_STAGES,
  DOC_STATUS,
  type PrepareConfig,
  type PrepareOptions,
  type PrepareProgress,
  type PrepareReport,
  type PrepareResult,
  type PrepareStage,
  type SourceReport,
  type DocStatus,
} from './corpus/prepare/prepare';
export {
  LshIndex,
  UnionFind,
  foldSourceIntoKeys,
  verifyLshSample,
  shingleHashes,
  sortedJaccard,
  DEDUP_MODES,
  type DedupMode,
  type ClusterStats,
  type LshIndexOptions,
  type LshVerification,
} from './corpus/dedup';
export { listShardFiles } from './corpus/files';
export {
  JsonlDocumentReader,
  readDocuments,
  formatMalformed,
  type SourceDocument,
  type MalformedInput,
  type JsonlReadOptions,
  type JsonlReadProgress,
  type JsonlReadStats,
} from './corpus/jsonl';
export {
  cleanDocument,
  normalizeForDedup,
  shortDocumentFilter,
  FilterStats,
  SLIMPAJAMA_MIN_CHARS,
  type CleanOptions,
  type CleanedDocument,
} from './corpus/clean';
