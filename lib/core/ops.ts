// ops.ts: the native ops over public Tensors. Each op exists in two forms with the same arguments:
// `ops.name(...)` runs at once (tests, tiny work) and `ops.nameAsync(...)` runs on the native worker thread
// and returns a Promise, keeping the event loop free. Argument order and accumulation rules are those of
// native.ts; shape and dtype errors name the op and the offending shapes. Every op runs on the device its
// tensors are on, and all must be on one (an argument error otherwise), except `copy`, which moves data between
// devices. On a GPU an Async op settles once its work is queued; the ones that return numbers wait for it.
import { native, type NativeOpSignatures, type NativeTensor } from '../native';
import { fromNative, invalidArg } from './errors';
import { Tensor } from './tensor';

type Wrap<A> = { [I in keyof A]: A[I] extends NativeTensor ? Tensor : A[I] extends NativeTensor | null ? Tensor | null : A[I] };
type Ret<K extends keyof NativeOpSignatures> = NativeOpSignatures[K] extends [unknown[], infer R] ? R : void;

export type Ops = {
  [K in keyof NativeOpSignatures]: (...args: Wrap<NativeOpSignatures[K][0]>) => Ret<K>;
} & {
  [K in keyof NativeOpSignatures as `${K & string}Async`]: (
    ...args: Wrap<NativeOpSignatures[K][0]>
  ) => Promise<Ret<K>>;
};

/** Every op of the contract; a build missing one fails loudly at load (see test/native.test.ts). */
export const OP_NAMES = [
  'geluForward',
  'geluBackward',
  'embeddingForward',
  'embeddingBackward',
  'layerNormForward',
  'layerNormBackward',
  'matmulForward',
  'matmulBackward',
  'gemm',
  'residualForward',
  'attentionForward',
  'attentionBackward',
  'attentionCachedForward',
  'crossEntropyForward',
  'crossEntropyForwardBackward',
  'adamwUpdate',
  'sumSquares',
  'scaleInPlace',
  'cast',
  'copy',
  'minhashSignatures',
  'sortKeyIds',
] as const satisfies readonly (keyof NativeOpSignatures)[];

function unwrap(op: string, args: unknown[]): unknown[] {
  return args.map((a, i) => {
    if (a instanceof Tensor) return a.handle;
    if (a && typeof a === 'object' && 'copyFrom' in a && !(ArrayBuffer.isView(a))) {
      throw invalidArg(`${op}: argument #${i} is a raw native handle; pass a Tensor`);
    }
    return a;
  });
}

function makeOps(): Ops {
  const out: Record<string, unknown> = {};
  for (const name of OP_NAMES) {
    out[name] = (...args: unknown[]) => {
      const fn = (native() as unknown as Record<string, (...a: unknown[]) => unknown>)[name];
      if (typeof fn !== 'function') throw new Error(`pajama-train: this build of the addon has no op '${name}'`);
      try {
        return fn(...unwrap(name, args));
      } catch (e) {
        throw fromNative(e);
      }
    };
    const asyncName = `${name}Async`;
    out[asyncName] = async (...args: unknown[]) => {
      const fn = (native() as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[asyncName];
      if (typeof fn !== 'function') throw new Error(`pajama-train: this build of the addon has no op '${asyncName}'`);
      try {
        return await fn(...unwrap(asyncName, args));
      } catch (e) {
        throw fromNative(e);
      }
    };
  }
  return out as Ops;
}

export const ops: Ops = makeOps();
