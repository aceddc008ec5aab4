// pajama eval end to end, in-process: a tiny checkpoint trained here, scored with --limit on the example task
// set shipped in examples/tasks (the default --data), the tables printed, results.json and results.md written
// into <run>/eval/step-N/, --json on stdout, --out, --tasks; and the usage and data errors.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from '../helpers/cli-run';
import { tinyConfig, writeTinyShard } from '../helpers/tiny-run';
import { percent, type EvalReport } from '../../lib/eval/report';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-eval-cli-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const runDir = path.join(dir, 'run');
const shard = writeTinyShard(path.join(dir, 'train.bin'), 40, 3);
const cfgFile = path.join(dir, 'train.json');
// A GPT-2-sized vocabulary (the tokenizer must fit the model), 1 layer, 3 steps (one per PTWD stage): a checkpoint in seconds.
fs.writeFileSync(
  cfgFile,
  JSON.stringify(tinyConfig(runDir, shard, { model: { preset: 'tiny', precision: 'fp32', overrides: { nLayers: 1, vocabSize: 50304, realVocabSize: 50257 } }, steps: 3 })),
);

t.test('usage and data errors, before any model is loaded', async (t) => {
  let r = await runCli(['eval']);
  t.equal(r.code, 2);
  t.match(r.err, /--checkpoint DIR is required/);
  r = await runCli(['eval', '--checkpoint', runDir, '--tasks', 'arc_challenge,winogrande,gsm8k']);
  t.equal(r.code, 2);
  t.match(r.err, "--tasks: unknown tasks 'winogrande', 'gsm8k' (tasks: arc_challenge, hellaswag, mmlu, truthfulqa_mc2)");
  r = await runCli(['eval', '--checkpoint', runDir, '--tasks', 'mmlu,mmlu']);
  t.match(r.err, "--tasks: 'mmlu' is listed twice");
  r = await runCli(['eval', '--checkpoint', runDir, '--limit', '0']);
  t.equal(r.code, 2);
  t.match(r.err, '--limit must be a positive integer, got 0');
  r = await runCli(['eval', '--checkpoint', runDir, '--batch-tokens', '2.5']);
  t.match(r.err, '--batch-tokens must be a positive integer, got 2.5');
  const empty = path.join(dir, 'empty-data');
  fs.mkdirSync(empty);
  r = await runCli(['eval', '--checkpoint', runDir, '--data', empty, '--tasks', 'hellaswag']);
  t.equal(r.code, 1);
  t.match(r.err, `task hellaswag: no data directory for it in ${empty} (looked for hellaswag/;`);
  fs.mkdirSync(path.join(empty, 'truthfulqa_mc2'));
  r = await runCli(['eval', '--checkpoint', runDir, '--data', empty, '--tasks', 'truthfulqa_mc2']);
  t.match(r.err, `task truthfulqa_mc2: no 'validation' split in ${path.join(empty, 'truthfulqa_mc2')} (looked for validation.{parquet,jsonl,json} or validation-*.{parquet,jsonl,json}`);
});

t.test('a tiny checkpoint scored on the shipped example tasks with --limit', async (t) => {
  let r = await runCli(['train', '--config', cfgFile]);
  t.equal(r.code, 0, r.err);

  r = await runCli(['eval', '--checkpoint', runDir, '--limit', '3', '--tokenizer', 'gpt2']);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /no --data: the example task set shipped in .*examples\/tasks/);
  t.match(r.out, 'Model       Average  ARC (25-shot, acc_norm)  HellaSwag (10-shot, acc_norm)  MMLU (5-shot, acc)  TruthfulQA (0-shot, mc2)');
  t.match(r.out, 'Average: the mean over all four tasks, as the leaderboard averages. Scores in percent.');
  t.match(r.out, '\nMMLU by subject\n');
  const outDir = path.join(runDir, 'eval', 'step-000003');
  t.match(r.out, `pajama eval: ${path.join(outDir, 'results.json')} and ${path.join(outDir, 'results.md')}`);
  const report = JSON.parse(fs.readFileSync(path.join(outDir, 'results.json'), 'utf8')) as EvalReport;
  t.same(report.tasks, ['arc_challenge', 'hellaswag', 'mmlu', 'truthfulqa_mc2']);
  t.same(report.model.step, 3);
  t.equal(report.model.label, 'run step 3');
  t.equal(report.model.tokenizer, 'gpt2');
  t.equal(report.settings.limit, 3);
  t.same(report.settings.numFewshot, { arc_challenge: 25, hellaswag: 10, mmlu: 5, truthfulqa_mc2: 0 });
  t.same(report.results.map((x) => x.task), report.tasks);
  const row = r.out.split('\n').find((l) => /^run step 3 {2,}\d/.test(l))!;
  t.ok(row, 'the Table 13 row of the checkpoint');
  const cells = row.split(/\s{2,}/);
  for (const [i, res] of report.results.entries()) {
    t.ok(res.primary.value >= 0 && res.primary.value <= 1, `${res.task}: ${res.primary.metric} ${res.primary.value} in [0, 1]`);
    t.equal(cells[2 + i], percent(res.primary.value), `${res.task}: the table shows the result`);
    t.ok(res.docs > 0);
  }
  t.equal(cells[1], percent(report.results.reduce((a, x) => a + x.primary.value, 0) / 4), 'Average: the mean of the four');
  const mmlu = report.results.find((x) => x.task === 'mmlu')!;
  t.same(mmlu.subjects!.map((s) => s.subject), ['astronomy', 'computer_security', 'elementary_mathematics', 'high_school_geography']);
  const md = fs.readFileSync(path.join(outDir, 'results.md'), 'utf8');
  t.match(md, '| Model | Average | ARC (25-shot, acc_norm) |');
  t.match(md, '| Subject | Docs | Acc |');

  // --json: the report on stdout, the tables on stderr; --out elsewhere; --tasks one task; the same scores.
  const out2 = path.join(dir, 'out2');
  r = await runCli(['eval', '--checkpoint', path.join(runDir, 'checkpoints', 'step-000003'), '--tasks', 'mmlu', '--limit', '3', '--tokenizer', 'gpt2', '--json', '--out', out2]);
  t.equal(r.code, 0, r.err);
  const json = JSON.parse(r.out) as EvalReport;
  t.same(json.tasks, ['mmlu']);
  t.same(json.results, [mmlu], 'scoring is deterministic: the same MMLU result');
  t.match(r.err, 'Average: the mean over the task run (MMLU). Scores in percent.');
  t.same(JSON.parse(fs.readFileSync(path.join(out2, 'results.json'), 'utf8')), json);

  // A checkpoint outside a run directory needs --out.
  const loose = path.join(dir, 'loose');
  fs.cpSync(path.join(runDir, 'checkpoints', 'step-000003'), loose, { recursive: true });
  r = await runCli(['eval', '--checkpoint', loose, '--tasks', 'truthfulqa_mc2', '--limit', '1', '--tokenizer', 'gpt2']);
  t.equal(r.code, 2);
  t.match(r.err, `--out DIR is required: ${loose} is not inside a run directory`);
});
