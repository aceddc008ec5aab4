// mpt.ts: the MPT decoder composed from native ops, forward and backward in the order the math goes.
//
//   x0 = wte[ids]                                        (no position embeddings: ALiBi in attention)
//   for each block:  h = x + out_proj(attn(norm_1(x)))    attn: causal flash attention with fused ALiBi
//                    x = h + down_proj(gelu(up_proj(norm_2(h))))
//   loss = cross_entropy(norm_f(x) @ wte^T, targets)    (tied embeddings, fused and chunked natively)
//
// No biases anywhere, LayerNorm without bias, exact GELU. Precision: 'fp32', or 'bf16' autocast: f32 master
// weights and f32 parameter gradients, a bf16 compute copy of the weights (refreshed by the optimizer in the
// same pass), activations and activation gradients in bf16, LayerNorm statistics, softmax and loss in f32.
// Activation checkpointing: a checkpointed block keeps only its input and recomputes its forward (into one
// shared scratch) during backward; gradients are identical either way. The recompute stops after the GELU
// (the block's output, down_proj + residual, is already saved as the next block's input), and the last
// checkpointed block is not recomputed at all: the forward pass left its activations in the scratch.
// Device: every tensor of a model (weights, gradients, activations) lives on its `device`; token ids and
// targets are copied in from the host per batch, and the ops run where the tensors are.
// Parameters: the model's own arenas (params, grads, computeParams), or a ParameterStore that holds them
// elsewhere (data-parallel sharding 'full', dist/fsdp.ts): the model then enters each unit of parameters
// (the embedding, each block, the final LayerNorm; parameterUnits) before its ops read the unit's weights or
// write its gradients, and leaves it after, in the same order on every rank.
// Inference (option inference): no gradient arena and no activation-gradient buffers; the forward keeps one
// block's scratch and two residual-stream tensors that alternate, and forwardBackward is refused. Generation
// decodes through a key/value cache (createCache, kv-cache.ts): forwardCached runs only the new tokens, with
// attention over each block's cached keys and values (attentionCachedForward), in buffers of its own sized for
// (B, Tq) (decode's kept, plus the last other size).
import { Arena, checkDevice, Tensor, type DeviceSpec, type DType } from '../core/tensor';
import { ops } from '../core/ops';
import { DisposedError, invalidArg } from '../core/errors';
import { seededNormal } from '../core/rng';
import { alibiSlopes } from './alibi';
import { parameterCount, parameterLayout, validateConfig, type MptConfig } from './config';
import { MptKvCache, type KvCacheOptions, type KvTensors } from './kv-cache';

/**
 * Where a model's weights and gradients live when they are not its own arenas (MptModelOptions.store). Units
 * are numbered as parameterUnits numbers them: 0 the embedding, 1 + l block l, nLayers + 1 the final LayerNorm.
 */
export interface ParameterStore {
  /** The weight `name` in the compute dtype, readable while its unit is entered. */
  weight(name: string): Tensor;
  /** The f32 gradient of `name`, accumulated into while its unit is entered for the backward. */
  grad(name: string): Tensor;
  /** Before the ops of unit `u`: its weights in place, and for 'backward' its gradients zeroed. */
  enter(u: number, phase: 'forward' | 'backward'): Promise<void>;
  /** After them: for 'backward', unit `u`'s gradients of this micro-batch are complete. */
  leave(u: number, phase: 'forward' | 'backward'): Promise<void>;
}

export type Precision = 'fp32' | 'bf16';

export interface MptModelOptions {
  /** Defaults to 'fp32'. */
  precision?: Precision;
  /** 0: off (default); 1: every block; k: every k-th block (blocks 0, k, 2k, ...). */
  checkpointEvery?: number;
  /** Seed of the weight initialisation. Defaults to 0. */
  seed?: number;
  /** Where the weights, gradients and activations live: 'cpu' (default), 'cuda' or 'cuda:N'. */
  device?: DeviceSpec;
  /**
   * Weights and gradients held elsewhere (sharding 'full'): the model allocates no parameter arenas, its
   * params, grads and computeParams refuse to be read, and it is not initialised (the store's owner does that).
   */
  store?: ParameterStore;
  /**
   * false: a bf16 model without f32 master weights (sharding 'optimizer' keeps each rank's shard of them and
   * writes the bf16 copy the model computes with); its params refuse to be read and it is not initialised.
   * Defaults to true.
   */
  masterWeights?: boolean;
  /**
   * true: a model for inference only (generation, scoring): no gradient arena and no activation-gradient
   * buffers; a forward keeps one block's scratch and the residual stream; forwardBackward is refused. Its
   * weights are its own (no store, master weights kept: the LM head of positionLogits reads them). Defaults to
   * false.
   */
  inference?: boolean;
}

/** Makes zeroed tensors on `device` and lists each in `all`, so that a set of buffers is freed in one loop. */
function tensorMaker(device: DeviceSpec, all: Tensor[]): (dtype: DType, shape: number[]) => Tensor {
  return (dtype, shape) => {
    const t = Tensor.zeros(dtype, shape, device);
    all.push(t);
    return t;
  };
}

/** The model's parameter arenas are not in this process: a ParameterStore holds them (sharding 'full'), or a shard its master weights ('optimizer'). */
function storeHolds(what: string, mode = 'full'): Error {
  return invalidArg(
    `MptModel.${what}: this model's ${mode === 'full' ? 'parameters are' : 'f32 master weights are'} sharded over the ranks (dist.sharding '${mode}'); ` +
      "gather them (the trainer's checkpoint does) or load the checkpoint into a model of its own",
  );
}

interface BlockActs {
  ln1: Tensor; // (B, T, C)
  mean1: Tensor; // (B*T) f32
  rstd1: Tensor; // (B*T) f32
  qkv: Tensor; // (B, T, 3C)
  att: Tensor; // (B, T, C)
  lse: Tensor; // (B, H, T) f32
  h: Tensor; // (B, T, C): the residual stream after attention
  ln2: Tensor; // (B, T, C)
  mean2: Tensor;
  rstd2: Tensor;
  fc: Tensor; // (B, T, F) before GELU
  act: Tensor; // (B, T, F) after GELU
}

/** Activation gradients (training models only). */
interface GradBuffers {
  dx: Tensor; // (B, T, C) gradient of the residual stream
  dtmp: Tensor; // (B, T, C)
  dln: Tensor; // (B, T, C)
  dqkv: Tensor; // (B, T, 3C)
  dff: Tensor; // (B, T, F)
}

interface Buffers {
  B: number;
  T: number;
  ids: Tensor; // (B*T) i32
  targets: Tensor; // (B*T) i32
  // nLayers + 1 residual-stream tensors (B, T, C): x0 and every block's output; an inference model's alternate
  // between two tensors (xs[l] and xs[l + 1] are never the same one).
  xs: Tensor[];
  blocks: (BlockActs | null)[]; // saved activations, null for checkpointed blocks (every block of an inference model)
  scratch: BlockActs | null; // recompute space for checkpointed blocks; an inference model's one block scratch
  lnf: Tensor; // (B, T, C)
  meanf: Tensor;
  rstdf: Tensor;
  losses: Tensor; // (B*T) f32
  grad: GradBuffers | null; // null for an inference model
  all: Tensor[];
}

/** What one cached forward step works in: Buffers for (B, Tq) rows without the loss and gradient parts. */
interface StepBuffers {
  B: number;
  T: number;
  ids: Tensor; // (B*Tq) i32
  x: [Tensor, Tensor]; // (B, Tq, C) residual stream, alternating
  scratch: BlockActs;
  lnf: Tensor; // (B, Tq, C)
  meanf: Tensor;
  rstdf: Tensor;
  all: Tensor[];
}

export class MptModel {
  readonly config: MptConfig;
  readonly precision: Precision;
  readonly checkpointEvery: number;
  /** 'cpu' or 'cuda:N'. */
  readonly device: DeviceSpec;
  /** Where the weights and gradients live instead of the model's own arenas (sharding 'full'), or null. */
  readonly store: ParameterStore | null;
  readonly #params: Arena | null;
  readonly #grads: Arena | null;
  readonly #computeParams: Arena | null;
  readonly slopes: Tensor;
  /** Built for inference only (option inference): no gradients, forwardBackward refused. */
  readonly inference: boolean;
  #buf: Buffers | null = null;
  #head: { rows: number; hidden: Tensor; logits: Tensor } | null = null;
  #steps = new Map<number, StepBuffers>(); // cached-forward buffers by rows (B * Tq): decode's kept, one other
  #headOut: Tensor | null = null; // (rows, vocabSize) f32 logits of the cached steps' LM head, kept for the next
  #disposed = false;

  constructor(config: MptConfig, options: MptModelOptions = {}) {
    validateConfig(config);
    const precision = options.precision ?? 'fp32';
    if (precision !== 'fp32' && precision !== 'bf16') throw invalidArg(`MptModel: precision must be 'fp32' or 'bf16', got '${precision}'`);
    const ck = options.checkpointEvery ?? 0;
    if (!Number.isInteger(ck) || ck < 0) throw invalidArg(`MptModel: checkpointEvery must be a non-negative integer, got ${ck}`);
    this.config = { ...config };
    this.precision = precision;
    this.checkpointEvery = ck;
    this.device = checkDevice(options.device ?? 'cpu', 'MptModel');
    this.store = options.store ?? null;
    const inference = options.inference ?? false;
    if (typeof inference !== 'boolean') throw invalidArg(`MptModel: inference must be a boolean, got ${inference}`);
    this.inference = inference;
    if (inference && (this.store || options.masterWeights === false)) {
      throw invalidArg('MptModel: an inference model holds its own master weights (no store, masterWeights true): load the checkpoint into it');
    }
    if (inference && ck !== 0) throw invalidArg(`MptModel: checkpointEvery is for training; an inference model keeps no activations to checkpoint (got ${ck})`);
    if (this.store) {
      const st = this.store as Partial<ParameterStore>;
      if (typeof st.weight !== 'function' || typeof st.grad !== 'function' || typeof st.enter !== 'function' || typeof st.leave !== 'function') {
        throw invalidArg('MptModel: option store must be a ParameterStore (weight, grad, enter, leave)');
      }
      [this.#params, this.#grads, this.#computeParams] = [null, null, null];
    } else if (options.masterWeights === false) {
      if (precision !== 'bf16') throw invalidArg("MptModel: masterWeights false needs precision 'bf16' (an fp32 model computes with its master weights)");
      this.#params = null;
      this.#computeParams = new Arena('bf16', parameterLayout(config), this.device);
      this.#grads = this.#computeParams.like('f32');
    } else {
      this.#params = new Arena('f32', parameterLayout(config), this.device);
      this.#grads = inference ? null : this.#params.like('f32');
      this.#computeParams = precision === 'bf16' ? this.#params.like('bf16') : null;
    }
    this.slopes = Tensor.from(alibiSlopes(config.nHeads, config.alibiBiasMax), [config.nHeads], 'f32', this.device);
    if (this.#params) this.initialize(options.seed ?? 0);
  }

  /** Whether the model holds its f32 master weights (params): not under a store, nor with masterWeights false. */
  get hasMasterWeights(): boolean {
    return this.#params !== null;
  }

  /** Bytes of the model's own parameter arenas: weights (master and bf16 copy) and gradients. */
  get arenaBytes(): { weights: number; gradients: number } {
    const b = (a: Arena | null) => a?.buffer.byteLength ?? 0;
    return { weights: b(this.#params) + b(this.#computeParams), gradients: b(this.#grads) };
  }

  /** f32 master weights under MptForCausalLM names. */
  get params(): Arena {
    if (!this.#params) throw storeHolds('params', this.store ? 'full' : 'optimizer');
    return this.#params;
  }

  /** f32 parameter gradients, same layout; backward accumulates into it. */
  get grads(): Arena {
    if (this.inference) throw invalidArg('MptModel.grads: an inference model (option inference) has no gradients');
    if (!this.#grads) throw storeHolds('grads');
    return this.#grads;
  }

  /** bf16 compute copy of the weights (bf16 precision only). */
  get computeParams(): Arena | null {
    if (this.store) throw storeHolds('computeParams');
    return this.#computeParams;
  }

  get actDType(): DType {
    return this.precision === 'bf16' ? 'bf16' : 'f32';
  }

  get parameterCount(): number {
    return parameterCount(this.config);
  }

  /**
   * MPT's default init (llm-foundry `kaiming_normal_`, fan_in, ReLU gain): every weight matrix and the
   * embedding ~ N(0, 2 / fan_in); the residual output projections (attn.out_proj, ffn.down_proj) are then
   * divided by sqrt(2 * nLayers); LayerNorm weights are 1. The normals are drawn in arena order from one
   * seededNormal(seed) stream, so a seed defines the weights.
   */
  initialize(seed: number): void {
    initializeMptWeightsFromSeed(this.params, this.config.nLayers, seed);
    this.syncComputeParams();
  }

  /**
   * MPT's init (see initialize) with the normals of `fillNormal`, called once per weight matrix in arena
   * order to fill `out` with N(0, std^2) values.
   */
  protected initializeWith(fillNormal: (out: Float32Array, std: number) => void): void {
    initializeMptWeights(this.params, this.config.nLayers, fillNormal);
    this.syncComputeParams();
  }

  /** Refreshes the bf16 compute copy from the f32 master weights (after loading or initialising). */
  syncComputeParams(): void {
    if (this.computeParams) ops.cast(this.computeParams.buffer, this.params.buffer);
  }

  /** The weight a forward op reads: the bf16 copy under autocast, else the master (or the store's). */
  weight(name: string): Tensor {
    if (this.store) return this.store.weight(name);
    return (this.#computeParams ?? this.#params!).get(name);
  }

  /** The f32 gradient the backward accumulates `name` into. */
  #grad(name: string): Tensor {
    return this.store ? this.store.grad(name) : this.#grads!.get(name);
  }

  /** Unit `u` of the store (0 embedding, 1 + l block l, nLayers + 1 final LayerNorm) before its ops; nothing without one. */
  async #enter(u: number, phase: 'forward' | 'backward'): Promise<void> {
    if (this.store) await this.store.enter(u, phase);
  }

  async #leave(u: number, phase: 'forward' | 'backward'): Promise<void> {
    if (this.store) await this.store.leave(u, phase);
  }

  #isCheckpointed(layer: number): boolean {
    return this.checkpointEvery > 0 && layer % this.checkpointEvery === 0;
  }

  #blockActs(B: number, T: number, all: Tensor[]): BlockActs {
    const { dModel: C, nHeads: H } = this.config;
    const F = this.config.expansionRatio * C;
    const dt = this.actDType;
    const mk = tensorMaker(this.device, all);
    return {
      ln1: mk(dt, [B, T, C]),
      mean1: mk('f32', [B * T]),
      rstd1: mk('f32', [B * T]),
      qkv: mk(dt, [B, T, 3 * C]),
      att: mk(dt, [B, T, C]),
      lse: mk('f32', [B, H, T]),
      h: mk(dt, [B, T, C]),
      ln2: mk(dt, [B, T, C]),
      mean2: mk('f32', [B * T]),
      rstd2: mk('f32', [B * T]),
      fc: mk(dt, [B, T, F]),
      act: mk(dt, [B, T, F]),
    };
  }

  #buffers(B: number, T: number): Buffers {
    if (this.#disposed) throw new DisposedError('MptModel: used after dispose()');
    if (this.#buf && this.#buf.B === B && this.#buf.T === T) return this.#buf;
    this.#freeBuffers();
    const { dModel: C, nLayers: L } = this.config;
    const F = this.config.expansionRatio * C;
    const dt = this.actDType;
    const all: Tensor[] = [];
    const mk = tensorMaker(this.device, all);
    const blocks: (BlockActs | null)[] = [];
    for (let l = 0; l < L; l++) blocks.push(this.inference || this.#isCheckpointed(l) ? null : this.#blockActs(B, T, all));
    let xs: Tensor[];
    if (this.inference) {
      const pair = [mk(dt, [B, T, C]), mk(dt, [B, T, C])];
      xs = Array.from({ length: L + 1 }, (_, l) => pair[l % 2]);
    } else {
      xs = Array.from({ length: L + 1 }, () => mk(dt, [B, T, C]));
    }
    this.#buf = {
      B,
      T,
      ids: mk('i32', [B * T]),
      targets: mk('i32', [B * T]),
      xs,
      blocks,
      scratch: blocks.some((b) => b === null) ? this.#blockActs(B, T, all) : null,
      lnf: mk(dt, [B, T, C]),
      meanf: mk('f32', [B * T]),
      rstdf: mk('f32', [B * T]),
      losses: mk('f32', [B * T]),
      grad: this.inference
        ? null
        : {
            dx: mk(dt, [B, T, C]),
            dtmp: mk(dt, [B, T, C]),
            dln: mk(dt, [B, T, C]),
            dqkv: mk(dt, [B, T, 3 * C]),
            dff: mk(dt, [B, T, F]),
          },
      all,
    };
    return this.#buf;
  }

  /** Bytes of activation memory held for batches of (B, T): what checkpointing saves shows here. */
  activationBytes(B: number, T: number): number {
    return this.#buffers(B, T).all.reduce((n, t) => n + t.byteLength, 0);
  }

  #freeBuffers(): void {
    for (const s of this.#steps.values()) for (const t of s.all) t.dispose();
    this.#steps.clear();
    this.#headOut?.dispose();
    this.#headOut = null;
    if (!this.#buf) return;
    for (const t of this.#buf.all) t.dispose();
    this.#buf = null;
  }

  #checkBatch(ids: Int32Array, targets: Int32Array | null, B: number, T: number): void {
    if (!Number.isInteger(B) || B < 1 || !Number.isInteger(T) || T < 1) throw invalidArg(`MptModel: batch ${B} x ${T} is not a positive size`);
    if (T > this.config.maxSeqLen) throw invalidArg(`MptModel: sequence length ${T} exceeds maxSeqLen ${this.config.maxSeqLen}`);
    if (ids.length !== B * T) throw invalidArg(`MptModel: ids has ${ids.length} tokens, expected B*T = ${B * T}`);
    if (targets && targets.length !== B * T) throw invalidArg(`MptModel: targets has ${targets.length} tokens, expected B*T = ${B * T}`);
  }

  // out null: a recompute, which needs the saved activations only, not the block's output. kv: attention over
  // block l's K/V cache (a cached forward step at position `past`) instead of over the batch alone.
  async #blockForward(l: number, x: Tensor, a: BlockActs, out: Tensor | null, kv?: { k: Tensor; v: Tensor; past: number }): Promise<void> {
    const p = `transformer.blocks.${l}`;
    const H = this.config.nHeads;
    const eps = this.config.layerNormEps;
    await ops.layerNormForwardAsync(a.ln1, a.mean1, a.rstd1, x, this.weight(`${p}.norm_1.weight`), eps);
    await ops.matmulForwardAsync(a.qkv, a.ln1, this.weight(`${p}.attn.Wqkv.weight`));
    if (kv) await ops.attentionCachedForwardAsync(a.att, kv.k, kv.v, a.qkv, this.slopes, H, kv.past);
    else await ops.attentionForwardAsync(a.att, a.lse, a.qkv, this.slopes, H);
    await ops.matmulForwardAsync(a.h, a.att, this.weight(`${p}.attn.out_proj.weight`));
    await ops.residualForwardAsync(a.h, a.h, x);
    await ops.layerNormForwardAsync(a.ln2, a.mean2, a.rstd2, a.h, this.weight(`${p}.norm_2.weight`), eps);
    await ops.matmulForwardAsync(a.fc, a.ln2, this.weight(`${p}.ffn.up_proj.weight`));
    await ops.geluForwardAsync(a.act, a.fc);
    if (!out) return;
    await ops.matmulForwardAsync(out, a.act, this.weight(`${p}.ffn.down_proj.weight`));
    await ops.residualForwardAsync(out, out, a.h);
  }

  // Leaves the embedding and the final LayerNorm entered (in `phase`): the loss reads both, the backward too.
  async #forwardTrunk(ids: Int32Array, B: number, T: number, phase: 'forward' | 'backward'): Promise<Buffers> {
    const buf = this.#buffers(B, T);
    buf.ids.copyFrom(ids);
    const L = this.config.nLayers;
    await this.#enter(0, phase);
    await ops.embeddingForwardAsync(buf.xs[0], buf.ids, this.weight('transformer.wte.weight'), this.config.realVocabSize);
    for (let l = 0; l < L; l++) {
      await this.#enter(1 + l, 'forward');
      await this.#blockForward(l, buf.xs[l], buf.blocks[l] ?? buf.scratch!, buf.xs[l + 1]);
      await this.#leave(1 + l, 'forward');
    }
    await this.#enter(L + 1, phase);
    await ops.layerNormForwardAsync(
      buf.lnf,
      buf.meanf,
      buf.rstdf,
      buf.xs[this.config.nLayers],
      this.weight('transformer.norm_f.weight'),
      this.config.layerNormEps,
    );
    return buf;
  }

  /**
   * Loss only (evaluation): returns the summed cross-entropy over non-ignored targets and their count.
   * ids and targets are (B*T) row-major.
   */
  async evaluate(ids: Int32Array, targets: Int32Array, B: number, T: number, ignoreIndex = -100): Promise<{ lossSum: number; tokens: number }> {
    this.#checkBatch(ids, targets, B, T);
    const buf = await this.#forwardTrunk(ids, B, T, 'forward');
    await this.#leave(this.config.nLayers + 1, 'forward');
    buf.targets.copyFrom(targets);
    const lossSum = await ops.crossEntropyForwardAsync(buf.losses, buf.lnf, this.weight('transformer.wte.weight'), buf.targets, this.config.realVocabSize, ignoreIndex);
    await this.#leave(0, 'forward');
    let tokens = 0;
    for (const t of targets) if (t !== ignoreIndex) tokens++;
    return { lossSum, tokens };
  }

  /**
   * One micro-batch forward and backward. Parameter gradients accumulate into `grads` scaled by gradScale
   * (1 / tokens of the whole accumulated batch makes the sum over micro-batches the big batch's mean).
   * Returns the summed loss and the count of non-ignored targets.
   */
  async forwardBackward(
    ids: Int32Array,
    targets: Int32Array,
    B: number,
    T: number,
    gradScale: number,
    ignoreIndex = -100,
  ): Promise<{ lossSum: number; tokens: number }> {
    if (this.inference) {
      throw invalidArg('MptModel.forwardBackward: this model was built for inference (option inference: true) and has no gradient buffers; build one without it to train');
    }
    this.#checkBatch(ids, targets, B, T);
    if (!Number.isFinite(gradScale)) throw invalidArg(`MptModel: gradScale must be finite, got ${gradScale}`);
    const buf = await this.#forwardTrunk(ids, B, T, 'backward');
    const gb = buf.grad!;
    buf.targets.copyFrom(targets);
    const cfg = this.config;
    const g = (name: string) => this.#grad(name);
    const wteName = 'transformer.wte.weight';
    const lossSum = await ops.crossEntropyForwardBackwardAsync(
      buf.losses,
      gb.dln,
      g(wteName),
      buf.lnf,
      this.weight(wteName),
      buf.targets,
      cfg.realVocabSize,
      ignoreIndex,
      gradScale,
    );
    await ops.layerNormBackwardAsync(gb.dx, g('transformer.norm_f.weight'), gb.dln, buf.xs[cfg.nLayers], this.weight('transformer.norm_f.weight'), buf.meanf, buf.rstdf);
    await this.#leave(cfg.nLayers + 1, 'backward');
    // The forward pass wrote the scratch last for the highest checkpointed block: it needs no recompute.
    const inScratch = buf.blocks.lastIndexOf(null);
    for (let l = cfg.nLayers - 1; l >= 0; l--) {
      await this.#enter(1 + l, 'backward');
      let a = buf.blocks[l];
      if (!a) {
        a = buf.scratch!;
        // recompute this block's activations from its saved input (its output xs[l+1] is already known)
        if (l !== inScratch) await this.#blockForward(l, buf.xs[l], a, null);
      }
      await this.#blockBackward(l, buf.xs[l], gb, a);
      await this.#leave(1 + l, 'backward');
    }
    await ops.embeddingBackwardAsync(g(wteName), buf.ids, gb.dx);
    await this.#leave(0, 'backward');
    let tokens = 0;
    for (const t of targets) if (t !== ignoreIndex) tokens++;
    return { lossSum, tokens };
  }

  // buf.dx holds d(block output) on entry and d(block input) on exit; x is the block's input.
  async #blockBackward(l: number, x: Tensor, buf: GradBuffers, a: BlockActs): Promise<void> {
    const p = `transformer.blocks.${l}`;
    const H = this.config.nHeads;
    const g = (name: string) => this.#grad(`${p}.${name}`);
    const w = (name: string) => this.weight(`${p}.${name}`);
    // MLP branch: out = h + down(gelu(up(ln2(h))))
    await ops.matmulBackwardAsync(buf.dff, g('ffn.down_proj.weight'), buf.dx, a.act, w('ffn.down_proj.weight'));
    await ops.geluBackwardAsync(buf.dff, a.fc, buf.dff);
    await ops.matmulBackwardAsync(buf.dln, g('ffn.up_proj.weight'), buf.dff, a.ln2, w('ffn.up_proj.weight'));
    await ops.layerNormBackwardAsync(buf.dtmp, g('norm_2.weight'), buf.dln, a.h, w('norm_2.weight'), a.mean2, a.rstd2);
    await ops.residualForwardAsync(buf.dx, buf.dx, buf.dtmp); // dh = dout + through the branch
    // attention branch: h = x + out_proj(attn(ln1(x)))
    await ops.matmulBackwardAsync(buf.dln, g('attn.out_proj.weight'), buf.dx, a.att, w('attn.out_proj.weight'));
    await ops.attentionBackwardAsync(buf.dqkv, buf.dln, a.qkv, a.att, a.lse, this.slopes, H);
    await ops.matmulBackwardAsync(buf.dln, g('attn.Wqkv.weight'), buf.dqkv, a.ln1, w('attn.Wqkv.weight'));
    await ops.layerNormBackwardAsync(buf.dtmp, g('norm_1.weight'), buf.dln, x, w('norm_1.weight'), a.mean1, a.rstd1);
    await ops.residualForwardAsync(buf.dx, buf.dx, buf.dtmp); // dx = dh + through the branch
  }

  /**
   * Logits of the last position of each sequence (for generation): (B, vocabSize) f32 with padded ids at
   * -Infinity.
   */
  async lastLogits(ids: Int32Array, B: number, T: number): Promise<Float32Array> {
    const last = new Int32Array(B);
    for (let b = 0; b < B; b++) last[b] = b * T + T - 1;
    return this.positionLogits(ids, B, T, last);
  }

  /**
   * Logits at chosen positions of a batch (for scoring and generation): `positions` are flat indices b*T + t
   * into the (B, T) batch, in any order and repeats allowed; returns (positions.length, vocabSize) f32 rows in
   * that order, padded ids at -Infinity. One forward of the trunk; the LM head runs only on those rows, with
   * the f32 master embedding (no bf16 rounding of the logits).
   */
  async positionLogits(ids: Int32Array, B: number, T: number, positions: Int32Array): Promise<Float32Array> {
    this.#checkBatch(ids, null, B, T);
    if (!this.#params) throw storeHolds('positionLogits', this.store ? 'full' : 'optimizer');
    if (!(positions instanceof Int32Array)) throw invalidArg('MptModel.positionLogits: positions must be an Int32Array of flat indices b*T + t');
    positions.forEach((p, i) => {
      if (!(p >= 0 && p < B * T)) throw invalidArg(`MptModel.positionLogits: positions[${i}] is ${p}, outside the batch's [0, ${B * T})`);
    });
    const n = positions.length;
    const C = this.config.dModel;
    const V = this.config.vocabSize;
    const out = new Float32Array(n * V);
    if (n === 0) return out;
    const buf = await this.#forwardTrunk(ids, B, T, 'forward');
    const all = buf.lnf.toFloat32();
    // The LM head in chunks of rows, so that a long list of positions does not hold one huge logits tensor. The
    // chunk's tensors are kept between calls: scoring calls this once per batch, and fresh 64 MB buffers cost
    // more in page faults than the product itself.
    const chunk = Math.max(1, Math.min(n, Math.floor((64 << 20) / (4 * V))));
    const head = this.#headBuffers(chunk);
    const wte = this.params.get('transformer.wte.weight');
    const rows = new Float32Array(head.rows * C);
    for (let start = 0; start < n; start += head.rows) {
      const m = Math.min(head.rows, n - start);
      for (let r = 0; r < m; r++) {
        const p = positions[start + r];
        rows.set(all.subarray(p * C, (p + 1) * C), r * C);
      }
      const hidden = head.hidden.view(0, [m, C]);
      const logits = head.logits.view(0, [m, V]);
      try {
        hidden.copyFrom(rows.subarray(0, m * C));
        await ops.matmulForwardAsync(logits, hidden, wte);
        logits.copyTo(out.subarray(start * V, (start + m) * V));
      } finally {
        hidden.dispose();
        logits.dispose();
      }
    }
    for (let r = 0; r < n; r++) out.fill(-Infinity, r * V + this.config.realVocabSize, (r + 1) * V);
    return out;
  }

  /** The LM head's buffers of positionLogits for chunks of at least `rows` rows: (rows, C) hidden states and (rows, V) logits. */
  #headBuffers(rows: number): { rows: number; hidden: Tensor; logits: Tensor } {
    if (this.#disposed) throw new DisposedError('MptModel: used after dispose()');
    if (this.#head && this.#head.rows >= rows) return this.#head;
    this.#freeHead();
    const { dModel: C, vocabSize: V } = this.config;
    this.#head = { rows, hidden: Tensor.zeros('f32', [rows, C], this.device), logits: Tensor.zeros('f32', [rows, V], this.device) };
    return this.#head;
  }

  #freeHead(): void {
    if (!this.#head) return;
    this.#head.hidden.dispose();
    this.#head.logits.dispose();
    this.#head = null;
  }

  /**
   * A key/value cache session over this model (generation): prefill, then append one or more tokens per
   * sequence at a time, each step running only the new tokens (see kv-cache.ts). Logits come from the LM head
   * on the weights the model computes with: the f32 master for fp32, the bf16 copy (f32 products) for bf16.
   * The cache is the caller's to dispose, before the model.
   */
  createCache(options: KvCacheOptions = {}): MptKvCache {
    if (this.#disposed) throw new DisposedError('MptModel: used after dispose()');
    if (this.store || !this.#params) throw storeHolds('createCache', this.store ? 'full' : 'optimizer');
    return new MptKvCache(this, options);
  }

  #stepBuffers(B: number, T: number): StepBuffers {
    if (this.#disposed) throw new DisposedError('MptModel: used after dispose()');
    const key = B * 1_000_003 + T;
    const have = this.#steps.get(key);
    if (have) return have;
    // Keep decode's buffers (T = 1) and at most one other size (the last prefill's).
    for (const [k, s] of this.#steps) {
      if (s.T === 1) continue;
      for (const t of s.all) t.dispose();
      this.#steps.delete(k);
    }
    const C = this.config.dModel;
    const dt = this.actDType;
    const all: Tensor[] = [];
    const mk = tensorMaker(this.device, all);
    const s: StepBuffers = {
      B,
      T,
      ids: mk('i32', [B * T]),
      x: [mk(dt, [B, T, C]), mk(dt, [B, T, C])],
      scratch: this.#blockActs(B, T, all),
      lnf: mk(dt, [B, T, C]),
      meanf: mk('f32', [B * T]),
      rstdf: mk('f32', [B * T]),
      all,
    };
    this.#steps.set(key, s);
    return s;
  }

  /**
   * One cached forward step (MptKvCache calls it): ids (B*Tq) at positions [past, past + Tq) of each sequence,
   * their keys and values appended to kv; returns (rows.length, vocabSize) f32 logits of rows b*Tq + t.
   */
  async forwardCached(kv: KvTensors, ids: Int32Array, B: number, Tq: number, past: number, rows: Int32Array): Promise<Float32Array> {
    if (this.store || !this.#params) throw storeHolds('forwardCached', this.store ? 'full' : 'optimizer');
    const L = this.config.nLayers;
    if (kv.k.length !== L || kv.v.length !== L) throw invalidArg(`MptModel.forwardCached: the cache has ${kv.k.length} blocks, the model ${L}`);
    const s = this.#stepBuffers(B, Tq);
    s.ids.copyFrom(ids);
    await ops.embeddingForwardAsync(s.x[0], s.ids, this.weight('transformer.wte.weight'), this.config.realVocabSize);
    for (let l = 0; l < L; l++) {
      await this.#blockForward(l, s.x[l % 2], s.scratch, s.x[(l + 1) % 2], { k: kv.k[l], v: kv.v[l], past });
    }
    await ops.layerNormForwardAsync(s.lnf, s.meanf, s.rstdf, s.x[L % 2], this.weight('transformer.norm_f.weight'), this.config.layerNormEps);
    return this.#headLogits(s.lnf, rows);
  }

  // The LM head on rows of lnf (N, C): (rows.length, vocabSize) f32, padded ids at -Infinity. fp32: the master
  // embedding through matmulForward (as positionLogits); bf16: the bf16 copy with f32 products and output.
  async #headLogits(lnf: Tensor, rows: Int32Array): Promise<Float32Array> {
    const C = this.config.dModel;
    const V = this.config.vocabSize;
    const n = rows.length;
    const out = new Float32Array(n * V);
    if (n === 0) return out;
    const chunk = Math.max(1, Math.min(n, Math.floor((64 << 20) / (4 * V))));
    if (this.#headOut?.shape[0] !== chunk) {
      this.#headOut?.dispose();
      this.#headOut = Tensor.zeros('f32', [chunk, V], this.device);
    }
    const logits = this.#headOut;
    const gathered = chunk > 1 ? Tensor.zeros(lnf.dtype, [chunk, C], this.device) : null;
    try {
      for (let start = 0; start < n; start += chunk) {
        const m = Math.min(chunk, n - start);
        const views: Tensor[] = [];
        const view = (t: Tensor, at: number, shape: number[]) => {
          const v = t.view(at, shape);
          views.push(v);
          return v;
        };
        try {
          let inp = gathered;
          if (!inp) inp = view(lnf, rows[start] * C, [1, C]);
          else for (let r = 0; r < m; r++) ops.copy(view(inp, r * C, [C]), view(lnf, rows[start + r] * C, [C]));
          if (this.precision === 'bf16') await ops.gemmAsync(logits, inp, this.#computeParams!.get('transformer.wte.weight'), false, true, 1, 0);
          else await ops.matmulForwardAsync(logits, inp, this.#params!.get('transformer.wte.weight'));
        } finally {
          for (const v of views) v.dispose();
        }
        out.set(logits.toFloat32().subarray(0, m * V), start * V);
      }
    } finally {
      gathered?.dispose();
    }
    for (let r = 0; r < n; r++) out.fill(-Infinity, r * V + this.config.realVocabSize, (r + 1) * V);
    return out;
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#freeBuffers();
    this.#freeHead();
    this.#params?.dispose();
    this.#grads?.dispose();
    this.#computeParams?.dispose();
    this.slopes.dispose();
  }
}

/**
 * MPT's init (see MptModel.initialize) of an f32 arena of parameterLayout's layout, with the normals of
 * `fillNormal`, called once per weight matrix in arena order: every weight matrix and the embedding ~
 * N(0, 2 / fan_in), the residual output projections then divided by sqrt(2 * nLayers), LayerNorm weights 1.
 */
export function initializeMptWeights(params: Arena, nLayers: number, fillNormal: (out: Float32Array, std: number) => void): void {
  for (const e of params.entries) {
    const t = params.get(e.name);
    if (e.shape.length === 1) {
      t.fill(1);
      continue;
    }
    const fanIn = e.shape[1];
    let std = Math.sqrt(2 / fanIn);
    if (e.name.endsWith('attn.out_proj.weight') || e.name.endsWith('ffn.down_proj.weight')) std /= Math.sqrt(2 * nLayers);
    const data = new Float32Array(e.numel);
    fillNormal(data, std);
    t.copyFrom(data);
  }
}

/** MPT's init of an f32 arena of parameterLayout's layout from one seededNormal(seed) stream: the weights MptModel(seed) starts from. */
export function initializeMptWeightsFromSeed(params: Arena, nLayers: number, seed: number): void {
  const rand = seededNormal(seed);
  initializeMptWeights(params, nLayers, (out, std) => {
    for (let i = 0; i < out.length; i++) out[i] = rand() * std;
  });
}
