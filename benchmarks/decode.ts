// Decode benchmark: greedy generation at the `bench-45m` MPT (6 layers, d_model 512, 8 heads, context 512,
// GPT-2's vocabulary), tokens per second of three decoders in one run, fp32 and bf16:
//   - ours with the KV cache (MptModel inference mode + MptKvCache, what generate() does by default): one prefill
//     of the prompt, then one token per step;
//   - ours without it (generate's `cache: false`, the generator before the cache): every token recomputes the
//     whole window with lastLogits;
//   - PyTorch (benchmarks/torch_decode.py: Debian's python3-torch, eager, a preallocated KV cache) running the
//     same weights (written for it from our model) on the same prompt with the same thread count.
// Every decoder generates greedily from the same random prompt; the report says whether their tokens agree.
// Decode rates count the steps after the prefill (prefill time is reported apart); the uncached rate is its
// total time over its tokens (each of its steps is a forward over the window).
//
//   npm run bench:decode                       table
//   npm run bench:decode -- --json --out benchmarks/results/decode-cpu.json
//   options: --threads N (default: every core), --prompt N (prompt tokens, default 128), --new-tokens N
//            (default 128; prompt + new tokens stay within the context), --uncached-tokens N (default 32),
//            --repeats N (cached and torch runs, default 3), --precisions fp32,bf16, --no-torch,
//            --seed N (weights and prompt, default 0). PAJAMA_PYTHON picks the interpreter for torch.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { backendInfo, setThreads } from '../lib/index';
import { Xoshiro128 } from '../lib/core/rng';
import { mptConfig, parameterCount } from '../lib/model/config';
import { MptModel, type Precision } from '../lib/model/mpt';
import { generateFromIds, pickToken } from '../lib/eval/generate';
import type { Tokenizer } from '../lib/data/tokenizers/base';
import { benchCli } from './cli';

const { flag, opt, intOpt, log, writeReport, usageError } = benchCli('bench:decode', {
  flags: ['--no-torch'],
  options: ['--threads', '--prompt', '--new-tokens', '--uncached-tokens', '--repeats', '--precisions', '--seed'],
});
const PRESET = 'bench-45m';
const cfg = mptConfig(PRESET);
const threads = intOpt('--threads', os.cpus().length, 1);
const promptLen = intOpt('--prompt', 128, 1);
const newTokens = intOpt('--new-tokens', 128, 2);
const uncachedTokens = intOpt('--uncached-tokens', 32, 1);
const repeats = intOpt('--repeats', 3, 1);
const seed = intOpt('--seed', 0, 0);
const precisions = (opt('--precisions') ?? 'fp32,bf16').split(',') as Precision[];
for (const p of precisions) if (p !== 'fp32' && p !== 'bf16') usageError(`--precisions: unknown precision '${p}' (fp32, bf16)`);
if (promptLen + newTokens > cfg.maxSeqLen) usageError(`--prompt + --new-tokens must stay within the context of ${cfg.maxSeqLen}, got ${promptLen + newTokens}`);
if (uncachedTokens > newTokens) usageError('--uncached-tokens must be at most --new-tokens');
setThreads(threads);

/** Ids only: the benchmark decodes nothing. */
const idsTokenizer: Tokenizer = {
  name: 'ids',
  vocabSize: cfg.realVocabSize,
  eosId: cfg.realVocabSize - 1,
  encode: () => [],
  decode: () => '',
} as unknown as Tokenizer;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface CachedRun {
  prefillMs: number;
  decodeTokensPerS: number;
}

/** Ours with the cache: prefill, then greedy steps (generate's loop: pickToken, then append). */
async function oursCached(model: MptModel, prompt: number[]): Promise<{ runs: CachedRun[]; tokens: number[] }> {
  const runs: CachedRun[] = [];
  let tokens: number[] = [];
  const rng = Xoshiro128.fromSeed(0);
  for (let r = 0; r < repeats; r++) {
    const cache = model.createCache({ maxLen: cfg.maxSeqLen });
    try {
      const t0 = performance.now();
      let logits = await cache.prefill(Int32Array.from(prompt));
      const t1 = performance.now();
      const out = [pickToken(logits, cfg.realVocabSize, 0, undefined, rng)];
      while (out.length < newTokens) {
        logits = await cache.append(Int32Array.of(out[out.length - 1]));
        out.push(pickToken(logits, cfg.realVocabSize, 0, undefined, rng));
      }
      const t2 = performance.now();
      runs.push({ prefillMs: t1 - t0, decodeTokensPerS: ((newTokens - 1) * 1000) / (t2 - t1) });
      tokens = out;
    } finally {
      cache.dispose();
    }
  }
  return { runs, tokens };
}

/** Ours without the cache: generate's uncached path, every token a forward over the window. */
async function oursUncached(model: MptModel, prompt: number[]): Promise<{ tokensPerS: number; tokens: number[] }> {
  const t0 = performance.now();
  const g = await generateFromIds(model, idsTokenizer, prompt, { maxNewTokens: uncachedTokens, stopAtEos: false, cache: false });
  return { tokensPerS: (uncachedTokens * 1000) / (performance.now() - t0), tokens: g.tokens };
}

const TORCH_MALLOC_TUNABLES = 'glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736';

function findPython(script: string): string | null {
  const candidates = process.env.PAJAMA_PYTHON ? [process.env.PAJAMA_PYTHON] : ['python3', '/usr/bin/python3'];
  for (const python of candidates) {
    const r = spawnSync(python, [script, '--check'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (!r.error && r.status === 0) return python;
    if (r.status === 4) {
      process.stderr.write(`bench:decode: ${r.stderr.trim()}\n`);
      process.exit(1);
    }
  }
  return null;
}

interface TorchResult {
  torchVersion: string;
  threads: number;
  blas: string[];
  runs: CachedRun[];
  tokens: number[];
}

function runTorch(python: string, script: string, files: { weights: string; layout: string; prompt: string }, precision: Precision): TorchResult {
  const args = [script, '--weights', files.weights, '--layout', files.layout, '--prompt-ids', files.prompt, '--precision', precision];
  args.push('--new-tokens', String(newTokens), '--repeats', String(repeats), '--threads', String(threads));
  const r = spawnSync(python, args, {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, GLIBC_TUNABLES: process.env.GLIBC_TUNABLES ?? TORCH_MALLOC_TUNABLES, OMP_NUM_THREADS: String(threads) },
  });
  if (r.status !== 0) {
    process.stderr.write(`bench:decode: torch_decode.py failed (${r.status ?? r.signal}): ${r.stderr}\n`);
    process.exit(1);
  }
  return JSON.parse(r.stdout) as TorchResult;
}

const agreeing = (a: number[], b: number[]) => {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
};

async function main(): Promise<void> {
  const info = backendInfo();
  log(
    `pajama-train decode benchmark: ${PRESET} (${(parameterCount(cfg) / 1e6).toFixed(1)}M parameters), prompt ${promptLen} tokens, ` +
      `${newTokens} new (uncached: ${uncachedTokens}), ${threads} threads, ${info.cpu.brand}, ISA ${info.cpu.activeIsa}`,
  );
  const rng = Xoshiro128.fromSeed(seed + 1);
  const prompt = Array.from({ length: promptLen }, () => rng.nextU32() % cfg.realVocabSize);
  const script = [path.resolve(__dirname, 'torch_decode.py'), path.resolve(__dirname, '../../benchmarks/torch_decode.py')].find((s) => fs.existsSync(s));
  const python = flag('--no-torch') || !script ? null : findPython(script);
  if (!flag('--no-torch') && !python) {
    process.stderr.write('bench:decode: no python here imports torch (apt-get install -y python3-torch libopenblas0-pthread, or set PAJAMA_PYTHON); give --no-torch to run without it\n');
    process.exit(1);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-decode-'));
  const rows: Record<string, unknown>[] = [];
  log(`${'precision'.padEnd(10)}${'decoder'.padEnd(22)}${'decode tokens/s'.padStart(16)}${'prefill ms'.padStart(12)}   tokens agreeing with ours cached`);
  try {
    for (const precision of precisions) {
      const model = new MptModel(cfg, { precision, seed, inference: true });
      try {
        const cached = await oursCached(model, prompt);
        const uncached = await oursUncached(model, prompt);
        const cachedRate = median(cached.runs.map((r) => r.decodeTokensPerS));
        const cachedPrefill = median(cached.runs.map((r) => r.prefillMs));
        const row: Record<string, unknown> = {
          precision,
          oursCached: { decodeTokensPerS: cachedRate, prefillMs: cachedPrefill, runs: cached.runs },
          oursUncached: { tokensPerS: uncached.tokensPerS, tokens: uncachedTokens, agreeWithCached: agreeing(uncached.tokens, cached.tokens) },
        };
        const show = (name: string, rate: number, prefill: number | null, agree: string) =>
          log(`${precision.padEnd(10)}${name.padEnd(22)}${rate.toFixed(1).padStart(16)}${(prefill === null ? '-' : prefill.toFixed(1)).padStart(12)}   ${agree}`);
        show('ours, KV cache', cachedRate, cachedPrefill, `${newTokens}/${newTokens}`);
        show('ours, no cache', uncached.tokensPerS, null, `${agreeing(uncached.tokens, cached.tokens)}/${uncachedTokens}`);
        if (python && script) {
          const files = { weights: path.join(tmp, 'weights.f32'), layout: path.join(tmp, 'layout.json'), prompt: path.join(tmp, 'prompt.json') };
          fs.writeFileSync(files.weights, Buffer.from(model.params.buffer.toFloat32().buffer));
          fs.writeFileSync(files.layout, JSON.stringify({ config: cfg, entries: model.params.entries.map((e) => [e.name, e.shape, e.offset]) }));
          fs.writeFileSync(files.prompt, JSON.stringify(prompt));
          const torch = runTorch(python, script, files, precision);
          const rate = median(torch.runs.map((r) => r.decodeTokensPerS));
          const prefill = median(torch.runs.map((r) => r.prefillMs));
          row.torch = { decodeTokensPerS: rate, prefillMs: prefill, runs: torch.runs, version: torch.torchVersion, threads: torch.threads, blas: torch.blas, agreeWithCached: agreeing(torch.tokens, cached.tokens) };
          show(`PyTorch ${torch.torchVersion}`, rate, prefill, `${agreeing(torch.tokens, cached.tokens)}/${newTokens}`);
        }
        rows.push(row);
      } finally {
        model.dispose();
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  writeReport({
    benchmark: 'decode',
    date: new Date().toISOString(),
    machine: { cpu: info.cpu.brand, isa: info.cpu.activeIsa, cores: os.cpus().length },
    model: PRESET,
    threads,
    promptTokens: promptLen,
    newTokens,
    uncachedTokens,
    repeats,
    seed,
    results: rows,
  });
}

main().catch((e) => {
  process.stderr.write(`bench:decode: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
