// Processes whose worker threads load the addon exit cleanly, every time. Before the addon was linked with
// -z nodelete, Node dlclose()d it when the last worker that had loaded it ended (the main thread never had),
// unloading libgomp while another worker thread was still running libgomp's thread-exit code: the process
// died with SIGSEGV at exit in about half the runs of a small multi-worker job. Runs are repeated because the
// crash was a race; OMP_NUM_THREADS is raised so each worker starts a full OpenMP pool (which widens the
// window the race needs), and each child ends three rounds of workers. The workers do what the scan workers
// of `pajama prepare` / `pajama dedup` do with the addon (lib/data/corpus/scan-worker.ts), without the CLI around it.
import t from 'tap';
import * as path from 'node:path';
import { spawn } from 'node:child_process';

const ROOT = path.resolve(__dirname, '../..');
const ADDON = process.env.PAJAMA_ADDON
  ? path.resolve(process.env.PAJAMA_ADDON)
  : path.join(ROOT, 'build/Release/pajama_native.node');
const CHILD_ENV = { ...process.env, OMP_NUM_THREADS: '16', PAJAMA_ADDON: ADDON };

// The main thread never loads the addon; two workers at a time load it, run the (OpenMP-parallel) MinHash
// op and end.
const WORKERS_SCRIPT = `
const { Worker } = require('node:worker_threads');
const body = \`
const { workerData, parentPort } = require('node:worker_threads');
const n = require(workerData.addon);
const docs = 200, len = 2000, text = new Uint8Array(docs * len);
for (let i = 0; i < text.length; i++) text[i] = 97 + ((i * 7919 + workerData.seed) % 26);
const offsets = new Uint32Array(docs + 1);
for (let i = 0; i <= docs; i++) offsets[i] = i * len;
const sigs = new Uint32Array(docs * 128), keys = new BigUint64Array(docs * 8);
n.minhashSignatures(sigs, keys, text, offsets, 128, 13, 8, 16, 1);
parentPort.postMessage(sigs[0]);
\`;
const one = (seed) => new Promise((resolve, reject) => {
  const w = new Worker(body, { eval: true, workerData: { addon: process.env.PAJAMA_ADDON, seed } });
  w.on('error', reject);
  w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error('worker exit ' + code))));
});
(async () => {
  for (let r = 0; r < 3; r++) await Promise.all([one(2 * r), one(2 * r + 1)]);
})().catch((e) => { console.error(e); process.exit(3); });
`;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  err: string;
}

function run(args: string[]): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: CHILD_ENV, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code, signal) => resolve({ code, signal, err: err.slice(-2000) }));
  });
}

// `count` runs, two at a time; returns the ones that did not exit 0.
async function repeat(count: number, args: () => string[]): Promise<Exit[]> {
  const bad: Exit[] = [];
  let next = 0;
  const lane = async () => {
    while (next < count) {
      next++;
      const r = await run(args());
      if (r.code !== 0 || r.signal) bad.push(r);
    }
  };
  await Promise.all([lane(), lane()]);
  return bad;
}

const describe = (bad: Exit[]) => bad.map((b) => `code ${b.code} signal ${b.signal} ${b.err.trim().slice(-300)}`);

t.test('30 processes whose worker threads load the addon all exit 0', async (t) => {
  const bad = await repeat(30, () => ['-e', WORKERS_SCRIPT]);
  t.same(describe(bad), [], 'every run exits 0 without a signal');
});
