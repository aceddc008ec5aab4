// commands.ts: what each `pajama` command does, over the library's public API.
import * as fs from 'node:fs';
import { backendInfo } from '../core/backend';
import { invalidArg } from '../core/errors';
import { gpt2Tokenizer } from '../data/tokenizer';
import { tokenizeFiles } from '../data/tokenize';
import { Trainer } from '../train/trainer';
import { applyOverrides } from '../train/config';
import type { Command } from './main';

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
  if (trainer.step > 0) console.log(`pajama train: resumed at step ${trainer.step} from ${trainer.config.runDir}`);
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

export const commands: Record<string, Command> = {
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
