// tokenizeFiles over a folder of .txt and .jsonl files: documents in name order with EOS between them,
// bad lines reported with file:line and skipped, large .txt files encoded in pieces with the same tokens,
// and no shard left behind when an input is wrong.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gpt2Tokenizer, openShard, tokenizeFiles, type TokenizeProgress, type Tokenizer } from '../../../lib/data/index';

const tok = gpt2Tokenizer();

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-tokenize-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The shard's tokens split at EOS: one array per document (the shard must end with EOS). */
function shardDocuments(file: string): number[][] {
  const r = openShard(file);
  const all = Array.from(r.read(0, r.tokenCount));
  r.close();
  const docs: number[][] = [];
  let cur: number[] = [];
  for (const id of all) {
    if (id === tok.eosId) {
      docs.push(cur);
      cur = [];
    } else cur.push(id);
  }
  if (cur.length) throw new Error('shard does not end with EOS');
  return docs;
}

t.test('a folder of .txt and .jsonl files becomes one shard, bad lines reported', async (t) => {
  const dir = tempDir(t);
  const input = path.join(dir, 'in');
  fs.mkdirSync(path.join(input, 'sub'), { recursive: true });
  const aTxt = 'A whole text file is one document.\nIt has two lines, and “quotes”.\n';
  fs.writeFileSync(path.join(input, 'a.txt'), aTxt);
  const bJsonl = path.join(input, 'sub', 'b.jsonl');
  fs.writeFileSync(
    bJsonl,
    [
      JSON.stringify({ text: 'First JSONL document.', meta: { source: 'x' } }),
      '{"text": "broken line, no closing brace"',
      JSON.stringify({ text: 'Third line: 日本語 and <|endoftext|> as plain text.' }),
      '',
      JSON.stringify({ title: 'no text field' }),
      '[1, 2, 3]',
      JSON.stringify({ text: 42 }),
      JSON.stringify({ text: '' }),
      JSON.stringify({ text: 'Last document\r' }) + '\r',
    ].join('\n') + '\n',
  );
  fs.writeFileSync(path.join(input, 'c.md'), 'not an input: wrong extension');
  fs.writeFileSync(path.join(input, 'empty.txt'), '');
  const zTxt = '\ufeffByte order mark dropped.';
  fs.writeFileSync(path.join(input, 'z.txt'), zTxt);

  const progress: TokenizeProgress[] = [];
  const out = path.join(dir, 'out', 'train.bin');
  const s = await tokenizeFiles({ inputs: [input], output: out, tokenizer: tok, onProgress: (p) => progress.push(p) });

  const expectedTexts = [
    aTxt,
    'First JSONL document.',
    'Third line: 日本語 and <|endoftext|> as plain text.',
    'Last document\r',
    'Byte order mark dropped.',
  ];
  t.same(s.files, ['a.txt', 'empty.txt', 'sub/b.jsonl', 'z.txt'].map((f) => path.join(input, f)), 'inputs in name order, .md ignored');
  t.equal(s.documents, expectedTexts.length);
  t.same(
    s.skipped.map((x) => `${path.relative(input, x.file)}:${x.line}`),
    ['empty.txt:0', 'sub/b.jsonl:2', 'sub/b.jsonl:5', 'sub/b.jsonl:6', 'sub/b.jsonl:7', 'sub/b.jsonl:8'],
    'skipped lines named by file:line (the blank line 4 is not a document)',
  );
  t.match(s.skipped[0].reason, /empty document/);
  t.match(s.skipped[1].reason, /invalid JSON/);
  t.match(s.skipped[2].reason, /no string "text" field/);
  t.match(s.skipped[3].reason, /not a JSON object/);
  t.match(s.skipped[4].reason, /no string "text" field/);
  t.match(s.skipped[5].reason, /empty document/);
  t.equal(s.skippedTotal, 6);

  const docs = shardDocuments(out);
  t.same(docs.map((d) => tok.decode(d)), expectedTexts, 'each document decodes back, separated by EOS');
  t.same(docs, expectedTexts.map((x) => Array.from(tok.encode(x))));
  t.equal(s.tokens, docs.reduce((n, d) => n + d.length + 1, 0), 'tokens counts the EOS after each document');
  t.equal(s.bytes, expectedTexts.reduce((n, x) => n + Buffer.byteLength(x), 0));
  t.equal(s.output, out);
  t.same(fs.readdirSync(path.dirname(out)), ['train.bin'], 'no temporary file left');
  t.ok(progress.length >= 4, 'progress after every file');
  t.match(progress[progress.length - 1], { filesDone: 4, files: 4, documents: 5, tokens: s.tokens, bytes: s.bytes });

  // A single file as input; the listing of skipped lines can be capped while all are counted.
  const one = await tokenizeFiles({ inputs: [bJsonl], output: path.join(dir, 'one.bin'), tokenizer: tok, maxSkippedListed: 2 });
  t.equal(one.documents, 3);
  t.equal(one.skipped.length, 2);
  t.equal(one.skippedTotal, 5);
  const titles = await tokenizeFiles({ inputs: [bJsonl], output: path.join(dir, 'titles.bin'), tokenizer: tok, textField: 'title' });
  t.same(shardDocuments(path.join(dir, 'titles.bin')).map((d) => tok.decode(d)), ['no text field'], 'textField picks another field');
});

t.test('a large .txt document is encoded in pieces with the same tokens as whole', async (t) => {
  const dir = tempDir(t);
  const lines: string[] = [];
  for (let i = 0; i < 3000; i++) {
    lines.push(i % 7 === 0 ? '' : i % 5 === 0 ? `    indented line ${i} with “unicode” ✓` : `Line ${i}: the quick brown fox jumps over the lazy dog.`);
  }
  const text = lines.join('\n');
  const file = path.join(dir, 'big.txt');
  fs.writeFileSync(file, text);
  const whole = Array.from(tok.encode(text));
  // Count the pieces by watching the tokenizer.
  let calls = 0;
  const counting: Tokenizer = { ...tok, name: tok.name, vocabSize: tok.vocabSize, eosId: tok.eosId, splitsAtLineBreaks: true, encode: (x) => (calls++, tok.encode(x)), decode: tok.decode };
  const s = await tokenizeFiles({ inputs: [file], output: path.join(dir, 'big.bin'), tokenizer: counting, txtPieceChars: 500 });
  t.ok(calls > 50, `${calls} pieces`);
  t.equal(s.documents, 1);
  t.same(shardDocuments(path.join(dir, 'big.bin')), [whole]);

  // A tokenizer without the property gets the text whole.
  calls = 0;
  await tokenizeFiles({ inputs: [file], output: path.join(dir, 'whole.bin'), tokenizer: { ...counting, splitsAtLineBreaks: false }, txtPieceChars: 500 });
  t.equal(calls, 1);
  t.same(shardDocuments(path.join(dir, 'whole.bin')), [whole]);
});

t.test('wrong inputs are errors and leave no shard', async (t) => {
  const dir = tempDir(t);
  const out = path.join(dir, 'x.bin');
  await t.rejects(tokenizeFiles({ inputs: [path.join(dir, 'nope')], output: out, tokenizer: tok }), { name: 'TypeError', message: /nope does not exist/ });
  fs.writeFileSync(path.join(dir, 'data.csv'), 'a,b');
  await t.rejects(tokenizeFiles({ inputs: [path.join(dir, 'data.csv')], output: out, tokenizer: tok }), /neither a folder nor a \.txt or \.jsonl/);
  fs.mkdirSync(path.join(dir, 'emptydir'));
  await t.rejects(tokenizeFiles({ inputs: [path.join(dir, 'emptydir')], output: out, tokenizer: tok }), /no \.txt or \.jsonl files/);
  await t.rejects(tokenizeFiles({ inputs: [], output: out, tokenizer: tok }), TypeError);
  // A tokenizer that misbehaves mid-way: the partial shard is removed.
  fs.writeFileSync(path.join(dir, 'ok.txt'), 'fine');
  const bad: Tokenizer = { name: 'bad', vocabSize: 10, eosId: 9, encode: () => [1, 99], decode: () => '' };
  await t.rejects(tokenizeFiles({ inputs: [path.join(dir, 'ok.txt')], output: out, tokenizer: bad }), { name: 'TypeError', message: /ok\.txt: .* is 99/ });
  fs.writeFileSync(path.join(dir, 'ok.jsonl'), '{"text": "a"}\n{"text": "b"}\n');
  let calls = 0;
  const badSecond: Tokenizer = { ...bad, encode: () => (++calls === 2 ? [99] : [1]) };
  await t.rejects(tokenizeFiles({ inputs: [path.join(dir, 'ok.jsonl')], output: out, tokenizer: badSecond }), /ok\.jsonl:2: .* is 99/);
  t.notOk(fs.readdirSync(dir).some((f) => f.startsWith('x.bin')), 'no shard and no temporary file');
});

t.test('links to files and folders are followed', async (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'real'));
  fs.writeFileSync(path.join(dir, 'real', 'doc.txt'), 'linked document');
  fs.mkdirSync(path.join(dir, 'in'));
  fs.symlinkSync(path.join(dir, 'real'), path.join(dir, 'in', 'folder'));
  fs.symlinkSync(path.join(dir, 'real', 'doc.txt'), path.join(dir, 'in', 'file.txt'));
  const s = await tokenizeFiles({ inputs: [path.join(dir, 'in')], output: path.join(dir, 'out.bin'), tokenizer: tok });
  t.same(s.files, [path.join(dir, 'in', 'file.txt'), path.join(dir, 'in', 'folder', 'doc.txt')]);
  t.same(shardDocuments(path.join(dir, 'out.bin')).map((d) => tok.decode(d)), ['linked document', 'linked document']);
});
