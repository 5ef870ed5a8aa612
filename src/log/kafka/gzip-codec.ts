/**
 * kafkajs's gzip codec made cheaper, process-wide: a faster decompress for meter's consumers
 * (ingest, live, replay) and a cheaper compress for its producers (the gateway, the events API).
 *
 * kafkajs inflates each record batch with `promisify(zlib.unzip)` and Node's default 16 KiB output
 * chunks: one trip between the thread pool and the main thread per 16 KiB, each with JavaScript
 * on the main thread, and the fetch waits for every trip in turn. Here the output chunk is the
 * batch's uncompressed size, read from the gzip trailer (RFC 1952 ISIZE) and bounded, so a batch
 * usually takes one trip: 0.34 vs 0.65 µs of CPU per gateway event, 0.08 vs 0.24 of it on the main
 * thread, 0.95 vs 1.69 µs of wall (bench/gzip-codec.ts, bench/results/2026-12-05-gzip-codec.txt).
 * A small batch (a gateway's, ~10 events) takes no trip at all: one kept engine inflates it on
 * the calling thread (SYNC_INFLATE_MAX).
 *
 * kafkajs deflates each partition's batch with `promisify(zlib.gzip)`. A gateway sends a batch per
 * partition every few milliseconds, ~10 events each at 8,000 calls/s, and such a small job costs
 * far more in the thread-pool trip than in deflate: here a batch up to SYNC_COMPRESS_MAX is
 * deflated on the calling thread instead (bench/results/2026-12-06-gzip-compress.txt), by one
 * zlib engine kept for the process (gzip-engine.ts). The bytes are zlib's either way, with
 * kafkajs's settings (zlib's defaults).
 */
import { constants, gzip, unzip } from 'node:zlib';
import { GunzipEngine, GzipEngine } from './gzip-engine.js';
import kafkajs from 'kafkajs';

/** Node's default output chunk, used when the input is not gzip (no trailer to read). */
const MIN_CHUNK = constants.Z_DEFAULT_CHUNK;
/**
 * The trailer is untrusted (a damaged batch may claim 4 GiB): a larger batch takes a trip per
 * this many bytes, as kafkajs's took one per 16 KiB.
 */
const MAX_CHUNK = 4 << 20;
/** Room past the claimed size, so the end of the stream is seen in the same trip. */
const SLACK = 64;

/** The inflated size `b` claims (gzip ISIZE, untrusted) plus SLACK; -1 when `b` is not gzip. */
function claimedSize(b: Buffer): number {
  // a gzip member is at least 18 bytes: 10 of header, 8 of trailer (CRC32, ISIZE)
  if (b.length < 18 || b[0] !== 0x1f || b[1] !== 0x8b) return -1;
  return b.readUInt32LE(b.length - 4) + SLACK;
}

/** Output chunk for inflating `b`: its gzip ISIZE (plus slack) within [MIN_CHUNK, MAX_CHUNK]. */
export function outputChunk(b: Buffer): number {
  const size = claimedSize(b);
  return size < 0 ? MIN_CHUNK : Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, size));
}

/**
 * Batches that claim (gzip ISIZE) to inflate to at most this many bytes are inflated on the
 * calling thread by one kept engine (gzip-engine.ts): a gateway's batch of ~10 events is ~2.2 KB,
 * and 256 KiB takes ~0.3 ms here.
 */
export const SYNC_INFLATE_MAX = 256 << 10;

const inflater = new GunzipEngine();

/**
 * The batch inflated: in place when it is gzip and small (SYNC_INFLATE_MAX), else (or when it
 * did not end where its trailer said) by zlib.unzip (gzip or zlib stream, as kafkajs's) with one
 * output chunk sized to the batch.
 */
export function decompress(b: Buffer): Promise<Buffer> {
  const size = claimedSize(b);
  if (size >= 0 && size <= SYNC_INFLATE_MAX) {
    const out = inflater.gunzip(b, size);
    if (out) return Promise.resolve(out);
  }
  return new Promise((resolve, reject) => unzip(b, { chunkSize: outputChunk(b) }, (e, out) => (e ? reject(e) : resolve(out))));
}

/**
 * Batches up to this many bytes are deflated on the calling thread: ~25-35 µs for 10 events (2.2 KB)
 * at most a few hundred µs here, under the event loop's other work per tick; larger ones (a
 * backlog sent after an outage: 500 events, ~110 KB) stay in the thread pool, as kafkajs's.
 */
export const SYNC_COMPRESS_MAX = 32 << 10;

const engine = new GzipEngine(SYNC_COMPRESS_MAX);

/** gzip as kafkajs's codec makes it (zlib's default settings): small batches in place, large ones in the pool. */
export function compress(b: Buffer): Promise<Buffer> {
  if (b.length <= SYNC_COMPRESS_MAX) {
    try {
      return Promise.resolve(engine.gzip(b));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return new Promise((resolve, reject) => gzip(b, (e, out) => (e ? reject(e) : resolve(out))));
}

interface Codec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(b: Buffer): Promise<Buffer>;
}

const meterCodec: Codec = { compress: (encoder) => compress(encoder.buffer), decompress };
const meterGzip = () => meterCodec;

/**
 * Make kafkajs (process-wide) deflate and inflate gzip batches with `compress` and `decompress`;
 * idempotent. It looks at the registry, not at a flag of its own, so a codec put back there
 * (a test's) is replaced again by the next client.
 */
export function installGzipCodec(): void {
  // CompressionCodecs is not a named export Node finds in kafkajs's CommonJS
  const codecs = kafkajs.CompressionCodecs as Record<number, () => Codec>;
  const current = codecs[kafkajs.CompressionTypes.GZIP];
  if (!current || current === meterGzip) return;
  codecs[kafkajs.CompressionTypes.GZIP] = meterGzip;
}
