// XXH64 (lib/data/corpus/xxh64.ts) against the zstd command-line tool: zstd stores the low 32 bits of the
// XXH64 of a frame's content as the frame's last 4 bytes, so every input below is checked against an
// independent implementation. Lengths cover the tail paths (under 4, 8 and 32 bytes, and none), the 32-byte
// stripes and long inputs; each input is fed whole and in random pieces (a stripe split across updates), and
// once more after reset().
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { Xxh64 } from '../../../lib/data/corpus/xxh64';
import { lcg32 } from '../../helpers/shards';

const zstdMissing = spawnSync('zstd', ['--version']).error ? 'the zstd command-line tool is not installed (apt-get install zstd)' : false;
if (zstdMissing && process.env.CI) t.fail(`${zstdMissing}; CI installs it, so the zstd tests cannot be skipped there`);
const needsZstd = { skip: process.env.CI ? false : zstdMissing };

/** The content checksum zstd writes for `data`: the last 4 bytes of its single frame, little-endian. */
function zstdChecksum(data: Uint8Array): number {
  const r = spawnSync('zstd', ['-q', '-c', '--check', '-'], { input: data, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr}`);
  const out = r.stdout;
  return out.readUInt32LE(out.length - 4);
}

t.test('digestLow32 equals the checksum zstd writes, fed whole or in pieces', needsZstd, async (t) => {
  const next = lcg32(20261205);
  const lengths = [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 31, 32, 33, 35, 36, 40, 63, 64, 65, 100, 1000, 4099, 300_001];
  const hash = new Xxh64();
  for (const n of lengths) {
    const data = new Uint8Array(n);
    for (let i = 0; i < n; i++) data[i] = next() >>> 24;
    const expected = zstdChecksum(data);

    hash.reset();
    hash.update(data);
    t.equal(hash.digestLow32(), expected, `${n} bytes, one update`);

    hash.reset();
    for (let at = 0; at < n; ) {
      const end = Math.min(n, at + (next() % 70));
      hash.update(data.subarray(at, end));
      at = end;
    }
    t.equal(hash.digestLow32(), expected, `${n} bytes, in pieces of 0 to 69 bytes`);
  }
});

t.test('a fresh hash and a reset one agree, and digesting does not change the state', async (t) => {
  const data = new TextEncoder().encode('The quick brown fox jumps over the lazy dog, again and again and again.');
  const fresh = new Xxh64();
  fresh.update(data);
  const used = new Xxh64();
  used.update(new Uint8Array(1000).fill(7));
  used.digestLow32();
  used.reset();
  used.update(data);
  t.equal(used.digestLow32(), fresh.digestLow32());
  t.equal(fresh.digestLow32(), fresh.digestLow32(), 'digestLow32 twice gives the same value');
  t.not(fresh.digestLow32(), new Xxh64().digestLow32(), 'the digest depends on the input');
});
