// pool.ts: encoding batches of documents on worker threads.
//
// Each worker builds its own tokenizer from a TokenizerSpec (worker.ts, create.ts). encodeBatch cuts a batch
// into contiguous chunks of about equal text length, a few per worker, hands each to the least loaded worker
// and puts the answers back in order; the ids come back as transferred Uint32Arrays, without a copy. Batches
// may overlap: each worker answers its chunks in the order it got them.
//
// Errors: a spec that cannot be built rejects create() with the error createTokenizer throws (same class and
// message); a text that cannot be encoded rejects its batch naming the index; a worker that dies rejects what
// it was doing and breaks the pool (later batches reject with the reason). Idle workers do not keep the process
// alive, but close() is still the way to end them; it is idempotent, and a closed pool rejects with a
// DisposedError.
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { DisposedError, invalidArg } from '../../core/errors';
import { PajamaDataError } from '../errors';
import type { TokenizerSpec } from './create';

/** An error as it crosses from a worker. */
export interface WorkerError {
  name: string;
  message: string;
  code?: string;
  /** PajamaDataError's file. */
  file?: string;
}

/** What a worker says: once ready or failed, then one answer per chunk, in the order the chunks came. */
export type WorkerReply =
  | { kind: 'ready' }
  | { kind: 'failed'; error: WorkerError }
  | { kind: 'done'; chunk: number; ids: Uint32Array[] }
  | { kind: 'error'; chunk: number; index: number; error: WorkerError };

/** A chunk of a batch, sent to a worker. */
export interface WorkerChunk {
  chunk: number;
  texts: string[];
}

/** Chunks per worker in a batch: a few, so that one long document does not leave the other workers idle. */
const CHUNKS_PER_WORKER = 4;

// The worker entry next to this file: .js when compiled, .ts under a TypeScript loader (tap), which worker
// threads inherit through execArgv.
const WORKER_ENTRY = path.join(__dirname, `worker${path.extname(__filename)}`);

interface Batch {
  results: Uint32Array[];
  remaining: number;
  settled: boolean;
  resolve: (ids: Uint32Array[]) => void;
  reject: (e: Error) => void;
}

interface Pending {
  batch: Batch;
  /** Index in the batch of the chunk's first text. */
  start: number;
  chars: number;
}

interface PoolWorker {
  worker: Worker;
  index: number;
  /** Settles when the worker has built its tokenizer, or could not. */
  started: Promise<void>;
  isStarted: boolean;
  startResolve: () => void;
  startReject: (e: Error) => void;
  /** Chunks sent and not answered, by chunk number (a Map keeps them in sending order). */
  pending: Map<number, Pending>;
  /** Text length of those chunks, for choosing the least loaded worker. */
  chars: number;
}

export class TokenizerPool {
  /** Number of worker threads. */
  readonly size: number;
  private readonly workers: PoolWorker[];
  private nextChunk = 0;
  private closed = false;
  private closing: Promise<void> | null = null;
  /** Why the pool no longer works (a worker died), or null. */
  private broken: Error | null = null;

  private constructor(spec: TokenizerSpec, count: number) {
    this.size = count;
    this.workers = [];
    for (let index = 0; index < count; index++) {
      const worker = new Worker(WORKER_ENTRY, { workerData: { spec } });
      let startResolve!: () => void;
      let startReject!: (e: Error) => void;
      const started = new Promise<void>((resolve, reject) => {
        startResolve = resolve;
        startReject = reject;
      });
      started.catch(() => {}); // create() reports it
      const w: PoolWorker = { worker, index, started, isStarted: false, startResolve, startReject, pending: new Map(), chars: 0 };
      worker.on('message', (m: WorkerReply) => this.onReply(w, m));
      worker.on('error', (e) => this.onDeath(w, `threw ${e instanceof Error ? e.message : String(e)}`));
      worker.on('exit', (code) => this.onDeath(w, `exited with code ${code}`));
      this.workers.push(w);
    }
  }

  /**
   * Starts `workers` threads (defaults to os.availableParallelism()), each with the tokenizer of `spec`, and
   * resolves when all are ready; rejects with the error createTokenizer(spec) throws when it cannot be built.
   */
  static async create(spec: TokenizerSpec, workers: number = os.availableParallelism()): Promise<TokenizerPool> {
    if (!Number.isInteger(workers) || workers < 1) throw invalidArg(`TokenizerPool.create: workers must be a positive integer, got ${workers}`);
    if (spec === null || typeof spec !== 'object') throw invalidArg(`TokenizerPool.create: spec must be a TokenizerSpec object, got ${spec === null ? 'null' : typeof spec}`);
    try {
      structuredClone(spec);
    } catch (e) {
      throw invalidArg(`TokenizerPool.create: spec must be plain data: ${(e as Error).message}`);
    }
    const pool = new TokenizerPool(spec, workers);
    try {
      await Promise.all(pool.workers.map((w) => w.started));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  /** The ids of each text, in order. */
  encodeBatch(texts: readonly string[]): Promise<Uint32Array[]> {
    if (this.closed) return Promise.reject(new DisposedError('TokenizerPool.encodeBatch: the pool is closed'));
    if (this.broken) return Promise.reject(this.broken);
    if (!Array.isArray(texts)) return Promise.reject(invalidArg(`TokenizerPool.encodeBatch: texts must be an array of strings, got ${typeof texts}`));
    if (texts.length === 0) return Promise.resolve([]);
    return new Promise<Uint32Array[]>((resolve, reject) => {
      const batch: Batch = { results: new Array(texts.length), remaining: 0, settled: false, resolve, reject };
      const cuts = chunkBounds(texts, Math.min(texts.length, this.size * CHUNKS_PER_WORKER));
      batch.remaining = cuts.length - 1;
      for (let k = 0; k + 1 < cuts.length; k++) {
        const slice = texts.slice(cuts[k], cuts[k + 1]);
        let chars = 0;
        for (const t of slice) chars += typeof t === 'string' ? t.length : 0;
        const w = this.workers.reduce((best, x) => (x.chars < best.chars ? x : best));
        const chunk = this.nextChunk++;
        try {
          w.worker.postMessage({ chunk, texts: slice } satisfies WorkerChunk);
        } catch (e) {
          settle(batch, invalidArg(`TokenizerPool.encodeBatch: texts[${cuts[k]}..${cuts[k + 1] - 1}] cannot be sent to a worker: ${(e as Error).message}`));
          return;
        }
        if (w.pending.size === 0) w.worker.ref();
        w.pending.set(chunk, { batch, start: cuts[k], chars });
        w.chars += chars;
      }
    });
  }

  /** Ends the workers; batches still running reject. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      const gone = new DisposedError('TokenizerPool.close: the pool was closed before this batch was encoded');
      for (const w of this.workers) {
        w.startReject(new DisposedError('TokenizerPool.close: the pool was closed while starting'));
        this.failPending(w, gone);
      }
      await Promise.all(this.workers.map((w) => w.worker.terminate()));
    })();
    return this.closing;
  }

  private onReply(w: PoolWorker, m: WorkerReply): void {
    if (m.kind === 'ready') {
      w.isStarted = true;
      w.worker.unref(); // idle from now on
      w.startResolve();
      return;
    }
    if (m.kind === 'failed') {
      w.startReject(revive(m.error, ''));
      return;
    }
    const p = w.pending.get(m.chunk);
    if (!p) return;
    w.pending.delete(m.chunk);
    w.chars -= p.chars;
    if (w.pending.size === 0) w.worker.unref();
    const { batch } = p;
    if (m.kind === 'error') {
      settle(batch, revive(m.error, `TokenizerPool.encodeBatch: texts[${p.start + m.index}]: `));
      return;
    }
    for (let i = 0; i < m.ids.length; i++) batch.results[p.start + i] = m.ids[i];
    if (--batch.remaining === 0) settle(batch, null);
  }

  private onDeath(w: PoolWorker, how: string): void {
    if (this.closed) return;
    if (!w.isStarted) {
      w.startReject(new Error(`TokenizerPool.create: worker ${w.index} ${how} while starting`));
      return;
    }
    const e = new Error(`TokenizerPool: worker ${w.index} ${how}`);
    this.broken ??= e;
    this.failPending(w, e);
  }

  private failPending(w: PoolWorker, e: Error): void {
    for (const p of w.pending.values()) settle(p.batch, e);
    w.pending.clear();
    w.chars = 0;
  }
}

function settle(batch: Batch, error: Error | null): void {
  if (batch.settled) return;
  batch.settled = true;
  if (error) batch.reject(error);
  else batch.resolve(batch.results);
}

/** Indices cutting `texts` into `count` contiguous runs of about equal length: [0, ..., texts.length]. */
function chunkBounds(texts: readonly string[], count: number): number[] {
  let total = 0;
  for (const t of texts) total += typeof t === 'string' ? t.length : 0;
  const cuts = [0];
  let sum = 0;
  for (let i = 0; i < texts.length; i++) {
    sum += typeof texts[i] === 'string' ? texts[i].length : 0;
    const left = texts.length - (i + 1); // texts after this one
    const wanted = count - cuts.length; // cuts still to place before the end
    if (left > 0 && wanted > 0 && (sum * count >= total * cuts.length || left <= wanted)) cuts.push(i + 1);
  }
  cuts.push(texts.length);
  return cuts;
}

/** The error a worker reported, as the same class, with `context` before the message (a data error keeps its file). */
function revive(e: WorkerError, context: string): Error {
  if (e.name === 'PajamaDataError' && e.file !== undefined) {
    const prefix = `${e.file}: `;
    return new PajamaDataError(e.file, context + (e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message));
  }
  if (e.code === 'ERR_PAJAMA_INVALID_ARG') return invalidArg(context + e.message);
  const out = new Error(context + e.message);
  out.name = e.name;
  if (e.code !== undefined) (out as Error & { code: string }).code = e.code;
  return out;
}
