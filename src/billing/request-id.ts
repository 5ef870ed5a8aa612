/**
 * Request ids of the billing API: 16 random hex digits, taken from a block of random bytes
 * drawn 512 ids at a time (one call into the system's random source per request was a few
 * percent of a kept answer's CPU).
 */
import { randomBytes } from 'node:crypto';

const BATCH = 512;
let pool = Buffer.alloc(0);
let at = 0;

export function newRequestId(): string {
  if (at + 8 > pool.length) {
    pool = randomBytes(8 * BATCH);
    at = 0;
  }
  const id = pool.toString('hex', at, at + 8);
  at += 8;
  return id;
}
