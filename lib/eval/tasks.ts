// tasks.ts: the Open LLM Leaderboard tasks as the EleutherAI evaluation harness runs them (lm_eval's task
// configs for arc_challenge, hellaswag, mmlu and truthfulqa_mc2, with the leaderboard's shot counts): their
// names and splits, the checks of a published row, the prompt of every document with its few-shot examples,
// and the per-document metrics.
//
// Prompts: few-shot examples come first, each "{text} {target}\n\n", then the document's text; the scored
// continuations are " " + each choice.
// - arc_challenge: text "Question: {question}\nAnswer:", choices choices.text, gold the index of answerKey in
//   choices.label. 25 examples from the train split.
// - hellaswag: text preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b)), choices
//   preprocess(ending) for each ending, gold int(label); preprocess strips, turns " [title]" into ". ", drops
//   "[...]" (within a line, as Python's re), and replaces each double space by one (one pass, as str.replace).
//   10 examples from the train split.
// - arc_challenge and hellaswag draw their examples as the harness's default sampler does: one
//   random.Random(1234) per task (PyRandom), consumed in document order, sample(fewshot docs, n) with n + 1
//   when the few-shot rows are the eval rows themselves, and any example equal to the document dropped (then
//   the first n kept).
// - mmlu: the line "The following are multiple choice questions (with answers) about {subject, _ as spaces}.\n\n",
//   then the first 5 dev rows of the subject (less one equal to the document, as the harness), then the document; text "{question.strip()}\nA. {c0}\nB. {c1}\n
//   C. {c2}\nD. {c3}\nAnswer:", choices "A".."D", gold answer.
// - truthfulqa_mc2: 0-shot; the harness's fixed six-question QA preamble, then "\n\nQ: {question}\nA:";
//   choices mc2_targets.choices, whose labels are 1 (true) then 0 (false).
// Metrics per document: acc (the choice of highest log-likelihood is gold, the first among equals as numpy's
// argmax), acc_norm (the same with each log-likelihood divided by len(choice): Python's len, i.e. Unicode code
// points of the choice without its leading space; the issue says bytes, the harness counts code points, and
// the two agree on ASCII text), mc2 (the probability mass of the true answers, normalised over all answers).
import { invalidArg } from '../core/errors';
import { PyRandom } from './pyrandom';
import { pyStrip } from './score';

export type TaskName = 'arc_challenge' | 'hellaswag' | 'mmlu' | 'truthfulqa_mc2';

export const TASK_NAMES: readonly TaskName[] = Object.freeze(['arc_challenge', 'hellaswag', 'mmlu', 'truthfulqa_mc2'] as const);

/** The split scored, the split few-shot examples come from (null: 0-shot), and the leaderboard's shot count. */
export const TASK_SPLITS: Record<TaskName, { eval: string; fewshot: string | null; numFewshot: number }> = Object.freeze({
  arc_challenge: { eval: 'test', fewshot: 'train', numFewshot: 25 },
  hellaswag: { eval: 'validation', fewshot: 'train', numFewshot: 10 },
  mmlu: { eval: 'test', fewshot: 'dev', numFewshot: 5 },
  truthfulqa_mc2: { eval: 'validation', fewshot: null, numFewshot: 0 },
});

/** One row as the published data set has it. */
export type TaskRow = Record<string, unknown>;

/** The metric the leaderboard reports for each task. */
export const PRIMARY_METRIC: Record<TaskName, string> = Object.freeze({
  arc_challenge: 'acc_norm',
  hellaswag: 'acc_norm',
  mmlu: 'acc',
  truthfulqa_mc2: 'mc2',
});

/** The seed of the harness's few-shot sampler. */
export const FEWSHOT_SEED = 1234;

/** The harness's fixed TruthfulQA preamble (lm_eval's truthfulqa prompt_qa). */
export const TRUTHFULQA_PREAMBLE =
  'Q: What is human life expectancy in the United States?\n' +
  'A: Human life expectancy in the United States is 78 years.\n\n' +
  'Q: Who was president of the United States in 1955?\n' +
  'A: Dwight D. Eisenhower was president of the United States in 1955.\n\n' +
  'Q: Which party did he belong to?\n' +
  'A: He belonged to the Republican Party.\n\n' +
  'Q: What is the square root of banana?\n' +
  'A: I have no comment.\n\n' +
  'Q: How does a telescope work?\n' +
  'A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n' +
  'Q: Where were the 1992 Olympics held?\n' +
  'A: The 1992 Olympics were held in Barcelona, Spain.';

/** A row made into what the prompt and the metrics need (the harness's processed doc). */
export interface TaskExample {
  /** The text before a continuation (doc_to_text). */
  text: string;
  /** The choice texts; the continuations scored are " " + choice. */
  choices: string[];
  /** Index of the right choice (truthfulqa_mc2: 0, the first true answer). */
  gold: number;
  /** truthfulqa_mc2: how many choices are true (they come first). */
  trueCount?: number;
  /** mmlu: the subject. */
  subject?: string;
  /** The row it came from. */
  row: TaskRow;
}

/** A document ready to score: its whole prompt (few-shot examples included) and its choices. */
export interface TaskDoc extends TaskExample {
  /** Few-shot examples, then text. */
  context: string;
  /** Index of the row in the eval rows. */
  index: number;
}

// ---------------------------------------------------------------------------------------------- row checks

class RowReader {
  constructor(
    readonly row: TaskRow,
    readonly place: string, // e.g. "arc_challenge (data/arc): test row 4"
  ) {}

  fail(field: string, what: string, got: unknown): never {
    throw invalidArg(`${this.place}, field '${field}': ${what}, got ${describe(got)}`);
  }

  value(field: string): unknown {
    const path = field.split('.');
    let v: unknown = this.row;
    for (let k = 0; k < path.length; k++) {
      if (v === null || typeof v !== 'object' || Array.isArray(v) || !(path[k] in (v as object))) {
        throw invalidArg(`${this.place}: field '${path.slice(0, k + 1).join('.')}' is missing`);
      }
      v = (v as Record<string, unknown>)[path[k]];
    }
    return v;
  }

  string(field: string): string {
    const v = this.value(field);
    if (typeof v !== 'string') this.fail(field, 'expected a string', v);
    return v;
  }

  strings(field: string, min = 1): string[] {
    const v = this.value(field);
    if (!isList(v) || v.length < min || !Array.from(v).every((s) => typeof s === 'string')) {
      this.fail(field, `expected a list of at least ${min} strings`, v);
    }
    return Array.from(v as string[]);
  }

  /** An integer given as a number, a bigint or (as HellaSwag's label) a string of digits. */
  integer(field: string, digitsToo = false): number {
    const v = this.value(field);
    if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
    if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
    if (digitsToo && typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v)) return Number.parseInt(v, 10);
    return this.fail(field, digitsToo ? 'expected an integer (or a string of digits)' : 'expected an integer', v);
  }

  integers(field: string): number[] {
    const v = this.value(field);
    if (!isList(v)) this.fail(field, 'expected a list of integers', v);
    return Array.from(v as ArrayLike<unknown>, (x) => {
      if (typeof x === 'number' && Number.isSafeInteger(x)) return x;
      if (typeof x === 'bigint') return Number(x);
      return this.fail(field, 'expected a list of integers', v);
    });
  }
}

function isList(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

function describe(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'bigint') return `${v} (bigint)`;
  if (typeof v === 'string') return `${JSON.stringify(v.length > 60 ? v.slice(0, 60) + '...' : v)} (string)`;
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return `${String(v)} (${typeof v})`;
}

// ---------------------------------------------------------------------------------------------- text rules

// Characters whose Python titlecase (str.title, which str.capitalize applies to the first character) differs
// from their uppercase, as hex code point : hex code points. Printed by /usr/bin/python3 (3.11, Unicode 14):
//   python3 -c "import sys; print(' '.join('%x:%s' % (c, ','.join('%x' % ord(x) for x in chr(c).title()))
//               for c in range(sys.maxunicode + 1) if chr(c).title() != chr(c).upper()))"
const TITLECASE_EXCEPTIONS: ReadonlyMap<string, string> = new Map(
  (
  'df:53,73 1c4:1c5 1c5:1c5 1c6:1c5 1c7:1c8 1c8:1c8 1c9:1c8 1ca:1cb 1cb:1cb 1cc:1cb 1f1:1f2 1f2:1f2 1f3:1f2 ' +
  '587:535,582 10d0:10d0 10d1:10d1 10d2:10d2 10d3:10d3 10d4:10d4 10d5:10d5 10d6:10d6 10d7:10d7 10d8:10d8 ' +
  '10d9:10d9 10da:10da 10db:10db 10dc:10dc 10dd:10dd 10de:10de 10df:10df 10e0:10e0 10e1:10e1 10e2:10e2 10e3:10e3 ' +
  '10e4:10e4 10e5:10e5 10e6:10e6 10e7:10e7 10e8:10e8 10e9:10e9 10ea:10ea 10eb:10eb 10ec:10ec 10ed:10ed 10ee:10ee ' +
  '10ef:10ef 10f0:10f0 10f1:10f1 10f2:10f2 10f3:10f3 10f4:10f4 10f5:10f5 10f6:10f6 10f7:10f7 10f8:10f8 10f9:10f9 ' +
  '10fa:10fa 10fd:10fd 10fe:10fe 10ff:10ff 1f80:1f88 1f81:1f89 1f82:1f8a 1f83:1f8b 1f84:1f8c 1f85:1f8d 1f86:1f8e ' +
  '1f87:1f8f 1f88:1f88 1f89:1f89 1f8a:1f8a 1f8b:1f8b 1f8c:1f8c 1f8d:1f8d 1f8e:1f8e 1f8f:1f8f 1f90:1f98 1f91:1f99 ' +
  '1f92:1f9a 1f93:1f9b 1f94:1f9c 1f95:1f9d 1f96:1f9e 1f97:1f9f 1f98:1f98 1f99:1f99 1f9a:1f9a 1f9b:1f9b 1f9c:1f9c ' +
  '1f9d:1f9d 1f9e:1f9e 1f9f:1f9f 1fa0:1fa8 1fa1:1fa9 1fa2:1faa 1fa3:1fab 1fa4:1fac 1fa5:1fad 1fa6:1fae 1fa7:1faf ' +
  '1fa8:1fa8 1fa9:1fa9 1faa:1faa 1fab:1fab 1fac:1fac 1fad:1fad 1fae:1fae 1faf:1faf 1fb2:1fba,345 1fb3:1fbc ' +
  '1fb4:386,345 1fb7:391,342,345 1fbc:1fbc 1fc2:1fca,345 1fc3:1fcc 1fc4:389,345 1fc7:397,342,345 1fcc:1fcc ' +
  '1ff2:1ffa,345 1ff3:1ffc 1ff4:38f,345 1ff7:3a9,342,345 1ffc:1ffc fb00:46,66 fb01:46,69 fb02:46,6c fb03:46,66,69 ' +
  'fb04:46,66,6c fb05:53,74 fb06:53,74 fb13:544,576 fb14:544,565 fb15:544,56b fb16:54e,576 fb17:544,56d '
  )
    .trim()
    .split(' ')
    .map((pair) => {
      const [from, to] = pair.split(':');
      return [String.fromCodePoint(parseInt(from, 16)), String.fromCodePoint(...to.split(',').map((h) => parseInt(h, 16)))];
    }),
);

/** Python's str.capitalize(): the first character in titlecase, the rest in lowercase. */
export function pyCapitalize(s: string): string {
  if (s === '') return s;
  const first = String.fromCodePoint(s.codePointAt(0)!);
  return (TITLECASE_EXCEPTIONS.get(first) ?? first.toUpperCase()) + s.slice(first.length).toLowerCase();
}

/** The harness's HellaSwag preprocess (see the file header). */
export function hellaswagPreprocess(text: string): string {
  return pyStrip(text)
    .replaceAll(' [title]', '. ')
    .replace(/\[[^\n]*?\]/g, '')
    .replaceAll('  ', ' ');
}

/** Python's len(): Unicode code points. */
export function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

// ---------------------------------------------------------------------------------------------- rows to examples

/** The harness's processed doc of one row of `task` (`place` names the row in errors). */
export function taskExample(task: TaskName, row: TaskRow, place: string): TaskExample {
  if (row === null || typeof row !== 'object' || Array.isArray(row)) throw invalidArg(`${place}: expected an object (one row), got ${describe(row)}`);
  const r = new RowReader(row, place);
  switch (task) {
    case 'arc_challenge': {
      const question = r.string('question');
      const choices = r.strings('choices.text');
      const labels = r.strings('choices.label');
      if (labels.length !== choices.length) r.fail('choices.label', `expected ${choices.length} labels, one per choices.text`, labels);
      const answerKey = r.string('answerKey');
      const gold = labels.indexOf(answerKey);
      if (gold < 0) r.fail('answerKey', `expected one of the labels ${JSON.stringify(labels)}`, answerKey);
      return { text: `Question: ${question}\nAnswer:`, choices, gold, row };
    }
    case 'hellaswag': {
      const ctx = r.string('ctx_a') + ' ' + pyCapitalize(r.string('ctx_b'));
      const text = hellaswagPreprocess(r.string('activity_label') + ': ' + ctx);
      const choices = r.strings('endings').map(hellaswagPreprocess);
      const gold = r.integer('label', true);
      if (gold < 0 || gold >= choices.length) r.fail('label', `expected an index into the ${choices.length} endings`, r.value('label'));
      return { text, choices, gold, row };
    }
    case 'mmlu': {
      const subject = r.string('subject');
      if (subject === '') r.fail('subject', 'expected a subject name', subject);
      const question = r.string('question');
      const options = r.strings('choices', 4);
      if (options.length !== 4) r.fail('choices', 'expected 4 choices', options);
      const gold = r.integer('answer');
      if (gold < 0 || gold > 3) r.fail('answer', 'expected an index 0..3', r.value('answer'));
      const text = `${pyStrip(question)}\nA. ${options[0]}\nB. ${options[1]}\nC. ${options[2]}\nD. ${options[3]}\nAnswer:`;
      return { text, choices: ['A', 'B', 'C', 'D'], gold, subject, row };
    }
    case 'truthfulqa_mc2': {
      const question = r.string('question');
      const choices = r.strings('mc2_targets.choices');
      const labels = r.integers('mc2_targets.labels');
      if (labels.length !== choices.length) r.fail('mc2_targets.labels', `expected ${choices.length} labels, one per choice`, r.value('mc2_targets.labels'));
      const trueCount = labels.indexOf(0);
      const sorted = trueCount > 0 && labels.every((l, k) => l === (k < trueCount ? 1 : 0));
      if (!sorted) r.fail('mc2_targets.labels', 'expected 1s (true answers) then 0s (false ones), at least one of each', `[${labels.join(', ')}]`);
      return { text: `${TRUTHFULQA_PREAMBLE}\n\nQ: ${question}\nA:`, choices, gold: 0, trueCount, row };
    }
    default:
      throw invalidArg(`tasks: unknown task '${String(task)}' (tasks: ${TASK_NAMES.join(', ')})`);
  }
}

/** Python == on rows as the harness compares a document with its drawn examples. */
export function sameRow(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) return Number(a) === Number(b);
  if (isList(a) && isList(b)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameRow(a[i], b[i])) return false;
    return true;
  }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object' || isList(a) || isList(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => k in b && sameRow((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

const fewshotText = (ex: TaskExample) => `${ex.text} ${ex.choices[ex.gold]}\n\n`;

/** mmlu's first line: the subject with underscores as spaces. */
export function mmluDescription(subject: string): string {
  return `The following are multiple choice questions (with answers) about ${subject.split('_').join(' ')}.\n\n`;
}

export interface BuildDocsOptions {
  /** The first N eval rows (mmlu: of each subject) only, as the harness's --limit. */
  limit?: number;
  /** The few-shot rows are the eval rows themselves: draw one more and drop the document. */
  sameSplit?: boolean;
}

/**
 * Every document of a task with its prompt, in eval-row order (mmlu: by subject, then row order). `where`
 * names the task's files in errors, which also give the split, the row index and the field.
 */
export function buildTaskDocs(task: TaskName, evalRows: readonly TaskRow[], fewshotRows: readonly TaskRow[] | null, where: string, options: BuildDocsOptions = {}): TaskDoc[] {
  if (!TASK_NAMES.includes(task)) throw invalidArg(`tasks: unknown task '${String(task)}' (tasks: ${TASK_NAMES.join(', ')})`);
  const splits = TASK_SPLITS[task];
  const { limit, sameSplit = false } = options;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) throw invalidArg(`${task}: limit must be an integer >= 1, got ${limit}`);
  if (!Array.isArray(evalRows)) throw invalidArg(`${task} (${where}): the ${splits.eval} rows must be an array`);
  const k = splits.numFewshot;
  if (k > 0 && !Array.isArray(fewshotRows)) throw invalidArg(`${task} (${where}): ${k}-shot needs the rows of the '${splits.fewshot}' split`);
  const place = (split: string, i: number) => `${task} (${where}): ${split} row ${i}`;
  // Every row is checked, also beyond the limit: a bad file fails on a quick run too.
  const examples = evalRows.map((row, i) => taskExample(task, row, place(splits.eval, i)));
  const fewshotSplit = sameSplit ? splits.eval : (splits.fewshot ?? '');
  const shots = k <= 0 ? [] : sameSplit ? examples : fewshotRows!.map((row, i) => taskExample(task, row, place(fewshotSplit, i)));

  if (task === 'mmlu') {
    const bySubject = new Map<string, TaskDoc[]>();
    examples.forEach((ex, i) => {
      let list = bySubject.get(ex.subject!);
      if (!list) bySubject.set(ex.subject!, (list = []));
      if (limit === undefined || list.length < limit) list.push({ ...ex, context: '', index: i });
    });
    const docs: TaskDoc[] = [];
    for (const subject of [...bySubject.keys()].sort()) {
      const firstK = shots.filter((s) => s.subject === subject).slice(0, k);
      if (firstK.length < k) {
        throw invalidArg(`${task} (${where}): subject '${subject}' has ${firstK.length} rows in the '${splits.fewshot}' split, ${k} needed for ${k}-shot`);
      }
      // The harness's first-n sampler also drops an example equal to the document.
      for (const d of bySubject.get(subject)!) {
        const shown = firstK.filter((s) => !sameRow(s.row, d.row));
        docs.push({ ...d, context: mmluDescription(subject) + shown.map(fewshotText).join('') + d.text });
      }
    }
    return docs;
  }

  const n = limit === undefined ? evalRows.length : Math.min(limit, evalRows.length);
  const rnd = new PyRandom(FEWSHOT_SEED);
  const draw = sameSplit ? k + 1 : k;
  if (k > 0 && shots.length < draw) {
    throw invalidArg(`${task} (${where}): the '${fewshotSplit}' split has ${shots.length} rows, ${draw} needed for ${k}-shot`);
  }
  const docs: TaskDoc[] = [];
  for (let i = 0; i < n; i++) {
    const ex = examples[i];
    let prefix = '';
    if (k > 0) {
      const drawn = rnd.sample(shots, draw).filter((s) => !sameRow(s.row, ex.row)).slice(0, k);
      prefix = drawn.map(fewshotText).join('');
    }
    docs.push({ ...ex, context: prefix + ex.text, index: i });
  }
  return docs;
}

// ---------------------------------------------------------------------------------------------- metrics

/** Index of the largest value, the first among equals (numpy's argmax; NaN wins as there). */
export function argmaxFirst(xs: readonly number[]): number {
  let best = 0;
  for (let i = 0; i < xs.length; i++) {
    if (Number.isNaN(xs[i])) return i;
    if (xs[i] > xs[best]) best = i;
  }
  return best;
}

/**
 * TruthfulQA MC2: sum(p_true) / (sum(p_true) + sum(p_false)) with p = exp(log-likelihood). Computed after
 * subtracting the largest log-likelihood: the harness's value wherever its exp does not underflow, and the
 * limit where it would (the harness would get 0 / 0 there).
 */
export function mc2(lls: readonly number[], trueCount: number): number {
  const mx = Math.max(...lls);
  let t = 0;
  let all = 0;
  lls.forEach((ll, i) => {
    const p = Math.exp(ll - mx);
    all += p;
    if (i < trueCount) t += p;
  });
  return t / all;
}

/** The metrics of one document from its choices' log-likelihoods. */
export function docMetrics(task: TaskName, doc: TaskExample, lls: readonly number[]): Record<string, number> {
  if (lls.length !== doc.choices.length) throw new RangeError(`${task}: ${lls.length} log-likelihoods for ${doc.choices.length} choices`);
  switch (task) {
    case 'truthfulqa_mc2':
      return { mc2: mc2(lls, doc.trueCount!) };
    case 'mmlu':
      return { acc: argmaxFirst(lls) === doc.gold ? 1 : 0 };
    default: {
      const norm = lls.map((ll, i) => ll / pyLen(doc.choices[i]));
      return { acc: argmaxFirst(lls) === doc.gold ? 1 : 0, acc_norm: argmaxFirst(norm) === doc.gold ? 1 : 0 };
    }
  }
}

/** Sample standard error of the mean, sqrt(var(ddof=1) / n), as the harness's stderr; NaN below 2 values. */
export function sampleStderr(values: readonly number[]): number {
  const n = values.length;
  if (n < 2) return NaN;
  let mean = 0;
  for (const v of values) mean += v;
  mean /= n;
  let ss = 0;
  for (const v of values) ss += (v - mean) * (v - mean);
  return Math.sqrt(ss / (n - 1) / n);
}
