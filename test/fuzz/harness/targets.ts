// targets.ts: the fuzz targets, one per parser a user feeds files to. Each target takes arbitrary bytes, hands
// them to the parser the way a user's file would reach it, and throws only when the parser misbehaved:
//  - an error other than the parser's documented one (PajamaDataError, SafetensorsError, or the TypeError with
//    code ERR_PAJAMA_INVALID_ARG for configs), or a documented error whose message does not name the file
//    (data files) or a config key;
//  - a broken invariant of the result (e.g. a lenient jsonl read that throws, or counts that do not add up).
// Hangs and memory blow-ups are caught by the fuzzer's per-input timeout and RSS limit (scripts/fuzz.js).
// The same functions run under Jazzer.js (scripts/fuzz.js, via entry.ts) and in test/fuzz/replay.test.ts,
// which replays every stored corpus and crash input.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PajamaDataError } from '../../../lib/data/errors';
import { JsonlDocumentReader } from '../../../lib/data/corpus/jsonl';
import { openShard } from '../../../lib/data/shard';
import { readDataManifest } from '../../../lib/data/manifest';
import { loadHfTokenizer } from '../../../lib/data/tokenizers/hf';
import { DEFAULT_PREPARE_CONFIG, resolvePrepareConfig } from '../../../lib/data/corpus/prepare/prepare';
import { readSafetensorsHeader, SafetensorsError } from '../../../lib/train/safetensors';
import { DEFAULT_TRAIN_CONFIG, planBatch, resolveTrainConfig } from '../../../lib/train/config';
import { mptConfig } from '../../../lib/model/config';

export interface FuzzTarget {
  /** One input; resolves (or returns) when the parser behaved, throws when it did not. */
  run(data: Buffer): void | Promise<void>;
  /** The run is synchronous (Jazzer's --sync mode is several times faster). */
  sync: boolean;
  /** The largest input the fuzzer generates, in bytes. */
  maxLen: number;
  /** A libFuzzer dictionary in test/fuzz/dict/ for inputs of this kind. */
  dict?: string;
}

/** A finding: the parser broke its contract on this input. */
export class FuzzFinding extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FuzzFinding';
  }
}

// One scratch folder per process, in memory where the system has a tmpfs; each target reuses its files.
// scripts/fuzz.js names it (PAJAMA_FUZZ_SCRATCH) and removes it even when the fuzzer is killed.
let scratchDir: string | undefined;
function scratch(name: string): string {
  if (scratchDir === undefined) {
    const base = process.env.PAJAMA_FUZZ_SCRATCH ?? (fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir());
    scratchDir = fs.mkdtempSync(path.join(base, 'pajama-fuzz-'));
    const dir = scratchDir;
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return path.join(scratchDir, name);
}

function writeScratch(name: string, data: Uint8Array): string {
  const file = scratch(name);
  fs.writeFileSync(file, data);
  return file;
}

/** Rethrows `e` unless it is a PajamaDataError naming `file`. */
function expectDataError(e: unknown, file: string): void {
  if (e instanceof PajamaDataError) {
    if (e.file !== file || !e.message.startsWith(file)) throw new FuzzFinding(`PajamaDataError names ${e.file}, not the file read (${file})`, { cause: e });
    return;
  }
  throw e;
}

/** Rethrows `e` unless it is the TypeError (code ERR_PAJAMA_INVALID_ARG) that configs throw. */
function expectConfigError(e: unknown): void {
  if (e instanceof TypeError && (e as { code?: unknown }).code === 'ERR_PAJAMA_INVALID_ARG') return;
  throw e;
}

/** A JSON file's value the way the CLI reads it (UTF-8, JSON.parse); undefined when it is not JSON. */
function parseJson(data: Buffer): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch (e) {
    if (e instanceof SyntaxError) return undefined;
    throw e;
  }
}

// jsonl and jsonl.zst: the first byte picks the reader's options (chunk size 1..64 bytes so lines and frames
// straddle chunks, strict mode, a small maxLineBytes, checksum checks); the rest is the file.
async function readShardFile(data: Buffer, name: string): Promise<void> {
  const flags = data.length > 0 ? data[0] : 0;
  const file = writeScratch(name, data.subarray(1));
  const strict = (flags & 0x40) !== 0;
  const reader = new JsonlDocumentReader({
    inputs: [file],
    defaultSource: 'fuzz',
    strict,
    chunkBytes: 1 + (flags & 0x3f),
    maxLineBytes: flags & 0x80 ? 48 : 1 << 20,
    verifyChecksums: (flags & 0x01) === 0,
  });
  const it = reader[Symbol.asyncIterator]();
  let documents = 0;
  let lastLine = 0;
  try {
    for (;;) {
      const r = await it.next();
      if (r.done) {
        const s = r.value;
        if (s.documents !== documents) throw new FuzzFinding(`stats say ${s.documents} documents, ${documents} were yielded`);
        if (!s.corruptFiles && s.lines !== s.documents + s.blankLines + s.malformed) {
          throw new FuzzFinding(`stats do not add up: ${s.lines} lines != ${s.documents} documents + ${s.blankLines} blank + ${s.malformed} malformed`);
        }
        return;
      }
      const d = r.value;
      documents++;
      if (typeof d.text !== 'string' || d.source === '' || d.line <= lastLine || d.file !== file) {
        throw new FuzzFinding(`bad document ${JSON.stringify({ line: d.line, after: lastLine, source: d.source, file: d.file })}`);
      }
      lastLine = d.line;
    }
  } catch (e) {
    if (!strict) throw e; // a lenient read counts bad lines and corrupt files; it never throws on content
    expectDataError(e, file);
  }
}

async function fuzzJsonl(data: Buffer): Promise<void> {
  await readShardFile(data, 'input.jsonl');
}

async function fuzzJsonlZst(data: Buffer): Promise<void> {
  await readShardFile(data, 'input.jsonl.zst');
}

function fuzzSafetensors(data: Buffer): void {
  const file = writeScratch('input.safetensors', data);
  try {
    const h = readSafetensorsHeader(file);
    let end = 0;
    for (const t of h.tensors) {
      if (t.dataOffsets[0] !== end) throw new FuzzFinding(`accepted a header whose tensors do not tile the data buffer at ${t.name}`);
      end = t.dataOffsets[1];
    }
    if (h.dataStart + end !== h.fileSize) throw new FuzzFinding(`accepted a header whose tensors cover ${end} of ${h.fileSize - h.dataStart} data bytes`);
  } catch (e) {
    if (e instanceof SafetensorsError) {
      if (e.file !== file || !e.message.startsWith(file)) throw new FuzzFinding(`SafetensorsError names ${e.file}, not ${file}`, { cause: e });
      return;
    }
    throw e;
  }
}

function fuzzShard(data: Buffer): void {
  const file = writeScratch('input.bin', data);
  let reader;
  try {
    reader = openShard(file);
  } catch (e) {
    expectDataError(e, file);
    return;
  }
  try {
    if (64 + reader.tokenCount * reader.tokenBytes !== data.length) throw new FuzzFinding(`accepted a shard whose size does not match its header`);
    try {
      reader.read(0, reader.tokenCount);
    } catch (e) {
      expectDataError(e, file); // a token id out of range
    }
  } finally {
    reader.close();
  }
}

/**
 * Throws when an accepted config has a key its defaults lack: unknown keys are errors. Sections in `freeForm`
 * (dotted paths) are maps of the user's own keys.
 */
function checkKnownKeys(input: unknown, defaults: unknown, freeForm: readonly string[], where = ''): void {
  if (input === null || typeof input !== 'object' || Array.isArray(input) || freeForm.includes(where)) return;
  if (defaults === null || typeof defaults !== 'object' || Array.isArray(defaults)) return;
  for (const [k, v] of Object.entries(input)) {
    const key = where ? `${where}.${k}` : k;
    if (!Object.prototype.hasOwnProperty.call(defaults, k)) throw new FuzzFinding(`config accepted the unknown key '${key}'`);
    checkKnownKeys(v, (defaults as Record<string, unknown>)[k], freeForm, key);
  }
}

function fuzzTrainConfig(data: Buffer): void {
  const v = parseJson(data);
  if (v === undefined) return;
  try {
    const c = resolveTrainConfig(v);
    planBatch(c, mptConfig(c.model.preset, c.model.overrides));
  } catch (e) {
    expectConfigError(e);
    return;
  }
  checkKnownKeys(v, DEFAULT_TRAIN_CONFIG, ['model.overrides', 'data.validation', 'data.mixture']);
}

function fuzzPrepareConfig(data: Buffer): void {
  const v = parseJson(data);
  if (v === undefined) return;
  try {
    resolvePrepareConfig(v, scratch('prepare'));
  } catch (e) {
    expectConfigError(e);
    return;
  }
  checkKnownKeys(v, DEFAULT_PREPARE_CONFIG, ['sources']);
}

/** Text the tokenizer target encodes and decodes once loading succeeded. */
const SAMPLE_TEXT = "Hello world, it's 2024!\n\tcafé  naïve <|endoftext|> 東京 🙂 a--b  ";

function fuzzTokenizer(data: Buffer): void {
  const file = writeScratch('tokenizer.json', data);
  let tok;
  try {
    tok = loadHfTokenizer(file);
  } catch (e) {
    expectDataError(e, file);
    return;
  }
  const ids = tok.encode(SAMPLE_TEXT);
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= tok.vocabSize) throw new FuzzFinding(`encode gave id ${id}, outside the vocabulary of ${tok.vocabSize}`);
  }
  if (!(tok.eosId >= 0 && tok.eosId < tok.vocabSize)) throw new FuzzFinding(`eosId ${tok.eosId} is outside the vocabulary of ${tok.vocabSize}`);
  tok.decode(ids);
}

// manifest.json: read next to two small valid shards (vocab 300, EOS 299), which seed manifests name.
function manifestShards(): void {
  const a = scratch('manifest-train-0.bin');
  if (fs.existsSync(a)) return;
  const shard = (tokens: number[]): Buffer => {
    const b = Buffer.alloc(64 + 2 * tokens.length);
    b.write('PJTOKSHD', 0, 'latin1');
    b.writeUInt32LE(1, 8);
    b.writeUInt32LE(2, 12);
    b.writeBigUInt64LE(BigInt(tokens.length), 16);
    b.writeUInt32LE(300, 24);
    b.writeUInt32LE(299, 28);
    tokens.forEach((t, i) => b.writeUInt16LE(t, 64 + 2 * i));
    return b;
  };
  fs.writeFileSync(a, shard([1, 2, 3, 299, 4, 5, 299]));
  fs.writeFileSync(scratch('manifest-validation.bin'), shard([7, 8, 299]));
}

function fuzzManifest(data: Buffer): void {
  manifestShards();
  const file = writeScratch('manifest.json', data);
  try {
    const m = readDataManifest(file);
    for (const [name, s] of Object.entries(m.sources)) {
      if (!s.train.every((p) => path.isAbsolute(p))) throw new FuzzFinding(`source ${name}: a train shard path is not absolute`);
    }
  } catch (e) {
    expectDataError(e, file);
  }
}

export const targets: Record<string, FuzzTarget> = {
  jsonl: { run: fuzzJsonl, sync: false, maxLen: 4096 },
  'jsonl-zst': { run: fuzzJsonlZst, sync: false, maxLen: 4096 },
  safetensors: { run: fuzzSafetensors, sync: true, maxLen: 4096 },
  shard: { run: fuzzShard, sync: true, maxLen: 1024 },
  'train-config': { run: fuzzTrainConfig, sync: true, maxLen: 4096, dict: 'json.dict' },
  'prepare-config': { run: fuzzPrepareConfig, sync: true, maxLen: 4096, dict: 'json.dict' },
  tokenizer: { run: fuzzTokenizer, sync: true, maxLen: 16384, dict: 'json.dict' },
  manifest: { run: fuzzManifest, sync: true, maxLen: 4096, dict: 'json.dict' },
};
