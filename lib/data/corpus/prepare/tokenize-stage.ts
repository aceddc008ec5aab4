// tokenize-stage.ts: prepare's last stage. It reads the corpus again in the same order as the scan
// (jsonl.ts), takes the documents whose status (work/status.bin) is train, validation or test, encodes them
// in batches of about TOKENIZE_BATCH_BYTES (on a TokenizerPool of worker threads, or inline with one
// worker), and appends each document's tokens and an EOS in reading order to its source's shard of that
// split (shard.ts; a training shard is closed at shardTokens and the next one started). Then it writes the
// manifest (manifest.ts) and, last, work/tokenize.json, and logs every source whose validation set fell
// short of split.minValidationTokens.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArg } from '../../../core/errors';
import { withFsContext } from '../../../core/fs-errors';
import { PajamaDataError } from '../../errors';
import { JsonlDocumentReader } from '../jsonl';
import { ShardWriter } from '../../shard';
import { TokenizerPool } from '../../tokenizers/pool';
import { createTokenizer, TOKENIZER_FILE } from '../../tokenizers/create';
import { writeDataManifest, type DataManifest } from '../../manifest';
import { tokenizerSpecOf, type PrepareConfig } from './config';
import { ST_TEST, ST_TRAIN, ST_VALIDATION, VALIDATION_BYTES_PER_TOKEN } from './doc-status';
import type { PrepareEvents } from './progress';
import { readStageJson, writeJsonFile, type DedupOutput, type ScanOutput, type SplitName, type TokenizeOutput } from './stage-files';

/** A file-name-safe form of a source name. */
function sourceFileName(source: string): string {
  return source.replace(/[^A-Za-z0-9._-]/g, '_');
}

const TOKENIZE_BATCH_BYTES = 1 << 20;

/** Runs the tokenize stage: `files` are the inputs in reading order, `out` the output folder, `work` its work folder. */
export async function runTokenize(config: PrepareConfig, files: string[], out: string, work: string, options: PrepareEvents): Promise<void> {
  const scan = readStageJson<ScanOutput>(path.join(work, 'scan.json'));
  const status = fs.readFileSync(path.join(work, 'status.bin'));
  if (status.length !== scan.documents) throw new PajamaDataError(path.join(work, 'status.bin'), `holds ${status.length} documents, the scan found ${scan.documents}; rerun with --force`);
  const fileNames = new Map<string, string>();
  for (const s of scan.sources) {
    const f = sourceFileName(s);
    const other = fileNames.get(f);
    if (other !== undefined) throw invalidArg(`prepare: sources '${other}' and '${s}' would share the shard name '${f}'; rename one in 'sources'`);
    fileNames.set(f, s);
  }
  const shardsDir = path.join(out, 'shards');
  fs.rmSync(shardsDir, { recursive: true, force: true });
  fs.mkdirSync(shardsDir, { recursive: true });
  const spec = tokenizerSpecOf(config);
  const tokenizer = createTokenizer(spec);
  const result: TokenizeOutput = { version: 1, tokenizer: { name: tokenizer.name, vocabSize: tokenizer.vocabSize, eosId: tokenizer.eosId }, perSource: {} };
  const writers = new Map<string, ShardWriter>();
  const entry = (source: string, split: SplitName) => {
    let ps = result.perSource[source];
    if (!ps) {
      const e = () => ({ documents: 0, bytes: 0, tokens: 0, files: [] as string[] });
      ps = result.perSource[source] = { train: e(), validation: e(), test: e() };
    }
    return ps[split];
  };
  for (const s of scan.sources) for (const sp of ['train', 'validation', 'test'] as const) entry(s, sp);
  const writerFor = (source: string, split: SplitName): ShardWriter => {
    const key = `${split}\u0000${source}`;
    let w = writers.get(key);
    const e = entry(source, split);
    if (w && split === 'train' && w.tokens >= config.shardTokens) {
      w.close();
      writers.delete(key);
      w = undefined;
    }
    if (!w) {
      const name = split === 'train' ? `${sourceFileName(source)}.train.${String(e.files.length).padStart(5, '0')}.bin` : `${sourceFileName(source)}.${split}.bin`;
      w = new ShardWriter(path.join(shardsDir, name), { vocabSize: tokenizer.vocabSize, eosId: tokenizer.eosId });
      writers.set(key, w);
      e.files.push(`shards/${name}`);
    }
    return w;
  };

  const pool = config.workers === 1 ? null : await TokenizerPool.create(spec, config.workers === 0 ? undefined : config.workers);
  type Pending = { docs: { source: string; split: SplitName; bytes: number }[]; ids: Promise<ArrayLike<number>[]> };
  const queue: Pending[] = [];
  const maxQueue = Math.max(2, 2 * (pool?.size ?? 1));
  let batch: { texts: string[]; docs: Pending['docs']; bytes: number } = { texts: [], docs: [], bytes: 0 };
  const submit = (): void => {
    if (batch.texts.length === 0) return;
    const texts = batch.texts;
    const ids = pool ? pool.encodeBatch(texts) : Promise.resolve().then(() => texts.map((t) => tokenizer.encode(t)));
    ids.catch(() => undefined); // awaited in order by drainOne; an earlier failure must not leave this one unhandled
    queue.push({ docs: batch.docs, ids });
    batch = { texts: [], docs: [], bytes: 0 };
  };
  const drainOne = async (): Promise<void> => {
    const p = queue.shift()!;
    const ids = await p.ids;
    for (let i = 0; i < p.docs.length; i++) {
      const d = p.docs[i];
      const w = writerFor(d.source, d.split);
      const before = w.tokens;
      w.appendDocument(ids[i]);
      const e = entry(d.source, d.split);
      e.documents++;
      e.bytes += d.bytes;
      e.tokens += w.tokens - before;
    }
  };
  const reader = new JsonlDocumentReader({
    inputs: files,
    sources: config.sources,
    defaultSource: config.defaultSource ?? undefined,
    strict: config.strict,
    onProgress: options.onProgress
      ? (p) => options.onProgress!({ stage: 'tokenize', documents: p.documents, bytes: p.bytes, files: p.filesDone, totalFiles: p.files, diskBytes: p.diskBytes, diskBytesTotal: p.diskBytesTotal })
      : undefined,
  });
  let id = 0;
  try {
    for await (const doc of reader) {
      if (id >= status.length) throw new PajamaDataError(doc.file, `line ${doc.line}: more documents than the scan found (${scan.documents}); the input changed, rerun with --force`);
      const st = status[id++];
      if (st > ST_TEST) continue;
      const text = doc.text.normalize('NFC');
      const split = st === ST_TRAIN ? 'train' : st === ST_VALIDATION ? 'validation' : 'test';
      batch.texts.push(text);
      batch.docs.push({ source: doc.source, split, bytes: Buffer.byteLength(text, 'utf8') });
      batch.bytes += text.length;
      if (batch.bytes >= TOKENIZE_BATCH_BYTES) {
        submit();
        while (queue.length >= maxQueue) await drainOne();
      }
    }
    submit();
    while (queue.length > 0) await drainOne();
    if (id !== scan.documents) throw new PajamaDataError(files[files.length - 1] ?? config.output, `the corpus now holds ${id} documents, the scan found ${scan.documents}; rerun with --force`);
    for (const w of writers.values()) w.close();
    writers.clear();
  } finally {
    for (const w of writers.values()) w.abort();
    await pool?.close();
  }
  const dedup = readStageJson<DedupOutput>(path.join(work, 'dedup.json'));
  const manifest: DataManifest = {
    version: 1,
    kind: 'pajama-data-manifest',
    // a tokenizer.json is copied next to the manifest, so the data (and runs trained on it) carry their tokenizer
    tokenizer: { ...result.tokenizer, spec: config.tokenizer === 'gpt2' ? 'gpt2' : TOKENIZER_FILE },
    sources: {},
    created: new Date().toISOString(),
    config: { ...config, inputs: config.inputs, output: config.output } as unknown as Record<string, unknown>,
  };
  for (const s of scan.sources) {
    const ps = result.perSource[s];
    const sc = scan.perSource[s];
    const dd = dedup.perSource[s];
    manifest.sources[s] = {
      train: ps.train.files,
      validation: ps.validation.files[0] ?? null,
      test: ps.test.files[0] ?? null,
      documents: { read: sc.documents, short: sc.short, duplicates: dd.duplicates, decontaminated: dd.decontaminated, train: ps.train.documents, validation: ps.validation.documents, test: ps.test.documents },
      tokens: { train: ps.train.tokens, validation: ps.validation.tokens, test: ps.test.tokens },
      bytes: { read: sc.bytes, short: sc.shortBytes, duplicates: dd.duplicateBytes, train: ps.train.bytes, validation: ps.validation.bytes, test: ps.test.bytes },
      stats: {},
    };
  }
  if (config.tokenizer !== 'gpt2') withFsContext('copying the tokenizer to', path.join(out, TOKENIZER_FILE), () => fs.copyFileSync(config.tokenizer, path.join(out, TOKENIZER_FILE)));
  writeDataManifest(path.join(out, 'manifest.json'), manifest);
  writeJsonFile(path.join(work, 'tokenize.json'), result);
  for (const s of scan.sources) {
    const v = result.perSource[s].validation.tokens;
    if (v < config.split.minValidationTokens) {
      options.onLog?.(
        `tokenize: source '${s}' has ${v} validation tokens, fewer than split.minValidationTokens (${config.split.minValidationTokens}): ` +
          `it has too few documents to give more without holding out over half of them (or its text averages over ` +
          `${VALIDATION_BYTES_PER_TOKEN} bytes a token); trainers skip a source with less than one evaluation batch`,
      );
    }
  }
}
