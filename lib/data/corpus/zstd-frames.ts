// zstd-frames.ts: decompressing a zstd stream (.jsonl.zst shards) with its frames checked.
//
// fzstd (the decompressor) does not check zstd's content checksums, and a flipped byte in compressed text often
// decodes to other text without an error. So decompressZstd follows the frame structure itself
// (ZstdFrameScanner, RFC 8878 section 3.1: frame headers, block headers and sizes, checksums, skippable frames,
// across chunk boundaries) and checks each frame's content size and XXH64 checksum (xxh64.ts). The check is
// made at the end of a frame, after its bytes were handed out. A frame that asks for a window (or, single-
// segment, a content size) over 128 MiB is refused before fzstd allocates it, and so is a compressed block whose
// sequence count cannot fit its size (fzstd would run it). An empty stream is truncated,
// as `zstd -d` says. Every failure is a ZstdFailure whose message says what and where.
import { Decompress } from 'fzstd';
import { Xxh64 } from './xxh64';

/** Thrown by decompressZstd and ZstdFrameScanner when the compressed data ends early or is not valid zstd. */
export class ZstdFailure extends Error {}

export interface ZstdReadOptions {
  /** Check each frame's content checksum (XXH64) where the frame has one. */
  verifyChecksums: boolean;
  /** Called with the length of every chunk of `input`, before it is decompressed. */
  onInput?: (bytes: number) => void;
}

/**
 * The decompressed bytes of a zstd stream (`input`, the compressed bytes in chunks), frame after frame, as
 * fzstd hands out its blocks. Each frame gets a fresh decompressor and is pushed with final = true at its end
 * (found by ZstdFrameScanner), so a frame is decoded completely before its content size and checksum are
 * checked. Throws a ZstdFailure, after the blocks decompressed before it, when the data is not zstd, ends
 * early or fails its checks; errors of `input` itself pass through.
 */
export async function* decompressZstd(input: AsyncIterable<Buffer>, options: ZstdReadOptions): AsyncGenerator<Buffer> {
  const { verifyChecksums, onInput } = options;
  const blocks: Uint8Array[] = [];
  const hash = new Xxh64();
  let frameBytes = 0; // decompressed bytes of the current frame
  const onData = (data: Uint8Array): void => {
    if (data.length === 0) return;
    blocks.push(data);
    frameBytes += data.length;
    if (verifyChecksums) hash.update(data);
  };
  const scanner = new ZstdFrameScanner();
  let decompressor: Decompress | undefined;
  let compressed = 0; // bytes pushed, or scanned up to a failure
  for await (const chunk of input) {
    onInput?.(chunk.length);
    let failure: string | undefined;
    let pos = 0;
    try {
      while (pos < chunk.length) {
        const frameEnd = scanner.scan(chunk, pos, chunk.length);
        const end = frameEnd < 0 ? chunk.length : frameEnd;
        decompressor ??= new Decompress(onData);
        decompressor.push(chunk.subarray(pos, end), frameEnd >= 0);
        compressed += end - pos;
        pos = end;
        if (frameEnd < 0) break;
        decompressor = undefined;
        if (!scanner.skippable) {
          if (scanner.contentSize >= 0 && scanner.contentSize !== frameBytes) {
            throw new ZstdFailure(`frame ${scanner.frames} decompressed to ${frameBytes} bytes, its header says ${scanner.contentSize}`);
          }
          if (verifyChecksums && scanner.hasChecksum && hash.digestLow32() !== scanner.checksum) {
            throw new ZstdFailure(`frame ${scanner.frames} fails its content checksum`);
          }
        }
        frameBytes = 0;
        hash.reset();
      }
    } catch (e) {
      compressed += chunk.length - pos;
      const why = e instanceof ZstdFailure ? e.message : (e as { code?: unknown }).code === 5 ? 'unexpected end of data' : (e as Error).message;
      failure = `corrupt zstd data: ${why} (in the first ${compressed} compressed bytes)`;
    }
    for (const b of blocks) yield Buffer.from(b.buffer, b.byteOffset, b.length);
    blocks.length = 0;
    if (failure !== undefined) throw new ZstdFailure(failure);
  }
  if (compressed === 0) throw new ZstdFailure('truncated zstd file: it is empty (0 bytes), not even a frame header');
  if (!scanner.atFrameStart) throw new ZstdFailure(`truncated zstd data: the file ends inside frame ${scanner.frames}, after ${compressed} bytes`);
}

/**
 * Follows the frame structure of a zstd stream (RFC 8878 section 3.1) without decompressing: frame headers,
 * block headers, block sizes, the literals and sequence-count headers of compressed blocks, and checksums,
 * across chunk boundaries. It finds where each frame ends, and
 * reads the frame's content size and checksum for the caller to check.
 */
class ZstdFrameScanner {
  /** Frames started so far, skippable ones included. */
  frames = 0;
  /** The current (or just finished) frame is a skippable frame. */
  skippable = false;
  hasChecksum = false;
  /** The frame header's content size; -1 when the header has none. */
  contentSize = -1;
  /** The frame's checksum, the low 32 bits of the XXH64 of its content, once its end was scanned. */
  checksum = 0;
  private state = ScanState.Magic;
  private readonly field = new Uint8Array(14); // the bytes of the header field being collected
  private fieldLength = 0;
  private need = 4; // bytes of the field, or of the block or skippable body left to skip
  private singleSegment = false;
  private dictionaryBytes = 0;
  private contentSizeBytes = 0;
  private lastBlock = false;
  private window = 0; // Window_Size (a single-segment frame: its content size)
  private blockLeft = 0; // bytes of the current compressed block not yet scanned
  private literalBytes = 0; // the block's regenerated literals (Regenerated_Size)

  /** Between frames: the end of the stream is allowed here. */
  get atFrameStart(): boolean {
    return this.state === ScanState.Magic && this.fieldLength === 0;
  }

  /** Scans chunk[start, end); returns the offset just past the frame that ends in it, or -1 if none does. */
  scan(chunk: Uint8Array, start: number, end: number): number {
    let i = start;
    for (;;) {
      if (this.state === ScanState.BlockBody || this.state === ScanState.SkippableBody || this.state === ScanState.LiteralsBody) {
        const k = Math.min(this.need, end - i);
        i += k;
        this.need -= k;
        if (this.need > 0) return -1;
        if (this.state === ScanState.SkippableBody) return this.frameDone(i);
        if (this.state === ScanState.LiteralsBody) {
          this.sequencesHeader();
          continue;
        }
        if (!this.lastBlock) this.expect(ScanState.BlockHeader, 3);
        else if (this.hasChecksum) this.expect(ScanState.Checksum, 4);
        else return this.frameDone(i);
        continue;
      }
      const k = Math.min(this.need - this.fieldLength, end - i);
      this.field.set(chunk.subarray(i, i + k), this.fieldLength);
      this.fieldLength += k;
      i += k;
      if (this.fieldLength < this.need) return -1;
      const f = this.field;
      switch (this.state) {
        case ScanState.Magic: {
          const magic = readU32(f, 0);
          this.frames++;
          if (magic === 0xfd2fb528) {
            this.skippable = false;
            this.expect(ScanState.FrameHeader, 1);
          } else if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
            this.skippable = true;
            this.expect(ScanState.SkippableSize, 4);
          } else throw new ZstdFailure(`frame ${this.frames} does not start with a zstd magic number (0x${magic.toString(16).padStart(8, '0')})`);
          break;
        }
        case ScanState.FrameHeader: {
          const descriptor = f[0];
          if (descriptor & 0x08) throw new ZstdFailure(`frame ${this.frames} sets the reserved bit of its header`);
          this.singleSegment = ((descriptor >> 5) & 1) === 1;
          this.hasChecksum = ((descriptor >> 2) & 1) === 1;
          this.dictionaryBytes = [0, 1, 2, 4][descriptor & 3];
          const sizeFlag = descriptor >> 6;
          this.contentSizeBytes = sizeFlag === 0 ? (this.singleSegment ? 1 : 0) : [0, 2, 4, 8][sizeFlag];
          const rest = (this.singleSegment ? 0 : 1) + this.dictionaryBytes + this.contentSizeBytes;
          this.contentSize = -1;
          if (rest > 0) this.expect(ScanState.FrameHeaderRest, rest);
          else this.expect(ScanState.BlockHeader, 3);
          break;
        }
        case ScanState.FrameHeaderRest: {
          const at = (this.singleSegment ? 0 : 1) + this.dictionaryBytes;
          const n = this.contentSizeBytes;
          if (n === 1) this.contentSize = f[at];
          else if (n === 2) this.contentSize = (f[at] | (f[at + 1] << 8)) + 256;
          else if (n === 4) this.contentSize = readU32(f, at);
          else if (n === 8) this.contentSize = readU32(f, at) + readU32(f, at + 4) * 2 ** 32;
          // Checked here, before fzstd sees the whole header (the scan of a chunk runs before its push).
          const windowLog = 10 + (f[0] >> 3);
          const window = this.singleSegment ? this.contentSize : 2 ** windowLog + (2 ** windowLog / 8) * (f[0] & 7);
          this.window = window;
          if (window > ZSTD_MAX_WINDOW_BYTES) {
            throw new ZstdFailure(
              `frame ${this.frames} needs a ${window}-byte ${this.singleSegment ? 'buffer (its content size)' : 'window'}, ` +
                `more than the ${ZSTD_MAX_WINDOW_BYTES} bytes (128 MiB) that zstd -d decodes without --memory`,
            );
          }
          this.expect(ScanState.BlockHeader, 3);
          break;
        }
        case ScanState.BlockHeader: {
          const header = f[0] | (f[1] << 8) | (f[2] << 16);
          this.lastBlock = (header & 1) === 1;
          const type = (header >> 1) & 3;
          const size = header >>> 3;
          if (type === 3) throw new ZstdFailure(`frame ${this.frames} has a block of the reserved type 3`);
          if (size > ZSTD_MAX_BLOCK_BYTES) throw new ZstdFailure(`frame ${this.frames} has a block of ${size} bytes, more than zstd allows`);
          if (type === 2 && size > 0) {
            this.blockLeft = size;
            this.expect(ScanState.LiteralsHeader, 1);
            break;
          }
          this.state = ScanState.BlockBody;
          this.need = type === 1 ? 1 : size; // an RLE block stores one byte
          this.fieldLength = 0;
          break;
        }
        case ScanState.LiteralsHeader: {
          // RFC 8878 3.1.1.3.1.1: the header's length follows from its first byte.
          const type = f[0] & 3;
          const format = (f[0] >> 2) & 3;
          const length = type < 2 ? [1, 2, 1, 3][format] : [3, 3, 4, 5][format];
          if (this.fieldLength < length) {
            if (length > this.blockLeft) throw new ZstdFailure(`frame ${this.frames} has a compressed block of ${this.blockLeft} bytes, too short for its literals header`);
            this.need = length;
            break;
          }
          let regenerated: number;
          let stored: number;
          if (type < 2) {
            regenerated = length === 1 ? f[0] >> 3 : length === 2 ? (f[0] >> 4) | (f[1] << 4) : (f[0] >> 4) | (f[1] << 4) | (f[2] << 12);
            stored = type === 0 ? regenerated : 1;
          } else if (length === 3) {
            regenerated = (f[0] >> 4) | ((f[1] & 63) << 4);
            stored = (f[1] >> 6) | (f[2] << 2);
          } else if (length === 4) {
            regenerated = (f[0] >> 4) | (f[1] << 4) | ((f[2] & 3) << 12);
            stored = (f[2] >> 2) | (f[3] << 6);
          } else {
            regenerated = (f[0] >> 4) | (f[1] << 4) | ((f[2] & 63) << 12);
            stored = (f[2] >> 6) | (f[3] << 2) | (f[4] << 10);
          }
          this.blockLeft -= length;
          if (stored > this.blockLeft) throw new ZstdFailure(`frame ${this.frames} has a compressed block whose literals (${stored} bytes) run past its end`);
          this.blockLeft -= stored;
          this.literalBytes = regenerated;
          this.state = ScanState.LiteralsBody;
          this.need = stored;
          this.fieldLength = 0;
          break;
        }
        case ScanState.SequencesHeader: {
          // RFC 8878 3.1.1.3.2.1: Number_of_Sequences in 1 to 3 bytes.
          const length = f[0] < 128 ? 1 : f[0] < 255 ? 2 : 3;
          if (this.fieldLength < length) {
            if (length > this.blockLeft) throw new ZstdFailure(`frame ${this.frames} has a compressed block that ends inside its sequence count`);
            this.need = length;
            break;
          }
          const sequences = length === 1 ? f[0] : length === 2 ? ((f[0] - 128) << 8) + f[1] : f[1] + (f[2] << 8) + 0x7f00;
          // Every sequence makes at least 3 bytes (the shortest match), on top of all the literals, and a block
          // makes at most Block_Maximum_Size. fzstd does not check this: it runs every sequence of a corrupt
          // count, with match lengths read from past the bitstream, writing out of range (ignored by typed
          // arrays) for tens of seconds on a 140-byte input (found by fuzzing).
          const limit = Math.min(ZSTD_MAX_BLOCK_BYTES, this.window);
          if (this.literalBytes + 3 * sequences > limit) {
            throw new ZstdFailure(
              `frame ${this.frames} has a block of ${sequences} sequences and ${this.literalBytes} literal bytes: ` +
                `at least ${this.literalBytes + 3 * sequences} bytes decompressed, more than its ${limit}-byte block limit`,
            );
          }
          this.state = ScanState.BlockBody;
          this.need = this.blockLeft - length;
          this.fieldLength = 0;
          break;
        }
        case ScanState.Checksum:
          this.checksum = readU32(f, 0);
          return this.frameDone(i);
        case ScanState.SkippableSize:
          this.state = ScanState.SkippableBody;
          this.need = readU32(f, 0);
          this.fieldLength = 0;
          break;
      }
    }
  }

  /** After a compressed block's literals: its sequence count, or the rest of the block when none is left. */
  private sequencesHeader(): void {
    if (this.blockLeft === 0) {
      this.state = ScanState.BlockBody;
      this.need = 0;
      this.fieldLength = 0;
    } else this.expect(ScanState.SequencesHeader, 1);
  }

  private expect(state: ScanState, bytes: number): void {
    this.state = state;
    this.need = bytes;
    this.fieldLength = 0;
  }

  private frameDone(at: number): number {
    this.expect(ScanState.Magic, 4);
    return at;
  }
}

const enum ScanState {
  Magic,
  FrameHeader,
  FrameHeaderRest,
  BlockHeader,
  BlockBody,
  LiteralsHeader,
  LiteralsBody,
  SequencesHeader,
  Checksum,
  SkippableSize,
  SkippableBody,
}

/** zstd's largest block (Block_Maximum_Size). */
const ZSTD_MAX_BLOCK_BYTES = 128 << 10;
/**
 * The largest window (for a single-segment frame, content size) a frame may ask for: fzstd allocates it up
 * front, so a 24-byte file claiming a 1.5 GiB window would cost 1.5 GiB. 128 MiB is what `zstd -d` decodes
 * without --memory or --long, and what every level of `zstd` up to --ultra -22 writes.
 */
const ZSTD_MAX_WINDOW_BYTES = 1 << 27;

/** The little-endian uint32 at b[at]. */
function readU32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}
