// kv-cache.ts: a key/value cache session over a model, for generation. Each block's keys and values of the
// positions seen so far stay in (B, H, maxLen, D) tensors of the activation dtype on the model's device; a step
// runs the new tokens only (prefill: many; decode: one per sequence) through the trunk with attention over the
// cache (the native attentionCachedForward), appends their keys and values, and returns the logits of chosen
// positions. ALiBi's bias depends only on the distance between query and key, so the cache needs no position
// ids and a step computes exactly what a forward over the whole sequence computes for those positions.
// The cache holds at most maxLen <= the model's maxSeqLen positions: an append that would pass it is an error
// naming the numbers; what to do then (keep a shorter window and prefill it again) is the caller's policy
// (generate.ts's is documented there). truncate(n) forgets every position from n on (the next append
// overwrites them), so a caller can roll back to a shared prefix, as a chat does between turns.
import { DisposedError, invalidArg } from '../core/errors';
import { Tensor, type DeviceSpec, type DType } from '../core/tensor';

/** Each block's cache, (B, H, maxLen, D) in the activation dtype: k[l] and v[l] for block l. */
export interface KvTensors {
  readonly k: readonly Tensor[];
  readonly v: readonly Tensor[];
}

/** What a cache needs of its model; MptModel has it. */
export interface CachedForwardModel {
  readonly config: {
    readonly nLayers: number;
    readonly nHeads: number;
    readonly dModel: number;
    readonly maxSeqLen: number;
    readonly vocabSize: number;
    readonly realVocabSize: number;
  };
  readonly device: DeviceSpec;
  readonly actDType: DType;
  /**
   * One cached forward step: ids (B*Tq) of the new positions [past, past + Tq) of each sequence; appends their
   * keys and values to `kv`; returns (rows.length, vocabSize) f32 logits of the rows b*Tq + t asked for.
   */
  forwardCached(kv: KvTensors, ids: Int32Array, B: number, Tq: number, past: number, rows: Int32Array): Promise<Float32Array>;
}

export interface KvCacheOptions {
  /** Sequences decoded side by side, all at the same length. Defaults to 1. */
  batch?: number;
  /** Positions the cache holds, at most the model's maxSeqLen. Defaults to maxSeqLen. */
  maxLen?: number;
}

export interface AppendOptions {
  /** Flat indices b*Tq + t into the appended (B, Tq) block whose logits to return. Defaults to the last of each sequence. */
  positions?: Int32Array;
}

export class MptKvCache {
  readonly batch: number;
  readonly maxLen: number;
  readonly #model: CachedForwardModel;
  #kv: KvTensors | null;
  #ids: Int32Array; // (B, maxLen): the ids of the cached positions, per sequence
  #length = 0;
  #busy = false;

  constructor(model: CachedForwardModel, options: KvCacheOptions = {}) {
    const where = 'MptKvCache';
    if (options === null || typeof options !== 'object') throw invalidArg(`${where}: options must be an object`);
    const { nLayers: L, nHeads: H, dModel: C, maxSeqLen } = model.config;
    const batch = options.batch ?? 1;
    const maxLen = options.maxLen ?? maxSeqLen;
    if (!Number.isSafeInteger(batch) || batch < 1) throw invalidArg(`${where}: batch must be a positive integer, got ${batch}`);
    if (!Number.isSafeInteger(maxLen) || maxLen < 1 || maxLen > maxSeqLen) {
      throw invalidArg(`${where}: maxLen must be an integer in 1..${maxSeqLen} (the model's maxSeqLen), got ${maxLen}`);
    }
    this.#model = model;
    this.batch = batch;
    this.maxLen = maxLen;
    const shape = [batch, H, maxLen, C / H];
    const k: Tensor[] = [];
    const v: Tensor[] = [];
    try {
      for (let l = 0; l < L; l++) {
        k.push(Tensor.zeros(model.actDType, shape, model.device));
        v.push(Tensor.zeros(model.actDType, shape, model.device));
      }
    } catch (e) {
      for (const t of [...k, ...v]) t.dispose();
      throw e;
    }
    this.#kv = { k, v };
    this.#ids = new Int32Array(batch * maxLen);
  }

  /** Positions cached per sequence. */
  get length(): number {
    return this.#length;
  }

  /** Bytes of the K and V tensors. */
  get byteLength(): number {
    return this.#tensors().k.reduce((n, t) => n + 2 * t.byteLength, 0);
  }

  /** The ids cached for sequence b (a copy). */
  ids(b = 0): number[] {
    if (!Number.isInteger(b) || b < 0 || b >= this.batch) throw invalidArg(`MptKvCache.ids: sequence ${b} is outside [0, ${this.batch})`);
    return Array.from(this.#ids.subarray(b * this.maxLen, b * this.maxLen + this.#length));
  }

  /** Forgets everything and runs `ids` (B*T, row-major) as the new start of every sequence; see append. */
  async prefill(ids: Int32Array, options: AppendOptions = {}): Promise<Float32Array> {
    this.#tensors();
    if (this.#busy) throw invalidArg('MptKvCache.prefill: another step of this cache is still running (await it first)');
    this.#length = 0;
    return this.append(ids, options);
  }

  /**
   * Appends Tq = ids.length / batch new positions to every sequence (ids row-major (B, Tq)) and returns the
   * (positions.length, vocabSize) f32 logits asked for (by default the last new position of each sequence:
   * (B, vocabSize), as MptModel.lastLogits); padded ids have -Infinity.
   */
  async append(ids: Int32Array, options: AppendOptions = {}): Promise<Float32Array> {
    const where = 'MptKvCache.append';
    const kv = this.#tensors();
    if (this.#busy) throw invalidArg(`${where}: another step of this cache is still running (await it first)`);
    if (!(ids instanceof Int32Array)) throw invalidArg(`${where}: ids must be an Int32Array (B*Tq, row-major)`);
    const B = this.batch;
    if (ids.length === 0 || ids.length % B !== 0) throw invalidArg(`${where}: ids has ${ids.length} tokens, expected a positive multiple of the batch (${B})`);
    const Tq = ids.length / B;
    if (this.#length + Tq > this.maxLen) {
      throw invalidArg(
        `${where}: ${this.#length} cached + ${Tq} new positions exceed the cache's maxLen ${this.maxLen}; truncate it, or prefill a shorter window again`,
      );
    }
    const real = this.#model.config.realVocabSize;
    ids.forEach((id, i) => {
      if (!(id >= 0 && id < real)) throw invalidArg(`${where}: ids[${i}] is ${id}, outside the model's vocabulary [0, ${real})`);
    });
    let rows = options.positions;
    if (rows === undefined) {
      rows = new Int32Array(B);
      for (let b = 0; b < B; b++) rows[b] = b * Tq + Tq - 1;
    } else {
      if (!(rows instanceof Int32Array)) throw invalidArg(`${where}: positions must be an Int32Array of flat indices b*Tq + t`);
      rows.forEach((p, i) => {
        if (!(p >= 0 && p < B * Tq)) throw invalidArg(`${where}: positions[${i}] is ${p}, outside the appended block's [0, ${B * Tq})`);
      });
    }
    const past = this.#length;
    this.#busy = true;
    try {
      const logits = await this.#model.forwardCached(kv, ids, B, Tq, past, rows);
      for (let b = 0; b < B; b++) this.#ids.set(ids.subarray(b * Tq, (b + 1) * Tq), b * this.maxLen + past);
      this.#length = past + Tq;
      return logits;
    } finally {
      // A failed step may have written some of the new positions: they are not counted, so the cache stays valid.
      this.#busy = false;
    }
  }

  /** Keeps the first n positions (0 <= n <= length); the next append writes from position n. */
  truncate(n: number): void {
    this.#tensors();
    if (this.#busy) throw invalidArg('MptKvCache.truncate: a step of this cache is still running (await it first)');
    if (!Number.isSafeInteger(n) || n < 0 || n > this.#length) throw invalidArg(`MptKvCache.truncate: length must be an integer in 0..${this.#length}, got ${n}`);
    this.#length = n;
  }

  /** truncate(0). */
  reset(): void {
    this.truncate(0);
  }

  get disposed(): boolean {
    return this.#kv === null;
  }

  dispose(): void {
    if (!this.#kv) return;
    for (const t of [...this.#kv.k, ...this.#kv.v]) t.dispose();
    this.#kv = null;
  }

  #tensors(): KvTensors {
    if (!this.#kv) throw new DisposedError('MptKvCache: used after dispose()');
    return this.#kv;
  }
}
