// harness.ts: evaluateTasks, the Open LLM Leaderboard tasks scored with the evaluation harness's rules:
// each task's documents and prompts from tasks.ts, one log-likelihood request per (document, choice) scored
// together by score.ts (sorted, batched, shared inputs once), then per-document metrics and their means with
// the harness's sample standard errors. mmlu's acc is the unweighted mean over subjects of each subject's
// acc (the leaderboard's average over the 57 subjects); its stderr is that of a mean of independent subject
// means, sqrt(sum of the subjects' squared stderrs) / subjects (NaN when a subject has fewer than 2 documents).
import { invalidArg } from '../core/errors';
import type { Tokenizer } from '../data/tokenizers/base';
import { loglikelihood, type LoglikelihoodRequest, type ScoringModel } from './score';
import { buildTaskDocs, docMetrics, PRIMARY_METRIC, sampleStderr, TASK_NAMES, TASK_SPLITS, type TaskName, type TaskRow } from './tasks';

export type { ScoringModel } from './score';

export interface TaskInput {
  name: TaskName;
  eval: TaskRow[];
  /** The few-shot split's rows (null for a 0-shot task); the eval array itself means the eval split. */
  fewshot: TaskRow[] | null;
  /** Names the file(s), for error messages with the split, row index and field. */
  where: string;
}

export interface EvalProgress {
  task: TaskName;
  /** Requests (document x choice) scored so far, of total. */
  done: number;
  total: number;
}

export interface EvalOptions {
  /** The first N eval documents of each task (mmlu: of each subject), as the harness's --limit. */
  limit?: number;
  /** Most ids in one forward batch. Defaults to score.ts's DEFAULT_BATCH_TOKENS. */
  batchTokens?: number;
  onProgress?: (p: EvalProgress) => void;
}

export interface TaskResult {
  task: TaskName;
  numFewshot: number;
  docs: number;
  /** arc_challenge, hellaswag: acc, acc_norm; mmlu: acc (mean over subjects); truthfulqa_mc2: mc2. */
  metrics: Record<string, number>;
  /** Sample standard error of the mean, as the harness reports (see the file header for mmlu). */
  stderr: Record<string, number>;
  /** The leaderboard's metric: acc_norm, acc_norm, acc, mc2. */
  primary: { metric: string; value: number };
  /** mmlu only, sorted by subject. */
  subjects?: { subject: string; docs: number; acc: number }[];
}

function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

function checkInputs(tasks: TaskInput[], options: EvalOptions): void {
  if (!Array.isArray(tasks)) throw invalidArg('evaluateTasks: tasks must be an array of TaskInput');
  const seen = new Set<string>();
  tasks.forEach((t, i) => {
    if (!t || typeof t !== 'object') throw invalidArg(`evaluateTasks: tasks[${i}] must be a TaskInput`);
    if (!TASK_NAMES.includes(t.name)) throw invalidArg(`evaluateTasks: tasks[${i}].name '${String(t.name)}' is not a task (tasks: ${TASK_NAMES.join(', ')})`);
    if (seen.has(t.name)) throw invalidArg(`evaluateTasks: task '${t.name}' is given twice`);
    seen.add(t.name);
    if (typeof t.where !== 'string') throw invalidArg(`evaluateTasks: tasks[${i}].where must be a string naming its files`);
    if (!Array.isArray(t.eval)) throw invalidArg(`evaluateTasks: ${t.name} (${t.where}): eval must be an array of rows`);
    if (t.eval.length === 0) throw invalidArg(`evaluateTasks: ${t.name} (${t.where}): the '${TASK_SPLITS[t.name].eval}' split has no rows`);
    if (t.fewshot !== null && !Array.isArray(t.fewshot)) throw invalidArg(`evaluateTasks: ${t.name} (${t.where}): fewshot must be an array of rows or null`);
  });
  if (options === null || typeof options !== 'object') throw invalidArg('evaluateTasks: options must be an object');
  const known = ['limit', 'batchTokens', 'onProgress'];
  for (const k of Object.keys(options)) if (!known.includes(k)) throw invalidArg(`evaluateTasks: unknown option '${k}' (options: ${known.join(', ')})`);
  const { limit } = options;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) throw invalidArg(`evaluateTasks: limit must be an integer >= 1, got ${limit}`);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw invalidArg('evaluateTasks: onProgress must be a function');
}

/** Scores every task in order and returns one result per task (see the file header). */
export async function evaluateTasks(model: ScoringModel, tokenizer: Tokenizer, tasks: TaskInput[], options: EvalOptions = {}): Promise<TaskResult[]> {
  checkInputs(tasks, options);
  // Every task's prompts first: a bad row anywhere fails before any forward runs.
  const built = tasks.map((input) =>
    buildTaskDocs(input.name, input.eval, input.fewshot, input.where, { limit: options.limit, sameSplit: input.fewshot === input.eval }),
  );
  const results: TaskResult[] = [];
  for (let ti = 0; ti < tasks.length; ti++) {
    const task = tasks[ti].name;
    const docs = built[ti];
    const requests: LoglikelihoodRequest[] = [];
    for (const d of docs) for (const c of d.choices) requests.push({ context: d.context, continuation: ' ' + c });
    const scored = await loglikelihood(model, tokenizer, requests, {
      batchTokens: options.batchTokens,
      onProgress: options.onProgress ? (done, total) => options.onProgress!({ task, done, total }) : undefined,
    });
    let at = 0;
    const perDoc = docs.map((d) => {
      const lls = scored.slice(at, at + d.choices.length).map((r) => r.logprob);
      at += d.choices.length;
      return docMetrics(task, d, lls);
    });
    const metricNames = Object.keys(perDoc[0] ?? {});
    const metrics: Record<string, number> = {};
    const stderr: Record<string, number> = {};
    let subjects: TaskResult['subjects'];
    if (task === 'mmlu') {
      const bySubject = new Map<string, number[]>();
      docs.forEach((d, i) => {
        let list = bySubject.get(d.subject!);
        if (!list) bySubject.set(d.subject!, (list = []));
        list.push(perDoc[i].acc);
      });
      subjects = [...bySubject.keys()].sort().map((subject) => ({ subject, docs: bySubject.get(subject)!.length, acc: mean(bySubject.get(subject)!) }));
      metrics.acc = mean(subjects.map((s) => s.acc));
      const ses = [...bySubject.keys()].map((s) => sampleStderr(bySubject.get(s)!));
      stderr.acc = Math.sqrt(ses.reduce((a, se) => a + se * se, 0)) / ses.length;
    } else {
      for (const m of metricNames) {
        const values = perDoc.map((p) => p[m]);
        metrics[m] = mean(values);
        stderr[m] = sampleStderr(values);
      }
    }
    const metric = PRIMARY_METRIC[task];
    results.push({
      task,
      numFewshot: TASK_SPLITS[task].numFewshot,
      docs: docs.length,
      metrics,
      stderr,
      primary: { metric, value: metrics[metric] },
      ...(subjects ? { subjects } : {}),
    });
  }
  return results;
}
