// safetensors.ts: the Hugging Face safetensors format, streamed both ways so a 7B model (28 GB in f32) never
// sits in one JavaScript buffer. This file is the one import for it; the code is in three files:
//  - safetensors-format.ts: the layout of a file, the dtypes, SafetensorsError (code ERR_PAJAMA_SAFETENSORS,
//    naming the file and the tensor) and the validation of a header from its bytes;
//  - safetensors-read.ts: headers, and arenas filled from one file or the shards of one model, everything
//    validated before any byte is copied, so a rejected file leaves the arena as it was;
//  - safetensors-write.ts: atomic writes of any tensors, streamed piece by piece, and of whole arenas.
// Conversions: F32 or BF16 files with f32 or bf16 arenas (BF16 -> f32 exact, F32 -> bf16 rounded to nearest
// even, as the native cast does), I32 with i32 arenas. The host must be little-endian (every platform Node.js
// ships for is).
export {
  SAFETENSORS_DTYPE_SIZES,
  MAX_HEADER_BYTES,
  SafetensorsError,
  type SafetensorsDType,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
} from './safetensors-format';
export {
  readSafetensorsHeader,
  loadArenasSafetensors,
  loadArenaSafetensors,
  type ArenaTarget,
  type ArenaLoadOptions,
  type ArenaLoadResult,
} from './safetensors-read';
export { writeSafetensors, arenaTensorsToWrite, saveArenaSafetensors, type TensorToWrite, type ArenaWriteOptions } from './safetensors-write';
