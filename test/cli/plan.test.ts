// `pajama plan` in-process: the paper's run as a table and as JSON, one sharding mode, what fits on one H200,
// a model config file, and usage errors that name the bad option (exit 2).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from '../helpers/cli-run';
import type { ClusterPlan } from '../../lib/dist/planner';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-plan-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const PAPER = ['plan', '--model', 'mpt-7b', '--gpus', '232', '--gpu', 'a100-80g', '--global-batch-tokens', '14.3M', '--seq-len', '2048'];

t.test("the paper's run: a table for every sharding mode, and the same numbers as JSON", async (t) => {
  const r = await runCli(PAPER);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /^mpt-7b: 6\.65 B parameters, 43\.1 GFLOP per token at sequence 2048/);
  t.match(r.out, /232 x NVIDIA A100 SXM4 80GB \(29 nodes, 8 GPUs per node\)/);
  t.match(r.out, /global batch 14,254,080 tokens \(asked 14,300,000\): 30 sequences of 2048 per GPU; activation checkpointing on/);
  t.match(r.out, /^sharding +none +optimizer +full$/m);
  t.match(r.out, /^fits +no +yes +yes$/m);

  const j = await runCli([...PAPER, '--json']);
  t.equal(j.code, 0, j.err);
  const plan = JSON.parse(j.out) as ClusterPlan;
  t.same(plan.modes.map((m) => m.sharding), ['none', 'optimizer', 'full']);
  t.equal(plan.globalBatchTokens, 14_254_080);
  const full = plan.modes[2];
  t.ok(Math.abs(full.tokensPerSecPerGpu / 3626 - 1) < 0.02, `${full.tokensPerSecPerGpu} tokens/s/GPU`);
  // the table shows what the JSON holds
  const row = (label: string) => r.out.split('\n').find((l) => l.startsWith(label))!;
  t.match(row('tokens/s per GPU'), new RegExp(Math.round(full.tokensPerSecPerGpu).toLocaleString('en-US') + '$'));
  t.match(row('MFU'), new RegExp(full.mfu.toFixed(4) + '$'));
});

t.test('one mode, and the options that change the plan', async (t) => {
  const r = await runCli([...PAPER, '--sharding', 'full', '--json', '--no-checkpointing', '--micro-batch', '5', '--compute-fraction', '0.5', '--inter-bw', '12.5', '--gpus-per-node', '4']);
  t.equal(r.code, 0, r.err);
  const plan = JSON.parse(r.out) as ClusterPlan;
  t.equal(plan.modes.length, 1);
  t.equal(plan.modes[0].sharding, 'full');
  t.equal(plan.modes[0].microBatch, 5);
  t.equal(plan.modes[0].accumulation, 6);
  t.equal(plan.checkpointing, false);
  t.equal(plan.computeFraction, 0.5);
  t.same(plan.collective, { link: 'network', GBps: 12.5 });
  t.equal(plan.nodes, 58);
  const table = await runCli([...PAPER, '--sharding', 'optimizer']);
  t.match(table.out, /^sharding +optimizer$/m);
});

t.test('what fits on one H200: mpt-1b and mpt-7b', async (t) => {
  for (const model of ['mpt-1b', 'mpt-7b']) {
    for (const ckpt of ['--checkpointing', '--no-checkpointing']) {
      const r = await runCli(['plan', '--model', model, '--gpus', '1', '--gpu', 'h200', '--sharding', 'none', ckpt, '--json']);
      t.equal(r.code, 0, r.err);
      const m = (JSON.parse(r.out) as ClusterPlan).modes[0];
      t.ok(m.fits, `${model} ${ckpt}`);
      t.ok(m.maxMicroBatch >= 1);
      t.comment(`${model} on one H200, ${ckpt}: micro-batch up to ${m.maxMicroBatch} x 2048, ${(m.memory.total / 2 ** 30).toFixed(1)} GiB, ${Math.round(m.tokensPerSecPerGpu)} tokens/s, MFU ${m.mfu.toFixed(3)}`);
    }
  }
  const table = await runCli(['plan', '--model', 'mpt-7b', '--gpus', '1', '--gpu', 'h200']);
  t.equal(table.code, 0, table.err);
  t.match(table.out, /no collectives \(one GPU\)/);
  t.match(table.out, /one micro-batch per GPU \(the largest that fits\)/);
});

t.test('a model config file: our keys or an HF config.json', async (t) => {
  const ours = path.join(dir, 'model.json');
  fs.writeFileSync(ours, JSON.stringify({ dModel: 256, nHeads: 4, nLayers: 4, maxSeqLen: 512, vocabSize: 1024 }));
  let r = await runCli(['plan', '--model', ours, '--gpu', 'a100-40g', '--json']);
  t.equal(r.code, 0, r.err);
  let plan = JSON.parse(r.out) as ClusterPlan;
  t.equal(plan.model.preset, null);
  t.equal(plan.model.config.dModel, 256);
  t.equal(plan.seqLen, 512);
  const hf = path.join(dir, 'config.json');
  fs.writeFileSync(hf, JSON.stringify({ d_model: 128, n_heads: 2, n_layers: 3, max_seq_len: 256, vocab_size: 512, expansion_ratio: 4 }));
  r = await runCli(['plan', '--model', hf, '--gpu', 'h100-sxm', '--gpus', '2', '--json']);
  t.equal(r.code, 0, r.err);
  plan = JSON.parse(r.out) as ClusterPlan;
  t.equal(plan.model.config.nLayers, 3);
  t.same(plan.collective, { link: 'nvlink', GBps: 450 });
  const badKey = path.join(dir, 'bad.json');
  fs.writeFileSync(badKey, JSON.stringify({ dModel: 256, nHeads: 4, nLayer: 4, maxSeqLen: 512, vocabSize: 1024 }));
  r = await runCli(['plan', '--model', badKey, '--gpu', 'h200']);
  t.equal(r.code, 2);
  t.match(r.err, /^pajama plan: --model: model config: unknown key 'nLayer'/);
});

t.test('usage errors name the option and exit 2', async (t) => {
  const cases: [string[], RegExp][] = [
    [['plan', '--gpu', 'h200'], /--model is required/],
    [['plan', '--model', 'mpt-7b'], /--gpu is required: one of a100-40g, a100-80g, h100-sxm, h200/],
    [['plan', '--model', 'mpt-7b', '--gpu', 'v100'], /--gpu must be one of a100-40g, a100-80g, h100-sxm, h200, got "v100"/],
    [['plan', '--model', 'mpt-9b', '--gpu', 'h200'], /--model 'mpt-9b' is neither a preset \(tiny, .*mpt-7b\) nor a model config file/],
    [['plan', '--model', 'mpt-7b', '--gpu', 'h200', '--gpus', '0'], /--gpus must be a positive integer, got 0/],
    [['plan', '--model', 'mpt-7b', '--gpu', 'h200', '--gpus', 'many'], /--gpus must be a number, got 'many'/],
    [['plan', '--model', 'mpt-7b', '--gpu', 'h200', '--gpus-per-node', '0.5'], /--gpus-per-node must be a positive integer, got 0.5/],
    [['plan', '--model', 'mpt-7b', '--gpu', 'h200', '--global-batch-tokens', '14.3Q'], /--global-batch-tokens: '14.3Q' is not a count of tokens/],
    [['plan', '--model', 'mpt-7b', '--gpu', 'h200', '--global-batch-tokens', '100'], /--global-batch-tokens 100 is less than one sequence of 2048 per GPU/],
    [['plan', '--model', 'mpt-7b', '--gpu', 'h200', '--seq-len', '4096'], /--seq-len 4096 is above the model's maxSeqLen 2048/],
    [['plan', '--model', 'mpt-7b', '--gpu', 'h200', '--global-batch-tokens', '8192', '--micro-batch', '3'], /--micro-batch 3 does not divide the 4 sequences per GPU/],
    [['plan', '--model', 'mpt-7b', '--gpu', 'h200', '--sharding', 'zero3'], /--sharding must be one of none, optimizer, full or all, got 'zero3'/],
    [['plan', '--model', 'mpt-7b', '--gpu', 'h200', '--compute-fraction', '1.2'], /--compute-fraction must be a number above 0 and at most 1, got 1.2/],
    [['plan', '--model', 'mpt-7b', '--gpu', 'h200', '--intra-bw', '0'], /--intra-bw must be a number above 0, got 0/],
    [['plan', '--model', 'mpt-7b', '--gpu', 'h200', '--checkpointing', '--no-checkpointing'], /give --checkpointing or --no-checkpointing, not both/],
    [['plan', '--model', 'mpt-7b', '--gpu', 'h200', '--checkpointing=yes'], /--checkpointing takes no value/],
    [['plan', '--model', 'mpt-7b', '--gpu', 'h200', '--nodes', '4'], /unknown option --nodes/],
  ];
  for (const [argv, re] of cases) {
    const r = await runCli(argv);
    t.equal(r.code, 2, argv.join(' '));
    t.match(r.err, /^pajama plan: /);
    t.match(r.err, re, argv.join(' '));
    t.equal(r.out, '');
  }
});
