/**
 * zlib engines kept and reset between small inputs: GzipEngine for producers, GunzipEngine for
 * consumers. `gzipSync` (and kafkajs's codec) make a new engine per call. An engine's deflate state is ~256 KiB, allocated and zeroed for every call and reported
 * to V8 as external memory until the engine is collected: for the 10 events of a gateway's
 * partition batch that was 42.0 vs 15.5 µs of CPU per batch, and at 6,000 calls/s the stack
 * gateway's external memory reached 260 MB and V8 ran a full collection every ~0.5 s to free it
 * (bench/results/2026-12-06-gzip-engine.md).
 *
 * Node has no public way to run an engine synchronously more than once (its own gzipSync closes
 * the engine after one input), so this drives the engine's handle as gzipSync does internally:
 * `_handle.writeSync` with Z_FINISH, the counts in `_writeState`, then `_handle.reset()`. Where
 * those are missing (another Node), or an input does not finish in one call, it falls back to
 * `gzipSync`: the same bytes either way (zlib's defaults, as kafkajs's codec).
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

export class GzipEngine {
  private engine: Internals | null = null;
  /** Room for the deflate of `maxInput` bytes: zlib's bound is the input plus ~0.03 % and 18 bytes of gzip framing. */
  private readonly out: Buffer;
  /** False once the engine's internals were found missing: gzipSync from then on. */
  private reusable = true;

  constructor(private readonly maxInput: number) {
    this.out = Buffer.allocUnsafe(maxInput + (maxInput >> 6) + 1024);
  }

  /** `b` gzipped; the same bytes as `gzipSync(b)`. */
  gzip(b: Buffer): Buffer {
    const e = b.length <= this.maxInput ? this.ready() : null;
    if (!e) return gzipSync(b);
    const handle = e._handle!;
    const state = e._writeState!;
    handle.writeSync(constants.Z_FINISH, b, 0, b.length, this.out, 0, this.out.length);
    // [0] output room left, [1] input left. An error destroys the engine (Node's error handler).
    const room = state[0]!;
    if (e.destroyed || state[1] !== 0 || room === 0) {
      this.drop();
      return gzipSync(b);
    }
    const z = Buffer.from(this.out.subarray(0, this.out.length - room)); // a copy: `out` is reused
    handle.reset();
    return z;
  }

  /** Whether inputs are deflated by the kept engine (false: gzipSync per input). */
  get reusing(): boolean {
    return this.ready() !== null;
  }

  private ready(): Internals | null {
    if (this.engine || !this.reusable) return this.engine;
    this.engine = keptEngine(createGzip);
    this.reusable = this.engine !== null;
    return this.engine;
  }

  private drop(): void {
    this.engine?.close();
    this.engine = null;
  }
}

/**
 * The inflating side, for consumers: one gunzip engine kept and reset between record batches,
 * inflating straight into the batch's output buffer, where zlib.unzip makes an engine (~40 KiB of
 * state) and a thread-pool trip per batch. A gateway's batches are ~10 events each: 34.1 vs 4.9 µs
 * of CPU per batch (bench/results/2026-12-06-gzip-engine.md).
 */
export class GunzipEngine {
  private engine: Internals | null = null;
  private reusable = true;

  /**
   * `b` (one or more gzip members) inflated into a new buffer of `size` bytes, or null when it
   * did not end there: output larger than `size`, input left over, or an error (the caller then
   * inflates it the usual way and gets zlib's answer or error).
   */
  gunzip(b: Buffer, size: number): Buffer | null {
    const e = this.ready();
    if (!e) return null;
    const out = Buffer.allocUnsafe(size);
    e._handle!.writeSync(constants.Z_FINISH, b, 0, b.length, out, 0, size);
    const state = e._writeState!;
    const room = state[0]!;
    // Output filling `out` exactly may still have more to come: not taken as the end.
    if (e.destroyed || state[1] !== 0 || room === 0) {
      this.drop();
      return null;
    }
    e._handle!.reset();
    return out.subarray(0, size - room);
  }

  private ready(): Internals | null {
    if (this.engine || !this.reusable) return this.engine;
    this.engine = keptEngine(createGunzip);
    this.reusable = this.engine !== null;
    return this.engine;
  }

  private drop(): void {
    this.engine?.close();
    this.engine = null;
  }
}
