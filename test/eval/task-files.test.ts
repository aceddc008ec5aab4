// Task files for pajama eval: Parquet (written here with hyparquet-writer, every codec the hub uses), JSON
// Lines and JSON, in the layouts the data sets are published in (ai2_arc, Rowan/hellaswag, cais/mmlu with
// all/ and per-subject directories, truthful_qa) and the simple DIR/<task>/<split>.<ext>; nested columns as
// plain objects and arrays, INT64 as numbers; ambiguity, missing splits and corrupt files as errors naming
// what was looked for; and the shipped example set, byte for byte what its script writes.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { loadTaskInputs, readSplit, readTaskFile, TaskDataError } from '../../lib/eval/task-files';
import type { TaskName } from '../../lib/eval/tasks';
import { exampleTaskFiles } from '../../scripts/make-example-tasks';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-taskfiles-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
/** A fresh data directory. */
function dataDir(): string {
  const d = path.join(root, `data${dirCount++}`);
  fs.mkdirSync(d);
  return d;
}

// ---- a small Parquet writer over hyparquet-writer: columns typed like the hub's Arrow-written files ----

type Leaf = 'string' | 'int32' | 'int64';
type ColumnType = Leaf | { list: Leaf } | { struct: Record<string, Leaf | { list: Leaf }> };
/** A Parquet schema element as hyparquet-writer takes it. */
type SchemaElement = NonNullable<Parameters<typeof parquetWriteBuffer>[0]['schema']>[number];
type Codec = 'UNCOMPRESSED' | 'SNAPPY' | 'GZIP' | 'BROTLI' | 'ZSTD';

function leaf(name: string, type: Leaf): SchemaElement {
  if (type === 'string') return { name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' };
  return { name, type: type === 'int32' ? 'INT32' : 'INT64', repetition_type: 'OPTIONAL' };
}

function schemaOf(name: string, type: ColumnType): SchemaElement[] {
  if (typeof type === 'string') return [leaf(name, type)];
  if ('list' in type) {
    return [
      { name, repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      leaf('element', type.list),
    ];
  }
  const fields = Object.entries(type.struct);
  return [{ name, repetition_type: 'OPTIONAL', num_children: fields.length }, ...fields.flatMap(([k, v]) => schemaOf(k, v))];
}

/** A zstd frame of raw (stored) blocks: what the format allows for data it does not compress. */
function zstdStored(input: Uint8Array): Uint8Array {
  const blocks: Uint8Array[] = [];
  const max = 1 << 17;
  for (let off = 0; off < input.length || off === 0; off += max) {
    const chunk = input.subarray(off, Math.min(input.length, off + max));
    const last = off + max >= input.length ? 1 : 0;
    const header = (chunk.length << 3) | last; // block type 0: raw
    blocks.push(new Uint8Array([header & 0xff, (header >> 8) & 0xff, (header >> 16) & 0xff]), chunk);
    if (input.length === 0) break;
  }
  const size = input.length;
  const head = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0xa0, size & 0xff, (size >> 8) & 0xff, (size >> 16) & 0xff, (size >>> 24) & 0xff]);
  return Buffer.concat([head, ...blocks]);
}

const COMPRESSORS = {
  GZIP: (b: Uint8Array) => new Uint8Array(zlib.gzipSync(b)),
  BROTLI: (b: Uint8Array) => new Uint8Array(zlib.brotliCompressSync(b)),
  ZSTD: zstdStored,
};

function writeParquet(file: string, columns: Record<string, ColumnType>, rows: Record<string, unknown>[], codec: Codec = 'SNAPPY'): void {
  const names = Object.keys(columns);
  const schema: SchemaElement[] = [{ name: 'schema', num_children: names.length }, ...names.flatMap((n) => schemaOf(n, columns[n]))];
  const columnData = names.map((name) => ({ name, data: rows.map((r) => r[name]) }));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, new Uint8Array(parquetWriteBuffer({ columnData, schema, codec, compressors: COMPRESSORS })));
}

function writeJsonl(file: string, rows: unknown[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

// ---- rows in the published schemas ----

const ARC_COLUMNS: Record<string, ColumnType> = { id: 'string', question: 'string', choices: { struct: { text: { list: 'string' }, label: { list: 'string' } } }, answerKey: 'string' };
function arcRows(n: number, tag: string): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${tag}-${i}`,
    question: `${tag} question ${i}?`,
    choices: { text: ['one', 'two', 'three', i % 2 ? 'four' : 'fünf'].slice(0, 3 + (i % 2)), label: ['A', 'B', 'C', 'D'].slice(0, 3 + (i % 2)) },
    answerKey: 'ABC'[i % 3],
  }));
}
const HELLA_COLUMNS: Record<string, ColumnType> = { ind: 'int32', activity_label: 'string', ctx_a: 'string', ctx_b: 'string', ctx: 'string', endings: { list: 'string' }, label: 'string' };
function hellaRows(n: number, tag: string): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => ({ ind: i, activity_label: tag, ctx_a: `A ${i}.`, ctx_b: 'then', ctx: `A ${i}. then`, endings: ['a', 'b', 'c', 'd'], label: String(i % 4) }));
}
const MMLU_COLUMNS: Record<string, ColumnType> = { question: 'string', subject: 'string', choices: { list: 'string' }, answer: 'int64' };
function mmluRows(subjects: string[], perSubject: number, withSubject = true): Record<string, unknown>[] {
  return subjects.flatMap((subject) =>
    Array.from({ length: perSubject }, (_, i) => ({ question: `${subject} q${i}`, ...(withSubject ? { subject } : {}), choices: ['w', 'x', 'y', 'z'], answer: BigInt(i % 4) })),
  );
}
const TQA_COLUMNS: Record<string, ColumnType> = {
  question: 'string',
  mc1_targets: { struct: { choices: { list: 'string' }, labels: { list: 'int32' } } },
  mc2_targets: { struct: { choices: { list: 'string' }, labels: { list: 'int32' } } },
};
function tqaRows(n: number): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => ({
    question: `tqa ${i}?`,
    mc1_targets: { choices: ['yes', 'no'], labels: [1, 0] },
    mc2_targets: { choices: ['yes', 'sure', 'no'].slice(0, 2 + (i % 2)), labels: [1, 1, 0].slice(0, 2 + (i % 2)) },
  }));
}

/** JSON's view of rows written with bigints: what the reader must give back. */
const asJson = (rows: unknown[]) => JSON.parse(JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)));

/** True when every object and array in `v` is a plain one (no typed arrays, Maps, class instances, bigints). */
function plainThroughout(v: unknown): boolean {
  if (typeof v === 'bigint') return false;
  if (Array.isArray(v)) return Object.getPrototypeOf(v) === Array.prototype && v.every(plainThroughout);
  if (v !== null && typeof v === 'object') return Object.getPrototypeOf(v) === Object.prototype && Object.values(v).every(plainThroughout);
  return true;
}

t.test('the published layouts, unchanged: ai2_arc, Rowan/hellaswag, cais/mmlu (all/), truthful_qa', async (t) => {
  const d = dataDir();
  const arc = path.join(d, 'ai2_arc');
  const arcTest = arcRows(7, 'test');
  const arcTrain = arcRows(26, 'train');
  writeParquet(path.join(arc, 'ARC-Challenge', 'test-00000-of-00001.parquet'), ARC_COLUMNS, arcTest);
  writeParquet(path.join(arc, 'ARC-Challenge', 'train-00000-of-00001.parquet'), ARC_COLUMNS, arcTrain);
  writeParquet(path.join(arc, 'ARC-Challenge', 'validation-00000-of-00001.parquet'), ARC_COLUMNS, arcRows(3, 'val'));
  writeParquet(path.join(arc, 'ARC-Easy', 'test-00000-of-00001.parquet'), ARC_COLUMNS, arcRows(5, 'easy')); // not ARC-Challenge: ignored
  fs.mkdirSync(path.join(arc, '.cache', 'huggingface', 'download'), { recursive: true }); // what --local-dir leaves
  fs.writeFileSync(path.join(arc, '.cache', 'huggingface', 'download', 'test-00000-of-00001.parquet.metadata'), 'x');

  const hs = path.join(d, 'hellaswag', 'data');
  const hsVal = hellaRows(9, 'val');
  writeParquet(path.join(hs, 'validation-00000-of-00002.parquet'), HELLA_COLUMNS, hsVal.slice(0, 5));
  writeParquet(path.join(hs, 'validation-00001-of-00002.parquet'), HELLA_COLUMNS, hsVal.slice(5));
  writeParquet(path.join(hs, 'train-00000-of-00001.parquet'), HELLA_COLUMNS, hellaRows(12, 'train'));
  writeParquet(path.join(hs, 'test-00000-of-00001.parquet'), HELLA_COLUMNS, hellaRows(2, 'test'));

  const mmlu = path.join(d, 'mmlu');
  const subjects = ['anatomy', 'astronomy', 'virology'];
  writeParquet(path.join(mmlu, 'all', 'test-00000-of-00001.parquet'), MMLU_COLUMNS, mmluRows(subjects, 4));
  writeParquet(path.join(mmlu, 'all', 'dev-00000-of-00001.parquet'), MMLU_COLUMNS, mmluRows(subjects, 5));
  writeParquet(path.join(mmlu, 'all', 'auxiliary_train-00000-of-00001.parquet'), MMLU_COLUMNS, mmluRows(['misc'], 3));
  for (const s of subjects) writeParquet(path.join(mmlu, s, 'test-00000-of-00001.parquet'), MMLU_COLUMNS, mmluRows([s], 4)); // cais/mmlu has both: all/ wins
  writeParquet(path.join(mmlu, 'auxiliary_train', 'train-00000-of-00001.parquet'), MMLU_COLUMNS, mmluRows(['misc'], 3));

  const tqa = path.join(d, 'truthful_qa');
  writeParquet(path.join(tqa, 'multiple_choice', 'validation-00000-of-00001.parquet'), TQA_COLUMNS, tqaRows(6));
  writeParquet(path.join(tqa, 'generation', 'validation-00000-of-00001.parquet'), { question: 'string', best_answer: 'string' }, [{ question: 'q', best_answer: 'a' }]);

  const inputs = await loadTaskInputs(d, ['arc_challenge', 'hellaswag', 'mmlu', 'truthfulqa_mc2']);
  t.same(inputs.map((i) => i.name), ['arc_challenge', 'hellaswag', 'mmlu', 'truthfulqa_mc2']);
  const [a, h, m, q] = inputs;
  t.strictSame(a.eval, asJson(arcTest), 'ARC test rows: choices a plain {text, label} object of arrays');
  t.strictSame(a.fewshot, asJson(arcTrain));
  t.ok(a.eval.every(plainThroughout));
  t.match(a.where, /test: .*ARC-Challenge\/test-00000-of-00001\.parquet; train: .*ARC-Challenge\/train-00000-of-00001\.parquet/);
  t.strictSame(h.eval, asJson(hsVal), 'the two validation shards, in name order');
  t.match(h.where, /validation: .*data\/\*\.parquet \(2 files: validation-00000-of-00002\.parquet, validation-00001-of-00002\.parquet\)/);
  t.equal(h.fewshot!.length, 12);
  t.strictSame(m.eval, asJson(mmluRows(subjects, 4)), 'all/ is used when present; answer INT64 -> number');
  t.equal(typeof m.eval[0].answer, 'number');
  t.equal(m.fewshot!.length, 15);
  t.strictSame(q.eval, asJson(tqaRows(6)), 'mc2_targets: a plain {choices, labels} object, labels numbers');
  t.equal(q.fewshot, null);
  t.ok(q.eval.every(plainThroughout));
});

t.test('every codec the hub uses: snappy, gzip, zstd, brotli, and uncompressed', async (t) => {
  const d = dataDir();
  const rows = tqaRows(40);
  for (const codec of ['UNCOMPRESSED', 'SNAPPY', 'GZIP', 'ZSTD', 'BROTLI'] as Codec[]) {
    const file = path.join(d, `${codec}.parquet`);
    writeParquet(file, TQA_COLUMNS, rows, codec);
    t.strictSame(await readTaskFile(file), asJson(rows), codec);
  }
});

t.test('the simple layout in JSON Lines and JSON; per-subject MMLU fills the subject from the directory', async (t) => {
  const d = dataDir();
  const arcTest = arcRows(4, 'test');
  writeJsonl(path.join(d, 'arc_challenge', 'test.jsonl'), arcTest);
  fs.writeFileSync(path.join(d, 'arc_challenge', 'train.json'), JSON.stringify(arcRows(25, 'train'))); // a JSON array
  writeJsonl(path.join(d, 'truthfulqa_mc2', 'validation.json'), tqaRows(3)); // JSON Lines under a .json name
  // Per-subject MMLU: two subjects without a subject column (filled from the directory), one with it.
  writeParquet(path.join(d, 'mmlu', 'college_physics', 'test-00000-of-00001.parquet'), { question: 'string', choices: { list: 'string' }, answer: 'int64' }, mmluRows(['college_physics'], 2, false));
  writeParquet(path.join(d, 'mmlu', 'college_physics', 'dev-00000-of-00001.parquet'), { question: 'string', choices: { list: 'string' }, answer: 'int64' }, mmluRows(['college_physics'], 5, false));
  writeJsonl(path.join(d, 'mmlu', 'anatomy', 'test.jsonl'), asJson(mmluRows(['anatomy'], 3, false)));
  writeJsonl(path.join(d, 'mmlu', 'anatomy', 'dev.jsonl'), asJson(mmluRows(['anatomy'], 5, false)));
  writeParquet(path.join(d, 'mmlu', 'virology', 'test-00000-of-00001.parquet'), MMLU_COLUMNS, mmluRows(['virology'], 1));
  writeParquet(path.join(d, 'mmlu', 'virology', 'dev-00000-of-00001.parquet'), MMLU_COLUMNS, mmluRows(['virology'], 5));
  const [a, m, q] = await loadTaskInputs(d, ['arc_challenge', 'mmlu', 'truthfulqa_mc2']);
  t.strictSame(a.eval, arcTest);
  t.equal(a.fewshot!.length, 25);
  t.strictSame(q.eval, tqaRows(3));
  t.strictSame(
    m.eval.map((r) => [r.subject, r.question, r.answer]),
    [
      ['anatomy', 'anatomy q0', 0],
      ['anatomy', 'anatomy q1', 1],
      ['anatomy', 'anatomy q2', 2],
      ['college_physics', 'college_physics q0', 0],
      ['college_physics', 'college_physics q1', 1],
      ['virology', 'virology q0', 0],
    ],
  );
  t.equal(m.fewshot!.length, 15);
  t.match(m.where, /test: .*mmlu\/<subject>\/test-\* \(3 subject directories: anatomy, college_physics, virology\)/);
});

t.test("the hub's Parquet conversion (refs/convert/parquet): files in a folder named after the split", async (t) => {
  const d = dataDir();
  const arcTrain = arcRows(30, 'train');
  writeParquet(path.join(d, 'ai2_arc', 'ARC-Challenge', 'test', '0000.parquet'), ARC_COLUMNS, arcRows(4, 'test'));
  writeParquet(path.join(d, 'ai2_arc', 'ARC-Challenge', 'train', '0000.parquet'), ARC_COLUMNS, arcTrain.slice(0, 20));
  writeParquet(path.join(d, 'ai2_arc', 'ARC-Challenge', 'train', '0001.parquet'), ARC_COLUMNS, arcTrain.slice(20));
  // MMLU per subject, converted: mmlu/<subject>/<split>/0000.parquet, without the subject column.
  const noSubject: Record<string, ColumnType> = { question: 'string', choices: { list: 'string' }, answer: 'int64' };
  for (const s of ['anatomy', 'virology']) {
    writeParquet(path.join(d, 'mmlu', s, 'test', '0000.parquet'), noSubject, mmluRows([s], 2, false));
    writeParquet(path.join(d, 'mmlu', s, 'dev', '0000.parquet'), noSubject, mmluRows([s], 5, false));
  }
  const [a, m] = await loadTaskInputs(d, ['arc_challenge', 'mmlu']);
  t.equal(a.eval.length, 4);
  t.strictSame(a.fewshot, asJson(arcTrain), 'the two shards in name order');
  t.same(m.eval.map((r) => r.subject), ['anatomy', 'anatomy', 'virology', 'virology'], 'the subject from the folder above the split folder');
  // With all/ converted too, all/ wins.
  writeParquet(path.join(d, 'mmlu', 'all', 'test', '0000.parquet'), MMLU_COLUMNS, mmluRows(['anatomy'], 1));
  writeParquet(path.join(d, 'mmlu', 'all', 'dev', '0000.parquet'), MMLU_COLUMNS, mmluRows(['anatomy'], 5));
  const [m2] = await loadTaskInputs(d, ['mmlu']);
  t.equal(m2.eval.length, 1);
  t.match(m2.where, /mmlu\/all\/test\/0000\.parquet/);
});

t.test('the same rows as Parquet, JSON Lines and JSON load to the same task inputs', async (t) => {
  const rows = {
    arc_challenge: { columns: ARC_COLUMNS, test: arcRows(5, 'test'), train: arcRows(25, 'train') },
    mmlu: { columns: MMLU_COLUMNS, test: mmluRows(['anatomy', 'virology'], 3), dev: mmluRows(['anatomy', 'virology'], 5) },
    truthfulqa_mc2: { columns: TQA_COLUMNS, validation: tqaRows(4) },
  } as const;
  const loaded: unknown[] = [];
  for (const format of ['parquet', 'jsonl', 'json'] as const) {
    const d = dataDir();
    for (const [task, spec] of Object.entries(rows)) {
      for (const [split, data] of Object.entries(spec)) {
        if (split === 'columns') continue;
        const file = path.join(d, task, `${split}.${format}`);
        const list = data as Record<string, unknown>[];
        if (format === 'parquet') writeParquet(file, spec.columns, list);
        else if (format === 'jsonl') writeJsonl(file, asJson(list));
        else {
          fs.mkdirSync(path.dirname(file), { recursive: true });
          fs.writeFileSync(file, JSON.stringify(asJson(list), null, 1));
        }
      }
    }
    const inputs = await loadTaskInputs(d, ['arc_challenge', 'mmlu', 'truthfulqa_mc2']);
    t.ok(inputs.every((i) => i.where.includes(`.${format}`)), `${format}: where names the ${format} files`);
    loaded.push(inputs.map(({ where: _where, ...rest }) => rest));
  }
  t.strictSame(loaded[0], loaded[1], 'Parquet = JSON Lines');
  t.strictSame(loaded[2], loaded[1], 'JSON = JSON Lines');
});

t.test('missing and ambiguous data: errors name the directory, the task, the split and what was looked for', async (t) => {
  const d = dataDir();
  await t.rejects(loadTaskInputs(path.join(d, 'nope'), ['hellaswag']), { name: 'TaskDataError', message: /the task data directory .*nope does not exist/ });
  await t.rejects(loadTaskInputs(d, ['hellaswag']), {
    message: `task hellaswag: no data directory for it in ${d} (looked for hellaswag/; the simple layout is ${path.join(d, 'hellaswag', '<split>.{parquet,jsonl,json}')})`,
  });
  await t.rejects(loadTaskInputs(d, ['arc_challenge']), { message: /looked for arc_challenge\/, ARC-Challenge\/, ai2_arc\/ARC-Challenge\// });
  await t.rejects(loadTaskInputs(d, ['arc_challenge', 'winogrande' as TaskName]), { code: 'ERR_PAJAMA_INVALID_ARG', message: /unknown task 'winogrande' \(tasks: arc_challenge, hellaswag, mmlu, truthfulqa_mc2\)/ });

  writeJsonl(path.join(d, 'hellaswag', 'validation.jsonl'), hellaRows(3, 'v'));
  await t.rejects(loadTaskInputs(d, ['hellaswag']), {
    message: `task hellaswag: no 'train' split in ${path.join(d, 'hellaswag')} (looked for train.{parquet,jsonl,json} or train-*.{parquet,jsonl,json} in it and its subdirectories, 3 levels down)`,
  });
  writeJsonl(path.join(d, 'hellaswag', 'train.jsonl'), hellaRows(9, 't'));
  await t.rejects(loadTaskInputs(d, ['hellaswag']), { message: /task hellaswag: the 'train' split in .*train\.jsonl has 9 rows, fewer than the 10 few-shot examples the task takes/ });
  writeJsonl(path.join(d, 'hellaswag', 'train.jsonl'), hellaRows(10, 't'));
  t.equal((await loadTaskInputs(d, ['hellaswag']))[0].fewshot!.length, 10);
  // Two formats of one split in one directory, then two directories.
  writeParquet(path.join(d, 'hellaswag', 'validation.parquet'), HELLA_COLUMNS, hellaRows(3, 'v'));
  await t.rejects(loadTaskInputs(d, ['hellaswag']), {
    message: `task hellaswag: more than one set of 'validation' files in ${path.join(d, 'hellaswag')}: ${path.join(d, 'hellaswag', 'validation.jsonl')}; ${path.join(d, 'hellaswag', 'validation.parquet')}; keep one`,
  });
  fs.rmSync(path.join(d, 'hellaswag', 'validation.parquet'));
  writeParquet(path.join(d, 'hellaswag', 'data', 'validation-00000-of-00001.parquet'), HELLA_COLUMNS, hellaRows(3, 'v'));
  await t.rejects(loadTaskInputs(d, ['hellaswag']), { message: /more than one set of 'validation' files in .*hellaswag: .*data\/validation-00000-of-00001\.parquet; .*hellaswag\/validation\.jsonl; keep one/ });

  // Two task directories for one task.
  writeJsonl(path.join(d, 'ARC-Challenge', 'test.jsonl'), arcRows(2, 'x'));
  writeJsonl(path.join(d, 'ai2_arc', 'ARC-Challenge', 'test.jsonl'), arcRows(2, 'x'));
  await t.rejects(loadTaskInputs(d, ['arc_challenge']), { message: `task arc_challenge: more than one data directory in ${d}: ${path.join(d, 'ARC-Challenge')} and ${path.join(d, 'ai2_arc', 'ARC-Challenge')}; keep one` });

  // MMLU: rows without a subject, and a subject with no few-shot rows.
  writeJsonl(path.join(d, 'mmlu', 'test.jsonl'), asJson(mmluRows(['anatomy'], 2, false)));
  writeJsonl(path.join(d, 'mmlu', 'dev.jsonl'), asJson(mmluRows(['anatomy'], 5)));
  await t.rejects(loadTaskInputs(d, ['mmlu']), { message: /task mmlu: row 0 of .*mmlu\/test\.jsonl has no subject \(got no subject column\)/ });
  writeJsonl(path.join(d, 'mmlu', 'test.jsonl'), asJson(mmluRows(['anatomy', 'virology', 'zoology'], 1)));
  await t.rejects(loadTaskInputs(d, ['mmlu']), { message: /task mmlu: no few-shot rows for subjects virology, zoology in .*mmlu\/dev\.jsonl/ });
  // Per-subject: two formats in one subject directory.
  const m2 = dataDir();
  writeJsonl(path.join(m2, 'mmlu', 'anatomy', 'test.jsonl'), asJson(mmluRows(['anatomy'], 1)));
  writeParquet(path.join(m2, 'mmlu', 'anatomy', 'test-00000-of-00001.parquet'), MMLU_COLUMNS, mmluRows(['anatomy'], 1));
  await t.rejects(readSplit(path.join(m2, 'mmlu'), 'mmlu', 'test'), { message: /more than one set of 'test' files in .*mmlu\/anatomy: / });
});

t.test('corrupt and malformed files are errors naming the file', async (t) => {
  const d = dataDir();
  const good = path.join(d, 'good.parquet');
  writeParquet(good, ARC_COLUMNS, arcRows(3, 'x'));
  const bytes = fs.readFileSync(good);
  const cut = path.join(d, 'cut.parquet');
  fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
  await t.rejects(readTaskFile(cut), { name: 'TaskDataError', message: `${cut} is not a Parquet file hyparquet can read: parquet file invalid (footer != PAR1)` });
  const text = path.join(d, 'text.parquet');
  fs.writeFileSync(text, 'id,question\n1,why?\n');
  await t.rejects(readTaskFile(text), { message: new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not a Parquet file hyparquet can read: `) });
  const big = path.join(d, 'big.parquet');
  writeParquet(big, MMLU_COLUMNS, [{ question: 'q', subject: 's', choices: ['a'], answer: 1n }, { question: 'q', subject: 's', choices: ['a'], answer: 2n ** 60n }]);
  await t.rejects(readTaskFile(big), { message: `${big} row 1 column 'answer': the integer ${2n ** 60n} is beyond what a JavaScript number holds exactly (2^53)` });
  const jl = path.join(d, 'bad.jsonl');
  fs.writeFileSync(jl, '{"question": "a"}\n\n{"question": \n');
  await t.rejects(readTaskFile(jl), { message: new RegExp(`${jl.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: not valid JSON`) });
  fs.writeFileSync(jl, '{"question": "a"}\n[1, 2]\n');
  await t.rejects(readTaskFile(jl), { message: /bad\.jsonl:2: a row must be a JSON object, got an array/ });
  const js = path.join(d, 'bad.json');
  fs.writeFileSync(js, '{"data": []}');
  await t.rejects(readTaskFile(js), { message: /bad\.json: a \.json task file must hold an array of rows, got an object/ });
  fs.writeFileSync(js, '[{"a": 1}, 3]');
  await t.rejects(readTaskFile(js), { message: /bad\.json: row 1 must be a JSON object, got 3/ });
  t.ok(new TaskDataError('x') instanceof Error);
});

t.test('the shipped example set: the four tasks, byte for byte what scripts/make-example-tasks.ts writes', async (t) => {
  const examples = path.resolve(__dirname, '../../examples/tasks');
  for (const { file, bytes } of exampleTaskFiles()) {
    t.ok(Buffer.from(bytes).equals(fs.readFileSync(path.join(examples, file))), `${file} is up to date (rerun the script after editing it)`);
  }
  const inputs = await loadTaskInputs(examples, ['arc_challenge', 'hellaswag', 'mmlu', 'truthfulqa_mc2']);
  t.same(inputs.map((i) => [i.name, i.eval.length, i.fewshot?.length ?? null]), [
    ['arc_challenge', 30, 30],
    ['hellaswag', 20, 20],
    ['mmlu', 32, 20],
    ['truthfulqa_mc2', 12, null],
  ]);
  const subjects = [...new Set(inputs[2].eval.map((r) => r.subject))];
  t.same(subjects, ['astronomy', 'computer_security', 'elementary_mathematics', 'high_school_geography']);
  for (const i of inputs) t.ok(i.eval.every(plainThroughout), `${i.name}: plain rows`);
  // Published schemas: spot checks of each.
  t.match(inputs[0].eval[0], { id: String, question: String, choices: { text: Array, label: Array }, answerKey: String });
  t.match(inputs[1].eval[0], { ind: Number, activity_label: String, ctx_a: String, ctx_b: String, ctx: String, endings: Array, label: String });
  t.same(new Set(inputs[1].eval.map((r) => r.label)), new Set(['0', '1', '2', '3']), 'hellaswag answers spread over the four endings');
  t.match(inputs[2].eval[0], { question: String, subject: String, choices: Array, answer: Number });
  t.match(inputs[3].eval[0], { question: String, mc1_targets: { choices: Array, labels: Array }, mc2_targets: { choices: Array, labels: Array } });
  let bytes = 0;
  for (const { bytes: b } of exampleTaskFiles()) bytes += b.length;
  t.ok(bytes < 64 * 1024, `the set is small (${bytes} bytes)`);
});
