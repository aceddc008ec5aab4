// commands.ts: what each `pajama` command does, over the library's public API.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backendInfo } from '../core/backend';
import { invalidArg } from '../core/errors';
import { gpt2Tokenizer } from '../data/tokenizer';
import { tokenizeFiles } from '../data/tokenize';
import { buildDemoCorpus, demoDataConfig } from '../data/demo';
import { generate } from '../eval/generate';
import { writeLossCurve } from '../eval/plot';
import { MptModel } from '../model/mpt';
import { mptConfig, type MptConfig } from '../model/config';
import { latestCheckpoint, loadModelWeights } from '../train/checkpoint';
import { Trainer } from '../train/trainer';
import { applyOverrides, resolveTrainConfig } from '../train/config';
import { formatMixturePlan } from '../data/mixture';
import { formatPrepareReport, prepareData, resolvePrepareConfig, type PrepareProgress, type PrepareStage } from '../data/prepare';
import type { Command } from './main';
import { ProgressLine, bar } from './progress';

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw invalidArg(`cannot read config '${file}': ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('the top level is not an object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw invalidArg(`config '${file}' is not valid JSON: ${(e as Error).message}`);
  }
}

/** Trains from a config; Ctrl-C stops after the current step and saves a checkpoint. */
export async function runTraining(config: Record<string, unknown>, options: { resume?: boolean } = {}): Promise<Trainer> {
  const trainer = await Trainer.create(config, { resume: options.resume ?? true });
  const info = backendInfo();
  const p = trainer.plan;
  console.log(
    `pajama train: ${trainer.modelConfig.nLayers} layers, d_model ${trainer.modelConfig.dModel}, ${(trainer.model.parameterCount / 1e6).toFixed(2)}M parameters, ` +
      `${trainer.config.model.precision}, batch ${p.microBatchSize} x ${p.seqLen} x ${p.accumulationSteps} accumulation = ${p.globalBatchTokens} tokens; ` +
      `${info.threads} threads, ${info.gemm.description}; peak ${(trainer.peakFlops / 1e9).toFixed(0)} GFLOP/s`,
  );
  for (const line of formatMixturePlan(trainer.dataPlan)) console.log(`pajama train: ${line}`);
  if (trainer.stepsDone > 0) console.log(`pajama train: resumed at step ${trainer.stepsDone} from ${trainer.config.runDir}`);
  const onSigint = () => {
    console.error('\npajama train: stopping after this step (Ctrl-C again to abort)');
    trainer.requestStop();
    process.removeListener('SIGINT', onSigint);
  };
  process.on('SIGINT', onSigint);
  try {
    let lastPrinted = 0;
    trainer.on('step', (m) => {
      if (!process.stderr.isTTY && (m.step - lastPrinted >= trainer.config.logEvery || m.step === trainer.config.steps)) {
        lastPrinted = m.step;
        console.log(
          `step ${m.step}/${trainer.config.steps} loss ${m.loss.toFixed(4)} lr ${m.lr.toExponential(2)} wd ${m.weightDecay} ` +
            `grad ${m.gradNorm.toFixed(3)} ${Math.round(m.tokensPerSec)} tok/s MFU ${(100 * m.mfu).toFixed(1)}%${m.skipped ? ' (skipped: non-finite gradients)' : ''}`,
        );
      }
    });
    trainer.on('eval', (e) => {
      const parts = Object.entries(e.losses).map(([k, v]) => `${k} ${v.toFixed(4)}`);
      console.log(`eval @ step ${e.step}: ${parts.join(', ')}`);
    });
    const r = await trainer.fit();
    console.log(`pajama train: ${r.stopped ? 'stopped' : 'done'} at step ${r.steps}, final loss ${r.finalLoss.toFixed(4)}; checkpoint ${r.checkpoint}`);
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  return trainer;
}

/**
 * The model a checkpoint directory (or a run directory's latest checkpoint) holds: its architecture from
 * trainer_state.json's training config, else from config.json (HF MptConfig).
 */
export function loadModelFromCheckpoint(source: string, realVocabSize: number): { model: MptModel; dir: string } {
  let dir = source;
  if (!fs.existsSync(path.join(dir, 'model.safetensors'))) {
    const latest = latestCheckpoint(source);
    if (!latest) throw invalidArg(`'${source}' is neither a checkpoint directory nor a run directory with checkpoints`);
    dir = latest.dir;
  }
  let cfg: MptConfig;
  const statePath = path.join(dir, 'trainer_state.json');
  const state = fs.existsSync(statePath) ? (JSON.parse(fs.readFileSync(statePath, 'utf8')) as { trainConfig?: unknown }) : {};
  if (state.trainConfig) {
    const tc = resolveTrainConfig(state.trainConfig);
    cfg = mptConfig(tc.model.preset, tc.model.overrides);
  } else {
    const hf = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, number>;
    cfg = mptConfig({
      dModel: hf.d_model,
      nHeads: hf.n_heads,
      nLayers: hf.n_layers,
      expansionRatio: hf.expansion_ratio,
      maxSeqLen: hf.max_seq_len,
      vocabSize: hf.vocab_size,
      realVocabSize: Math.min(realVocabSize, hf.vocab_size),
    });
  }
  const model = new MptModel(cfg, { precision: 'fp32' });
  try {
    loadModelWeights(dir, model.params);
  } catch (e) {
    model.dispose();
    throw e;
  }
  model.syncComputeParams();
  return { model, dir };
}

/** The embedded default: a small MPT trained for a few minutes on the demo corpus (npm start). */
export async function runDemo(options: { runDir: string; steps: number }): Promise<void> {
  const dataDir = path.join(options.runDir, 'data');
  console.log(`pajama demo: building the demo corpus in ${dataDir} (Moby-Dick, State of the Union addresses, source code) through the data pipeline`);
  const progress = new ProgressLine();
  const corpus = await buildDemoCorpus({
    outDir: dataDir,
    onProgress: (p) => progress.update(`${p.stage}: ${p.files}/${p.totalFiles} files, ${p.documents} documents`),
    onLog: (line) => {
      progress.done();
      console.log(`  ${line}`);
    },
  });
  progress.done();
  console.log(formatPrepareReport(corpus.report));
  const trainDir = path.join(options.runDir, 'train');
  fs.rmSync(trainDir, { recursive: true, force: true }); // the demo always starts fresh
  const steps = options.steps;
  const config = {
    model: {
      preset: 'tiny',
      overrides: { dModel: 256, nHeads: 4, nLayers: 4, maxSeqLen: 256, vocabSize: 50304, realVocabSize: 50257 },
      precision: 'bf16',
    },
    batch: { seqLen: 256, microBatchSize: 8, globalBatchTokens: 8 * 256 * 2 },
    optimizer: { lr: 2e-3, warmupSteps: Math.max(1, Math.round(steps / 10)) },
    weightDecay: { mode: 'ptwd', stages: [0, 0.5, 0.1] },
    steps,
    data: demoDataConfig(corpus),
    eval: { every: Math.max(1, Math.round(steps / 8)), batches: 2 },
    checkpoint: { every: 0, keepLast: 1 },
    runDir: trainDir,
    seed: 1234,
    logEvery: Math.max(1, Math.round(steps / 40)),
  };
  const trainer = await runTraining(config, { resume: false });
  trainer.dispose();
  const plot = writeLossCurve(trainDir, { title: `pajama-train demo: MPT d256 x 4 layers, ${steps} steps` });
  console.log(`pajama demo: loss curve ${plot.path} (warmup and PTWD stage boundaries marked)`);
  const tok = gpt2Tokenizer();
  const { model, dir } = loadModelFromCheckpoint(trainDir, tok.vocabSize);
  try {
    for (const prompt of ['Call me Ishmael.', 'The state of the Union is']) {
      const g = await generate(model, tok, prompt, { maxNewTokens: 40, temperature: 0.8, topK: 40, seed: 1 });
      console.log(`pajama demo: sample from ${dir}\n  ${JSON.stringify(prompt + g.text)}`);
    }
  } finally {
    model.dispose();
  }
  console.log(`pajama demo: metrics in ${path.join(trainDir, 'metrics.jsonl')}`);
}

/** Runs `pajama prepare` (or `pajama dedup`: until 'dedup') with a progress line and prints the report. */
export async function runPrepare(input: Record<string, unknown>, baseDir: string, options: { force?: boolean; until?: PrepareStage; name: string }): Promise<void> {
  const config = resolvePrepareConfig(input, baseDir);
  const progress = new ProgressLine();
  const t0 = Date.now();
  const show = (p: PrepareProgress) => {
    const secs = (Date.now() - t0) / 1000;
    progress.update(
      `${p.stage} ${bar(p.diskBytesTotal > 0 ? p.diskBytes / p.diskBytesTotal : 0)} ${p.files}/${p.totalFiles} files, ${p.documents} documents, ` +
        `${(p.bytes / 1e6).toFixed(0)} MB (${(p.bytes / 1e6 / Math.max(secs, 1e-3)).toFixed(1)} MB/s)`,
    );
  };
  const result = await prepareData(config, {
    force: options.force,
    until: options.until,
    onProgress: show,
    onLog: (line) => {
      progress.done();
      console.log(`pajama ${options.name}: ${line}`);
    },
  });
  progress.done();
  console.log(formatPrepareReport(result.report));
  for (const m of result.report.reader.malformedSamples ?? []) console.log(`  malformed ${m.file}:${m.line}: ${m.reason}`);
  if (result.manifest) console.log(`pajama ${options.name}: manifest ${result.manifest}; train with data.manifest = "${result.manifest}"`);
  else console.log(`pajama ${options.name}: report ${path.join(config.output, 'dedup-report.json')}`);
}

export const commands: Record<string, Command> = {
  prepare: {
    summary: '--config DATA.json [--set key=value ...] [--force]: jsonl(.zst) shards -> filter -> dedup -> split -> tokenize -> per-source shards + manifest',
    options: {
      config: { kind: 'string', describe: 'data preparation config (JSON); see README' },
      set: { kind: 'list', describe: 'override a config key, e.g. dedup.mode=local (repeatable)' },
      force: { kind: 'flag', describe: 'start over instead of resuming finished stages' },
    },
    async run(o) {
      if (typeof o.config !== 'string') throw invalidArg('pajama prepare: --config DATA.json is required');
      const input = applyOverrides(readJson(o.config), (o.set as string[]) ?? []);
      await runPrepare(input, path.dirname(path.resolve(o.config)), { force: Boolean(o.force), name: 'prepare' });
    },
  },
  dedup: {
    summary: '(--config DATA.json | INPUT... --output DIR) [--mode global|local]: short-document filter and MinHash-LSH dedup only, with its report',
    options: {
      config: { kind: 'string', describe: 'a prepare config (JSON); its dedup settings apply' },
      output: { kind: 'string', describe: 'where the work files and dedup-report.json go (without --config)' },
      mode: { kind: 'string', describe: "'global' (across sources, default) or 'local' (within each source)" },
      set: { kind: 'list', describe: 'override a config key, e.g. dedup.bands=20 (repeatable)' },
      force: { kind: 'flag', describe: 'start over instead of resuming finished stages' },
    },
    async run(o, inputs) {
      let input: Record<string, unknown>;
      let baseDir = process.cwd();
      if (typeof o.config === 'string') {
        if (inputs.length > 0) throw invalidArg('pajama dedup: give either --config or input paths, not both');
        input = readJson(o.config);
        baseDir = path.dirname(path.resolve(o.config));
      } else {
        if (inputs.length === 0) throw invalidArg('pajama dedup: give --config DATA.json, or input files/folders/globs and --output DIR');
        if (typeof o.output !== 'string') throw invalidArg('pajama dedup: --output DIR is required with input paths');
        input = { inputs, output: o.output };
      }
      if (typeof o.mode === 'string') input = { ...input, dedup: { ...((input.dedup as object) ?? {}), mode: o.mode } };
      input = applyOverrides(input, (o.set as string[]) ?? []);
      await runPrepare(input, baseDir, { force: Boolean(o.force), until: 'dedup', name: 'dedup' });
    },
  },
  train: {
    summary: '--config FILE.json [--set key=value ...]: train an MPT model (resumes from the run directory)',
    options: {
      config: { kind: 'string', describe: 'training config (JSON); see README' },
      set: { kind: 'list', describe: 'override a config key, e.g. optimizer.lr=3e-4 (repeatable)' },
      'no-resume': { kind: 'flag', describe: 'start fresh even if the run directory has checkpoints' },
    },
    async run(o) {
      if (typeof o.config !== 'string') throw invalidArg('pajama train: --config FILE.json is required');
      const config = applyOverrides(readJson(o.config), (o.set as string[]) ?? []);
      const trainer = await runTraining(config, { resume: !o['no-resume'] });
      trainer.dispose();
    },
  },
  tokenize: {
    summary: '--out SHARD.bin INPUT...: tokenize .txt/.jsonl files and folders into a token shard (GPT-2 BPE)',
    options: {
      out: { kind: 'string', describe: 'the shard to write' },
      'text-field': { kind: 'string', describe: "the .jsonl field holding the text (default 'text')" },
    },
    async run(o, inputs) {
      if (typeof o.out !== 'string') throw invalidArg('pajama tokenize: --out SHARD.bin is required');
      if (inputs.length === 0) throw invalidArg('pajama tokenize: give at least one input file or folder');
      const s = await tokenizeFiles({
        inputs,
        output: o.out,
        tokenizer: gpt2Tokenizer(),
        ...(typeof o['text-field'] === 'string' ? { textField: o['text-field'] } : {}),
        onProgress: (p) => {
          if (process.stderr.isTTY) process.stderr.write(`\r${JSON.stringify(p)}`.slice(0, 120));
        },
      });
      if (process.stderr.isTTY) process.stderr.write('\n');
      console.log(`pajama tokenize: ${s.documents} documents, ${s.bytes} bytes -> ${s.tokens} tokens in ${s.output}`);
      for (const k of s.skipped) console.log(`  skipped ${k.file}:${k.line}: ${k.reason}`);
      if (s.skippedTotal > s.skipped.length) console.log(`  ... and ${s.skippedTotal - s.skipped.length} more skipped`);
    },
  },
  generate: {
    summary: '--checkpoint DIR --prompt TEXT: continue a prompt with a trained model (greedy, temperature, top-k)',
    options: {
      checkpoint: { kind: 'string', describe: 'a checkpoint directory, or a run directory (its latest checkpoint)' },
      prompt: { kind: 'string', describe: 'the text to continue' },
      'max-tokens': { kind: 'number', describe: 'tokens to generate (default 64)' },
      temperature: { kind: 'number', describe: '0 (default) is greedy' },
      'top-k': { kind: 'number', describe: 'sample among the k most likely tokens' },
      seed: { kind: 'number', describe: 'sampling seed (default 0)' },
    },
    async run(o) {
      if (typeof o.checkpoint !== 'string') throw invalidArg('pajama generate: --checkpoint DIR is required');
      if (typeof o.prompt !== 'string') throw invalidArg('pajama generate: --prompt TEXT is required');
      const tok = gpt2Tokenizer();
      const { model } = loadModelFromCheckpoint(o.checkpoint, tok.vocabSize);
      try {
        const g = await generate(model, tok, o.prompt, {
          maxNewTokens: (o['max-tokens'] as number | undefined) ?? 64,
          temperature: (o.temperature as number | undefined) ?? 0,
          ...(o['top-k'] !== undefined ? { topK: o['top-k'] as number } : {}),
          seed: (o.seed as number | undefined) ?? 0,
        });
        console.log(o.prompt + g.text);
      } finally {
        model.dispose();
      }
    },
  },
  demo: {
    summary: ': the embedded default (npm start): train a small MPT on text shipped in npm packages',
    options: {
      'run-dir': { kind: 'string', describe: "where data, checkpoints and metrics go (default 'runs/demo')" },
      steps: { kind: 'number', describe: 'optimizer steps (default 150: about three minutes on 2 cores)' },
    },
    async run(o) {
      const steps = (o.steps as number | undefined) ?? 150;
      if (!Number.isInteger(steps) || steps < 2) throw invalidArg(`pajama demo: --steps must be an integer >= 2, got ${steps}`);
      await runDemo({ runDir: (o['run-dir'] as string | undefined) ?? 'runs/demo', steps });
    },
  },
  bench: {
    summary: '[--json] [--quick] [--configs fp32,bf16-ckpt] [--out FILE]: time training steps of bench-45m (fp32/bf16, with and without checkpointing)',
    options: {
      json: { kind: 'flag', describe: 'JSON on stdout (the table on stderr)' },
      quick: { kind: 'flag', describe: '3 timed steps per configuration' },
      profile: { kind: 'flag', describe: 'time every native op and report where a step goes' },
      steps: { kind: 'string', describe: 'timed steps per configuration (default 5)' },
      repeat: { kind: 'string', describe: 'run every configuration R times and keep the median run' },
      configs: { kind: 'string', describe: 'a subset of fp32, fp32-ckpt, bf16, bf16-ckpt' },
      threads: { kind: 'string', describe: 'native threads' },
      out: { kind: 'string', describe: 'also write the JSON here' },
    },
    async run(o) {
      // The benchmark lives in benchmarks/ (compiled to dist/benchmarks/train.js) and runs each
      // configuration in its own process, so it is started as a program, not imported.
      const script = path.resolve(__dirname, '../../benchmarks/train.js');
      if (!fs.existsSync(script)) throw new Error(`the training benchmark is not built (${script} is missing): run npm run build:ts`);
      const args: string[] = [];
      for (const k of ['json', 'quick', 'profile']) if (o[k]) args.push(`--${k}`);
      for (const k of ['steps', 'repeat', 'configs', 'threads', 'out']) if (typeof o[k] === 'string') args.push(`--${k}`, o[k] as string);
      const { spawnSync } = await import('node:child_process');
      const r = spawnSync(process.execPath, [script, ...args], { stdio: 'inherit' });
      if (r.status !== 0) throw new Error(`the training benchmark exited with ${r.status ?? r.signal}`);
    },
  },
  info: {
    summary: ': the native backend, CPU features, GEMM engine, threads and CUDA status',
    options: { json: { kind: 'flag', describe: 'print JSON' } },
    async run(o) {
      const info = backendInfo();
      if (o.json) {
        console.log(JSON.stringify(info, null, 2));
        return;
      }
      const feats = Object.entries(info.cpu.features).filter(([, v]) => v).map(([k]) => k);
      console.log(`cpu      ${info.cpu.brand} (${info.cpu.vendor})`);
      console.log(`features ${feats.join(' ')}`);
      console.log(`isa      ${info.cpu.activeIsa} (detected ${info.cpu.detectedIsa})`);
      console.log(`gemm     ${info.gemm.description}`);
      console.log(`threads  ${info.threads}${info.openmp ? ' (OpenMP)' : ''}`);
      const cuda = info.cuda.compiled
        ? `built with CUDA runtime ${info.cuda.runtimeVersion}; ${info.cuda.devices.length} device(s)${info.cuda.error ? ` (${info.cuda.error})` : ''}`
        : 'not built';
      console.log(`cuda     ${cuda}`);
      console.log(`build    ${info.buildSystem ?? 'unknown'}`);
    },
  },
};
