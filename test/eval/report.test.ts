// The eval report: Table 13's layout (Average over the tasks run, each task's leaderboard metric in percent
// with two decimals, "-" for a task not run), Table 9's per-subject MMLU table, the metrics table, Markdown and
// aligned text, and results.json / results.md on disk; all against strings written out by hand.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  formatTable,
  leaderboardAverage,
  leaderboardTable,
  metricsTable,
  mmluSubjectTable,
  percent,
  reportMarkdown,
  reportText,
  writeEvalReport,
  type EvalReport,
} from '../../lib/eval/report';
import type { TaskResult } from '../../lib/eval/harness';

const ARC: TaskResult = {
  task: 'arc_challenge',
  numFewshot: 25,
  docs: 30,
  metrics: { acc: 9 / 30, acc_norm: 11 / 30 },
  stderr: { acc: 0.0851, acc_norm: 0.0894 },
  primary: { metric: 'acc_norm', value: 11 / 30 },
};
const MMLU: TaskResult = {
  task: 'mmlu',
  numFewshot: 5,
  docs: 16,
  metrics: { acc: (2 / 8 + 3 / 8) / 2 },
  stderr: { acc: 0.119 },
  primary: { metric: 'acc', value: (2 / 8 + 3 / 8) / 2 },
  subjects: [
    { subject: 'astronomy', docs: 8, acc: 2 / 8 },
    { subject: 'computer_security', docs: 8, acc: 3 / 8 },
  ],
};
const HS: TaskResult = { task: 'hellaswag', numFewshot: 10, docs: 20, metrics: { acc: 0.25, acc_norm: 0.3 }, stderr: { acc: 0.1, acc_norm: 0.105 }, primary: { metric: 'acc_norm', value: 0.3 } };
const TQA: TaskResult = { task: 'truthfulqa_mc2', numFewshot: 0, docs: 12, metrics: { mc2: 0.456789 }, stderr: { mc2: 0.05 }, primary: { metric: 'mc2', value: 0.456789 } };

t.test('percent and the average over the tasks run', async (t) => {
  t.equal(percent(11 / 30), '36.67');
  t.equal(percent(0.3125), '31.25');
  t.equal(percent(1), '100.00');
  t.equal(percent(0), '0.00');
  const avg = leaderboardAverage([MMLU, ARC]);
  t.same(avg.tasks, ['arc_challenge', 'mmlu'], 'in the table order, not the order given');
  t.equal(avg.value, (11 / 30 + 0.3125) / 2);
  t.ok(Number.isNaN(leaderboardAverage([]).value));
});

t.test("Table 13's layout: two tasks of four run", async (t) => {
  const rows = [{ label: 'demo step 150', results: [ARC, MMLU] }];
  t.equal(
    leaderboardTable(rows, 'text'),
    [
      'Model          Average  ARC (25-shot, acc_norm)  HellaSwag (10-shot, acc_norm)  MMLU (5-shot, acc)  TruthfulQA (0-shot, mc2)',
      '-------------  -------  -----------------------  -----------------------------  ------------------  ------------------------',
      'demo step 150    33.96                    36.67                              -               31.25                         -',
      '',
      'Average: the mean over the 2 tasks run (ARC, MMLU). Scores in percent.',
    ].join('\n'),
  );
  t.equal(
    leaderboardTable(rows, 'markdown'),
    [
      '| Model | Average | ARC (25-shot, acc_norm) | HellaSwag (10-shot, acc_norm) | MMLU (5-shot, acc) | TruthfulQA (0-shot, mc2) |',
      '|:---|---:|---:|---:|---:|---:|',
      '| demo step 150 | 33.96 | 36.67 | - | 31.25 | - |',
      '',
      'Average: the mean over the 2 tasks run (ARC, MMLU). Scores in percent.',
    ].join('\n'),
  );
});

t.test("Table 13's layout: two models, all four tasks for one of them", async (t) => {
  const rows = [
    { label: 'base', results: [ARC, HS, MMLU, TQA] },
    { label: 'sft | chat', results: [TQA] },
  ];
  // base: (36.666.. + 30 + 31.25 + 45.6789) / 4 = 35.8989...
  t.equal(
    leaderboardTable(rows, 'markdown'),
    [
      '| Model | Average | ARC (25-shot, acc_norm) | HellaSwag (10-shot, acc_norm) | MMLU (5-shot, acc) | TruthfulQA (0-shot, mc2) |',
      '|:---|---:|---:|---:|---:|---:|',
      '| base | 35.90 | 36.67 | 30.00 | 31.25 | 45.68 |',
      '| sft \\| chat | 45.68 | - | - | - | 45.68 |',
      '',
      'Average: the mean over all four tasks, as the leaderboard averages; or the task run (TruthfulQA). Scores in percent.',
    ].join('\n'),
  );
  t.throws(() => leaderboardTable([{ label: 'x', results: [{ ...ARC, task: 'winogrande' as 'mmlu' }] }], 'text'), /leaderboardTable: row 0 \(x\): unknown task "winogrande"/);
});

t.test("Table 9's layout: MMLU per subject, and the metrics table", async (t) => {
  t.equal(
    mmluSubjectTable([{ label: 'm', results: [ARC, MMLU] }], 'text'),
    [
      'Subject               Docs    Acc',
      '--------------------  ----  -----',
      'astronomy                8  25.00',
      'computer security        8  37.50',
      'Average (2 subjects)    16  31.25',
    ].join('\n'),
  );
  t.equal(mmluSubjectTable([{ label: 'm', results: [ARC] }], 'text'), null, 'no MMLU, no table');
  const other: TaskResult = { ...MMLU, metrics: { acc: 0.5 }, primary: { metric: 'acc', value: 0.5 }, subjects: [{ subject: 'astronomy', docs: 8, acc: 0.5 }] };
  t.equal(
    mmluSubjectTable([{ label: 'a', results: [MMLU] }, { label: 'b', results: [other] }], 'markdown'),
    ['| Subject | Docs | a | b |', '|:---|---:|---:|---:|', '| astronomy | 8 | 25.00 | 50.00 |', '| computer security | 8 | 37.50 | - |', '| Average (2 subjects) | 16 | 31.25 | 50.00 |'].join('\n'),
  );
  t.equal(
    metricsTable([MMLU, ARC, TQA], 'text'),
    [
      'Task            Shots  Docs  Metric    Value  Stderr',
      '--------------  -----  ----  --------  -----  ------',
      'arc_challenge      25    30  acc       30.00    8.51',
      'arc_challenge      25    30  acc_norm  36.67    8.94',
      'mmlu                5    16  acc       31.25   11.90',
      'truthfulqa_mc2      0    12  mc2       45.68    5.00',
    ].join('\n'),
  );
  t.match(metricsTable([{ ...TQA, docs: 1, stderr: { mc2: NaN } }], 'text'), /truthfulqa_mc2      0     1  mc2     45\.68     n\/a$/, 'no stderr of one document: n/a');
  t.equal(formatTable(['a', 'bb'], [['xyz', '1']], ['left', 'right'], 'text'), 'a    bb\n---  --\nxyz   1');
});

t.test('results.md, the terminal text and results.json', async (t) => {
  const report: EvalReport = {
    model: { label: 'demo step 150', checkpoint: 'runs/demo/train/checkpoints/step-000150', step: 150, tokenizer: 'gpt2', parameters: 16_000_000 },
    date: '2026-12-05T22:00:00.000Z',
    seconds: 12.34,
    settings: { limit: 8, numFewshot: { arc_challenge: 25, mmlu: 5 }, batchTokens: null, data: 'examples/tasks', files: { arc_challenge: 'a', mmlu: 'b' } },
    tasks: ['arc_challenge', 'mmlu'],
    results: [ARC, MMLU],
  };
  const md = reportMarkdown(report);
  t.equal(
    md.split('\n## ')[0],
    [
      '# Evaluation of demo step 150',
      '',
      '- Checkpoint: `runs/demo/train/checkpoints/step-000150` (step 150), 16.00M parameters',
      '- Tokenizer: gpt2',
      '- Settings: arc_challenge 25-shot, mmlu 5-shot; --limit 8; data examples/tasks',
      '- Date: 2026-12-05T22:00:00.000Z (12.3 s)',
      '',
    ].join('\n'),
  );
  t.match(md, "## Leaderboard tasks (the layout of the paper's Table 13)\n\n| Model | Average |");
  t.match(md, "## MMLU by subject (5-shot accuracy, the layout of the paper's Table 9)\n\n| Subject | Docs | Acc |\n|:---|---:|---:|\n| astronomy | 8 | 25.00 |");
  t.match(md, '## All metrics\n\n| Task | Shots | Docs | Metric | Value | Stderr |');
  const text = reportText(report);
  t.ok(text.startsWith('demo step 150: arc_challenge 25-shot, mmlu 5-shot; --limit 8; data examples/tasks\n\nModel          Average'));
  t.match(text, '\nMMLU by subject\nSubject               Docs    Acc\n');
  t.notMatch(reportText({ ...report, tasks: ['arc_challenge'], results: [ARC] }), /MMLU by subject/);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-report-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const files = writeEvalReport(dir, report);
  t.same(files, { json: path.join(dir, 'results.json'), markdown: path.join(dir, 'results.md') });
  t.same(JSON.parse(fs.readFileSync(files.json, 'utf8')), report);
  t.equal(fs.readFileSync(files.markdown, 'utf8'), md);
});
