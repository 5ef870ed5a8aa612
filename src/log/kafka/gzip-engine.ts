/**
 * zlib engines kept and reset between small inputs: GzipEngine for producers, GunzipEngine for
 * consumers, where `gzipSync`, `zlib.unzip` and kafkajs's codec make a new engine per call. A
 * deflate engine's state is ~256 KiB, allocated and zeroed per call and counted by V8 as external
 * memory until the engine is collected: at 6,000 calls/s the stack gateway's V8 ran a full
 * collection every ~0.5 s for it (bench/results/2026-12-06-gzip-engine.md). Per event of a
 * gateway's 10-event batches: deflate 3.43 vs 4.31 µs of CPU (gzipSync), inflate 0.60 vs 7.82
 * (zlib.unzip, with its thread-pool trip; 2026-12-06-gunzip-engine.txt).
 *
 * Node has no public way to run an engine synchronously more than once (its own gzipSync closes
 * the engine after one input), so this drives the engine's handle as gzipSync does internally:
 * `_handle.writeSync` with Z_FINISH, the counts in `_writeState`, then `_handle.reset()`. Where
 * those are missing (another Node), or an input does not finish in one call, the callers fall
 * back to the one-engine-per-call way: the same bytes either way (zlib's defaults, as kafkajs's).
 */
import { constants, createGunzip, createGzip, gzipSync, type Gunzip, type Gzip } from 'node:zlib';

interface ZlibHandle {
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
  reset(): void;
}

type Internals = (Gzip | Gunzip) & { _handle?: ZlibHandle | null; _writeState?: Uint32Array };

/** A new engine whose handle can be driven synchronously, or null where this Node's internals differ. */
function keptEngine(make: () => Gzip | Gunzip): Internals | null {
  const e = make() as Internals;
  if (typeof e._handle?.writeSync !== 'function' || typeof e._handle.reset !== 'function' || !(e._writeState instanceof Uint32Array)) {
    e.close();
    return null;
  }
  // An error would also be emitted on the next tick; the callers handle it by falling back.
  e.on('error', () => {});
  return e;
}

/** One engine of a kind, kept for the process and reset after each input. */
class Kept {
  private engine: Internals | null = null;
  /** False once the engine's internals were found missing: never tried again. */
  private reusable = true;

  constructor(private readonly make: () => Gzip | Gunzip) {}

  /** Whether an engine can be kept on this Node. */
  get available(): boolean {
    return this.ready() !== null;
  }

  /**
   * The whole `input` through the engine into `out`, to the end of the stream (Z_FINISH): the
   * output's length, or -1 when it did not end there (output larger than `out`, input left over,
   * an error) or no engine can be kept. The engine is dropped after a failure.
   */
  finish(input: Buffer, out: Buffer): number {
    const e = this.ready();
    if (!e) return -1;
    e._handle!.writeSync(constants.Z_FINISH, input, 0, input.length, out, 0, out.length);
    // [0] output room left, [1] input left. An error destroys the engine (Node's error handler).
    // Output filling `out` exactly may still have more to come: not taken as the end.
    const state = e._writeState!;
    const room = state[0]!;
    if (e.destroyed || state[1] !== 0 || room === 0) {
      e.close();
      this.engine = null;
      return -1;
    }
    e._handle!.reset();
    return out.length - room;
  }

  private ready(): Internals | null {
    if (this.engine || !this.reusable) return this.engine;
    this.engine = keptEngine(this.make);
    this.reusable = this.engine !== null;
    return this.engine;
  }
}

/** The deflating side, for producers. */
export class GzipEngine {
  private readonly kept = new Kept(createGzip);
  /** Room for the deflate of `maxInput` bytes: zlib's bound is the input plus ~0.03 % and 18 bytes of gzip framing. */
  private readonly out: Buffer;

  constructor(private readonly maxInput: number) {
    this.out = Buffer.allocUnsafe(maxInput + (maxInput >> 6) + 1024);
  }

  /** `b` gzipped; the same bytes as `gzipSync(b)`. */
  gzip(b: Buffer): Buffer {
    const n = b.length <= this.maxInput ? this.kept.finish(b, this.out) : -1;
    // a copy: `out` is reused
    return n < 0 ? gzipSync(b) : Buffer.from(this.out.subarray(0, n));
  }

  /** Whether inputs are deflated by the kept engine (false: gzipSync per input). */
  get reusing(): boolean {
    return this.kept.available;
  }
}

/**
 * The inflating side, for consumers: one gunzip engine kept and reset between record batches,
 * inflating straight into the batch's output buffer, where zlib.unzip makes an engine (~40 KiB of
 * state) and a thread-pool trip per batch. A gateway's batches are ~10 events each: 0.60 vs 7.82 µs
 * of CPU per event (bench/results/2026-12-06-gunzip-engine.txt).
 */
export class GunzipEngine {
  private readonly kept = new Kept(createGunzip);

  /**
   * `b` (one or more gzip members) inflated into a new buffer of `size` bytes, or null when it
   * did not end there: output larger than `size`, input left over, or an error (the caller then
   * inflates it the usual way and gets zlib's answer or error).
   */
  gunzip(b: Buffer, size: number): Buffer | null {
    if (!this.kept.available) return null;
    const out = Buffer.allocUnsafe(size);
    const n = this.kept.finish(b, out);
    return n < 0 ? null : out.subarray(0, n);
  }
}
