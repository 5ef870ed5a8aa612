/**
 * CRC-32 (IEEE) of a record payload. node:zlib has a native crc32 from Node 20.15 / 22;
 * older Node gets a small table implementation with the same results.
 */
import * as zlib from 'node:zlib';

const native = (zlib as unknown as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

let table: Uint32Array | null = null;
function makeTable(): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

/** Table fallback, exported so a test can check it agrees with the native one. */
export function crc32Table(buf: Uint8Array, start = 0, end = buf.length): number {
  const t = (table ??= makeTable());
  let c = 0xffffffff;
  // t has all 256 entries and i < end <= buf.length: the `?? 0`s never apply
  for (let i = start; i < end; i++) c = (t[(c ^ (buf[i] ?? 0)) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function crc32(buf: Uint8Array, start = 0, end = buf.length): number {
  if (native) return native(start === 0 && end === buf.length ? buf : buf.subarray(start, end)) >>> 0;
  return crc32Table(buf, start, end);
}
