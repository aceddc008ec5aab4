// SlimPajama's normalisation and short-document filter: normalizeForDedup against a plain regex reference on
// random text of every kind of character that matters, the 200-character threshold at 199/200/201 with
// combining characters, astral characters, punctuation and Unicode whitespace, and the per-source counts.
import t from 'tap';
import {
  ASCII_PUNCTUATION,
  FilterStats,
  SLIMPAJAMA_MIN_CHARS,
  cleanDocument,
  countCodePoints,
  normalizeForDedup,
  shortDocumentFilter,
} from '../../../lib/data/corpus/clean';

/** The definition, written the obvious way (four passes, regexes). */
function reference(text: string): string {
  return text
    .normalize('NFC')
    .toLowerCase()
    .replace(/[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Random text from pieces that exercise each rule. */
function randomText(next: () => number, length: number): string {
  const pieces = [
    'a', 'Z', 'q', '7', 'É', 'ß', 'İ', 'Σ', 'ς', 'Ω', '日', '本', '😀', '𝔸', // letters, case pairs, astral characters
    'e\u0301', 'A\u030a', '\u0301', 'n\u0303', // combining sequences that NFC composes, and a lone mark
    ...ASCII_PUNCTUATION, '—', '«', '»', '“', '¿', // ASCII punctuation (removed) and other punctuation (kept)
    ' ', '  ', '\t', '\n', '\r\n', '\v', '\f', '\u00a0', '\u1680', '\u2003', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\ufeff', // \s
    '\u200b', '\u180e', '\u0085', // not \s in JavaScript: kept
    '\ud800', '\udc00', // lone surrogates
  ];
  let s = '';
  for (let i = 0; i < length; i++) s += pieces[next() % pieces.length];
  return s;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s >>> 8;
  };
}

t.test('normalizeForDedup: examples', async (t) => {
  t.equal(normalizeForDedup('Hello,  World!\n\tThis is—a TEST.'), 'hello world this is—a test', 'only ASCII punctuation goes');
  t.equal(normalizeForDedup(ASCII_PUNCTUATION), '');
  t.equal(ASCII_PUNCTUATION.length, 32);
  for (const p of ASCII_PUNCTUATION) t.equal(normalizeForDedup(`a${p}b`), 'ab', `removes ${p}`);
  t.equal(normalizeForDedup('well - known'), 'well known', 'punctuation between spaces leaves one space');
  t.equal(normalizeForDedup('\u3000 lead\u00a0\u2003and\u2028\u2029trail \ufeff\n'), 'lead and trail', 'Unicode whitespace collapses and is trimmed');
  t.equal(normalizeForDedup('zero\u200bwidth'), 'zero\u200bwidth', 'U+200B is not whitespace');
  t.equal(normalizeForDedup('Cafe\u0301 CAFÉ'), 'café café', 'NFC, then lower case');
  t.equal(normalizeForDedup('İ'), 'i\u0307', 'lower-casing may lengthen the text');
  t.equal(normalizeForDedup('😀 𝔸!'), '😀 𝔸');
  t.equal(normalizeForDedup(''), '');
  t.equal(normalizeForDedup(' \t\n '), '');
  t.throws(() => normalizeForDedup(5 as unknown as string), TypeError);
});

t.test('normalizeForDedup equals the regex reference on random text', async (t) => {
  const next = lcg(12345);
  let checked = 0;
  for (let i = 0; i < 3000; i++) {
    const s = randomText(next, next() % 300);
    const got = normalizeForDedup(s);
    const want = reference(s);
    if (got !== want) {
      t.equal(got, want, `text ${JSON.stringify(s)}`);
      break;
    }
    const c = cleanDocument(s, { minChars: 0 });
    if (c.normalized !== want || c.chars !== [...want].length || c.text !== s.normalize('NFC')) {
      t.fail(`cleanDocument of ${JSON.stringify(s)}: ${JSON.stringify(c)}`);
      break;
    }
    checked++;
  }
  t.equal(checked, 3000);
  // Long documents, beyond the reused scratch buffer (64 Ki units) and beyond the size it grows to (4 Mi).
  for (const length of [70_000, 1_500_000]) {
    const s = randomText(next, length);
    t.equal(normalizeForDedup(s), reference(s), `${s.length} UTF-16 units`);
  }
  // A short document after a long one: the scratch buffer's leftovers do not leak in.
  t.equal(normalizeForDedup('Short.'), 'short');
});

t.test('countCodePoints', async (t) => {
  t.equal(countCodePoints(''), 0);
  t.equal(countCodePoints('abc'), 3);
  t.equal(countCodePoints('😀𝔸'), 2);
  t.equal(countCodePoints('\ud800x\udc00'), 3, 'lone surrogates count one each');
  t.equal(countCodePoints('\ud83d'), 1);
  const next = lcg(7);
  for (let i = 0; i < 200; i++) {
    const s = randomText(next, next() % 50);
    if (countCodePoints(s) !== [...s].length) t.fail(JSON.stringify(s));
  }
});

t.test('the short-document filter at 199, 200 and 201 normalised characters', async (t) => {
  t.equal(SLIMPAJAMA_MIN_CHARS, 200);
  const keep = shortDocumentFilter();
  // Each builder gives a text whose normalisation has exactly n code points, with more raw ones.
  const builders: [string, (n: number) => string][] = [
    ['ASCII letters and punctuation', (n) => 'a'.repeat(n).replace(/a/g, (m, i: number) => (i % 10 === 0 ? `${m}!?` : m))],
    // e + U+0301 is two code points until NFC makes it one é: 2n raw code points, n normalised.
    ['combining characters', (n) => 'e\u0301'.repeat(n)],
    // Words of 4 separated by runs of Unicode whitespace: each run counts as one space; none at the ends.
    [
      'Unicode whitespace runs',
      (n) => {
        // Words "Abcd" joined by runs of whitespace, each run one space: w words make 5w - 1 characters, and
        // the last word takes the 0 to 4 left over.
        const runs = ['\u3000\u00a0', '\t\n\r\n', '\u2003 \u2028', '\ufeff\u202f\u1680'];
        const words = Math.floor((n + 1) / 5);
        let s = '\u3000 ';
        for (let i = 0; i < words; i++) s += (i > 0 ? runs[i % runs.length] : '') + 'Abcd';
        return s + 'x'.repeat(n - (5 * words - 1)) + '\n\u00a0';
      },
    ],
    // Astral characters are two UTF-16 units each but one code point.
    ['astral characters', (n) => '😀'.repeat(n)],
  ];
  for (const [name, build] of builders) {
    for (const n of [199, 200, 201]) {
      const text = build(n);
      const c = cleanDocument(text);
      t.equal(c.chars, n, `${name}: ${n} normalised characters`);
      t.equal([...c.normalized].length, n);
      t.equal(c.keep, n >= 200, `${name}: ${n} is ${n >= 200 ? 'kept' : 'dropped'}`);
      t.equal(keep(text), c.keep, 'shortDocumentFilter agrees');
    }
  }
  t.ok([...'e\u0301'.repeat(199)].length >= 200, 'the combining case is over 200 code points before NFC: NFC is what drops it');
  t.equal(cleanDocument('abc', { minChars: 3 }).keep, true, 'minChars is configurable');
  t.equal(cleanDocument('ab, ', { minChars: 3 }).keep, false);
  t.equal(cleanDocument('', { minChars: 0 }).keep, true);
  t.throws(() => cleanDocument('x', { minChars: -1 }), { name: 'TypeError', message: /minChars must be a non-negative integer/ });
  t.throws(() => shortDocumentFilter({ minChars: 1.5 }), TypeError);
});

t.test('cleanDocument keeps the NFC text, case and punctuation intact', async (t) => {
  const c = cleanDocument('Cafe\u0301, OK!\r\n  Déjà\u00a0vu.', { minChars: 10 });
  t.same(c, { text: 'Café, OK!\r\n  Déjà\u00a0vu.', normalized: 'café ok déjà vu', chars: 15, keep: true });
  t.equal(c.text, c.text.normalize('NFC'));
  t.not(c.text, 'Cafe\u0301, OK!\r\n  Déjà\u00a0vu.', 'the combining sequence was composed');
});

t.test('FilterStats: per-source documents and bytes seen and dropped, and the rates', async (t) => {
  const stats = new FilterStats();
  t.same(stats.total(), { documents: 0, bytes: 0, droppedDocuments: 0, droppedBytes: 0, filterRate: 0, byteFilterRate: 0 }, 'no division by zero');
  stats.add('RedPajamaGithub', 100, true);
  stats.add('RedPajamaGithub', 20, false);
  stats.add('RedPajamaC4', 50, false);
  stats.add('RedPajamaC4', 150, true);
  stats.add('RedPajamaC4', 300, true);
  stats.add('RedPajamaC4', 0, false);
  const short = cleanDocument('Too short, “é”.');
  stats.addDocument('RedPajamaArXiv', short);
  t.same(stats.source('RedPajamaGithub'), { documents: 2, bytes: 120, droppedDocuments: 1, droppedBytes: 20, filterRate: 0.5, byteFilterRate: 20 / 120 });
  t.same(stats.source('RedPajamaC4'), { documents: 4, bytes: 500, droppedDocuments: 2, droppedBytes: 50, filterRate: 0.5, byteFilterRate: 0.1 });
  const arxivBytes = Buffer.byteLength('Too short, “é”.');
  t.same(stats.source('RedPajamaArXiv'), { documents: 1, bytes: arxivBytes, droppedDocuments: 1, droppedBytes: arxivBytes, filterRate: 1, byteFilterRate: 1 });
  t.same(stats.source('RedPajamaBook'), { documents: 0, bytes: 0, droppedDocuments: 0, droppedBytes: 0, filterRate: 0, byteFilterRate: 0 });
  const total = stats.total();
  t.same(total, { documents: 7, bytes: 620 + arxivBytes, droppedDocuments: 4, droppedBytes: 70 + arxivBytes, filterRate: 4 / 7, byteFilterRate: (70 + arxivBytes) / (620 + arxivBytes) });
  const report = JSON.parse(JSON.stringify(stats));
  t.same(Object.keys(report.sources), ['RedPajamaArXiv', 'RedPajamaC4', 'RedPajamaGithub'], 'sources sorted by name');
  t.same(report.total, total);
  t.same(report.sources.RedPajamaC4, stats.source('RedPajamaC4'));
  t.throws(() => stats.add('x', -1, true), TypeError);
  t.throws(() => stats.add('x', 1.5, true), TypeError);
});
