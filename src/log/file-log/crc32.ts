/**
 * CRC-32 (IEEE) of a record payload, by node:zlib's native crc32 (every Node the README
 * promises has it: 20.15 and 22.2 added it).
 */
import { crc32 as zlibCrc32 } from 'node:zlib';

export function crc32(buf: Uint8Array, start = 0, end = buf.length): number {
  return zlibCrc32(start === 0 && end === buf.length ? buf : buf.subarray(start, end)) >>> 0;
}
