// The pajama CLI in-process: options are validated, tokenize writes a shard, train runs a tiny config and
// resumes, info reports the backend.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openShard } from '../../lib/data/shard';
import { runCli } from '../helpers/cli-run';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-cli-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const run = runCli;

t.test('usage errors exit 2 with a precise message', async (t) => {
  let r = await run([]);
  t.equal(r.code, 2);
  t.match(r.out, /commands:/);
  r = await run(['frobnicate']);
  t.equal(r.code, 2);
  t.match(r.err, /unknown command 'frobnicate'/);
  r = await run(['train', '--bogus', '1']);
  t.equal(r.code, 2);
  t.match(r.err, /unknown option --bogus/);
  r = await run(['train']);
  t.equal(r.code, 2);
  t.match(r.err, /--config FILE.json is required/);
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, '{"optimizer": {"lr": "fast"}}');
  r = await run(['train', '--config', bad]);
  t.equal(r.code, 2);
  t.match(r.err, /'optimizer.lr' must be a positive number, got "fast"/);
  r = await run(['train', '--config', bad, '--set', 'optimizer.lr=1e-3', '--set', 'model.overrides.nLayerz=3']);
  t.match(r.err, /unknown key 'nLayerz'/);
  r = await run(['tokenize', '--out']);
  t.match(r.err, /--out needs a value/);
});

t.test('info prints the backend', async (t) => {
  const r = await run(['info', '--json']);
  t.equal(r.code, 0);
  const info = JSON.parse(r.out);
  t.type(info.cpu.activeIsa, 'string');
  const plain = await run(['info']);
  t.match(plain.out, /gemm +/);
});

t.test('tokenize then train a tiny model, then resume', async (t) => {
  const text = path.join(dir, 'text');
  fs.mkdirSync(text);
  const para = 'The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step.\n';
  fs.writeFileSync(path.join(text, 'a.txt'), para.repeat(60));
  fs.writeFileSync(path.join(text, 'b.jsonl'), [JSON.stringify({ text: para.repeat(20) }), '{broken', JSON.stringify({ text: para })].join('\n'));
  const shard = path.join(dir, 'train.bin');
  let r = await run(['tokenize', '--out', shard, text]);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /3 documents/);
  t.match(r.out, /skipped .*b\.jsonl:2/);
  const s = openShard(shard);
  t.ok(s.tokenCount > 1000);
  s.close();
  const cfg = path.join(dir, 'train.json');
  const runDir = path.join(dir, 'run');
  fs.writeFileSync(
    cfg,
    JSON.stringify({
      model: { preset: 'tiny', overrides: { vocabSize: 50304, realVocabSize: 50257 }, precision: 'bf16' },
      batch: { seqLen: 32, microBatchSize: 2 },
      optimizer: { lr: 1e-3, warmupSteps: 1 },
      steps: 4,
      data: { train: [shard], validation: { text: shard } },
      eval: { batches: 1 },
      runDir,
      peakFlops: 1e11,
    }),
  );
  r = await run(['train', '--config', cfg, '--set', 'steps=3']);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /done at step 3/);
  t.match(r.out, /eval @ step 3: text \d/);
  r = await run(['train', '--config', cfg]);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /resumed at step 3/);
  t.match(r.out, /done at step 4/);
  t.ok(fs.existsSync(path.join(runDir, 'checkpoints', 'step-000004', 'model.safetensors')));
});

t.test('demo: the embedded default runs end to end and writes its files', async (t) => {
  const runDir = path.join(dir, 'demo');
  const r = await run(['demo', '--steps', '3', '--run-dir', runDir]);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /scan: running[\s\S]*dedup: running[\s\S]*tokenize: running/, 'the demo corpus goes through the data pipeline');
  t.match(r.out, /moby-dick +139 +[\d.]+ /, 'a report row per source');
  t.match(r.out, /mixture over \d+ tokens[\s\S]*moby-dick +40\.00%/, 'the mixture plan');
  t.match(r.out, /eval @ step 3: code [\d.]+, moby-dick [\d.]+, sotu [\d.]+/, 'validation loss per source');
  t.match(r.out, /sample from .*\n +"Call me Ishmael\./);
  const train = path.join(runDir, 'train');
  t.ok(fs.existsSync(path.join(train, 'loss.svg')), 'loss curve');
  t.ok(fs.existsSync(path.join(train, 'metrics.jsonl')), 'metrics');
  t.ok(fs.existsSync(path.join(train, 'checkpoints', 'step-000003', 'model.safetensors')), 'checkpoint');
  // The last stage: pajama sft on the conversations the demo writes, a chat reply, pajama eval before and after.
  t.match(r.out, /instruction tuning \(pajama sft\) from \S+step-000003 on 27 ShareGPT conversations/);
  t.match(r.out, /eval @ step 3: chat [\d.]+/, 'validation loss on held-out conversations');
  t.match(r.out, /USER: Who is the captain of the Pequod\?\n +ASSISTANT:/, 'a chat reply from the tuned model');
  t.match(r.out, /Table 13 layout[\s\S]*\npretrained +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d\ninstruction-tuned +\d+\.\d\d/, 'both models in the Table 13 layout');
  t.match(r.out, /Table 9 layout[\s\S]*astronomy +8 +\d+\.\d\d +\d+\.\d\d/, 'MMLU per subject for both');
  for (const run of ['train', 'sft']) {
    const results = JSON.parse(fs.readFileSync(path.join(runDir, run, 'eval', 'step-000003', 'results.json'), 'utf8'));
    t.same(results.results.map((x: { task: string }) => x.task), ['arc_challenge', 'hellaswag', 'mmlu', 'truthfulqa_mc2'], `${run}: results.json`);
  }
  t.ok(fs.existsSync(path.join(runDir, 'sft', 'checkpoints', 'step-000003', 'tokenizer_config.json')), 'the tuned checkpoint records its tokenizer');
  const gen = await run(['generate', '--checkpoint', train, '--prompt', 'Whale', '--max-tokens', '5']);
  t.equal(gen.code, 0, gen.err);
  t.match(gen.out, /^Whale/);
  const bad = await run(['generate', '--checkpoint', path.join(dir, 'nowhere'), '--prompt', 'x']);
  t.equal(bad.code, 2);
  t.match(bad.err, /neither a checkpoint directory nor a run directory/);
});

t.test('prepare and dedup: jsonl shards to a manifest, then training on it with a preset-free mixture', async (t) => {
  const raw = path.join(dir, 'prep', 'raw');
  fs.mkdirSync(raw, { recursive: true });
  const words = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu'.split(' ');
  let k = 1;
  const doc = () => Array.from({ length: 120 }, () => words[(k = (k * 48271) % 2147483647) % words.length] + (k % 97)).join(' ');
  const lines = (source: string, n: number) => Array.from({ length: n }, () => JSON.stringify({ text: doc(), meta: { redpajama_set_name: source } }));
  const a = lines('RedPajamaC4', 40);
  fs.writeFileSync(path.join(raw, 'a.jsonl'), [...a, a[0], 'not json'].join('\n') + '\n');
  fs.writeFileSync(path.join(raw, 'b.jsonl'), lines('RedPajamaWikipedia', 30).join('\n') + '\n');
  const cfg = path.join(dir, 'prep', 'data.json');
  fs.writeFileSync(cfg, JSON.stringify({ inputs: ['raw'], output: 'out', split: { validation: 0.1, minValidationDocuments: 2 }, workers: 1 }));
  const d = await run(['dedup', '--config', cfg]);
  t.equal(d.code, 0, d.err);
  t.match(d.out, /RedPajamaC4 +41 /, 'the dedup report');
  t.match(d.out, /malformed .*a\.jsonl:42/, 'the malformed line, with file and line');
  t.match(d.out, /dedup-report\.json/);
  const p = await run(['prepare', '--config', cfg]);
  t.equal(p.code, 0, p.err);
  t.match(p.out, /scan: done .*skipped/, 'prepare resumes after dedup');
  t.match(p.out, /tokenize: running/);
  t.match(p.out, /total +71 /);
  const manifest = path.join(dir, 'prep', 'out', 'manifest.json');
  t.ok(fs.existsSync(manifest));
  const bad = await run(['prepare', '--config', cfg, '--set', 'dedup.mode=fuzzy']);
  t.equal(bad.code, 2);
  t.match(bad.err, /'dedup.mode' must be one of global, local, none/);
  const usage = await run(['dedup', path.join(dir, 'prep', 'raw')]);
  t.equal(usage.code, 2);
  t.match(usage.err, /--output DIR is required/);
  const train = path.join(dir, 'prep', 'train.json');
  fs.writeFileSync(
    train,
    JSON.stringify({
      model: { preset: 'tiny', overrides: { dModel: 32, nHeads: 2, nLayers: 1, maxSeqLen: 32, vocabSize: 50304, realVocabSize: 50257 }, precision: 'fp32' },
      batch: { seqLen: 32, microBatchSize: 2 },
      optimizer: { warmupSteps: 1 },
      steps: 3,
      data: { manifest, mixture: { RedPajamaC4: 0.7, RedPajamaWikipedia: 0.3 } },
      eval: { every: 0, batches: 1 },
      runDir: path.join(dir, 'prep', 'run'),
    }),
  );
  const tr = await run(['train', '--config', train]);
  t.equal(tr.code, 0, tr.err);
  t.match(tr.out, /RedPajamaC4 +70\.00%/);
  t.match(tr.out, /eval @ step 3: RedPajamaC4 [\d.]+, RedPajamaWikipedia [\d.]+/);
});
