// config-schema.test.ts: the one config validator (lib/core/config-schema.ts) on a small schema of every
// field kind: defaults, unknown keys (including the ones every object inherits), kinds and ranges with the
// full key path in the message, relative paths, cross-field checks, and the documentation listing.
import t, { type Test } from 'tap';
import * as path from 'node:path';
import * as s from '../../lib/core/config-schema';
import type { ConfigDialect, ObjectField } from '../../lib/core/config-schema';

interface Demo {
  name: string;
  level: 'low' | 'high';
  rate: number;
  count: number;
  limit: number | null;
  out: string;
  tokenizer: string;
  tags: string[];
  sizes: number[];
  weights: Record<string, number>;
  roots: Record<string, string>;
  inner: { on: boolean; lo: number; hi: number };
}

const dialect: ConfigDialect = {
  mismatch: (key, must, value) => `demo: '${key || '(root)'}' must ${must}, got ${JSON.stringify(value)}`,
  unknownKey: (key, parent, known) => `demo: unknown key '${key}' in '${parent}' (known: ${known.join(', ')})`,
  notObject: (key, value) => `demo: '${key || '(root)'}' is not an object: ${JSON.stringify(value)}`,
  fail: (message) => `demo: ${message}`,
};

const DEMO: ObjectField<Demo> = s.object<Demo>(
  {
    name: s.string({ nonEmpty: true, default: 'x', doc: 'A name.' }),
    level: s.oneOf(['low', 'high'], { default: 'low', doc: 'A level.' }),
    rate: s.number({ min: 0, max: 1, maxOpen: true, default: 0.5, doc: 'A share.' }),
    count: s.integer({ min: 1, default: 3, doc: 'A count.' }),
    limit: s.nullable(s.integer({ min: 0 }), { default: null, defaultDoc: 'no limit', doc: 'A limit.' }),
    out: s.pathField({ nonEmpty: true, default: 'out', expected: 'a folder', doc: 'Output | folder.' }),
    tokenizer: s.pathField({ literals: ['gpt2'], default: 'gpt2', doc: 'A tokenizer.' }),
    tags: s.array(s.string({ nonEmpty: true }), { default: [], expected: 'a list of tags', doc: 'Tags.' }),
    sizes: s.array(s.integer({ min: 1 }), { each: true, minLength: 1, default: [1], doc: 'Sizes.' }),
    weights: s.record(s.number({ min: 0 }), { default: {}, doc: 'Weights.' }),
    roots: s.record(s.string({}), { pathKeys: true, each: false, must: 'map folders to names', default: {}, doc: 'Roots.' }),
    inner: s.object(
      {
        on: s.boolean({ default: true, doc: 'On.' }),
        lo: s.number({ default: 0, doc: 'Low.' }),
        hi: s.number({
          default: 1,
          doc: 'High.',
          check: (hi, ctx) => {
            if (hi < (ctx.parent.lo as number)) ctx.fail(`'inner.hi' ${hi} must be >= 'inner.lo' ${ctx.parent.lo as number}`);
          },
        }),
      },
      { doc: 'Inner.' },
    ),
  },
  {
    doc: 'Demo.',
    check: (d, ctx) => {
      if (d.level === 'high' && d.limit === null) ctx.fail(`'level' high needs a 'limit'`);
    },
  },
);

const resolve = (input: unknown, baseDir?: string) => s.resolveConfig(DEMO, input, { dialect, baseDir });
const bad = (t: Test, input: unknown, message: string | RegExp) =>
  t.throws(() => resolve(input), { name: 'TypeError', code: 'ERR_PAJAMA_INVALID_ARG', message });

t.test('defaults fill every missing key, and are fresh copies', async (t) => {
  const a = resolve({});
  t.same(a, s.defaultsOf(DEMO));
  t.same(a, { name: 'x', level: 'low', rate: 0.5, count: 3, limit: null, out: 'out', tokenizer: 'gpt2', tags: [], sizes: [1], weights: {}, roots: {}, inner: { on: true, lo: 0, hi: 1 } });
  a.sizes.push(7);
  t.same(resolve(undefined).sizes, [1], 'a resolved value shares nothing with the defaults');
  const b = resolve({ level: 'high', limit: 4, inner: { on: false }, tags: ['a'], weights: { web: 2 } });
  t.same([b.level, b.limit, b.inner, b.tags, b.weights], ['high', 4, { on: false, lo: 0, hi: 1 }, ['a'], { web: 2 }]);
});

t.test('unknown keys are errors naming the full path, inherited names included', async (t) => {
  bad(t, { nmae: 'y' }, "demo: unknown key 'nmae' in '' (known: name, level, rate, count, limit, out, tokenizer, tags, sizes, weights, roots, inner)");
  bad(t, { inner: { of: true } }, /^demo: unknown key 'inner.of' in 'inner'/);
  for (const k of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    bad(t, JSON.parse(`{"${k}": 1}`), new RegExp(`unknown key '${k}'`));
    bad(t, JSON.parse(`{"inner": {"${k}": 1}}`), new RegExp(`unknown key 'inner.${k}'`));
  }
  // Unknown keys anywhere are reported before any value: 'rate' is wrong too.
  bad(t, { rate: 7, inner: { bogus: 1 } }, /unknown key 'inner.bogus'/);
  const w = resolve(JSON.parse('{"weights": {"__proto__": 1, "constructor": 2}}')).weights;
  t.same(Object.keys(w), ['__proto__', 'constructor'], "a record's own keys may be any name, and stay own keys");
  t.equal(Object.getPrototypeOf(w), Object.prototype);
});

t.test('kinds and ranges, each message naming the key and the value', async (t) => {
  bad(t, [], "demo: '(root)' is not an object: []");
  bad(t, { inner: 3 }, "demo: 'inner' is not an object: 3");
  bad(t, { name: '' }, "demo: 'name' must be a non-empty string, got \"\"");
  bad(t, { level: 'mid' }, "demo: 'level' must be one of low, high, got \"mid\"");
  bad(t, { rate: 1 }, "demo: 'rate' must be a number in [0, 1), got 1");
  bad(t, { rate: '0.5' }, /'rate' must be a number in \[0, 1\)/);
  bad(t, { rate: NaN }, /'rate' must be a number in \[0, 1\)/);
  bad(t, { count: 0 }, "demo: 'count' must be a positive integer, got 0");
  bad(t, { count: 1.5 }, "demo: 'count' must be a positive integer, got 1.5");
  bad(t, { limit: -1 }, "demo: 'limit' must be a non-negative integer or null, got -1");
  bad(t, { out: 4 }, "demo: 'out' must be a folder, got 4");
  bad(t, { tags: ['a', ''] }, 'demo: \'tags\' must be a list of tags, got ["a",""]');
  bad(t, { sizes: [2, 0] }, "demo: 'sizes[1]' must be a positive integer, got 0");
  bad(t, { sizes: [] }, "demo: 'sizes' must be an array, got []");
  bad(t, { weights: { a: 1, b: -2 } }, "demo: 'weights.b' must be a non-negative number, got -2");
  bad(t, { weights: [] }, "demo: 'weights' must be an object, got []");
  bad(t, { roots: { a: 3 } }, 'demo: \'roots\' must map folders to names, got {"a":3}');
  bad(t, { inner: { on: 'yes' } }, "demo: 'inner.on' must be a boolean, got \"yes\"");
});

t.test('cross-field checks see the fields before them', async (t) => {
  bad(t, { inner: { lo: 2, hi: 1 } }, "demo: 'inner.hi' 1 must be >= 'inner.lo' 2");
  bad(t, { level: 'high' }, "demo: 'level' high needs a 'limit'");
  t.equal(resolve({ level: 'high', limit: 0 }).limit, 0);
});

t.test('paths resolve against the base folder; literals and absolute paths stay', async (t) => {
  const base = path.join(path.sep, 'data', 'cfg');
  const c = resolve({ out: 'o', tokenizer: 'tok.json', roots: { raw: 'r', [path.join(path.sep, 'abs')]: 'a' } }, base);
  t.equal(c.out, path.join(base, 'o'));
  t.equal(c.tokenizer, path.join(base, 'tok.json'));
  t.same(Object.keys(c.roots), [path.join(base, 'raw'), path.join(path.sep, 'abs')]);
  t.equal(resolve({}, base).tokenizer, 'gpt2', "'gpt2' is a name, not a path");
  t.equal(resolve({}, base).out, path.join(base, 'out'), 'defaults resolve too');
  t.equal(resolve({ out: 'o' }).out, 'o', 'without a base folder paths stay as written');
});

t.test('`at` names a nested value, and required fields have no default', async (t) => {
  interface Opts { a: number; b: number }
  const OPTS = s.object<Opts>({ a: s.number({ min: 0, minOpen: true, doc: 'Required.' }), b: s.integer({ min: 0, default: 2, doc: 'B.' }) }, { doc: 'Opts.' });
  t.throws(() => s.resolveConfig(OPTS, { b: 1 }, { dialect, at: 'plateau' }), { message: "demo: 'plateau.a' must be a positive number, got undefined" });
  t.throws(() => s.resolveConfig(OPTS, { a: 1, c: 1 }, { dialect, at: 'plateau' }), { message: /unknown key 'plateau.c' in 'plateau'/ });
  t.same(s.resolveConfig(OPTS, { a: 1 }, { dialect }), { a: 1, b: 2 });
  t.same(s.configFields(OPTS).map((f) => f.default), ['required', '2']);
});

t.test('configFields and configTable list every leaf with its type, default and doc', async (t) => {
  const rows = s.configFields(DEMO as ObjectField<unknown>);
  t.same(rows.map((r) => r.key), ['name', 'level', 'rate', 'count', 'limit', 'out', 'tokenizer', 'tags', 'sizes', 'weights', 'roots', 'inner.on', 'inner.lo', 'inner.hi']);
  const byKey = Object.fromEntries(rows.map((r) => [r.key, r]));
  t.same(byKey.rate, { key: 'rate', type: 'number in [0, 1)', default: '0.5', defaultIsJson: true, doc: 'A share.' });
  t.same(byKey.limit, { key: 'limit', type: 'integer >= 0 | null', default: 'no limit', defaultIsJson: false, doc: 'A limit.' });
  t.equal(byKey.level.type, '"low" | "high"');
  t.equal(byKey.sizes.type, '(integer >= 1)[]');
  t.equal(byKey.roots.type, '{ [path]: string }');
  t.equal(byKey.tokenizer.type, '"gpt2" | path');
  const table = s.configTable(DEMO as ObjectField<unknown>).split('\n');
  t.equal(table[0], '| key | type | default | meaning |');
  t.equal(table.length, 2 + rows.length);
  t.ok(table.includes('| `out` | path | `"out"` | Output \\| folder. |'), "a '|' in a cell is escaped");
  t.ok(table.includes('| `limit` | integer >= 0 \\| null | no limit | A limit. |'), 'words, not code, for a default in words');
});

t.test('the range helpers shared with the optimizer', async (t) => {
  t.equal(s.rangeSuffix({ min: 0, max: 1, maxOpen: true }), ' in [0, 1)');
  t.equal(s.rangeSuffix({ min: 0, minOpen: true }), ' > 0');
  t.equal(s.rangeSuffix({ max: 5 }), ' <= 5');
  t.equal(s.rangeSuffix({}), '');
  t.ok(s.inRange(0, { min: 0 }));
  t.notOk(s.inRange(0, { min: 0, minOpen: true }));
  t.notOk(s.inRange(1, { max: 1, maxOpen: true }));
});

// Compile-time: a schema that drifts from its interface does not type-check (`npx tsc` over this file).
interface Small { a: number; b: 'x' | 'y' }
// @ts-expect-error a missing field
s.object<Small>({ a: s.number({ doc: '' }) }, { doc: '' });
// @ts-expect-error an extra field
s.object<Small>({ a: s.number({ doc: '' }), b: s.oneOf(['x', 'y'], { doc: '' }), c: s.boolean({ doc: '' }) }, { doc: '' });
// @ts-expect-error a field of the wrong type
s.object<Small>({ a: s.nullable(s.number({}), { doc: '' }), b: s.oneOf(['x', 'y'], { doc: '' }) }, { doc: '' });
// @ts-expect-error an enum of other values
s.object<Small>({ a: s.number({ doc: '' }), b: s.oneOf(['x', 'z'], { doc: '' }) }, { doc: '' });
