// report.ts: the results of `pajama eval` as the paper shows them: its Table 13 layout (one row per model or
// checkpoint: Average, ARC 25-shot acc_norm, HellaSwag 10-shot acc_norm, MMLU 5-shot acc, TruthfulQA 0-shot
// mc2, in percent with two decimals; the average over the tasks that were run, said under the table), its
// Table 9 layout for MMLU per subject, and a per-task table of every metric with its standard error, as the
// evaluation harness prints. Each as Markdown (results.md) and as aligned text for the terminal; the whole
// report as JSON (results.json).
import * as path from 'node:path';
import { invalidArg } from '../core/errors';
import { writeTextAtomic } from '../core/atomic';
import { TASK_NAMES, type TaskName } from './tasks';
import type { TaskResult } from './harness';


/** The model evaluated. */
export interface EvalModelInfo {
  /** The row's name in the tables, e.g. "demo/train step 150". */
  label: string;
  /** The checkpoint directory. */
  checkpoint: string;
  /** The training step of the checkpoint (trainer_state.json), or null when it does not say. */
  step: number | null;
  /** The tokenizer used: 'gpt2' or the tokenizer.json path. */
  tokenizer: string;
  parameters: number;
}

export interface EvalSettings {
  /** --limit: at most this many documents per task, as evaluateTasks applies it; null: all. */
  limit: number | null;
  /** Few-shot examples per task. */
  numFewshot: Partial<Record<TaskName, number>>;
  /** --batch-tokens, or null for the default. */
  batchTokens: number | null;
  /** The task data directory. */
  data: string;
  /** Per task, the files read. */
  files: Partial<Record<TaskName, string>>;
}

/** results.json: one evaluation of one model. */
export interface EvalReport {
  model: EvalModelInfo;
  /** ISO 8601, UTC. */
  date: string;
  /** Wall-clock seconds of the scoring. */
  seconds: number;
  settings: EvalSettings;
  tasks: TaskName[];
  results: TaskResult[];
}

/** One row of the Table 13 layout: a model's results. */
export interface LeaderboardRow {
  label: string;
  results: readonly TaskResult[];
}

/** The paper's column names, by task. */
export const TASK_TITLES: Readonly<Record<TaskName, string>> = Object.freeze({
  arc_challenge: 'ARC',
  hellaswag: 'HellaSwag',
  mmlu: 'MMLU',
  truthfulqa_mc2: 'TruthfulQA',
});

/** The leaderboard's shots and metric per task: the column headings when a result does not say otherwise. */
const LEADERBOARD_SETTINGS: Readonly<Record<TaskName, { shots: number; metric: string }>> = {
  arc_challenge: { shots: 25, metric: 'acc_norm' },
  hellaswag: { shots: 10, metric: 'acc_norm' },
  mmlu: { shots: 5, metric: 'acc' },
  truthfulqa_mc2: { shots: 0, metric: 'mc2' },
};

type Align = 'left' | 'right';
type Format = 'markdown' | 'text';

/** A fraction in percent with two decimals: 0.27345 -> "27.35". */
export function percent(x: number): string {
  return Number.isFinite(x) ? (100 * x).toFixed(2) : String(x);
}

/** A table in Markdown (pipes, `---:` under numbers) or as aligned text (two spaces between columns). */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], align: readonly Align[], format: Format): string {
  if (format === 'markdown') {
    const esc = (s: string) => s.replace(/\|/g, '\\|');
    const line = (cells: readonly string[]) => `| ${cells.map(esc).join(' | ')} |`;
    return [line(header), `|${align.map((a) => (a === 'right' ? '---:' : ':---')).join('|')}|`, ...rows.map(line)].join('\n');
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (align[i] === 'right' ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function checkResult(r: TaskResult, where: string): void {
  if (!TASK_NAMES.includes(r.task)) throw invalidArg(`${where}: unknown task ${JSON.stringify(r.task)} (tasks: ${TASK_NAMES.join(', ')})`);
  if (typeof r.primary?.value !== 'number') throw invalidArg(`${where}: task ${r.task} has no primary metric value`);
}

/** A column heading: "ARC (25-shot, acc_norm)", from the results' shots and metric (the leaderboard's when none ran). */
function columnTitle(task: TaskName, rows: readonly LeaderboardRow[]): string {
  const r = rows.flatMap((row) => row.results).find((x) => x.task === task);
  const shots = r?.numFewshot ?? LEADERBOARD_SETTINGS[task].shots;
  const metric = r?.primary.metric ?? LEADERBOARD_SETTINGS[task].metric;
  return `${TASK_TITLES[task]} (${shots}-shot, ${metric})`;
}

/** The mean of a row's primary metrics over the tasks it ran, and those tasks. */
export function leaderboardAverage(results: readonly TaskResult[]): { value: number; tasks: TaskName[] } {
  const tasks = TASK_NAMES.filter((t) => results.some((r) => r.task === t));
  const values = tasks.map((t) => results.find((r) => r.task === t)!.primary.value);
  return { value: values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length, tasks };
}

/** What "Average" means under the table. */
function averageNote(rows: readonly LeaderboardRow[]): string {
  const sets = new Map<string, TaskName[]>();
  for (const row of rows) {
    const { tasks } = leaderboardAverage(row.results);
    sets.set(tasks.join(','), tasks);
  }
  const describe = (tasks: TaskName[]) =>
    tasks.length === TASK_NAMES.length ? 'all four tasks, as the leaderboard averages' : `the ${tasks.length === 1 ? 'task' : `${tasks.length} tasks`} run (${tasks.map((t) => TASK_TITLES[t]).join(', ')})`;
  const parts = [...sets.values()].map(describe);
  return `Average: the mean over ${parts.join('; or ')}. Scores in percent.`;
}

/**
 * The paper's Table 13 layout: one row per model, columns Average, ARC, HellaSwag, MMLU, TruthfulQA (each
 * task's primary metric in percent; "-" where a task was not run), with a line saying what Average covers.
 */
export function leaderboardTable(rows: readonly LeaderboardRow[], format: Format): string {
  rows.forEach((row, i) => row.results.forEach((r) => checkResult(r, `leaderboardTable: row ${i} (${row.label})`)));
  const header = ['Model', 'Average', ...TASK_NAMES.map((t) => columnTitle(t, rows))];
  const body = rows.map((row) => {
    const avg = leaderboardAverage(row.results);
    return [row.label, percent(avg.value), ...TASK_NAMES.map((t) => {
      const r = row.results.find((x) => x.task === t);
      return r ? percent(r.primary.value) : '-';
    })];
  });
  const table = formatTable(header, body, ['left', ...header.slice(1).map(() => 'right' as const)], format);
  return `${table}\n\n${averageNote(rows)}`;
}

/**
 * The paper's Table 9 layout for MMLU: one row per subject (sorted), its documents and accuracy in percent,
 * one accuracy column per model, and a last row with the mean over subjects (MMLU's acc). Null when no row
 * ran MMLU.
 */
export function mmluSubjectTable(rows: readonly LeaderboardRow[], format: Format): string | null {
  const mmlu = rows.map((row) => ({ label: row.label, r: row.results.find((x) => x.task === 'mmlu') })).filter((x) => x.r !== undefined);
  if (mmlu.length === 0) return null;
  const subjects = [...new Set(mmlu.flatMap((m) => (m.r!.subjects ?? []).map((s) => s.subject)))].sort();
  const single = mmlu.length === 1;
  const header = ['Subject', 'Docs', ...(single ? ['Acc'] : mmlu.map((m) => m.label))];
  const body = subjects.map((subject) => {
    const entries = mmlu.map((m) => m.r!.subjects?.find((s) => s.subject === subject));
    const docs = entries.find((e) => e !== undefined)!.docs;
    return [subject.replace(/_/g, ' '), String(docs), ...entries.map((e) => (e ? percent(e.acc) : '-'))];
  });
  body.push([`Average (${subjects.length} subjects)`, String(mmlu[0].r!.docs), ...mmlu.map((m) => percent(m.r!.metrics.acc ?? m.r!.primary.value))]);
  return formatTable(header, body, ['left', ...header.slice(1).map(() => 'right' as const)], format);
}

/** Every metric of every task with its standard error, as the evaluation harness lists them. */
export function metricsTable(results: readonly TaskResult[], format: Format): string {
  const body: string[][] = [];
  for (const t of TASK_NAMES) {
    const r = results.find((x) => x.task === t);
    if (!r) continue;
    for (const [metric, value] of Object.entries(r.metrics)) {
      const se = r.stderr[metric];
      body.push([t, String(r.numFewshot), String(r.docs), metric, percent(value), se === undefined || Number.isNaN(se) ? 'n/a' : percent(se)]);
    }
  }
  return formatTable(['Task', 'Shots', 'Docs', 'Metric', 'Value', 'Stderr'], body, ['left', 'right', 'right', 'left', 'right', 'right'], format);
}

function settingsLine(report: EvalReport): string {
  const s = report.settings;
  const shots = report.tasks.map((t) => `${t} ${s.numFewshot[t] ?? '?'}-shot`).join(', ');
  return `${shots}; ${s.limit === null ? 'all documents' : `--limit ${s.limit}`}; data ${s.data}`;
}

/** results.md: the model, the settings and the three tables. */
export function reportMarkdown(report: EvalReport): string {
  const row: LeaderboardRow = { label: report.model.label, results: report.results };
  const out = [
    `# Evaluation of ${report.model.label}`,
    '',
    `- Checkpoint: \`${report.model.checkpoint}\`${report.model.step === null ? '' : ` (step ${report.model.step})`}, ${(report.model.parameters / 1e6).toFixed(2)}M parameters`,
    `- Tokenizer: ${report.model.tokenizer}`,
    `- Settings: ${settingsLine(report)}`,
    `- Date: ${report.date} (${report.seconds.toFixed(1)} s)`,
    '',
    '## Leaderboard tasks (the layout of the paper\'s Table 13)',
    '',
    leaderboardTable([row], 'markdown'),
  ];
  const mmlu = mmluSubjectTable([row], 'markdown');
  if (mmlu) out.push('', '## MMLU by subject (5-shot accuracy, the layout of the paper\'s Table 9)', '', mmlu);
  out.push('', '## All metrics', '', metricsTable(report.results, 'markdown'), '');
  return out.join('\n');
}

/** The same tables as aligned text, for the terminal. */
export function reportText(report: EvalReport): string {
  const row: LeaderboardRow = { label: report.model.label, results: report.results };
  const out = [`${report.model.label}: ${settingsLine(report)}`, '', leaderboardTable([row], 'text')];
  const mmlu = mmluSubjectTable([row], 'text');
  if (mmlu) out.push('', 'MMLU by subject', mmlu);
  out.push('', metricsTable(report.results, 'text'));
  return out.join('\n');
}

/** Writes results.json and results.md into `dir` (atomically); returns their paths. */
export function writeEvalReport(dir: string, report: EvalReport): { json: string; markdown: string } {
  const json = path.join(dir, 'results.json');
  const markdown = path.join(dir, 'results.md');
  writeTextAtomic(json, `${JSON.stringify(report, null, 2)}\n`);
  writeTextAtomic(markdown, reportMarkdown(report));
  return { json, markdown };
}
