// worker.ts: the worker thread of TokenizerPool (pool.ts). Builds the tokenizer of workerData.spec, says
// 'ready' (or 'failed' with the error), then encodes each chunk it is sent and answers in order, the ids
// transferred.
import { parentPort, workerData } from 'node:worker_threads';
import type { Tokenizer } from './base';
import { createTokenizer, type TokenizerSpec } from './create';
import type { WorkerChunk, WorkerError, WorkerReply } from './pool';

function serialize(e: unknown): WorkerError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const { code, file } = e as Error & { code?: unknown; file?: unknown };
  return {
    name: e.name,
    message: e.message,
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof file === 'string' ? { file } : {}),
  };
}

const port = parentPort!;
const post = (m: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

let tokenizer: Tokenizer | null = null;
try {
  tokenizer = createTokenizer((workerData as { spec: TokenizerSpec }).spec);
  post({ kind: 'ready' });
} catch (e) {
  post({ kind: 'failed', error: serialize(e) });
}

port.on('message', ({ chunk, texts }: WorkerChunk) => {
  if (!tokenizer) return;
  const ids: Uint32Array[] = [];
  const buffers = new Set<ArrayBuffer>();
  for (let i = 0; i < texts.length; i++) {
    let encoded: Uint32Array;
    try {
      const out = tokenizer.encode(texts[i]);
      encoded = out instanceof Uint32Array ? out : Uint32Array.from(out);
    } catch (e) {
      post({ kind: 'error', chunk, index: i, error: serialize(e) });
      return;
    }
    // A fresh copy when the array shares its buffer with one already in the reply (a buffer moves only once).
    if (buffers.has(encoded.buffer as ArrayBuffer)) encoded = encoded.slice();
    buffers.add(encoded.buffer as ArrayBuffer);
    ids.push(encoded);
  }
  post({ kind: 'done', chunk, ids }, [...buffers]);
});
