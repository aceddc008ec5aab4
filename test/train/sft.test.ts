// sft.test.ts: instruction tuning end to end on a tiny model. Loss masking: the gradient of a chat batch is
// that of its next-token targets with every non-assistant target ignored, and positions without a loss
// contribute exactly nothing; the loss is normalised per trained token of the global batch; an SFT run from a
// tiny pretrained checkpoint starts from its weights, takes its tokenizer, records it, and resumes
// bit-identically; `pajama sft` on a tiny run.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MptModel } from '../../lib/model/mpt';
import { mptConfig } from '../../lib/model/config';
import { parseConversations } from '../../lib/data/chat';
import { ChatLoader, IGNORE_INDEX, chatItems, type ChatBatch, type ChatItem } from '../../lib/data/chat-loader';
import { Trainer } from '../../lib/train/trainer';
import { resolveTrainConfig } from '../../lib/train/config';
import { chatTokenizerSpec, splitChatValidation } from '../../lib/train/data';
import { checkpointTokenizer, loadModelWeights } from '../../lib/train/checkpoint';
import { runCli } from '../helpers/cli-run';
import { localWorld } from '../helpers/local-world';
import { WorldOfOne, type Communicator } from '../../lib/dist/communicator';
import type { StepMetrics } from '../../lib/train/metrics';
import { writeTinyShard } from '../helpers/tiny-run';
import { byteTokenizer, sampleConversations, writeByteTokenizer, writeShareGpt } from '../helpers/chat-fixtures';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-sft-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const TOKENIZER = writeByteTokenizer(path.join(dir, 'tokenizer.json'));
const tok = byteTokenizer(TOKENIZER);
const MODEL = { preset: 'tiny', precision: 'fp32', overrides: { nLayers: 1, vocabSize: 320 } };
const SEQ = 64;
const CHATS = writeShareGpt(path.join(dir, 'chats.jsonl'), sampleConversations(40));
const turnsOf = (n: number) => sampleConversations(n).map((c) => parseConversations(JSON.stringify(c), 'x')[0]);

/** A tiny pretrained checkpoint (3 steps on a token shard) with the byte tokenizer beside its weights. */
async function pretrain(): Promise<string> {
  const shard = writeTinyShard(path.join(dir, 'pretrain.bin'), 60, 1);
  const tr = await Trainer.create(
    { model: MODEL, batch: { seqLen: 32, microBatchSize: 2 }, optimizer: { lr: 3e-3, warmupSteps: 1 }, steps: 3, data: { train: [shard] }, runDir: path.join(dir, 'pretrain'), seed: 3, threads: 1, peakFlops: 1e11 },
    { progress: false },
  );
  const r = await tr.fit();
  tr.dispose();
  fs.copyFileSync(TOKENIZER, path.join(r.checkpoint, 'tokenizer.json'));
  return r.checkpoint;
}
const pretrained = pretrain();

function sftConfig(runDir: string, init: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: { ...MODEL, init },
    batch: { seqLen: SEQ, microBatchSize: 2, globalBatchTokens: 2 * 2 * SEQ },
    optimizer: { lr: 2e-3, warmupSteps: 1 },
    weightDecay: { mode: 'constant', value: 0 },
    steps: 6,
    data: { chat: { train: [CHATS], system: 'Sys' } },
    runDir,
    seed: 11,
    threads: 1,
    peakFlops: 1e11,
    ...extra,
  };
}

async function gradOf(model: MptModel, inputs: Int32Array, targets: Int32Array, B: number, scale = 1 / 64): Promise<{ grad: Float32Array; lossSum: number; tokens: number }> {
  model.grads.zero();
  const r = await model.forwardBackward(inputs, targets, B, SEQ, scale);
  return { grad: model.grads.buffer.toFloat32().slice(), ...r };
}

const bitsEqual = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

t.test('loss masking: only assistant tokens carry a gradient; the rest contributes exactly zero', async (t) => {
  const { items } = chatItems(tok, turnsOf(12), { maxTokens: SEQ + 1, system: 'Sys' });
  const loader = new ChatLoader({ items, seqLen: SEQ, batchSize: 2, seed: 1, vocabSize: tok.vocabSize, eosId: tok.eosId });
  const batch: ChatBatch = loader.next();
  const model = new MptModel(mptConfig('tiny', MODEL.overrides), { precision: 'fp32', seed: 4 });
  t.teardown(() => model.dispose());

  // The rows' tokens and masks rebuilt from the items they hold: next-token targets everywhere ('full'),
  // and the mask of positions whose next token is an assistant token of the same item.
  const rowIds = new Int32Array(2 * (SEQ + 1)).fill(tok.eosId);
  const assistantNext = new Uint8Array(2 * SEQ);
  batch.rows.forEach((row, r) => {
    let at = r * (SEQ + 1);
    for (const k of row.items) {
      const it: ChatItem = items[k];
      rowIds.set(it.ids, at);
      for (let i = 0; i + 1 < it.ids.length; i++) assistantNext[r * SEQ + (at - r * (SEQ + 1)) + i] = it.trained[i + 1];
      at += it.ids.length;
    }
  });
  const full = new Int32Array(2 * SEQ);
  for (let r = 0; r < 2; r++) for (let i = 0; i < SEQ; i++) full[r * SEQ + i] = rowIds[r * (SEQ + 1) + i + 1];
  t.same([...batch.inputs], [...Array.from({ length: 2 * SEQ }, (_, j) => rowIds[Math.floor(j / SEQ) * (SEQ + 1) + (j % SEQ)])], 'inputs are the rows');
  const masked = full.map((x, j) => (assistantNext[j] ? x : IGNORE_INDEX));
  t.same([...batch.targets], [...masked], 'targets: the next token where it is an assistant token, else ignored');
  const complement = full.map((x, j) => (assistantNext[j] ? IGNORE_INDEX : x));
  const trained = masked.filter((x) => x !== IGNORE_INDEX).length;
  t.ok(trained > 0 && trained < 2 * SEQ, `${trained} of ${2 * SEQ} targets carry a loss`);

  const sft = await gradOf(model, batch.inputs, batch.targets, 2);
  const manual = await gradOf(model, batch.inputs, masked, 2);
  t.ok(bitsEqual(sft.grad, manual.grad), 'the chat batch gradient is bit-identical to next-token targets with non-assistant targets ignored');
  t.equal(sft.tokens, trained, 'the model counts the trained targets');
  const comp = await gradOf(model, batch.inputs, complement, 2);
  const all = await gradOf(model, batch.inputs, full, 2);
  let num = 0;
  let den = 0;
  let compNorm = 0;
  for (let i = 0; i < all.grad.length; i++) {
    num += (all.grad[i] - sft.grad[i] - comp.grad[i]) ** 2;
    den += all.grad[i] ** 2;
    compNorm += comp.grad[i] ** 2;
  }
  t.ok(compNorm > 1e-3 * den, 'the non-assistant targets would carry a gradient of their own');
  t.ok(Math.sqrt(num / den) < 1e-5, `full = assistant + non-assistant parts (relative error ${Math.sqrt(num / den).toExponential(2)})`);

  // A row whose targets are all ignored contributes exactly nothing, whatever its tokens.
  const withRow = (ids: ArrayLike<number>, targets: ArrayLike<number>) => {
    const i = new Int32Array(2 * SEQ);
    const tg = new Int32Array(2 * SEQ);
    i.set(batch.inputs.subarray(0, SEQ));
    tg.set(batch.targets.subarray(0, SEQ));
    i.set(ids, SEQ);
    tg.set(targets, SEQ);
    return [i, tg] as const;
  };
  const ignored = new Int32Array(SEQ).fill(IGNORE_INDEX);
  const a = await gradOf(model, ...withRow(new Int32Array(SEQ).fill(tok.eosId), ignored), 2);
  const b = await gradOf(model, ...withRow(Int32Array.from({ length: SEQ }, (_, i) => (i * 37 + 11) % 256), ignored), 2);
  const c = await gradOf(model, ...withRow(batch.inputs.subarray(SEQ), ignored), 2);
  t.ok(bitsEqual(a.grad, b.grad) && bitsEqual(a.grad, c.grad), 'padding, random tokens or user text in an ignored row: the same gradient, bit for bit');
  const zero = await gradOf(model, batch.inputs, new Int32Array(2 * SEQ).fill(IGNORE_INDEX), 2);
  t.ok(zero.grad.every((g) => g === 0), 'a batch without trained targets has an exactly zero gradient');
  t.same([zero.lossSum, zero.tokens], [0, 0]);
});

t.test('the loss is per trained token of the global batch: accumulation does not change it', async (t) => {
  const init = await pretrained;
  const first = async (name: string, batch: Record<string, unknown>) => {
    const tr = await Trainer.create(sftConfig(path.join(dir, name), init, { batch }), { progress: false });
    // the loss of the step, recomputed: the same batches from a loader of the same items and seed, scored by the initial weights
    const twin = new ChatLoader({ items: [...tr.loader.items as ChatItem[]], seqLen: SEQ, batchSize: tr.plan.microBatchSize * tr.plan.accumulationSteps, seed: 11, vocabSize: tok.vocabSize, eosId: tok.eosId });
    const all = twin.next();
    const rows = tr.plan.microBatchSize * tr.plan.accumulationSteps;
    const e = await tr.model.evaluate(all.inputs, all.targets, rows, SEQ);
    // the mean gradient over the trained tokens of the whole batch (the step zeroes the gradients first)
    const g = await gradOf(tr.model, all.inputs, all.targets, rows, 1 / e.tokens);
    const norm = Math.sqrt(g.grad.reduce((a, x) => a + x * x, 0));
    const m = await tr.step();
    tr.dispose();
    return { m, expected: e.lossSum / e.tokens, trained: e.tokens, norm };
  };
  const acc = await first('acc2', { seqLen: SEQ, microBatchSize: 2, globalBatchTokens: 4 * SEQ });
  const one = await first('acc1', { seqLen: SEQ, microBatchSize: 4, globalBatchTokens: 4 * SEQ });
  t.ok(Math.abs(acc.m.loss - acc.expected) < 1e-5 * acc.expected, `loss ${acc.m.loss} = summed loss / ${acc.trained} trained tokens (${acc.expected})`);
  t.ok(Math.abs(acc.m.loss - one.m.loss) < 1e-5 * one.m.loss, `2 x 2 accumulated: loss ${acc.m.loss}, 4 x 1: ${one.m.loss}`);
  t.ok(Math.abs(acc.m.gradNorm - acc.norm) < 1e-4 * acc.norm, `gradient norm ${acc.m.gradNorm}: that of the summed loss / ${acc.trained} (${acc.norm})`);
  t.ok(Math.abs(acc.m.gradNorm - one.m.gradNorm) < 1e-4 * one.m.gradNorm, `gradient norm ${acc.m.gradNorm} vs ${one.m.gradNorm}`);
});

t.test('an SFT run starts from the pretrained weights and tokenizer, records it, evaluates, and resumes bit-identically', async (t) => {
  const init = await pretrained;
  const straightDir = path.join(dir, 'straight');
  const a = await Trainer.create(sftConfig(straightDir, init), { progress: false });
  const w = a.model.params.like('f32');
  loadModelWeights(init, w);
  t.ok(bitsEqual(await a.model.params.buffer.toFloat32(), await w.buffer.toFloat32()), "the run starts from model.init's weights");
  w.dispose();
  t.same(a.data.tokenizer, { kind: 'hf', path: path.join(init, 'tokenizer.json') }, "model.init's tokenizer");
  const lossesA: number[] = [];
  while (!a.done) lossesA.push((await a.step()).loss);
  const pa = await a.model.params.buffer.toFloat32();
  const ckA = a.saveCheckpoint();
  a.dispose();
  t.ok(lossesA.every(Number.isFinite));
  t.same(checkpointTokenizer(ckA), { kind: 'hf', path: path.join(ckA, 'tokenizer.json') }, 'the SFT checkpoint records the tokenizer');
  const state = JSON.parse(fs.readFileSync(path.join(ckA, 'trainer_state.json'), 'utf8'));
  t.match(state.loader, { version: 3, kind: 'chat', seqLen: SEQ, pack: true }, 'the checkpoint holds the chat loader state');

  for (const precision of ['fp32', 'bf16'] as const) {
    const cfg = (runDir: string) => sftConfig(runDir, init, { model: { ...MODEL, precision, init } });
    const straight = await Trainer.create(cfg(path.join(dir, `straight-${precision}`)), { progress: false });
    const lossesS: number[] = [];
    while (!straight.done) lossesS.push((await straight.step()).loss);
    const ps = await straight.model.params.buffer.toFloat32();
    straight.dispose();
    if (precision === 'fp32') t.ok(bitsEqual(ps, pa) && lossesS.every((l, i) => l === lossesA[i]), 'the same run again: the same losses and weights');
    const splitDir = path.join(dir, `split-${precision}`);
    const b = await Trainer.create(cfg(splitDir), { progress: false });
    const lossesB: number[] = [];
    for (let i = 0; i < 3; i++) lossesB.push((await b.step()).loss);
    b.saveCheckpoint();
    b.dispose();
    const c = await Trainer.create(cfg(splitDir), { progress: false });
    t.equal(c.stepsDone, 3, `${precision}: resumed at step 3`);
    while (!c.done) lossesB.push((await c.step()).loss);
    t.same(lossesB, lossesS, `${precision}: losses bit-identical to the uninterrupted run`);
    t.ok(bitsEqual(await c.model.params.buffer.toFloat32(), ps), `${precision}: weights bit-identical`);
    c.dispose();
  }

  const splitDir = path.join(dir, 'split-fp32');
  await t.rejects(Trainer.create(sftConfig(splitDir, init, { data: { chat: { train: [CHATS], system: 'Other' } } }), { progress: false }), /the state is for other conversations/, 'resuming with another template is refused');

  const evalDir = path.join(dir, 'eval');
  const e = await Trainer.create(sftConfig(evalDir, init, { steps: 2, eval: { every: 1, batches: 2 }, data: { chat: { train: [CHATS], system: 'Sys', validationFraction: 0.25 } } }), { progress: false });
  const r = await e.fit();
  e.dispose();
  t.ok(r.eval && Number.isFinite(r.eval.losses.chat), `validation loss on the held-out conversations: ${r.eval?.losses.chat}`);
  const plan = JSON.parse(fs.readFileSync(path.join(evalDir, 'metrics.jsonl'), 'utf8').split('\n')[0]);
  t.match(plan.chat, { train: { conversations: 30 }, validation: { conversations: 10 } }, 'the plan records the conversations (40, a quarter held out)');
});

t.test('two ranks (in one process) train the chat batches of one rank with twice the accumulation', async (t) => {
  const init = await pretrained;
  const run = async (comms: Communicator[], name: string, microBatchSize: number) => {
    const cfg = sftConfig(path.join(dir, name), init, {
      batch: { seqLen: SEQ, microBatchSize, globalBatchTokens: 4 * SEQ },
      steps: 4,
      eval: { every: 2, batches: 2 },
      data: { chat: { train: [CHATS], system: 'Sys', validationFraction: 0.25 } },
    });
    const trainers = await Promise.all(comms.map((c) => Trainer.fromConfig(cfg, { communicator: c })));
    const steps: StepMetrics[][] = trainers.map(() => []);
    trainers.forEach((tr, r) => tr.on('step', (m) => steps[r].push(m)));
    const fits = await Promise.all(trainers.map((tr) => tr.fit()));
    const weights = await Promise.all(trainers.map((tr) => tr.model.params.buffer.toFloat32()));
    for (const tr of trainers) tr.dispose();
    return { steps, fits, weights };
  };
  const one = await run([new WorldOfOne()], 'ranks-one', 2);
  const two = await run(localWorld(2), 'ranks-two', 2);
  t.ok(bitsEqual(two.weights[0], two.weights[1]), 'both ranks hold the same weights');
  t.equal(two.steps[0][0].loss, one.steps[0][0].loss, 'step 1: the same loss, exactly (the same rows, normalised by the same trained tokens)');
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
  t.ok(two.steps[0].every((m, i) => rel(m.loss, one.steps[0][i].loss) < 1e-5 && rel(m.gradNorm, one.steps[0][i].gradNorm) < 1e-5), 'every step within 1e-5');
  t.ok(rel(two.fits[0].eval!.losses.chat, one.fits[0].eval!.losses.chat) < 1e-5, 'the validation loss over two ranks is one rank\'s');
});

t.test('data.chat config: contradictions, the tokenizer, the held-out split', async (t) => {
  const init = await pretrained;
  t.throws(() => resolveTrainConfig({ data: { train: ['x.bin'], chat: { train: [CHATS] } } }), /'data\.chat\.train' \(instruction tuning\) and 'data\.train' \(token shards\) both name data/);
  t.throws(() => resolveTrainConfig({ data: { chat: { validationFraction: 0.1 } } }), /'data\.chat\.validationFraction' needs 'data\.chat\.train'/);
  t.throws(() => resolveTrainConfig({ data: { chat: { train: [CHATS], validation: CHATS, validationFraction: 0.1 } } }), /give one/);
  t.throws(() => resolveTrainConfig({ data: { chat: { train: [CHATS], overflow: 'drop' } } }), /'data\.chat\.overflow' must be 'split' or 'truncate', got "drop"/);
  t.same(chatTokenizerSpec(resolveTrainConfig({ data: { chat: { train: [CHATS], tokenizer: 'gpt2' } } })), { kind: 'gpt2' });
  t.same(chatTokenizerSpec(resolveTrainConfig({ model: { init }, data: { chat: { train: [CHATS] } } })), { kind: 'hf', path: path.join(init, 'tokenizer.json') });
  t.throws(() => chatTokenizerSpec(resolveTrainConfig({ data: { chat: { train: [CHATS] } } })), /'data\.chat' needs a tokenizer for its template/);
  const bare = path.join(dir, 'bare-init');
  fs.mkdirSync(bare, { recursive: true });
  t.throws(() => chatTokenizerSpec(resolveTrainConfig({ model: { init: bare }, data: { chat: { train: [CHATS] } } })), /records no tokenizer; set 'data\.chat\.tokenizer'/);
  await t.rejects(Trainer.create(sftConfig(path.join(dir, 'big-vocab'), init, { model: { ...MODEL, overrides: { nLayers: 1 }, init } }), { progress: false }), /the chat tokenizer's vocab size 257 exceeds the model's vocabSize 256/);
  const xs = Array.from({ length: 20 }, (_, i) => i);
  const s = splitChatValidation(xs, 0.25);
  t.equal(s.validation.length, 5);
  t.same([...s.train, ...s.validation].sort((a, b) => a - b), xs, 'a partition');
  t.same(splitChatValidation(xs, 0.25), s, 'fixed');
  t.equal(splitChatValidation([1, 2], 0.01).validation.length, 1, 'at least one held out');
});

t.test('pajama sft: --from a run directory, and its usage errors', async (t) => {
  const init = await pretrained;
  const runDir = path.join(dir, 'cli');
  const cfg = sftConfig(runDir, init, { steps: 2 });
  delete (cfg.model as Record<string, unknown>).init;
  const file = path.join(dir, 'sft.json');
  fs.writeFileSync(file, JSON.stringify(cfg));
  const noInit = await runCli(['sft', '--config', file]);
  t.equal(noInit.code, 2);
  t.match(noInit.err, /give --from CHECKPOINT or 'model\.init'/);
  const shards = path.join(dir, 'shards.json');
  fs.writeFileSync(shards, JSON.stringify({ ...cfg, data: { train: [path.join(dir, 'pretrain.bin')] } }));
  const noChat = await runCli(['sft', '--config', shards, '--from', init]);
  t.equal(noChat.code, 2);
  t.match(noChat.err, /names no conversations in 'data\.chat\.train'/);
  const r = await runCli(['sft', '--config', file, '--from', path.join(dir, 'pretrain')]);
  t.equal(r.code, 0, r.err);
  const ckpt = path.join(runDir, 'checkpoints');
  t.ok(fs.existsSync(path.join(ckpt, 'latest')) || fs.readdirSync(ckpt).length > 0, 'a checkpoint is written');
  const state = JSON.parse(fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').split('\n')[0]);
  t.equal(state.type, 'plan');
  t.equal(state.chat.train.conversations, 40);
});
