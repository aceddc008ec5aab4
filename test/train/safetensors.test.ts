// safetensors: the exact bytes we write, arena round trips (f32, bf16, conversions both ways, chunked, odd and
// zero-size shapes), files written by hand as another tool would, and every malformed or mismatched file
// rejected with an error naming the file and the tensor.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Arena, Tensor } from '../../lib/index';
import {
  SafetensorsError,
  loadArenaSafetensors,
  loadArenasSafetensors,
  readSafetensorsHeader,
  saveArenaSafetensors,
  arenaTensorsToWrite,
  writeSafetensors,
} from '../../lib/train/safetensors';
import { randn, roundBf16, seed } from '../helpers/reference';

t.comment(`seed ${seed}`);

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-safetensors-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
let fileNo = 0;
const newPath = (label = 'f') => path.join(root, `${label}-${fileNo++}.safetensors`);

/** A file as another writer might produce it: length prefix (or `length`), header bytes as given, data. */
function rawFile(header: string | object, data: Uint8Array | number[] = [], length?: bigint): string {
  const file = newPath('raw');
  const head = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(length ?? BigInt(head.length));
  fs.writeFileSync(file, Buffer.concat([len, head, Buffer.from(data)]));
  return file;
}

const bytes = (v: ArrayBufferView) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
const f32 = (...x: number[]) => bytes(Float32Array.from(x));

/** Arena values with the awkward cases included: -0, +-Inf, a NaN payload, a subnormal. */
function fillF32(a: Arena): Float32Array {
  const vals = Float32Array.from(randn(a.numel, 3));
  const special = new Uint32Array([0x80000000, 0x7f800000, 0xff800000, 0x7fc12345, 0x00000001, 0x3f800001]);
  new Uint32Array(vals.buffer).set(special.subarray(0, Math.min(special.length, vals.length)));
  a.buffer.copyFrom(vals);
  return vals;
}

const oddLayout: [string, number[]][] = [
  ['transformer.wte.weight', [7, 13]],
  ['transformer.blocks.0.norm_1.weight', [3]],
  ['empty', [0, 4]],
  ['x.y.z', [1, 1, 5]],
  ['last', [2, 3, 2]],
];

t.test('header and bytes are exactly the reference layout for a tiny case', async (t) => {
  const file = newPath('tiny');
  writeSafetensors(
    file,
    [
      { name: 'a', dtype: 'F32', shape: [2], data: Float32Array.from([1, -2]) },
      { name: 'b', dtype: 'BF16', shape: [3], data: Uint16Array.from([0x3f80, 0xc000, 0x0001]) },
      { name: 'c', dtype: 'I32', shape: [1, 1], data: Int32Array.from([7]) },
      { name: 'e', dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
    ],
    { format: 'pt' },
  );
  // 254 bytes of JSON, two spaces of padding: 8 + 256 is a multiple of 8.
  const json =
    '{"__metadata__":{"format":"pt"},' +
    '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]},' +
    '"c":{"dtype":"I32","shape":[1,1],"data_offsets":[14,18]},' +
    '"e":{"dtype":"F32","shape":[0,3],"data_offsets":[18,18]}}';
  const expected = Buffer.concat([
    Buffer.from([0x00, 0x01, 0, 0, 0, 0, 0, 0]),
    Buffer.from(json + '  ', 'utf8'),
    Buffer.from([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]),
    Buffer.from([0x80, 0x3f, 0x00, 0xc0, 0x01, 0x00]),
    Buffer.from([0x07, 0x00, 0x00, 0x00]),
  ]);
  t.equal(json.length, 254);
  const got = fs.readFileSync(file);
  t.equal(got.length, expected.length);
  t.ok(got.equals(expected), 'byte-identical to the handwritten file');
  t.equal((8 + got.readUInt32LE(0)) % 8, 0, 'data buffer starts 8-aligned');
  t.same(fs.readdirSync(root).filter((n) => n.includes('.tmp-')), [], 'no temporary file left');

  const h = readSafetensorsHeader(file);
  t.equal(h.headerLength, 256);
  t.equal(h.dataStart, 264);
  t.same(h.metadata, { format: 'pt' });
  t.same(
    h.tensors.map((x) => [x.name, x.dtype, x.shape, x.dataOffsets]),
    [
      ['a', 'F32', [2], [0, 8]],
      ['b', 'BF16', [3], [8, 14]],
      ['c', 'I32', [1, 1], [14, 18]],
      ['e', 'F32', [0, 3], [18, 18]],
    ],
  );
});

t.test('f32 arena round trip is bit-identical (odd shapes, a zero-size entry, chunked copies)', async (t) => {
  for (const chunkBytes of [12, 64 * 1024 * 1024]) {
    const a = new Arena('f32', oddLayout);
    const vals = fillF32(a);
    const file = newPath('f32');
    saveArenaSafetensors(file, a, { chunkBytes, metadata: { step: '3' } });
    const h = readSafetensorsHeader(file);
    t.same(h.metadata, { format: 'pt', step: '3' });
    t.same(h.tensors.map((x) => x.name), oddLayout.map(([n]) => n), 'arena order');
    t.ok(h.tensors.every((x) => x.dtype === 'F32'));
    t.ok(
      fs.readFileSync(file).subarray(h.dataStart).equals(bytes(vals)),
      'the data buffer is the arena buffer as is (one contiguous f32 range)',
    );
    const b = new Arena('f32', oddLayout);
    const res = loadArenaSafetensors(file, b, { chunkBytes });
    t.same(res.loaded, oddLayout.map(([n]) => n));
    t.ok(bytes(b.buffer.toFloat32()).equals(bytes(vals)), `bit-identical (chunkBytes ${chunkBytes})`);
    a.dispose();
    b.dispose();
  }
});

t.test('bf16 arena round trip is bit-identical', async (t) => {
  const a = new Arena('bf16', oddLayout);
  const bits = new Uint16Array(a.numel).map((_, i) => (i * 40503 + 17) & 0xffff);
  a.buffer.copyFrom(bits);
  const file = newPath('bf16');
  saveArenaSafetensors(file, a, { chunkBytes: 10 });
  t.ok(readSafetensorsHeader(file).tensors.every((x) => x.dtype === 'BF16'));
  const b = new Arena('bf16', oddLayout);
  loadArenaSafetensors(file, b, { chunkBytes: 6 });
  t.same(Array.from(b.buffer.toBf16Bits()), Array.from(bits));
  a.dispose();
  b.dispose();
});

t.test('f32 arena saved as BF16 rounds to nearest even; loading it back widens exactly', async (t) => {
  const a = new Arena('f32', oddLayout);
  const vals = Float32Array.from(randn(a.numel));
  // Ties: 1 + 2^-8 rounds to even (1.0 = 0x3f80), 1 + 3*2^-8 rounds up to 1 + 2^-6 (0x3f82).
  vals.set([1 + 2 ** -8, 1 + 3 * 2 ** -8, -3.14159, 1e-40]);
  a.buffer.copyFrom(vals);
  const file = newPath('narrow');
  saveArenaSafetensors(file, a, { dtype: 'BF16', chunkBytes: 20 });
  const h = readSafetensorsHeader(file);
  t.ok(h.tensors.every((x) => x.dtype === 'BF16'));
  const data = fs.readFileSync(file).subarray(h.dataStart);
  const storedBits = Array.from({ length: a.numel }, (_, i) => data.readUInt16LE(2 * i));
  t.equal(storedBits[0], 0x3f80);
  t.equal(storedBits[1], 0x3f82);
  const ref = Tensor.from(vals, [vals.length], 'bf16');
  t.same(storedBits, Array.from(ref.toBf16Bits()), 'same bits as the native rounding');
  ref.dispose();

  const b = new Arena('f32', oddLayout);
  loadArenaSafetensors(file, b, { chunkBytes: 14 });
  t.same(Array.from(b.buffer.toFloat32()), Array.from(vals, roundBf16), 'widened exactly');
  a.dispose();
  b.dispose();
});

t.test('bf16 arena saved as F32 widens exactly; an F32 file loads into a bf16 arena rounded to nearest even', async (t) => {
  const a = new Arena('bf16', oddLayout);
  const vals = Float32Array.from(randn(a.numel));
  a.buffer.copyFrom(vals);
  const file = newPath('widen');
  saveArenaSafetensors(file, a, { dtype: 'F32' });
  const f = new Arena('f32', oddLayout);
  loadArenaSafetensors(file, f);
  t.same(Array.from(f.buffer.toFloat32()), Array.from(vals, roundBf16));

  const ties = Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8, -3.14159, 65504.5, 1e-40, 2 ** -130]);
  const tieFile = newPath('ties');
  writeSafetensors(tieFile, [{ name: 'w', dtype: 'F32', shape: [2, 3], data: ties }]);
  const b = new Arena('bf16', [['w', [2, 3]]]);
  loadArenaSafetensors(tieFile, b, { chunkBytes: 8 });
  t.same(Array.from(b.buffer.toFloat32()), Array.from(ties, roundBf16));
  t.equal(b.buffer.toBf16Bits()[0], 0x3f80);
  t.equal(b.buffer.toBf16Bits()[1], 0x3f82);
  for (const x of [a, f, b]) x.dispose();
});

t.test('reads a file written by hand as another tool would (key order, metadata last, padding), BF16 widened', async (t) => {
  // bf16 bits: 1.0, -0, +Inf, the smallest subnormal, a quiet NaN, -2.5
  const embBits = [0x3f80, 0x8000, 0x7f80, 0x0001, 0x7fc1, 0xc020];
  const data = Buffer.alloc(12 + 8 + 4);
  embBits.forEach((b, i) => data.writeUInt16LE(b, 2 * i));
  data.writeFloatLE(0.25, 12);
  data.writeFloatLE(-7, 16);
  data.writeInt32LE(-123456, 20);
  // Tensors listed out of data order, fields in another order, metadata last, spaces padding the header.
  const header =
    '{"lm.bias":{"data_offsets":[12,20],"shape":[2],"dtype":"F32"},' +
    '"ids":{"shape":[1],"dtype":"I32","data_offsets":[20,24]},' +
    '"emb":{"dtype":"BF16","data_offsets":[0,12],"shape":[2,3]},' +
    '"__metadata__":{"format":"pt","source":"hand"}}';
  const file = rawFile(header.padEnd(Math.ceil(header.length / 8) * 8, ' '), data);

  const h = readSafetensorsHeader(file);
  t.same(h.tensors.map((x) => x.name), ['emb', 'lm.bias', 'ids'], 'data-buffer order');
  t.same(h.metadata, { format: 'pt', source: 'hand' });

  const floats = new Arena('f32', [['lm.bias', [2]], ['emb', [2, 3]]]);
  const ints = new Arena('i32', [['ids', [1]]]);
  const res = loadArenasSafetensors(file, [{ arena: floats }, { arena: ints }], { chunkBytes: 8 });
  t.same(res.ignored, []);
  const emb = new Uint32Array(floats.get('emb').toFloat32().buffer);
  t.same(Array.from(emb), embBits.map((b) => (b << 16) >>> 0), 'each bf16 widened to exactly its bits << 16');
  t.same(Array.from(floats.get('lm.bias').toFloat32()), [0.25, -7]);
  t.same(Array.from(ints.get('ids').toInt32()), [-123456]);
  floats.dispose();
  ints.dispose();
});

t.test('prefixes: two arenas in one file, loaded back by prefix; non-strict loads ignore the rest', async (t) => {
  const layout: [string, number[]][] = [['w', [3, 2]], ['n', [5]]];
  const m = new Arena('f32', layout);
  const v = new Arena('f32', layout);
  const mv = fillF32(m);
  const vv = Float32Array.from(randn(v.numel));
  v.buffer.copyFrom(vv);
  const file = newPath('mv');
  writeSafetensors(file, [...arenaTensorsToWrite(m, { prefix: 'm.' }), ...arenaTensorsToWrite(v, { prefix: 'v.' })]);
  t.same(readSafetensorsHeader(file).tensors.map((x) => x.name), ['m.w', 'm.n', 'v.w', 'v.n']);

  const m2 = new Arena('f32', layout);
  t.throws(() => loadArenaSafetensors(file, m2, { prefix: 'm.' }), /tensor 'v\.w': in the file but not in the arena/);
  const res = loadArenaSafetensors(file, m2, { prefix: 'm.', strict: false });
  t.same(res.ignored.sort(), ['v.n', 'v.w']);
  t.ok(bytes(m2.buffer.toFloat32()).equals(bytes(mv)));
  const v2 = new Arena('f32', layout);
  loadArenasSafetensors(file, [{ arena: m2, prefix: 'm.' }, { arena: v2, prefix: 'v.' }]);
  t.ok(bytes(v2.buffer.toFloat32()).equals(bytes(vv)));
  for (const x of [m, v, m2, v2]) x.dispose();
});

t.test('shards: tensors spread over files load together; a tensor in two shards is an error', async (t) => {
  const a = new Arena('f32', [['p', [4]], ['q', [2, 2]]]);
  const f1 = newPath('shard1');
  const f2 = newPath('shard2');
  writeSafetensors(f1, [{ name: 'q', dtype: 'F32', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) }]);
  writeSafetensors(f2, [{ name: 'p', dtype: 'BF16', shape: [4], data: Uint16Array.from([0x3f80, 0x4000, 0x4040, 0x4080]) }]);
  loadArenasSafetensors([f1, f2], [{ arena: a }]);
  t.same(Array.from(a.buffer.toFloat32()), [1, 2, 3, 4, 1, 2, 3, 4]);
  t.throws(() => loadArenasSafetensors([f1, f1, f2], [{ arena: a }]), /tensor 'q': also in/);
  t.throws(() => loadArenasSafetensors([f1], [{ arena: a }]), /tensor 'p': missing from the file/);
  a.dispose();
});

/** Asserts `fn` throws a SafetensorsError naming `file` (and `tensor` when given) whose message matches. */
function rejects(t: tap.Test, fn: () => unknown, file: string, tensor: string | undefined, re: RegExp, what: string): void {
  try {
    fn();
    t.fail(`${what}: no error`);
  } catch (e) {
    t.ok(e instanceof SafetensorsError, `${what}: a SafetensorsError (${(e as Error).message})`);
    t.equal((e as SafetensorsError).code, 'ERR_PAJAMA_SAFETENSORS');
    t.ok((e as Error).message.startsWith(`${file}: `), `${what}: names the file`);
    if (tensor !== undefined) t.match((e as Error).message, `tensor '${tensor}'`, `${what}: names the tensor`);
    t.match((e as Error).message, re, what);
  }
}

t.test('malformed headers are rejected naming the file and the tensor', async (t) => {
  const ok = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const cases: [string, () => string, string | undefined, RegExp][] = [
    ['empty file', () => { const f = newPath('empty'); fs.writeFileSync(f, ''); return f; }, undefined, /0 bytes, shorter than the 8-byte header length/],
    ['5-byte file', () => { const f = newPath('short'); fs.writeFileSync(f, Buffer.from([1, 0, 0, 0, 0])); return f; }, undefined, /5 bytes, shorter/],
    ['header length past the file', () => rawFile('{}', [], 1000n), undefined, /header length 1000 runs past the end of the 10-byte file/],
    ['absurd header length', () => rawFile('{}', [], 2n ** 40n), undefined, /header length 1099511627776 is absurd/],
    ['u64 max header length', () => rawFile('{}', [], 2n ** 64n - 1n), undefined, /is absurd/],
    ['header not JSON', () => rawFile('{"x": {"dtype": '), undefined, /header is not valid JSON/],
    ['header an array', () => rawFile('[1, 2]'), undefined, /header must be a JSON object, got an array/],
    ['header null', () => rawFile('null'), undefined, /header must be a JSON object, got null/],
    ['header a string', () => rawFile('"hello"'), undefined, /header must be a JSON object/],
    ['entry not an object', () => rawFile({ x: 5 }), 'x', /must be an object \{ dtype, shape, data_offsets \}/],
    ['unknown dtype', () => rawFile({ x: { ...ok, dtype: 'Q4' } }, f32(1, 2)), 'x', /unknown or unsupported dtype "Q4"/],
    ['missing dtype', () => rawFile({ x: { shape: [2], data_offsets: [0, 8] } }, f32(1, 2)), 'x', /unknown or unsupported dtype undefined/],
    ['sub-byte dtype', () => rawFile({ x: { ...ok, dtype: 'F4' } }, f32(1, 2)), 'x', /unsupported dtype "F4"/],
    ['shape not an array', () => rawFile({ x: { ...ok, shape: 2 } }, f32(1, 2)), 'x', /shape must be an array of non-negative integers, got 2/],
    ['negative dimension', () => rawFile({ x: { ...ok, shape: [-2] } }, f32(1, 2)), 'x', /shape must be .* got \[-2\]/],
    ['fractional dimension', () => rawFile({ x: { ...ok, shape: [1.5] } }, f32(1, 2)), 'x', /got \[1\.5\]/],
    ['string dimension', () => rawFile({ x: { ...ok, shape: ['2'] } }, f32(1, 2)), 'x', /got \["2"\]/],
    ['data_offsets missing', () => rawFile({ x: { dtype: 'F32', shape: [2] } }, f32(1, 2)), 'x', /data_offsets must be \[begin, end\]/],
    ['data_offsets of three', () => rawFile({ x: { ...ok, data_offsets: [0, 4, 8] } }, f32(1, 2)), 'x', /data_offsets must be .* got \[0,4,8\]/],
    ['data_offsets reversed', () => rawFile({ x: { ...ok, data_offsets: [8, 0] } }, f32(1, 2)), 'x', /0 <= begin <= end/],
    ['data_offsets negative', () => rawFile({ x: { ...ok, data_offsets: [-8, 0] } }, f32(1, 2)), 'x', /data_offsets must be/],
    ['data_offsets span wrong size', () => rawFile({ x: { ...ok, data_offsets: [0, 6] } }, f32(1, 2)), 'x', /span 6 bytes, but F32 \[2\] needs 2 x 4 = 8/],
    ['offsets out of the file', () => rawFile({ x: { ...ok, shape: [3], data_offsets: [0, 12] } }, f32(1, 2)), 'x', /run past the end of the file: its data buffer has 8 bytes/],
    [
      'overlapping tensors',
      () => rawFile({ a: { ...ok }, b: { ...ok, data_offsets: [4, 12] } }, f32(1, 2, 3)),
      'b',
      /\[4, 12\] overlap tensor 'a' at \[0, 8\]/,
    ],
    [
      'zero-size tensor inside another',
      () => rawFile({ a: { ...ok }, z: { dtype: 'F32', shape: [0], data_offsets: [4, 4] } }, f32(1, 2)),
      'z',
      /overlap tensor 'a'/,
    ],
    ['a hole before a tensor', () => rawFile({ a: { ...ok, data_offsets: [4, 12] } }, f32(0, 1, 2)), 'a', /bytes \[0, 4\) of the data buffer before it belong to no tensor/],
    ['trailing bytes', () => rawFile({ a: { ...ok } }, f32(1, 2, 3)), undefined, /4 bytes after the last tensor belong to no tensor/],
    ['metadata not strings', () => rawFile({ __metadata__: { step: 3 }, a: ok }, f32(1, 2)), undefined, /"__metadata__" must be an object of strings/],
    ['metadata an array', () => rawFile({ __metadata__: ['x'], a: ok }, f32(1, 2)), undefined, /"__metadata__" must be/],
  ];
  for (const [what, build, tensor, re] of cases) {
    const file = build();
    rejects(t, () => readSafetensorsHeader(file), file, tensor, re, what);
  }
  // Invalid UTF-8 in the header, written byte by byte.
  const bad = newPath('utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(4n);
  fs.writeFileSync(bad, Buffer.concat([len, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]));
  rejects(t, () => readSafetensorsHeader(bad), bad, undefined, /header is not valid UTF-8/, 'header not UTF-8');
  // The same checks guard loading: the arena stays untouched.
  const arena = new Arena('f32', [['a', [2]]]);
  arena.buffer.fill(5);
  const overlap = rawFile({ a: { ...ok }, b: { ...ok, data_offsets: [4, 12] } }, f32(1, 2, 3));
  rejects(t, () => loadArenaSafetensors(overlap, arena), overlap, 'b', /overlap/, 'load of an overlapping file');
  t.same(Array.from(arena.buffer.toFloat32()), [5, 5]);
  rejects(t, () => readSafetensorsHeader(path.join(root, 'nope.safetensors')), path.join(root, 'nope.safetensors'), undefined, /no such file/, 'missing file');
  rejects(t, () => readSafetensorsHeader(root), root, undefined, /is a directory/, 'a directory');
  arena.dispose();
});

t.test('truncated files are rejected at every cut', async (t) => {
  const a = new Arena('f32', [['w', [4, 4]], ['n', [4]]]);
  fillF32(a);
  const file = newPath('whole');
  saveArenaSafetensors(file, a);
  const whole = fs.readFileSync(file);
  const dataStart = readSafetensorsHeader(file).dataStart;
  const cuts: [number, string | undefined, RegExp][] = [
    [whole.length - 3, 'n', /run past the end of the file: its data buffer has \d+ bytes \(truncated\?\)/],
    [dataStart + 10, 'w', /run past the end of the file/],
    [dataStart, 'w', /data buffer has 0 bytes/],
    [dataStart - 5, undefined, /header length \d+ runs past the end/],
    [6, undefined, /6 bytes, shorter than the 8-byte header length/],
  ];
  for (const [size, tensor, re] of cuts) {
    const cut = newPath('cut');
    fs.writeFileSync(cut, whole.subarray(0, size));
    rejects(t, () => loadArenaSafetensors(cut, a), cut, tensor, re, `cut at ${size} of ${whole.length}`);
  }
  a.dispose();
});

t.test('files that do not fit the arena are rejected before any byte is copied', async (t) => {
  const file = newPath('fit');
  writeSafetensors(file, [
    { name: 'a', dtype: 'F32', shape: [2, 3], data: new Float32Array(6).fill(1) },
    { name: 'b', dtype: 'F32', shape: [4], data: new Float32Array(4).fill(2) },
    { name: 'i', dtype: 'I32', shape: [2], data: Int32Array.from([1, 2]) },
    { name: 'h', dtype: 'F16', shape: [2], data: Uint16Array.from([0x3c00, 0x4000]) },
  ]);
  const check = (layout: [string, number[]][], dtype: 'f32' | 'bf16' | 'i32', tensor: string, re: RegExp, what: string, strict = false) => {
    const arena = new Arena(dtype, layout);
    arena.buffer.fill(7);
    rejects(t, () => loadArenaSafetensors(file, arena, { strict }), file, tensor, re, what);
    t.ok(Array.from(dtype === 'i32' ? arena.buffer.toInt32() : arena.buffer.toFloat32()).every((x) => x === 7), `${what}: arena untouched`);
    arena.dispose();
  };
  check([['a', [2, 3]], ['missing.weight', [3]]], 'f32', 'missing.weight', /missing from the file \(the arena needs f32 \[3\]\)/, 'missing tensor');
  check([['a', [2, 3]], ['b', [4]]], 'f32', 'i', /in the file but not in the arena \(strict load/, 'extra tensor, strict', true);
  check([['a', [3, 2]], ['b', [4]]], 'f32', 'a', /shape \[2, 3\] in the file, the arena wants \[3, 2\]/, 'shape mismatch');
  check([['a', [6]]], 'f32', 'a', /shape \[2, 3\] in the file, the arena wants \[6\]/, 'same numel, other shape');
  check([['i', [2]]], 'f32', 'i', /I32 in the file; a f32 arena loads only F32 or BF16/, 'I32 into f32');
  check([['h', [2]]], 'bf16', 'h', /F16 in the file; a bf16 arena loads only F32 or BF16/, 'F16 into bf16');
  check([['a', [2, 3]]], 'i32', 'a', /F32 in the file; a i32 arena loads only I32/, 'F32 into i32');
  // Every problem is reported at once.
  const arena = new Arena('f32', [['a', [3, 2]], ['gone', [1]]]);
  t.throws(() => loadArenaSafetensors(file, arena), /tensor 'a': shape .*; also tensor 'b': in the file but not in the arena.*tensor 'i': in the file.*tensor 'gone': missing/);
  // Non-strict: extras ignored, the rest loaded.
  const res = loadArenaSafetensors(file, new Arena('f32', [['b', [4]]]), { strict: false });
  t.same(res.loaded, ['b']);
  t.same(res.ignored.sort(), ['a', 'h', 'i']);
  arena.dispose();
});

t.test('writeSafetensors streams pieces, checks its arguments, and is atomic', async (t) => {
  const dir = fs.mkdtempSync(path.join(root, 'atomic-'));
  const file = path.join(dir, 'w.safetensors');
  const pieces = function* () {
    yield Float32Array.from([1, 2]);
    yield new Uint8Array(bytes(Float32Array.from([3])));
    yield new Float32Array(0);
    yield Float32Array.from([4, 5, 6]);
  };
  writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [3, 2], data: pieces }]);
  const back = new Arena('f32', [['w', [3, 2]]]);
  loadArenaSafetensors(file, back);
  t.same(Array.from(back.buffer.toFloat32()), [1, 2, 3, 4, 5, 6]);
  back.dispose();
  const before = fs.readFileSync(file);

  const typeErr = (fn: () => void, re: RegExp, what: string) =>
    t.throws(fn, { name: 'TypeError', code: 'ERR_PAJAMA_INVALID_ARG', message: re }, what);
  const w = (name: string, data: ArrayBufferView | (() => Iterable<ArrayBufferView>) = new Float32Array(2)) =>
    ({ name, dtype: 'F32' as const, shape: [2], data });
  typeErr(() => writeSafetensors(file, [w('a'), w('a')]), /tensor 'a' appears twice/, 'duplicate');
  typeErr(() => writeSafetensors(file, [w('__metadata__')]), /reserved/, 'reserved name');
  typeErr(() => writeSafetensors(file, [w('')]), /non-empty name/, 'empty name');
  typeErr(() => writeSafetensors(file, [{ ...w('a'), dtype: 'F17' as never }]), /unknown dtype "F17"/, 'bad dtype');
  typeErr(() => writeSafetensors(file, [{ ...w('a'), shape: [2, -1] }]), /shape must be/, 'bad shape');
  typeErr(() => writeSafetensors(file, [w('a', new Float32Array(3))]), /data has 12 bytes, F32 \[2\] needs 8/, 'data length');
  typeErr(() => writeSafetensors(file, [w('a')], { step: 3 as never }), /metadata 'step' must be a string/, 'metadata');
  // Failures while streaming: the old file stays, no temporary file is left.
  typeErr(() => writeSafetensors(file, [w('a', () => [new Float32Array(1)])]), /pieces gave 4 bytes, .* need 8/, 'short pieces');
  typeErr(() => writeSafetensors(file, [w('a', () => [new Float32Array(3)])]), /pieces exceed the 8 bytes/, 'long pieces');
  t.throws(
    () =>
      writeSafetensors(file, [
        w('a', function* () {
          yield new Float32Array(1);
          throw new Error('disk on fire');
        }),
      ]),
    /disk on fire/,
  );
  t.ok(fs.readFileSync(file).equals(before), 'the previous file is untouched');
  t.same(fs.readdirSync(dir), ['w.safetensors'], 'no temporary files left');
});

t.test('loads into an arena with a zero-size entry only, and an empty file', async (t) => {
  const file = newPath('zero');
  writeSafetensors(file, []);
  t.same(readSafetensorsHeader(file).tensors, []);
  t.equal(fs.statSync(file).size, 16, '8 + "{}" padded to 8');
  const z = new Arena('f32', [['z', [0]]]);
  const f2 = newPath('zero2');
  saveArenaSafetensors(f2, z);
  loadArenaSafetensors(f2, z);
  t.same(readSafetensorsHeader(f2).tensors.map((x) => x.dataOffsets), [[0, 0]]);
  z.dispose();
});
