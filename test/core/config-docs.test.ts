// config-docs.test.ts: the defaults are stated once, in the config schemas (lib/core/config-schema.ts), and
// everything that repeats them is checked here: the README's config tables, the "Defaults to X" of the
// config interfaces' doc comments, the DEFAULT_* objects, and the defaults the training config shares with
// the optimizer and the prepare config. `PAJAMA_UPDATE_README=1 npx tap test/core/config-docs.test.ts`
// rewrites the README's tables from the schemas (between their <!-- config-table:NAME --> markers).
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { configFields, configTable, defaultsOf, type AnyField, type ObjectField } from '../../lib/core/config-schema';
import { DEFAULT_TRAIN_CONFIG, TRAIN_CONFIG_SCHEMA } from '../../lib/train/config';
import { DEFAULT_PREPARE_CONFIG, PREPARE_CONFIG_SCHEMA } from '../../lib/data/corpus/prepare/config';
import { ADAMW_OPTIONS_SCHEMA } from '../../lib/optim/adamw';
import { COSINE_OPTIONS_SCHEMA, PTWD_DEFAULT_VALUES, PTWD_PLATEAU_SCHEMA } from '../../lib/optim/schedule';
import { CLIP_OPTIONS_SCHEMA } from '../../lib/optim/clip';
import { mptConfig } from '../../lib/model/config';

const root = path.join(__dirname, '..', '..');
const README = path.join(root, 'README.md');

const TABLES: Record<string, ObjectField<unknown>> = {
  train: TRAIN_CONFIG_SCHEMA as ObjectField<unknown>,
  prepare: PREPARE_CONFIG_SCHEMA as ObjectField<unknown>,
};

/** The text between a table's markers, and where it sits. */
function tableIn(readme: string, name: string): { start: number; end: number; text: string } {
  const open = `<!-- config-table:${name} -->\n`;
  const close = `<!-- /config-table:${name} -->`;
  const start = readme.indexOf(open);
  const end = readme.indexOf(close);
  if (start < 0 || end < start) throw new Error(`README.md has no ${open.trim()} ... ${close} markers`);
  return { start: start + open.length, end, text: readme.slice(start + open.length, end) };
}

t.test("the README's config tables are the schemas'", async (t) => {
  let readme = fs.readFileSync(README, 'utf8');
  if (process.env.PAJAMA_UPDATE_README === '1') {
    for (const [name, schema] of Object.entries(TABLES)) {
      const at = tableIn(readme, name);
      readme = `${readme.slice(0, at.start)}${configTable(schema)}\n${readme.slice(at.end)}`;
    }
    fs.writeFileSync(README, readme);
  }
  for (const [name, schema] of Object.entries(TABLES)) {
    t.equal(tableIn(readme, name).text, `${configTable(schema)}\n`, `README.md's ${name} config table (PAJAMA_UPDATE_README=1 rewrites it)`);
  }
});

t.test('every key of a config has a one-line doc', async (t) => {
  for (const [name, schema] of Object.entries({ ...TABLES, adamw: ADAMW_OPTIONS_SCHEMA, cosine: COSINE_OPTIONS_SCHEMA, plateau: PTWD_PLATEAU_SCHEMA, clip: CLIP_OPTIONS_SCHEMA })) {
    for (const f of configFields(schema as ObjectField<unknown>)) {
      t.ok(f.doc.length > 0 && !f.doc.includes('\n'), `${name}: '${f.key}' has a one-line doc`);
    }
  }
});

t.test('the DEFAULT_* objects are the schemas\' defaults', async (t) => {
  t.same(DEFAULT_TRAIN_CONFIG, defaultsOf(TRAIN_CONFIG_SCHEMA));
  t.same(DEFAULT_PREPARE_CONFIG, defaultsOf(PREPARE_CONFIG_SCHEMA));
  t.equal(DEFAULT_TRAIN_CONFIG.optimizer.lr, 6e-4, 'spot check: the peak learning rate');
  t.equal(DEFAULT_PREPARE_CONFIG.dedup.bands * DEFAULT_PREPARE_CONFIG.dedup.rows, 117, "spot check: SlimPajama's 9 x 13 LSH");
});

t.test('defaults shared across configs agree', async (t) => {
  const o = DEFAULT_TRAIN_CONFIG.optimizer;
  t.equal(o.beta1, ADAMW_OPTIONS_SCHEMA.fields.beta1.default);
  t.equal(o.beta2, ADAMW_OPTIONS_SCHEMA.fields.beta2.default);
  t.equal(o.eps, ADAMW_OPTIONS_SCHEMA.fields.eps.default);
  t.equal(o.warmupSteps, COSINE_OPTIONS_SCHEMA.fields.warmupSteps.default);
  t.equal(o.minLrRatio, COSINE_OPTIONS_SCHEMA.fields.minLrRatio.default);
  t.same(DEFAULT_TRAIN_CONFIG.weightDecay.stages, PTWD_DEFAULT_VALUES);
  // The prepare config holds out enough validation tokens for the trainer's default evaluation of the
  // mpt presets: eval.batches x batch.microBatchSize windows of maxSeqLen + 1 tokens.
  const maxSeqLen = Math.max(...['mpt-125m', 'mpt-1b', 'mpt-7b'].map((p) => mptConfig(p).maxSeqLen));
  const d = DEFAULT_TRAIN_CONFIG;
  t.equal(DEFAULT_PREPARE_CONFIG.split.minValidationTokens, d.eval.batches * d.batch.microBatchSize * maxSeqLen + 1);
});

/** Each property of `iface` in `file` (nested object literal types flattened to dotted keys) with its doc comment. */
function interfaceDocs(file: string, iface: string): Map<string, string> {
  const src = ts.createSourceFile(file, fs.readFileSync(path.join(root, file), 'utf8'), ts.ScriptTarget.ES2022, true);
  const out = new Map<string, string>();
  const walk = (members: ts.NodeArray<ts.TypeElement>, prefix: string) => {
    for (const m of members) {
      if (!ts.isPropertySignature(m) || !m.name) continue;
      const key = prefix + m.name.getText(src);
      const doc = ts.getJSDocCommentsAndTags(m).map((d) => (typeof d.comment === 'string' ? d.comment : '')).join(' ');
      out.set(key, doc.replace(/\s+/g, ' '));
      if (m.type && ts.isTypeLiteralNode(m.type)) walk(m.type.members, `${key}.`);
    }
  };
  let found = false;
  src.forEachChild((n) => {
    if (ts.isInterfaceDeclaration(n) && n.name.text === iface) {
      found = true;
      walk(n.members, '');
    }
  });
  if (!found) throw new Error(`${file}: no interface ${iface}`);
  return out;
}

function fieldAt(schema: ObjectField<unknown>, key: string): AnyField | undefined {
  let f: AnyField | undefined = schema;
  for (const part of key.split('.')) f = f?.kind === 'object' ? (f.fields as Record<string, AnyField>)[part] : undefined;
  return f;
}

// A literal right after "Defaults to ": a quoted string, an array, a number (65,537, 6e-4, 2^28) or a keyword.
const LITERAL = /^('[^']*'|\[[^\]]*\]|2\^\d+|-?\d[\d,]*(?:\.\d+)?(?:e-?\d+)?|true|false|null)(?=[.;:,)\s]|$)/;

/** The value "Defaults to X" states: a JSON value for a literal, else the words up to the sentence's end. */
function statedDefault(text: string): { json: string } | { words: string } {
  const m = LITERAL.exec(text);
  if (m === null) return { words: text.replace(/[.;:](\s.*)?$/, '') };
  const lit = m[1];
  if (lit.startsWith("'")) return { json: JSON.stringify(lit.slice(1, -1)) };
  if (lit.startsWith('2^')) return { json: JSON.stringify(2 ** Number(lit.slice(2))) };
  if (lit.startsWith('[')) return { json: JSON.stringify(JSON.parse(lit)) };
  if (/^-?\d/.test(lit)) return { json: JSON.stringify(Number(lit.replace(/,/g, ''))) };
  return { json: lit };
}

const INTERFACES: [string, string, ObjectField<unknown>][] = [
  ['lib/train/config.ts', 'TrainConfig', TRAIN_CONFIG_SCHEMA as ObjectField<unknown>],
  ['lib/data/corpus/prepare/config.ts', 'PrepareConfig', PREPARE_CONFIG_SCHEMA as ObjectField<unknown>],
  ['lib/optim/adamw.ts', 'AdamWOptions', ADAMW_OPTIONS_SCHEMA as ObjectField<unknown>],
  ['lib/optim/schedule.ts', 'CosineWithWarmupOptions', COSINE_OPTIONS_SCHEMA as ObjectField<unknown>],
  ['lib/optim/schedule.ts', 'PtwdPlateauOptions', PTWD_PLATEAU_SCHEMA as ObjectField<unknown>],
  ['lib/optim/clip.ts', 'ClipOptions', CLIP_OPTIONS_SCHEMA as ObjectField<unknown>],
];

t.test('the "Defaults to X" of the interfaces\' doc comments are the schemas\' defaults', async (t) => {
  for (const [file, iface, schema] of INTERFACES) {
    let stated = 0;
    for (const [key, doc] of interfaceDocs(file, iface)) {
      const f = fieldAt(schema, key);
      t.ok(f, `${iface}.${key} has a schema field`);
      const at = doc.indexOf('Defaults to ');
      if (at < 0 || f === undefined) continue;
      stated++;
      const said = statedDefault(doc.slice(at + 'Defaults to '.length));
      if ('json' in said) {
        t.equal(said.json, f.default === undefined ? f.defaultDoc : JSON.stringify(f.default), `${iface}.${key}: "Defaults to" says the schema's default`);
      } else {
        t.equal(said.words, f.defaultDoc, `${iface}.${key}: "Defaults to" says the schema's defaultDoc`);
      }
    }
    t.ok(stated > 0, `${iface}: its comments state defaults, and they were read`);
  }
});

t.test('the check reads what the comments say', async (t) => {
  t.same(statedDefault("'tiny'."), { json: '"tiny"' });
  t.same(statedDefault('6e-4.'), { json: '0.0006' });
  t.same(statedDefault('1.0; 0 disables.'), { json: '1' });
  t.same(statedDefault('65,537: the trainer'), { json: '65537' });
  t.same(statedDefault('2^28.'), { json: '268435456' });
  t.same(statedDefault('[0, 0.5, 0.1].'), { json: '[0,0.5,0.1]' });
  t.same(statedDefault('null (none).'), { json: 'null' });
  t.same(statedDefault("the model's maxSeqLen."), { words: "the model's maxSeqLen" });
  t.same(statedDefault('9 x 13 (a threshold)'), { json: '9' });
});
