// The GPT-2 tokenizer: known encodings (checked against a second, independent implementation, js-tiktoken's
// gpt2 ranks), round trips, stateless decoding, and the line-break splitting that tokenizeFiles relies on.
import t from 'tap';
import { gpt2Tokenizer, lastLineBreakCut } from '../../../lib/data/index';
import { encodeInChunks } from '../../helpers/chunked-encode';

const tok = gpt2Tokenizer();

t.test('identity and known encodings', async (t) => {
  t.equal(tok.name, 'gpt2');
  t.equal(tok.vocabSize, 50257);
  t.equal(tok.eosId, 50256);
  t.equal(gpt2Tokenizer(), tok, 'one shared instance');
  const known: [string, number[]][] = [
    ['Hello world', [15496, 995]],
    [' the', [262]],
    ['The quick brown fox', [464, 2068, 7586, 21831]],
    ['naïve café 日本', [2616, 38776, 40304, 10545, 245, 98, 17312, 105]],
    ['  \n\n\tx', [220, 220, 628, 197, 87]],
    ["I'm here", [40, 1101, 994]],
    ['🚀', [8582, 248, 222]],
    // The EOS text inside a document is plain text, never the EOS id.
    ['a<|endoftext|>b', [64, 27, 91, 437, 1659, 5239, 91, 29, 65]],
    ['', []],
  ];
  for (const [text, ids] of known) t.same(Array.from(tok.encode(text)), ids, JSON.stringify(text));
  t.equal(tok.decode([50256]), '<|endoftext|>');
  t.equal(tok.decode([]), '');
});

t.test('decode(encode(x)) == x for prose, code, Unicode and whitespace runs', async (t) => {
  const texts = [
    'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness.',
    'function add(a: number, b: number): number {\n\treturn a + b; // sum\n}\n\nconsole.log(add(1, 2));\n',
    'def f(x):\n    if x > 0:\n        return x ** 2\n    return None\n',
    'Ünïcödé: Ελληνικά, русский, עברית, العربية, हिन्दी, 中文, 日本語, 한국어, emoji 👩‍👩‍👧‍👦 🇫🇷 é (e + U+0301)',
    '    leading spaces, trailing spaces    \n\n\n\n   \t\t \r\n\r\n  \u00a0\u2003 mixed  whitespace      runs   ',
    '',
    ' ',
    '\n',
    'a'.repeat(5000),
    "'s 're 've 'm 'll 'd 'S don't DON'T",
    '12345678901234567890 3.14159 -0.5e-10 0xdeadBEEF',
  ];
  for (const text of texts) {
    const ids = tok.encode(text);
    t.equal(tok.decode(ids), text, JSON.stringify(text.slice(0, 40)));
    t.ok(Array.from(ids).every((id) => Number.isInteger(id) && id >= 0 && id < 50256), 'ids in range, never EOS');
  }
});

t.test('decode is stateless: half a character does not leak into the next call', async (t) => {
  // 447 and 247 are the two byte pieces of "’" (E2 80 | 99).
  t.same(Array.from(tok.encode('’')), [447, 247]);
  t.equal(tok.decode([447]), '\ufffd');
  t.equal(tok.decode([15496]), 'Hello');
  t.equal(tok.decode([447, 247]), '’');
  t.equal(tok.decode([447, 15496]), '\ufffdHello');
  t.equal(tok.decode(new Uint32Array([15496, 995])), 'Hello world');
  t.throws(() => tok.decode([50257]), { name: 'TypeError', message: /ids\[0\] = 50257/ });
  t.throws(() => tok.decode([1, -1]), /ids\[1\] = -1/);
  t.throws(() => tok.encode(3 as never), TypeError);
});

t.test('encoding split at lastLineBreakCut points equals encoding whole', async (t) => {
  t.equal(tok.splitsAtLineBreaks, true);
  t.equal(lastLineBreakCut('ab\ncd'), 3);
  t.equal(lastLineBreakCut('ab\n cd'), -1, 'not before whitespace');
  t.equal(lastLineBreakCut('a \ncd'), -1, 'not after whitespace');
  t.equal(lastLineBreakCut('a\n\nb'), -1, 'not inside a run of line breaks');
  t.equal(lastLineBreakCut('x\ny\nz', 4), 4);
  t.equal(lastLineBreakCut('x\ny\nzz', 5), -1, 'nothing at or above lowest');
  const para = [
    'The first line.\nThe second line, then a blank one.\n\n  Indented after a blank line.\n',
    '\tTabbed\r\nWindows line\r\n日本語\n🚀rocket\n"quoted"\n(paren)\n  \n \nend\n',
    'def g():\n    pass\nclass A:\n  x = 1\n\n\n\nz=3\n',
  ].join('');
  const text = para.repeat(20);
  const whole = Array.from(tok.encode(text));
  let cuts = 0;
  for (const piece of [7, 31, 100, 1000]) {
    const { ids, cuts: made } = encodeInChunks(tok, text, piece);
    cuts += made;
    t.same(ids, whole, `pieces of about ${piece} characters`);
  }
  t.ok(cuts > 100, `${cuts} cuts made`);
  // The rule matters: a cut inside a run of line breaks changes the tokens.
  t.same(Array.from(tok.encode('a\n\nb')), [64, 198, 198, 65]);
  t.same([...tok.encode('a\n\n'), ...tok.encode('b')], [64, 628, 65]);
});
