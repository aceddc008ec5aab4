// tensor.ts: public wrappers over native memory. A Tensor owns (or views) native bytes; an Arena is one
// contiguous Tensor carved into named views, so parameters, gradients and optimizer moments can each be
// zeroed, clipped, reduced, updated and saved with one call over one range.
import { native, type DeviceSpec, type DType, type NativeTensor } from '../native';
import { DisposedError, fromNative, invalidArg } from './errors';

export type { DType, DeviceSpec } from '../native';

// Backstop only: a Tensor dropped without dispose() has its native memory freed when it is collected.
const finalizer = new FinalizationRegistry<NativeTensor>((h) => h.dispose());

/**
 * The most elements a tensor may have: the native core's limit (tensor.h kMaxTensorElements). Every dimension,
 * and the product of a shape's nonzero dimensions, must be at most this, so every element count, byte count
 * and offset computed from a shape is an exact integer here and in the addon.
 */
export const MAX_TENSOR_ELEMENTS = 2 ** 40;

function checkShape(shape: readonly number[], where: string): number[] {
  if (!Array.isArray(shape)) throw invalidArg(`${where}: shape must be an array, got ${typeof shape}`);
  let product = 1;
  shape.forEach((d, i) => {
    if (!Number.isSafeInteger(d) || d < 0) throw invalidArg(`${where}: shape[${i}] = ${d} is not a non-negative integer`);
    if (d > 0) product *= d;  // exact while it stays <= 2**53; checked at once
    if (d > MAX_TENSOR_ELEMENTS || product > MAX_TENSOR_ELEMENTS) {
      throw invalidArg(
        `${where}: shape [${shape.join(',')}] has more elements than pajama-train supports (${MAX_TENSOR_ELEMENTS}; ` +
          'every dimension and their product must be at most that)',
      );
    }
  });
  return [...shape];
}

/** `device` checked to be a device name ('cpu', 'cuda' or 'cuda:N'); whether that device exists is the addon's call. */
export function checkDevice(device: unknown, where: string): DeviceSpec {
  if (device === 'cpu' || device === 'cuda' || (typeof device === 'string' && /^cuda:[0-9]{1,4}$/.test(device))) {
    return device as DeviceSpec;
  }
  throw invalidArg(`${where}: device must be 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(device)}`);
}

/** The name a tensor reports for a device: 'cuda' is 'cuda:0'. */
export function normalDevice(device: DeviceSpec): DeviceSpec {
  return device === 'cuda' ? 'cuda:0' : device;
}

function checkDType(dtype: string, where: string): DType {
  if (dtype !== 'f32' && dtype !== 'bf16' && dtype !== 'i32') {
    throw invalidArg(`${where}: dtype must be 'f32', 'bf16' or 'i32', got ${JSON.stringify(dtype)}`);
  }
  return dtype;
}

/** Elements of a shape; exact for any shape a Tensor accepts (see MAX_TENSOR_ELEMENTS). */
export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export class Tensor {
  #handle: NativeTensor | null;
  #children: Set<Tensor> | null = null;  // live views, created with the first one
  #parent: Tensor | null;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly numel: number;
  /** Where the memory lives: 'cpu' or 'cuda:N'. */
  readonly device: string;

  private constructor(handle: NativeTensor, parent: Tensor | null) {
    this.#handle = handle;
    this.#parent = parent;
    this.dtype = handle.dtype;
    this.shape = Object.freeze([...handle.shape]);
    this.numel = handle.numel;
    this.device = handle.device;
    if (!parent) finalizer.register(this, handle, this);
  }

  /** Zero-filled tensor on `device` (the CPU unless given). */
  static zeros(dtype: DType, shape: readonly number[], device: DeviceSpec = 'cpu'): Tensor {
    checkDType(dtype, 'Tensor.zeros');
    const s = checkShape(shape, 'Tensor.zeros');
    const d = checkDevice(device, 'Tensor.zeros');
    try {
      return new Tensor(new (native().Tensor)(dtype, s, d), null);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /**
   * Tensor holding a copy of `data`. A Float32Array becomes f32 unless dtype 'bf16' is asked for (rounded to
   * nearest even); an Int32Array becomes i32; a Uint16Array is taken as raw bf16 bits.
   */
  static from(
    data: Float32Array | Int32Array | Uint16Array,
    shape?: readonly number[],
    dtype?: DType,
    device: DeviceSpec = 'cpu',
  ): Tensor {
    const dt: DType = dtype ?? (data instanceof Int32Array ? 'i32' : data instanceof Uint16Array ? 'bf16' : 'f32');
    const s = shape ? checkShape(shape, 'Tensor.from') : [data.length];
    if (numelOf(s) !== data.length) {
      throw invalidArg(`Tensor.from: shape [${s}] holds ${numelOf(s)} elements, data has ${data.length}`);
    }
    const t = Tensor.zeros(dt, s, device);
    try {
      t.copyFrom(data);
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  /** A copy of this tensor on `device` (always a new tensor, also on the same device). */
  to(device: DeviceSpec): Tensor {
    const t = Tensor.zeros(this.dtype, this.shape, device);
    try {
      native().copy(t.handle, this.handle);
    } catch (e) {
      t.dispose();
      throw fromNative(e);
    }
    return t;
  }

  /** The native handle, for the op layer. Throws DisposedError after dispose(). */
  get handle(): NativeTensor {
    if (!this.#handle || this.#handle.disposed) {
      throw new DisposedError(`${this.describe()} was disposed`);
    }
    return this.#handle;
  }

  get disposed(): boolean {
    return !this.#handle || this.#handle.disposed;
  }

  get byteLength(): number {
    return this.numel * (this.dtype === 'bf16' ? 2 : 4);
  }

  describe(): string {
    return `Tensor ${this.dtype}[${this.shape.join(',')}]${this.device === 'cpu' ? '' : ` on ${this.device}`}`;
  }

  /** A view of `shape` starting `elementOffset` elements in; disposed with (and before) this tensor. */
  view(elementOffset: number, shape: readonly number[]): Tensor {
    const s = checkShape(shape, 'Tensor.view');
    if (!Number.isSafeInteger(elementOffset) || elementOffset < 0) {
      throw invalidArg(`Tensor.view: offset ${elementOffset} is not a non-negative integer`);
    }
    if (elementOffset + numelOf(s) > this.numel) {
      throw invalidArg(
        `Tensor.view: elements [${elementOffset}, ${elementOffset + numelOf(s)}) exceed ${this.describe()} (${this.numel} elements)`,
      );
    }
    let h: NativeTensor;
    try {
      h = this.handle.view(elementOffset, s);
    } catch (e) {
      throw fromNative(e);
    }
    const child = new Tensor(h, this);
    (this.#children ??= new Set()).add(child);
    return child;
  }

  /** Same elements, another shape (a view of the whole tensor). */
  reshape(shape: readonly number[]): Tensor {
    const s = checkShape(shape, 'Tensor.reshape');
    if (numelOf(s) !== this.numel) {
      throw invalidArg(`Tensor.reshape: [${s}] holds ${numelOf(s)} elements, ${this.describe()} has ${this.numel}`);
    }
    return this.view(0, s);
  }

  copyFrom(data: Float32Array | Int32Array | Uint16Array): void {
    try {
      this.handle.copyFrom(data);
    } catch (e) {
      throw fromNative(e);
    }
  }

  copyTo(data: Float32Array | Int32Array | Uint16Array): void {
    try {
      this.handle.copyTo(data);
    } catch (e) {
      throw fromNative(e);
    }
  }

  fill(value: number): void {
    try {
      this.handle.fill(value);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** The values as f32 (bf16 widened exactly). */
  toFloat32(): Float32Array {
    if (this.dtype === 'i32') throw invalidArg(`Tensor.toFloat32: ${this.describe()} is i32; use toInt32()`);
    const out = new Float32Array(this.numel);
    this.copyTo(out);
    return out;
  }

  toInt32(): Int32Array {
    if (this.dtype !== 'i32') throw invalidArg(`Tensor.toInt32: ${this.describe()} is not i32`);
    const out = new Int32Array(this.numel);
    this.copyTo(out);
    return out;
  }

  /** Raw bf16 bits. */
  toBf16Bits(): Uint16Array {
    if (this.dtype !== 'bf16') throw invalidArg(`Tensor.toBf16Bits: ${this.describe()} is not bf16`);
    const out = new Uint16Array(this.numel);
    this.copyTo(out);
    return out;
  }

  /**
   * Frees the native memory (views first) and drops every reference this wrapper holds (its finalizer
   * registration, its views, its parent), all at once: a synchronous loop that disposes what it makes runs in
   * flat memory without waiting for the garbage collector. Idempotent.
   */
  dispose(): void {
    const handle = this.#handle;
    if (!handle) return;
    this.#handle = null;
    const children = this.#children;
    this.#children = null;
    if (children) for (const c of children) c.dispose();
    handle.dispose();
    if (this.#parent) {
      this.#parent.#children?.delete(this);
      this.#parent = null;
    } else {
      finalizer.unregister(this);
    }
  }
}

export interface ArenaEntry {
  readonly name: string;
  readonly shape: readonly number[];
  readonly offset: number; // in elements
  readonly numel: number;
}

/**
 * One contiguous native buffer carved into named views, in the order the layout lists them. Parameters,
 * their gradients and each optimizer moment are arenas with the same layout, so one op covers them all.
 */
export class Arena {
  readonly buffer: Tensor;
  readonly entries: readonly ArenaEntry[];
  #views = new Map<string, Tensor>();

  /**
   * An arena of `layout`, allocated zeroed on `device`; or, with `over`, carved out of that existing buffer
   * (of `dtype`, on its own device, exactly the layout's size; e.g. a view of a larger arena): nothing is
   * allocated and dispose() releases only that buffer handle.
   */
  constructor(dtype: DType, layout: Iterable<[string, readonly number[]]>, device: DeviceSpec = 'cpu', over?: Tensor) {
    const entries: ArenaEntry[] = [];
    let offset = 0;
    for (const [name, shape] of layout) {
      if (entries.some((e) => e.name === name)) throw invalidArg(`Arena: duplicate entry '${name}'`);
      const s = checkShape(shape, `Arena entry '${name}'`);
      entries.push({ name, shape: Object.freeze(s), offset, numel: numelOf(s) });
      offset += numelOf(s);
      if (offset > MAX_TENSOR_ELEMENTS) {
        throw invalidArg(`Arena: entries up to '${name}' hold ${offset} elements, more than pajama-train supports (${MAX_TENSOR_ELEMENTS})`);
      }
    }
    this.entries = Object.freeze(entries);
    if (over !== undefined) {
      if (!(over instanceof Tensor) || over.disposed || over.dtype !== dtype || over.numel !== offset) {
        throw invalidArg(`Arena: 'over' must be a live ${dtype} tensor of the layout's ${offset} elements, got ${over instanceof Tensor ? over.describe() : typeof over}`);
      }
    }
    this.buffer = over ?? Tensor.zeros(dtype, [offset], device);
    for (const e of entries) this.#views.set(e.name, this.buffer.view(e.offset, e.shape));
  }

  get dtype(): DType {
    return this.buffer.dtype;
  }

  get numel(): number {
    return this.buffer.numel;
  }

  /** 'cpu' or 'cuda:N'. */
  get device(): DeviceSpec {
    return this.buffer.device as DeviceSpec;
  }

  get disposed(): boolean {
    return this.buffer.disposed;
  }

  /** The named view; throws naming the arena's entries when `name` is not one of them. */
  get(name: string): Tensor {
    if (this.buffer.disposed) throw new DisposedError(`Arena: get('${name}') after dispose()`);
    const v = this.#views.get(name);
    if (!v) throw invalidArg(`Arena: no entry '${name}' (entries: ${[...this.#views.keys()].join(', ')})`);
    if (v.disposed) throw new DisposedError(`Arena entry '${name}' was disposed`);
    return v;
  }

  entry(name: string): ArenaEntry {
    const e = this.entries.find((x) => x.name === name);
    if (!e) throw invalidArg(`Arena: no entry '${name}'`);
    return e;
  }

  /** Another arena of the same layout (for gradients, moments, a bf16 compute copy), on the same device. */
  like(dtype: DType = this.dtype, device: DeviceSpec = this.device): Arena {
    return new Arena(dtype, this.entries.map((e) => [e.name, e.shape] as [string, readonly number[]]), device);
  }

  zero(): void {
    this.buffer.fill(0);
  }

  dispose(): void {
    this.buffer.dispose();
    this.#views.clear();
  }
}
