// The document table codec: each field at its documented offset, clamping, round trips through the writer
// and the streaming reader across a chunk boundary, and a truncated table named as such.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DOC_RECORD_BYTES, DocTableWriter, decodeDocRecord, encodeDocRecord, forEachDocument, type DocRecord } from '../../../lib/data/corpus/doc-table';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pajama-doc-table-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

t.test('the record layout, field by field', async (t) => {
  t.equal(DOC_RECORD_BYTES, 24);
  const buf = Buffer.alloc(2 * DOC_RECORD_BYTES, 0xee);
  const hash = 2 ** 52 + 12345;
  encodeDocRecord(buf, DOC_RECORD_BYTES, 0x1234, true, 0xdeadbeef, 5000, 77, hash);
  const o = DOC_RECORD_BYTES;
  t.equal(buf.readUInt16LE(o), 0x1234, 'source: u16 at 0');
  t.equal(buf[o + 2], 1, 'short: u8 at 2');
  t.equal(buf[o + 3], 0, 'unused byte 3 is zero');
  t.equal(buf.readUInt32LE(o + 4), 0xdeadbeef, 'split draw: u32 at 4');
  t.equal(buf.readUInt32LE(o + 8), 5000, 'bytes: u32 at 8');
  t.equal(buf.readUInt32LE(o + 12), 77, 'line: u32 at 12');
  t.equal(buf.readDoubleLE(o + 16), hash, 'hash: f64 at 16');
  t.ok(buf.subarray(0, o).every((b) => b === 0xee), 'the record before is untouched');
  t.same(decodeDocRecord(buf, o), { source: 0x1234, short: true, splitDraw: 0xdeadbeef, bytes: 5000, line: 77, hash });

  encodeDocRecord(buf, 0, 0, false, 0, 2 ** 40, 2 ** 33, 0);
  t.same(decodeDocRecord(buf, 0), { source: 0, short: false, splitDraw: 0, bytes: 2 ** 32 - 1, line: 2 ** 32 - 1, hash: 0 }, 'bytes and line clamp to u32');
});

t.test('writer and streaming reader round trip across a chunk boundary', async (t) => {
  const file = path.join(dir, 'documents.bin');
  const n = (1 << 16) + 123;
  const rec = (i: number): DocRecord => ({ source: i % 7, short: i % 5 === 0, splitDraw: (i * 2654435761) >>> 0, bytes: i * 3, line: i + 1, hash: i * 1e6 + 0.5 });
  const w = new DocTableWriter(file);
  for (let i = 0; i < n; i++) {
    const r = rec(i);
    w.push(r.source, r.short, r.splitDraw, r.bytes, r.line, r.hash);
  }
  w.close();
  t.equal(w.count, n);
  t.equal(fs.statSync(file).size, n * DOC_RECORD_BYTES);
  let bad = 0;
  const count = forEachDocument(file, (id, r) => {
    const want = rec(id);
    if (r.source !== want.source || r.short !== want.short || r.splitDraw !== want.splitDraw || r.bytes !== want.bytes || r.line !== want.line || r.hash !== want.hash) bad++;
  });
  t.equal(count, n);
  t.equal(bad, 0, 'every record reads back as written');

  fs.truncateSync(file, 5 * DOC_RECORD_BYTES - 3);
  t.throws(() => forEachDocument(file, () => {}), { name: 'PajamaDataError', message: `${file}: is not a whole number of 24-byte records (truncated)` });
});
