// Token shards: round trips at both widths, the header byte by byte, atomic writes, and every way a shard
// file can be wrong being refused with a message naming the file and the fault.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DisposedError } from '../../lib/index';
import { PajamaDataError, ShardWriter, openShard, SHARD_HEADER_BYTES } from '../../lib/data/index';
import { lcg32 } from '../helpers/shards';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-shard-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Documents of random ids in [0, vocab) without `eos`, lengths 0..maxLen. */
function randomDocs(count: number, maxLen: number, vocab: number, eos: number, seed: number): number[][] {
  const next = lcg32(seed);
  return Array.from({ length: count }, () => {
    const len = next() % (maxLen + 1);
    return Array.from({ length: len }, () => {
      let id = next() % vocab;
      if (id === eos) id = (id + 1) % vocab;
      return id;
    });
  });
}

function writeShard(file: string, docs: number[][], vocabSize: number, eosId: number, tokenBytes?: 2 | 4): number[] {
  const w = new ShardWriter(file, { vocabSize, eosId, tokenBytes, bufferBytes: 64 }); // a tiny buffer exercises flushing
  for (const d of docs) w.appendDocument(d);
  w.close();
  return docs.flatMap((d) => [...d, eosId]);
}

t.test('uint16 round trip: header bytes, tokens, EOS after every document', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'a.bin');
  const docs = randomDocs(50, 40, 50257, 50256, 1);
  docs.push([50255, 0, 65535 % 50257]);
  const flat = writeShard(file, docs, 50257, 50256);
  const bytes = fs.readFileSync(file);
  t.equal(bytes.length, 64 + 2 * flat.length, 'file size = 64 + 2 * count');
  t.equal(bytes.subarray(0, 8).toString('ascii'), 'PJTOKSHD');
  t.equal(bytes.readUInt32LE(8), 1, 'version');
  t.equal(bytes.readUInt32LE(12), 2, 'width');
  t.equal(bytes.readBigUInt64LE(16), BigInt(flat.length), 'count');
  t.equal(bytes.readUInt32LE(24), 50257, 'vocab');
  t.equal(bytes.readUInt32LE(28), 50256, 'eos');
  t.ok(bytes.subarray(32, 64).every((b) => b === 0), 'reserved bytes are zero');
  t.equal(bytes.readUInt16LE(64), flat[0], 'first token little-endian right after the header');
  t.equal(bytes.readUInt16LE(bytes.length - 2), 50256, 'the shard ends with EOS');

  const r = openShard(file);
  t.match(r, { version: 1, tokenBytes: 2, tokenCount: flat.length, vocabSize: 50257, eosId: 50256 });
  t.same(Array.from(r.read(0, flat.length)), flat, 'whole shard');
  t.same(Array.from(r.read(37, 101)), flat.slice(37, 138), 'a window in the middle');
  t.same(Array.from(r.read(flat.length, 0)), [], 'empty window at the end');
  const out = new Uint32Array(10).fill(7);
  t.same(Array.from(r.read(5, 3, out)), flat.slice(5, 8), 'into a caller buffer');
  t.equal(flat.filter((x) => x === 50256).length, docs.length, 'one EOS per document');
  t.throws(() => r.read(flat.length - 2, 3), { name: 'TypeError', message: /outside .*a\.bin/ });
  t.throws(() => r.read(-1, 3), TypeError);
  t.throws(() => r.read(0.5, 3), TypeError);
  r.close();
  r.close();
  t.throws(() => r.read(0, 1), DisposedError);
});

t.test('uint32 round trip for vocabularies over 65536', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'nested', 'b.bin');
  const docs = randomDocs(30, 60, 100277, 100257, 2);
  docs.push([100276, 65536, 70000, 0]);
  const flat = writeShard(file, docs, 100277, 100257);
  const bytes = fs.readFileSync(file);
  t.equal(bytes.readUInt32LE(12), 4, 'width 4 chosen for vocab 100277');
  t.equal(bytes.length, 64 + 4 * flat.length);
  t.equal(bytes.readUInt32LE(64), flat[0]);
  const r = openShard(file);
  t.equal(r.tokenBytes, 4);
  t.same(Array.from(r.read(0, flat.length)), flat);
  r.close();

  // A small vocabulary may ask for 4 bytes; a large one may not ask for 2.
  const forced = path.join(dir, 'c.bin');
  t.same(writeShard(forced, [[1, 2, 3]], 10, 9, 4), [1, 2, 3, 9]);
  t.equal(fs.statSync(forced).size, 64 + 16);
  t.throws(() => new ShardWriter(path.join(dir, 'd.bin'), { vocabSize: 70000, eosId: 0, tokenBytes: 2 }), /65536/);
  t.same(fs.readdirSync(dir).sort(), ['c.bin', 'nested'], 'no temporary files left');
});

t.test('the writer is atomic and checks ids', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'x.bin');
  const w = new ShardWriter(file, { vocabSize: 100, eosId: 99 });
  w.appendDocument([1, 2, 3]);
  t.notOk(fs.existsSync(file), 'nothing at the target before close');
  t.equal(fs.readdirSync(dir).length, 1, 'one temporary file');
  t.throws(() => w.appendDocument([1, 100]), { name: 'TypeError', message: /token 1 .* is 100/ });
  t.throws(() => w.appendDocument([99]), /other than the EOS id 99/);
  t.throws(() => w.appendDocument([1.5]), TypeError);
  t.throws(() => w.appendDocument([-1]), TypeError);
  w.appendTokens([4, 5]);
  w.appendTokens(new Uint32Array([6]));
  w.endDocument();
  t.equal(w.documents, 2);
  t.equal(w.tokens, 8);
  const h = w.close();
  t.equal(h.tokenCount, 8);
  t.same(Array.from(openShard(file).read(0, 8)), [1, 2, 3, 99, 4, 5, 6, 99]);
  t.throws(() => w.appendDocument([1]), DisposedError);

  const aborted = new ShardWriter(path.join(dir, 'y.bin'), { vocabSize: 100, eosId: 99 });
  aborted.appendDocument([1]);
  aborted.abort();
  aborted.abort();
  t.same(fs.readdirSync(dir), ['x.bin'], 'abort leaves nothing behind');
  t.throws(() => new ShardWriter(path.join(dir, 'z.bin'), { vocabSize: 100, eosId: 100 }), /eosId/);
  t.throws(() => new ShardWriter(path.join(dir, 'z.bin'), { vocabSize: 0, eosId: 0 }), /vocabSize/);
});

t.test('bad shards are refused with the file and the fault named', async (t) => {
  const dir = tempDir(t);
  const good = path.join(dir, 'good.bin');
  writeShard(good, [[1, 2, 3], [4, 5]], 50257, 50256);
  const goodBytes = fs.readFileSync(good); // 64 + 7 * 2 bytes
  const variant = (name: string, edit: (b: Buffer) => Buffer): string => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, edit(Buffer.from(goodBytes)));
    return p;
  };
  const refuse = (file: string, message: RegExp, what: string): void => {
    t.throws(() => openShard(file), { name: 'PajamaDataError', code: 'ERR_PAJAMA_DATA', file, message }, what);
    try {
      openShard(file);
    } catch (e) {
      t.ok((e as Error).message.startsWith(file), `${what}: the message starts with the path`);
    }
  };
  refuse(variant('short.bin', (b) => b.subarray(0, 40)), /truncated shard: 40 bytes is shorter than the 64-byte header/, 'header cut');
  refuse(variant('empty.bin', () => Buffer.alloc(0)), /truncated shard: 0 bytes/, 'empty file');
  refuse(variant('magic.bin', (b) => (b.write('PJTOKSHX', 0, 'ascii'), b)), /bad magic "PJTOKSHX"/, 'bad magic');
  refuse(variant('text.bin', () => Buffer.from('{"text": "this is a jsonl file, not a shard at all, sorry"}\n'.repeat(3))), /not a token shard/, 'another kind of file');
  refuse(variant('v2.bin', (b) => (b.writeUInt32LE(2, 8), b)), /unsupported shard version 2/, 'version 2');
  refuse(variant('w3.bin', (b) => (b.writeUInt32LE(3, 12), b)), /bad token byte width 3/, 'width 3');
  refuse(variant('cut.bin', (b) => b.subarray(0, b.length - 2)), /truncated shard: header says 7 tokens x 2 bytes .* = 78 bytes, but the file is 76 bytes/, 'a token cut');
  refuse(variant('odd.bin', (b) => b.subarray(0, b.length - 1)), /truncated shard: .* the file is 77 bytes/, 'half a token cut');
  refuse(variant('long.bin', (b) => Buffer.concat([b, Buffer.alloc(4)])), /size mismatch: .* 78 bytes, but the file is 82 bytes/, 'bytes appended');
  refuse(variant('count.bin', (b) => (b.writeBigUInt64LE(8n, 16), b)), /truncated shard: header says 8 tokens/, 'count too large');
  refuse(variant('reserved.bin', (b) => (b[40] = 1, b)), /reserved header byte 40 is 1/, 'reserved byte set');
  refuse(variant('eos.bin', (b) => (b.writeUInt32LE(50257, 28), b)), /EOS id 50257 .* not below the vocab size 50257/, 'EOS out of range');
  refuse(variant('wide.bin', (b) => (b.writeUInt32LE(70000, 24), b)), /2-byte tokens but vocab size 70000/, 'vocab too large for width');
  t.throws(() => openShard(path.join(dir, 'missing.bin')), { code: 'ERR_PAJAMA_DATA', message: `${path.join(dir, 'missing.bin')}: cannot open: no such token shard (ENOENT)` });

  // A token id equal to the vocab size (the first id out of range) is found when its window is read, and named by offset.
  const bad = variant('badtoken.bin', (b) => (b.writeUInt16LE(50257, SHARD_HEADER_BYTES + 2 * 5), b));
  const r = openShard(bad);
  t.same(Array.from(r.read(0, 5)), [1, 2, 3, 50256, 4], 'windows before it read fine');
  t.throws(() => r.read(3, 4), { name: 'PajamaDataError', file: bad, offset: 5, message: /badtoken\.bin: token id 50257 at token offset 5 is not below the header's vocab size 50257/ });
  r.close();
  t.ok(new PajamaDataError('f', 'm') instanceof Error);
});
