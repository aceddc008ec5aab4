// task-files.ts: the evaluation tasks' data, read from a directory the user points to (`pajama eval --data
// DIR`), in the formats and layouts the data sets are published in on the Hugging Face hub, so a downloaded
// copy (`huggingface-cli download <repo> --repo-type dataset --local-dir DIR/<name>`) works unchanged.
// Nothing is downloaded.
//
// The search rule, per task and split:
//  1. The task's directory is the one of its names that exists under DIR (TASK_DIRECTORIES): the simple name
//     (`DIR/arc_challenge`) or the published data set's (`DIR/ai2_arc/ARC-Challenge`, `DIR/truthful_qa/
//     multiple_choice`, ...). None: an error listing the names looked for; two: an ambiguity error.
//  2. In it and its subdirectories (three levels down; hidden ones such as `.cache` skipped), a split's files
//     are named `<split>.<ext>` or `<split>-<anything>.<ext>`, with ext one of parquet, jsonl, json:
//     `test.jsonl`, `test-00000-of-00001.parquet`, `validation-00000-of-00002-abc.parquet`; or are any such
//     file in a subdirectory named after the split, as the hub's Parquet conversion (refs/convert/parquet)
//     lays them out: `default/test/0000.parquet`. The files of one directory and one format are one set,
//     read in name order (the shards of a split).
//  3. One set per split, else an ambiguity error naming them. MMLU alone may have one set per subject
//     directory (`mmlu/abstract_algebra/test-*.parquet`, cais/mmlu's layout): a set directly in the task
//     directory or in `all/` is the whole split and is used when present; otherwise every subject directory's
//     set is read, and rows without a `subject` column get the directory's name.
// No set for a split is an error naming the directory, the task, the split and the names looked for.
//
// Rows come out as the JSON form has them: Parquet structs are plain objects, lists plain arrays, INT64
// values numbers (an error when beyond 2^53), byte arrays strings. A .json file is an array of rows (or,
// as the Hugging Face loader also accepts, JSON Lines under a .json name).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { invalidArg } from '../core/errors';
import { explainSystemError, isSystemError } from '../core/fs-errors';
import { TASK_NAMES, TASK_SPLITS, type TaskName, type TaskRow } from './tasks';
import type { TaskInput } from './harness';

/** A task's data could not be found or read: names the directory or file and what was wrong. */
export class TaskDataError extends Error {
  readonly code = 'ERR_PAJAMA_TASK_DATA';
  constructor(message: string) {
    super(message);
    this.name = 'TaskDataError';
  }
}

/**
 * Where each task's files may live under the data directory: the simple layout's name first, then the
 * directories of the published data sets (allenai/ai2_arc, Rowan/hellaswag, cais/mmlu or hails/mmlu_no_train,
 * truthfulqa/truthful_qa) as `--local-dir DIR/<repo name>` leaves them.
 */
export const TASK_DIRECTORIES: Readonly<Record<TaskName, readonly string[]>> = Object.freeze({
  arc_challenge: ['arc_challenge', 'ARC-Challenge', 'ai2_arc/ARC-Challenge'],
  hellaswag: ['hellaswag'],
  mmlu: ['mmlu', 'mmlu_no_train'],
  truthfulqa_mc2: ['truthfulqa_mc2', 'truthful_qa/multiple_choice', 'truthfulqa/multiple_choice'],
});

/** The file formats read, by extension. */
export const TASK_FILE_EXTENSIONS = ['parquet', 'jsonl', 'json'] as const;
type Format = (typeof TASK_FILE_EXTENSIONS)[number];

/** How deep under a task's directory split files are looked for (hellaswag/data/x.parquet is depth 1). */
const MAX_DEPTH = 3;

/** The split's files of one directory and one format: read in name order, rows concatenated. */
interface FileSet {
  dir: string;
  /** The folder the set stands for: `dir`, or its parent when `dir` is named after the split (`all/test/0000.parquet`). */
  home: string;
  format: Format;
  files: string[];
}

/** The rows of one split and where they came from. */
export interface SplitRows {
  rows: TaskRow[];
  /** The files, for messages: one path, a directory's pattern with its files, or MMLU's subject directories. */
  where: string;
}

function splitPattern(split: string): string {
  return `${split}.{${TASK_FILE_EXTENSIONS.join(',')}} or ${split}-*.{${TASK_FILE_EXTENSIONS.join(',')}}`;
}

/** The format of a file of `split` named `name` (in a folder named after the split: `splitFolder`), or null when it is not one. */
function splitFileFormat(name: string, splitFolder: boolean, split: string): Format | null {
  for (const ext of TASK_FILE_EXTENSIONS) {
    if (!name.endsWith(`.${ext}`)) continue;
    const stem = name.slice(0, -ext.length - 1);
    if (stem === split || stem.startsWith(`${split}-`) || splitFolder) return ext;
  }
  return null;
}

function readDirectory(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    if (isSystemError(e)) throw new TaskDataError(`cannot list ${dir}: ${e.code}: ${explainSystemError(e, dir)}`);
    throw e;
  }
}

/** Every set of `split` files under `root` (see the file header), in directory order. */
function findSplitSets(root: string, split: string): FileSet[] {
  const sets = new Map<string, FileSet>();
  const walk = (dir: string, depth: number) => {
    const entries = readDirectory(dir).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const full = path.join(dir, e.name);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        // huggingface-cli may leave links into its cache: follow them.
        const st = fs.statSync(full, { throwIfNoEntry: false });
        isDir = st?.isDirectory() ?? false;
        isFile = st?.isFile() ?? false;
      }
      if (isDir) {
        if (depth < MAX_DEPTH) walk(full, depth + 1);
        continue;
      }
      const splitFolder = dir !== root && path.basename(dir) === split;
      const format = isFile ? splitFileFormat(e.name, splitFolder, split) : null;
      if (!format) continue;
      const key = `${dir}\0${format}`;
      const home = splitFolder ? path.dirname(dir) : dir;
      const set = sets.get(key) ?? { dir, home, format, files: [] };
      set.files.push(full);
      sets.set(key, set);
    }
  };
  walk(root, 0);
  return [...sets.values()];
}

function describeSet(s: FileSet): string {
  if (s.files.length === 1) return s.files[0];
  return `${path.join(s.dir, `*.${s.format}`)} (${s.files.length} files: ${s.files.map((f) => path.basename(f)).join(', ')})`;
}

/** The task's directory under `dataDir` (see TASK_DIRECTORIES). */
export function taskDirectory(dataDir: string, task: TaskName): string {
  const names = TASK_DIRECTORIES[task];
  const found = names.map((n) => path.join(dataDir, n)).filter((d) => fs.statSync(d, { throwIfNoEntry: false })?.isDirectory());
  if (found.length === 0) {
    throw new TaskDataError(
      `task ${task}: no data directory for it in ${dataDir} (looked for ${names.map((n) => `${n}/`).join(', ')}; ` +
        `the simple layout is ${path.join(dataDir, task, `<split>.{${TASK_FILE_EXTENSIONS.join(',')}}`)})`,
    );
  }
  if (found.length > 1) throw new TaskDataError(`task ${task}: more than one data directory in ${dataDir}: ${found.join(' and ')}; keep one`);
  return found[0];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

/**
 * A value as the JSON form of the row has it: bigint as a number (an error beyond 2^53), typed arrays as
 * arrays, Dates as ISO strings, byte arrays as UTF-8 text, objects and arrays converted throughout.
 */
function plainValue(v: unknown, where: () => string): unknown {
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new TaskDataError(`${where()}: the integer ${v} is beyond what a JavaScript number holds exactly (2^53)`);
    }
    return Number(v);
  }
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return new TextDecoder('utf-8', { fatal: false }).decode(v);
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number | bigint>, (x) => plainValue(x, where));
  if (Array.isArray(v)) return v.map((x) => plainValue(x, where));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = plainValue(x, where);
    return out;
  }
  return v;
}

function readFileBytes(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    if (isSystemError(e)) throw new TaskDataError(`cannot read ${file}: ${e.code}: ${explainSystemError(e, file)}`);
    throw e;
  }
}

async function readParquetRows(file: string): Promise<TaskRow[]> {
  const bytes = readFileBytes(file);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  let raw: Record<string, unknown>[];
  try {
    raw = await parquetReadObjects({ file: buffer, compressors });
  } catch (e) {
    throw new TaskDataError(`${file} is not a Parquet file hyparquet can read: ${(e as Error).message}`);
  }
  return raw.map((r, i) => {
    const row: TaskRow = {};
    for (const [k, v] of Object.entries(r)) row[k] = plainValue(v, () => `${file} row ${i} column '${k}'`);
    return row;
  });
}

function parseJsonLines(text: string, file: string): TaskRow[] {
  const rows: TaskRow[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new TaskDataError(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    if (!isPlainObject(v)) throw new TaskDataError(`${file}:${i + 1}: a row must be a JSON object, got ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}`);
    rows.push(v);
  }
  return rows;
}

function readJsonRows(file: string, format: 'json' | 'jsonl'): TaskRow[] {
  let text = readFileBytes(file).toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (format === 'jsonl') return parseJsonLines(text, file);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    // JSON Lines under a .json name (the Hugging Face loader reads those too): every line an object.
    const first = text.split('\n').find((l) => l.trim() !== '');
    let firstIsObject = false;
    try {
      firstIsObject = first !== undefined && isPlainObject(JSON.parse(first));
    } catch {
      firstIsObject = false;
    }
    if (firstIsObject) return parseJsonLines(text, file);
    throw new TaskDataError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(v)) throw new TaskDataError(`${file}: a .json task file must hold an array of rows, got ${isPlainObject(v) ? 'an object' : JSON.stringify(v)}`);
  v.forEach((row, i) => {
    if (!isPlainObject(row)) throw new TaskDataError(`${file}: row ${i} must be a JSON object, got ${Array.isArray(row) ? 'an array' : JSON.stringify(row)}`);
  });
  return v as TaskRow[];
}

/** The rows of one file, by its format. */
export async function readTaskFile(file: string): Promise<TaskRow[]> {
  const format = TASK_FILE_EXTENSIONS.find((ext) => file.endsWith(`.${ext}`));
  if (!format) throw new TaskDataError(`${file}: not a task file (the formats read are ${TASK_FILE_EXTENSIONS.map((e) => `.${e}`).join(', ')})`);
  return format === 'parquet' ? readParquetRows(file) : readJsonRows(file, format);
}

async function readSet(s: FileSet): Promise<TaskRow[]> {
  const rows: TaskRow[] = [];
  for (const f of s.files) for (const r of await readTaskFile(f)) rows.push(r);
  return rows;
}

/**
 * The rows of `task`'s `split` under `taskDir` (see the file header for the rule). MMLU rows of a
 * per-subject layout get `subject` from their directory's name when they lack the column.
 */
export async function readSplit(taskDir: string, task: TaskName, split: string): Promise<SplitRows> {
  const sets = findSplitSets(taskDir, split);
  if (sets.length === 0) {
    throw new TaskDataError(
      `task ${task}: no '${split}' split in ${taskDir} (looked for ${splitPattern(split)} in it and its subdirectories, ${MAX_DEPTH} levels down)`,
    );
  }
  const ambiguous = (which: FileSet[], where: string) =>
    new TaskDataError(`task ${task}: more than one set of '${split}' files ${where}: ${which.map(describeSet).join('; ')}; keep one`);
  if (task !== 'mmlu') {
    if (sets.length > 1) throw ambiguous(sets, `in ${taskDir}`);
    return { rows: await readSet(sets[0]), where: describeSet(sets[0]) };
  }
  // MMLU: the whole split (in the task directory or all/), else one set per subject directory.
  const whole = sets.filter((s) => s.home === taskDir || s.home === path.join(taskDir, 'all'));
  if (whole.length > 1) throw ambiguous(whole, `in ${taskDir}`);
  if (whole.length === 1) return { rows: await readSet(whole[0]), where: describeSet(whole[0]) };
  const bySubject = new Map<string, FileSet[]>();
  for (const s of sets) bySubject.set(s.home, [...(bySubject.get(s.home) ?? []), s]);
  const rows: TaskRow[] = [];
  for (const [dir, dirSets] of bySubject) {
    if (dirSets.length > 1) throw ambiguous(dirSets, `in ${dir}`);
    const subject = path.basename(dir);
    for (const r of await readSet(dirSets[0])) rows.push(r.subject === undefined || r.subject === null ? { ...r, subject } : r);
  }
  const dirs = [...bySubject.keys()];
  return { rows, where: `${path.join(taskDir, '<subject>', `${split}-*`)} (${dirs.length} subject directories: ${dirs.map((d) => path.basename(d)).join(', ')})` };
}

/** MMLU rows must name their subject; every subject scored needs few-shot rows of its own. */
function checkMmlu(evalRows: SplitRows, fewshot: SplitRows | null): void {
  const subjectOf = (r: TaskRow, i: number, s: SplitRows) => {
    if (typeof r.subject !== 'string' || r.subject === '') {
      throw new TaskDataError(
        `task mmlu: row ${i} of ${s.where} has no subject (got ${r.subject === undefined ? 'no subject column' : JSON.stringify(r.subject)}); ` +
          `MMLU rows need one: a 'subject' column, or the per-subject layout mmlu/<subject>/<split>-*.parquet`,
      );
    }
    return r.subject;
  };
  const scored = new Set(evalRows.rows.map((r, i) => subjectOf(r, i, evalRows)));
  if (!fewshot) return;
  const have = new Set(fewshot.rows.map((r, i) => subjectOf(r, i, fewshot)));
  const missing = [...scored].filter((s) => !have.has(s)).sort();
  if (missing.length > 0) {
    throw new TaskDataError(`task mmlu: no few-shot rows for subject${missing.length === 1 ? '' : 's'} ${missing.join(', ')} in ${fewshot.where}`);
  }
}

/**
 * Each task's evaluation split and few-shot split (TASK_SPLITS) read from `dataDir`, as evaluateTasks takes
 * them. Errors name the directory, the task, the split and what was looked for (TaskDataError), or the task
 * names that are not known (TypeError ERR_PAJAMA_INVALID_ARG).
 */
export async function loadTaskInputs(dataDir: string, names: readonly TaskName[]): Promise<TaskInput[]> {
  const unknown = names.filter((n) => !TASK_NAMES.includes(n));
  if (unknown.length > 0) throw invalidArg(`unknown task${unknown.length === 1 ? '' : 's'} ${unknown.map((n) => `'${n}'`).join(', ')} (tasks: ${TASK_NAMES.join(', ')})`);
  const st = fs.statSync(dataDir, { throwIfNoEntry: false });
  if (!st) throw new TaskDataError(`the task data directory ${dataDir} does not exist`);
  if (!st.isDirectory()) throw new TaskDataError(`the task data directory ${dataDir} is not a directory`);
  const inputs: TaskInput[] = [];
  for (const name of names) {
    const dir = taskDirectory(dataDir, name);
    const splits = TASK_SPLITS[name];
    const evalRows = await readSplit(dir, name, splits.eval);
    const fewshot = splits.fewshot === null ? null : await readSplit(dir, name, splits.fewshot);
    if (evalRows.rows.length === 0) throw new TaskDataError(`task ${name}: the '${splits.eval}' split in ${evalRows.where} has no rows`);
    if (fewshot && fewshot.rows.length < splits.numFewshot) {
      throw new TaskDataError(
        `task ${name}: the '${splits.fewshot}' split in ${fewshot.where} has ${fewshot.rows.length} rows, fewer than the ${splits.numFewshot} few-shot examples the task takes`,
      );
    }
    if (name === 'mmlu') checkMmlu(evalRows, fewshot);
    const where = fewshot ? `${splits.eval}: ${evalRows.where}; ${splits.fewshot}: ${fewshot.where}` : `${splits.eval}: ${evalRows.where}`;
    inputs.push({ name, eval: evalRows.rows, fewshot: fewshot ? fewshot.rows : null, where });
  }
  return inputs;
}
