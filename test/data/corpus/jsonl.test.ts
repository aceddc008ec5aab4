// The shard reader over real .jsonl files and .jsonl.zst files made by the zstd command-line tool: file
// listing (folders, globs, de-duplication, order), the source precedence, malformed lines named by
// file:line, strict mode, line splitting at any chunk size, multi-frame/level-19/empty zstd files, and
// truncated or corrupt .zst files reported instead of read as something else.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { PajamaDataError } from '../../../lib/data/errors';
import { globToRegExp, listShardFiles } from '../../../lib/data/corpus/files';
import {
  JsonlDocumentReader,
  formatMalformed,
  readDocuments,
  type JsonlReadOptions,
  type JsonlReadProgress,
  type JsonlReadStats,
  type MalformedInput,
  type SourceDocument,
} from '../../../lib/data/corpus/jsonl';

// The zstd tests need the zstd command-line tool. Without it they are skipped with the reason, except on CI,
// which installs it: there its absence fails the run.
const zstdMissing = spawnSync('zstd', ['--version']).error ? 'the zstd command-line tool is not installed (apt-get install zstd)' : false;
if (zstdMissing && process.env.CI) t.fail(`${zstdMissing}; CI installs it, so the zstd tests cannot be skipped there`);
const needsZstd = { skip: process.env.CI ? false : zstdMissing };

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-jsonl-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function write(file: string, content: string | Buffer): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  return file;
}

/** JSON lines, each ending with "\n". */
function jsonl(records: unknown[]): string {
  return records.map((r) => JSON.stringify(r) + '\n').join('');
}

function rp(text: string, set: string): { text: string; meta: { redpajama_set_name: string } } {
  return { text, meta: { redpajama_set_name: set } };
}

/** Compresses `file` to `out` (default file + '.zst') with the zstd tool and returns `out`. */
function zstd(file: string, out = file + '.zst', args: string[] = []): string {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  execFileSync('zstd', ['-q', '-f', ...args, file, '-o', out]);
  return out;
}

async function readAll(options: JsonlReadOptions): Promise<{ docs: SourceDocument[]; stats: JsonlReadStats }> {
  const reader = new JsonlDocumentReader(options);
  const docs: SourceDocument[] = [];
  for await (const d of reader) docs.push(d);
  return { docs, stats: reader.stats };
}

const texts = (docs: SourceDocument[]): string[] => docs.map((d) => d.text);

t.test('listShardFiles: files, folders and globs, de-duplicated and sorted by path', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const names = ['a.jsonl', 'b.jsonl.zst', 'x1.jsonl', 'x22.jsonl', 'sub/c.jsonl', 'sub/deep/d.jsonl.zst', 'sub2/e.jsonl', 'a/f.jsonl'];
  for (const n of names) write(path.join(root, n), '');
  for (const n of ['notes.md', 'data.json', 'sub/c.jsonl.gz', 'sub/readme.txt']) write(path.join(root, n), 'not a shard');
  const abs = (...ns: string[]) => ns.map((n) => path.join(root, n));
  const all = abs('a.jsonl', 'a/f.jsonl', 'b.jsonl.zst', 'sub/c.jsonl', 'sub/deep/d.jsonl.zst', 'sub2/e.jsonl', 'x1.jsonl', 'x22.jsonl');

  t.same(listShardFiles([root]), all, 'a folder: every shard file below it, sorted by path ("a.jsonl" < "a/f.jsonl")');
  t.same(listShardFiles([path.join(root, '*.jsonl')]), abs('a.jsonl', 'x1.jsonl', 'x22.jsonl'), '* stays in its folder');
  t.same(listShardFiles([path.join(root, '**', '*.jsonl')]), abs('a.jsonl', 'a/f.jsonl', 'sub/c.jsonl', 'sub2/e.jsonl', 'x1.jsonl', 'x22.jsonl'), '** spans zero or more folders');
  t.same(listShardFiles([path.join(root, 'x?.jsonl')]), abs('x1.jsonl'), '? is one character');
  t.same(listShardFiles([path.join(root, 'sub', '**')]), abs('sub/c.jsonl', 'sub/deep/d.jsonl.zst'), 'a final ** takes every depth, shard files only');
  t.same(listShardFiles([path.join(root, 'sub*', '*')]), abs('sub/c.jsonl', 'sub2/e.jsonl'), 'wildcards in folder names');
  const mixed = [path.join(root, 'x22.jsonl'), path.join(root, '*.jsonl'), root, path.join(root, 'sub')];
  t.same(listShardFiles(mixed), all, 'overlapping inputs are de-duplicated');
  t.same(listShardFiles([...mixed].reverse()), all, 'the order of the inputs does not matter');
  const rel = path.relative(process.cwd(), path.join(root, 'sub'));
  t.same(listShardFiles([rel, path.join(rel, '**', '*.zst')]), abs('sub/c.jsonl', 'sub/deep/d.jsonl.zst'), 'relative paths and globs resolve against the working directory');

  // A link back to an enclosing folder is not followed around the loop.
  fs.symlinkSync(root, path.join(root, 'sub2', 'loop'));
  t.same(listShardFiles([path.join(root, 'sub2')]), [path.join(root, 'sub2', 'e.jsonl'), ...all.filter((f) => !f.includes('sub2')).map((f) => f.replace(root, path.join(root, 'sub2', 'loop')))].sort());

  t.throws(() => listShardFiles([path.join(root, '*.parquet')]), { name: 'TypeError', message: /the glob .*\*\.parquet matches no \.jsonl or \.jsonl\.zst file/ });
  t.throws(() => listShardFiles([path.join(dir, 'nope', '*.jsonl')]), /nope.*matches no/);
  t.throws(() => listShardFiles([path.join(root, 'missing.jsonl')]), { name: 'TypeError', message: /missing\.jsonl does not exist/ });
  fs.mkdirSync(path.join(dir, 'empty'));
  t.throws(() => listShardFiles([root, path.join(dir, 'empty')]), /the folder .*empty holds no \.jsonl or \.jsonl\.zst file/);
  t.throws(() => listShardFiles([path.join(root, 'notes.md')]), /notes\.md is neither a folder nor a \.jsonl or \.jsonl\.zst file/);
  t.throws(() => listShardFiles([]), TypeError);
  t.throws(() => listShardFiles(['']), TypeError);
});

t.test('globToRegExp: the matching rules', async (t) => {
  const m = (glob: string, p: string) => globToRegExp(glob).test(p);
  t.ok(m('/d/*.jsonl', '/d/a.jsonl'));
  t.ok(m('/d/*.jsonl', '/d/.hidden.jsonl'), '* matches a leading dot');
  t.notOk(m('/d/*.jsonl', '/d/s/a.jsonl'), '* does not cross /');
  t.ok(m('/d/**/x.jsonl', '/d/x.jsonl'));
  t.ok(m('/d/**/x.jsonl', '/d/a/b/x.jsonl'));
  t.notOk(m('/d/**/x.jsonl', '/d/ax.jsonl'));
  t.ok(m('/d/**', '/d/a/b'));
  t.notOk(m('/d/**', '/d'));
  t.ok(m('/d/a?.jsonl', '/d/ab.jsonl'));
  t.notOk(m('/d/a?.jsonl', '/d/a.jsonl'));
  t.notOk(m('/d?x', '/d/x'), '? does not match /');
  t.ok(m('/d/a+b(1)[2]{3}^$|.jsonl', '/d/a+b(1)[2]{3}^$|.jsonl'), 'other characters are literal');
  t.notOk(m('/d/a.jsonl*', '/d/aXjsonl'), '. is literal');
});

t.test('documents with their source, file, line and index; the stats', needsZstd, async (t) => {
  const dir = tempDir(t);
  const a = write(
    path.join(dir, 'in', 'a.jsonl'),
    jsonl([rp('Common Crawl page.', 'RedPajamaCommonCrawl'), rp('C4 page, “quoted”.', 'RedPajamaC4')]) + '\n' + jsonl([rp('def f(): pass', 'RedPajamaGithub')]),
  );
  const bPlain = write(path.join(dir, 'plain', 'b.jsonl'), jsonl([rp('Ünïcödé arXiv 日本語 😀', 'RedPajamaArXiv'), rp('Another C4 page.', 'RedPajamaC4')]));
  const b = zstd(bPlain, path.join(dir, 'in', 'sub', 'b.jsonl.zst'));
  write(path.join(dir, 'in', 'README.md'), 'ignored');

  const progress: JsonlReadProgress[] = [];
  const { docs, stats } = await readAll({ inputs: [path.join(dir, 'in')], onProgress: (p) => progress.push({ ...p }) });
  t.same(docs, [
    { text: 'Common Crawl page.', source: 'RedPajamaCommonCrawl', file: a, line: 1, index: 0 },
    { text: 'C4 page, “quoted”.', source: 'RedPajamaC4', file: a, line: 2, index: 1 },
    { text: 'def f(): pass', source: 'RedPajamaGithub', file: a, line: 4, index: 2 },
    { text: 'Ünïcödé arXiv 日本語 😀', source: 'RedPajamaArXiv', file: b, line: 1, index: 3 },
    { text: 'Another C4 page.', source: 'RedPajamaC4', file: b, line: 2, index: 4 },
  ]);
  const bytesOf = (...xs: string[]) => xs.reduce((n, x) => n + Buffer.byteLength(x), 0);
  t.same(stats, {
    files: 2,
    lines: 6,
    blankLines: 1,
    documents: 5,
    bytes: fs.statSync(a).size + fs.statSync(bPlain).size,
    compressedBytes: fs.statSync(b).size,
    malformed: 0,
    corruptFiles: 0,
    malformedSamples: [],
    sources: {
      RedPajamaCommonCrawl: { documents: 1, bytes: bytesOf('Common Crawl page.') },
      RedPajamaC4: { documents: 2, bytes: bytesOf('C4 page, “quoted”.', 'Another C4 page.') },
      RedPajamaGithub: { documents: 1, bytes: bytesOf('def f(): pass') },
      RedPajamaArXiv: { documents: 1, bytes: bytesOf('Ünïcödé arXiv 日本語 😀') },
    },
  });
  t.same(Object.keys(stats.sources), ['RedPajamaCommonCrawl', 'RedPajamaC4', 'RedPajamaGithub', 'RedPajamaArXiv'], 'sources in order of first appearance');

  const total = fs.statSync(a).size + fs.statSync(b).size;
  const last = progress[progress.length - 1];
  t.match(last, { file: b, filesDone: 2, files: 2, diskBytes: total, diskBytesTotal: total, bytes: stats.bytes, documents: 5 });
  t.ok(progress.some((p) => p.file === a && p.filesDone === 1), 'progress after the first file');
  t.ok(progress.every((p, i) => i === 0 || p.diskBytes >= progress[i - 1].diskBytes), 'disk bytes only grow');

  // readDocuments: the same documents; the generator's return value is the stats.
  const gen = readDocuments({ inputs: [a, b] });
  const seen: string[] = [];
  let r = await gen.next();
  while (!r.done) {
    seen.push(r.value.text);
    r = await gen.next();
  }
  t.same(seen, texts(docs));
  t.equal(r.value.documents, 5);

  const reader = new JsonlDocumentReader({ inputs: [a] });
  for await (const d of reader) void d;
  t.throws(() => reader[Symbol.asyncIterator](), { name: 'TypeError', message: /iterated once/ });
});

t.test('source precedence: a sources entry, then meta.redpajama_set_name, then defaultSource', async (t) => {
  const dir = tempDir(t);
  const gh = write(path.join(dir, 'corpus', 'github', 'a.jsonl'), jsonl([rp('code', 'RedPajamaGithub'), { text: 'code without meta' }]));
  const web = write(path.join(dir, 'corpus', 'web', 'b.jsonl'), jsonl([rp('web page', 'RedPajamaCommonCrawl')]));
  const other = write(path.join(dir, 'other', 'c.jsonl'), jsonl([{ text: 'no meta at all', id: 7 }, { text: 'null meta', meta: null }]));
  const book = write(path.join(dir, 'other', 'd.jsonl'), jsonl([rp('a book', 'RedPajamaBook')]));
  const inputs = [dir];
  const bySource = (docs: SourceDocument[]) => docs.map((d) => `${d.text} -> ${d.source}`);

  const mapped = await readAll({
    inputs,
    sources: { [path.join(dir, 'corpus', 'github')]: 'Code', [path.join(dir, 'other', '*.jsonl')]: 'Other', [path.join(dir, 'corpus', '**')]: 'Corpus' },
  });
  t.same(bySource(mapped.docs), [
    'code -> Code',
    'code without meta -> Code',
    'web page -> Corpus',
    'no meta at all -> Other',
    'null meta -> Other',
    'a book -> Other',
  ], 'the first matching entry wins, and a mapping wins over meta');
  t.equal(mapped.stats.malformed, 0, 'mapped files need no meta');

  const rel = path.relative(process.cwd(), book);
  const byFile = await readAll({ inputs: [book, web], sources: { [rel]: 'Books' } });
  t.same(bySource(byFile.docs), ['web page -> RedPajamaCommonCrawl', 'a book -> Books'], 'a file as a key, relative to the working directory');

  const withDefault = await readAll({ inputs, defaultSource: 'Misc' });
  t.same(bySource(withDefault.docs), [
    'code -> RedPajamaGithub',
    'code without meta -> Misc',
    'web page -> RedPajamaCommonCrawl',
    'no meta at all -> Misc',
    'null meta -> Misc',
    'a book -> RedPajamaBook',
  ], 'meta, else the default');

  const bare = await readAll({ inputs });
  t.same(texts(bare.docs), ['code', 'web page', 'a book']);
  t.equal(bare.stats.malformed, 3);
  t.same(bare.stats.malformedSamples.map(formatMalformed), [
    `${gh}:2: no source: no meta.redpajama_set_name, no sources entry for this file and no defaultSource`,
    `${other}:1: no source: no meta.redpajama_set_name, no sources entry for this file and no defaultSource`,
    `${other}:2: no source: no meta.redpajama_set_name, no sources entry for this file and no defaultSource`,
  ]);

  const badMeta = write(path.join(dir, 'bad', 'e.jsonl'), jsonl([{ text: 'x', meta: { redpajama_set_name: 42 } }, { text: 'y', meta: 'RedPajamaC4' }, { text: 'z', meta: { redpajama_set_name: '' } }]));
  const bad = await readAll({ inputs: [badMeta], defaultSource: 'Misc' });
  t.same(bad.docs, []);
  t.same(bad.stats.malformedSamples.map((m) => m.reason), [
    'meta.redpajama_set_name is not a non-empty string: 42',
    '"meta" is not an object',
    'meta.redpajama_set_name is not a non-empty string: ""',
  ], 'a meta that is there but wrong is malformed, not defaulted');
  const badMapped = await readAll({ inputs: [badMeta], sources: { [path.join(dir, 'bad')]: 'Mapped' } });
  t.same(bySource(badMapped.docs), ['x -> Mapped', 'y -> Mapped', 'z -> Mapped'], 'with a mapping, meta is not read');

  t.throws(() => new JsonlDocumentReader({ inputs, sources: { [dir]: '' } }), { name: 'TypeError', message: /sources\[".*"\] must be a non-empty source name/ });
  t.throws(() => new JsonlDocumentReader({ inputs, defaultSource: '' }), /defaultSource must be a non-empty string/);
  t.throws(() => new JsonlDocumentReader({ inputs, source: 'x' } as unknown as JsonlReadOptions), /unknown option "source"/);
  t.throws(() => new JsonlDocumentReader({ inputs, chunkBytes: 0 }), /chunkBytes must be a positive integer/);
});

t.test('malformed lines are reported with file:line and skipped; strict mode throws at the first', async (t) => {
  const dir = tempDir(t);
  const file = write(
    path.join(dir, 'a.jsonl'),
    Buffer.concat([
      Buffer.from('\ufeff' + JSON.stringify(rp('first, after a byte order mark', 'S')) + '\r\n'),
      Buffer.from('\n'),
      Buffer.from('  \t \r\n'),
      Buffer.from('{"text": "broken line, no closing brace\n'),
      Buffer.from('[1, 2, 3]\n'),
      Buffer.from(JSON.stringify({ meta: { redpajama_set_name: 'S' } }) + '\n'),
      Buffer.from('{"text": 5, "meta": {"redpajama_set_name": "S"}}\n'),
      Buffer.from('{"text": "bad byte '),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('", "meta": {"redpajama_set_name": "S"}}\n'),
      Buffer.from(JSON.stringify(rp('carriage return inside: a\rb', 'S')) + '\r\n'),
      Buffer.from(JSON.stringify(rp('last line, no newline', 'S'))),
    ]),
  );
  const reported: MalformedInput[] = [];
  const { docs, stats } = await readAll({ inputs: [file], onMalformed: (m) => reported.push(m) });
  t.same(docs.map((d) => [d.line, d.text]), [
    [1, 'first, after a byte order mark'],
    [9, 'carriage return inside: a\rb'],
    [10, 'last line, no newline'],
  ]);
  t.match(stats, { lines: 10, blankLines: 2, documents: 3, malformed: 5, corruptFiles: 0 });
  t.same(stats.malformedSamples.map((m) => `${path.basename(m.file)}:${m.line}`), ['a.jsonl:4', 'a.jsonl:5', 'a.jsonl:6', 'a.jsonl:7', 'a.jsonl:8']);
  t.match(stats.malformedSamples.map((m) => m.reason), [/^invalid JSON: /, /^not a JSON object$/, /^no string "text" field$/, /^no string "text" field$/, /^invalid UTF-8$/]);
  t.match(formatMalformed(stats.malformedSamples[0]), new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4: invalid JSON`));
  t.same(reported, stats.malformedSamples, 'onMalformed sees each one');

  const capped = await readAll({ inputs: [file], maxMalformedSamples: 2 });
  t.equal(capped.stats.malformedSamples.length, 2, 'samples are capped');
  t.equal(capped.stats.malformed, 5, 'all are counted');

  const strictDocs: string[] = [];
  const strictRead = async () => {
    for await (const d of new JsonlDocumentReader({ inputs: [file], strict: true })) strictDocs.push(d.text);
  };
  const err = await strictRead().then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, PajamaDataError);
  t.match(err, { code: 'ERR_PAJAMA_DATA', file, message: `${file}: line 4: invalid JSON: ` });
  t.same(strictDocs, ['first, after a byte order mark'], 'the documents before the bad line were read');
});

t.test('lines longer than a chunk and characters cut by chunk ends read the same at every chunk size', async (t) => {
  const dir = tempDir(t);
  const long = Array.from({ length: 700 }, (_, i) => `wörd${i} 日本語 😀 `).join(''); // ~15 KB of 1- to 4-byte characters
  const records = [rp('é', 'S'), rp(long, 'RedPajamaBook'), rp('ß∑😀\u0301 x', 'S'), rp('', 'S'), rp(long.slice(0, 999), 'S')];
  const content = records.map((r, i) => JSON.stringify(r) + (i % 2 ? '\r\n' : '\n')).join('').replace(/\n$/, ''); // CRLF and LF, no final newline
  const file = write(path.join(dir, 'a.jsonl'), content);
  const expected = records.map((r) => r.text);
  for (const chunkBytes of [1, 2, 3, 5, 7, 13, 64, 4093, undefined]) {
    const { docs, stats } = await readAll({ inputs: [file], chunkBytes });
    t.same(texts(docs), expected, `chunkBytes ${chunkBytes ?? 'default'}`);
    t.same(docs.map((d) => d.line), [1, 2, 3, 4, 5]);
    t.match(stats, { bytes: Buffer.byteLength(content), malformed: 0, blankLines: 0 });
  }

  // A line over maxLineBytes is malformed and not held; the lines around it are read.
  const limited = await readAll({ inputs: [file], chunkBytes: 64, maxLineBytes: 4000 });
  t.same(texts(limited.docs), [expected[0], expected[2], expected[3], expected[4]]);
  t.same(limited.stats.malformedSamples.map((m) => [m.line, m.reason]), [[2, `line of ${Buffer.byteLength(JSON.stringify(records[1])) + 1} bytes is longer than maxLineBytes (4000)`]]);
  const lastTooLong = await readAll({ inputs: [file], chunkBytes: 100, maxLineBytes: 1000 });
  t.same(lastTooLong.stats.malformedSamples.map((m) => m.line), [2, 5], 'also a final line without newline');
});

t.test('zstd: chunk boundaries, several frames, level 19, no checksum, skippable frames, empty files', needsZstd, async (t) => {
  const dir = tempDir(t);
  const partA = Array.from({ length: 40 }, (_, i) => rp(`document ${i}: ` + 'naïve café 日本 😀 '.repeat(i * 7), i % 2 ? 'RedPajamaC4' : 'RedPajamaWikipedia'));
  const partB = [rp('second frame, first line', 'RedPajamaStackExchange'), rp('second frame, last line without newline', 'RedPajamaStackExchange')];
  const a = write(path.join(dir, 'plain', 'a.jsonl'), jsonl(partA));
  const b = write(path.join(dir, 'plain', 'b.jsonl'), jsonl(partB).replace(/\n$/, ''));
  const expectA = partA.map((r) => r.text);
  const expectB = partB.map((r) => r.text);

  const a3 = zstd(a, path.join(dir, 'a3.jsonl.zst'));
  for (const chunkBytes of [1, 3, 17, 1000, undefined]) {
    const { docs, stats } = await readAll({ inputs: [a3], chunkBytes });
    t.same(texts(docs), expectA, `level 3, chunkBytes ${chunkBytes ?? 'default'}`);
    t.match(stats, { bytes: fs.statSync(a).size, compressedBytes: fs.statSync(a3).size, corruptFiles: 0, malformed: 0 });
  }
  const a19 = zstd(a, path.join(dir, 'a19.jsonl.zst'), ['-19']);
  t.same(texts((await readAll({ inputs: [a19] })).docs), expectA, 'level 19');
  const noCheck = zstd(a, path.join(dir, 'nocheck.jsonl.zst'), ['--no-check']);
  t.same(texts((await readAll({ inputs: [noCheck] })).docs), expectA, 'frames without a content checksum');

  // Two files' frames concatenated (what `cat a.zst b.zst` makes) decompress to the two contents in turn.
  const b3 = zstd(b, path.join(dir, 'b3.jsonl.zst'));
  const multi = write(path.join(dir, 'multi.jsonl.zst'), Buffer.concat([fs.readFileSync(a19), fs.readFileSync(b3)]));
  for (const chunkBytes of [5, undefined]) {
    const { docs } = await readAll({ inputs: [multi], chunkBytes });
    t.same(texts(docs), [...expectA, ...expectB], `two frames, chunkBytes ${chunkBytes ?? 'default'}`);
    t.same(docs.slice(-2).map((d) => d.line), [41, 42], 'lines count on across frames');
  }

  // Frames of a few bytes (fzstd holds back input under 18 bytes), and a skippable frame, between others.
  const tinyDoc = write(path.join(dir, 'plain', 'tiny.jsonl'), '{"text":"t","meta":{"redpajama_set_name":"S"}}\n');
  const blank = write(path.join(dir, 'plain', 'blank.jsonl'), '\n');
  const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0]), Buffer.from('skip!')]);
  const blankZst = fs.readFileSync(zstd(blank, path.join(dir, 'blank.zst')));
  t.ok(blankZst.length < 18, `a ${blankZst.length}-byte frame`);
  const mixed = write(path.join(dir, 'mixed.jsonl.zst'), Buffer.concat([blankZst, skippable, fs.readFileSync(zstd(tinyDoc, path.join(dir, 't.zst'))), blankZst, fs.readFileSync(b3)]));
  for (const chunkBytes of [1, 4, undefined]) {
    const { docs, stats } = await readAll({ inputs: [mixed], chunkBytes });
    t.same(texts(docs), ['t', ...expectB], `tiny and skippable frames, chunkBytes ${chunkBytes ?? 'default'}`);
    t.match(stats, { blankLines: 2, corruptFiles: 0 });
  }

  // Every content length up to 70 bytes: each tail length of the XXH64 checksum (8-, 4- and 1-byte steps,
  // under and over one 32-byte stripe) verifies.
  for (let n = 0; n <= 70; n++) {
    const content = Array.from({ length: n }, (_, i) => String.fromCharCode(33 + ((i * 37) % 90))).join(''); // not JSON: lines are malformed
    const f = zstd(write(path.join(dir, 'plain', `len${n}.jsonl`), content), path.join(dir, `len${n}.jsonl.zst`));
    const r = await readAll({ inputs: [f] });
    if (r.stats.corruptFiles !== 0 || r.stats.bytes !== n) t.fail(`${n} bytes: ${JSON.stringify(r.stats.malformedSamples)}`);
  }
  t.pass('contents of 0 to 70 bytes pass their checksums');

  // An empty file compressed is an empty frame: no documents, no error. A 0-byte .zst is not zstd (zstd -d
  // says "unexpected end of file" too); a 0-byte .jsonl is fine.
  const empty = write(path.join(dir, 'plain', 'empty.jsonl'), '');
  const emptyZst = zstd(empty, path.join(dir, 'empty.jsonl.zst'));
  const zeroZst = write(path.join(dir, 'zero.jsonl.zst'), '');
  const { docs, stats } = await readAll({ inputs: [empty, emptyZst, zeroZst] });
  t.same(docs, []);
  t.match(stats, { files: 3, lines: 0, documents: 0, corruptFiles: 1 });
  t.same(stats.malformedSamples, [{ file: zeroZst, line: 1, reason: 'truncated zstd file: it is empty (0 bytes), not even a frame header' }]);
});

/** Documents of roughly `bytes` bytes of JSON lines, numbered so that a prefix is recognisable. */
function numberedRecords(bytes: number): { text: string; meta: { redpajama_set_name: string } }[] {
  const out = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const r = rp(`document ${i}: ` + Array.from({ length: 40 + (i % 90) }, (_, k) => `w${(i * 31 + k * 7) % 1009}`).join(' '), 'RedPajamaC4');
    n += JSON.stringify(r).length + 1;
    out.push(r);
  }
  return out;
}

t.test('a truncated .zst file keeps the complete lines before the cut and is reported', needsZstd, async (t) => {
  const dir = tempDir(t);
  const records = numberedRecords(600_000); // several 128 KiB blocks
  const plain = write(path.join(dir, 'plain', 'big.jsonl'), jsonl(records));
  const full = fs.readFileSync(zstd(plain, path.join(dir, 'full.zst'), ['-1']));
  const cut = write(path.join(dir, 'cut.jsonl.zst'), full.subarray(0, Math.floor(full.length * 0.6)));
  const next = write(path.join(dir, 'next.jsonl'), jsonl([rp('the next file is read', 'S')]));

  const { docs, stats } = await readAll({ inputs: [cut, next] });
  const fromCut = docs.filter((d) => d.file === cut);
  t.ok(fromCut.length > 0 && fromCut.length < records.length, `${fromCut.length} of ${records.length} documents before the cut`);
  t.same(texts(fromCut), records.slice(0, fromCut.length).map((r) => r.text), 'a prefix of the documents, intact');
  t.same(texts(docs.filter((d) => d.file === next)), ['the next file is read']);
  t.match(stats, { files: 2, corruptFiles: 1, malformed: 0 });
  t.equal(stats.malformedSamples.length, 1);
  t.match(stats.malformedSamples[0], { file: cut, line: fromCut.length + 1, reason: /^truncated zstd data: the file ends inside frame 1/ });

  const err = await readAll({ inputs: [cut, next], strict: true }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, PajamaDataError);
  t.match(err, { file: cut, message: new RegExp(`^${cut.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: line \\d+: truncated zstd data`) });

  for (const keep of [3, 10, full.length - 1]) {
    write(cut, full.subarray(0, keep));
    const r = await readAll({ inputs: [cut] });
    t.equal(r.stats.corruptFiles, 1, `cut to ${keep} bytes: reported`);
    t.match(r.stats.malformedSamples[0].reason, /truncated/);
  }
});

t.test('corrupt .zst bytes are reported, never read as other documents in silence', needsZstd, async (t) => {
  const dir = tempDir(t);
  const records = numberedRecords(300_000);
  const plain = write(path.join(dir, 'plain', 'a.jsonl'), jsonl(records));
  const full = fs.readFileSync(zstd(plain, path.join(dir, 'full.zst'), ['-3']));
  const expected = records.map((r) => r.text);
  const file = path.join(dir, 'bad.jsonl.zst');

  const badMagic = Buffer.from(full);
  badMagic[0] ^= 0xff;
  write(file, badMagic);
  let r = await readAll({ inputs: [file] });
  t.same(r.docs, []);
  t.match(r.stats.malformedSamples, [{ file, line: 1, reason: /^corrupt zstd data: frame 1 does not start with a zstd magic number/ }]);

  write(file, Buffer.concat([full, Buffer.from('trailing garbage')]));
  r = await readAll({ inputs: [file] });
  t.same(texts(r.docs), expected, 'the frame before the garbage is read');
  t.match(r.stats.malformedSamples, [{ line: records.length + 1, reason: /frame 2 does not start with a zstd magic number/ }]);

  // The content checksum (the last 4 bytes) wrong: only the checksum can tell.
  const badSum = Buffer.from(full);
  badSum[badSum.length - 1] ^= 0x01;
  write(file, badSum);
  r = await readAll({ inputs: [file] });
  t.match(r.stats.malformedSamples, [{ reason: /frame 1 fails its content checksum/ }]);
  r = await readAll({ inputs: [file], verifyChecksums: false });
  t.same(texts(r.docs), expected, 'without checksum verification the same bytes read as the original');
  t.equal(r.stats.corruptFiles, 0);
  await t.rejects(readAll({ inputs: [file], strict: true }), { name: 'PajamaDataError', message: /bad\.jsonl\.zst: line \d+: corrupt zstd data: frame 1 fails its content checksum/ });

  // Hand-made frames (single segment, content size 40, one compressed block) whose block headers cannot be
  // right: refused by the frame scan, in any chunking, before the decompressor runs them (fzstd would run a
  // corrupt sequence count for seconds: found by fuzzing).
  const frame = (body: number[]): Buffer => {
    const header = 1 | (2 << 1) | (body.length << 3); // last block, compressed, its size
    return Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x20, 40, header & 0xff, (header >> 8) & 0xff, header >> 16, ...body]);
  };
  for (const chunkBytes of [1, 1 << 16]) {
    write(file, frame([0x00, 0x7f])); // no literals, 127 sequences: at least 381 bytes from a 40-byte frame
    r = await readAll({ inputs: [file], chunkBytes });
    t.match(r.stats.malformedSamples, [{ reason: /frame 1 has a block of 127 sequences and 0 literal bytes: at least 381 bytes decompressed, more than its 40-byte block limit/ }]);
    write(file, frame([5 << 3, 0x41])); // 5 raw literal bytes declared, 1 byte left in the block
    r = await readAll({ inputs: [file], chunkBytes });
    t.match(r.stats.malformedSamples, [{ reason: /frame 1 has a compressed block whose literals \(5 bytes\) run past its end/ }]);
  }

  // A byte flipped anywhere: the documents read are the original ones, or the damage is reported.
  let caughtOnlyByChecksum = 0;
  const positions = Array.from({ length: 48 }, (_, i) => Math.floor(((i + 0.5) * full.length) / 48));
  for (const p of positions) {
    const damaged = Buffer.from(full);
    damaged[p] ^= 0x5a;
    write(file, damaged);
    const got = await readAll({ inputs: [file] });
    const same = JSON.stringify(texts(got.docs)) === JSON.stringify(expected);
    const reported = got.stats.corruptFiles + got.stats.malformed > 0;
    if (!same && !reported) t.fail(`byte ${p} flipped: different documents, nothing reported`);
    const unchecked = await readAll({ inputs: [file], verifyChecksums: false });
    if (JSON.stringify(texts(unchecked.docs)) !== JSON.stringify(expected) && unchecked.stats.corruptFiles + unchecked.stats.malformed === 0) caughtOnlyByChecksum++;
  }
  t.pass(`${positions.length} flipped bytes: each one read as the original or reported`);
  t.ok(caughtOnlyByChecksum > 0, `${caughtOnlyByChecksum} of them are caught only by the content checksum`);
});

t.test('stopping early closes the file and leaves no read behind', async (t) => {
  const dir = tempDir(t);
  const file = write(path.join(dir, 'a.jsonl'), jsonl(numberedRecords(200_000)));
  const reader = new JsonlDocumentReader({ inputs: [file], chunkBytes: 4096 });
  let n = 0;
  for await (const d of reader) {
    void d;
    if (++n === 3) break;
  }
  t.equal(reader.stats.documents, 3);
  t.equal(reader.stats.files, 0, 'the file was not finished');
  await new Promise((resolve) => setTimeout(resolve, 20)); // a read left in flight would reject here, unhandled
  t.pass('no unhandled rejection');
});
