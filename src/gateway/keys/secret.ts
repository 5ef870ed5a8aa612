/**
 * API key secrets: `mk_live_<32 base62>` (about 190 bits of randomness). Only the SHA-256 of a key
 * is stored (a fast hash is right here: the secret is long and random, not a password); the key is
 * shown once at creation. `prefix` (the first 16 characters) lets people tell keys apart and
 * revoke one without the secret.
 */
import * as crypto from 'node:crypto';
import { createHash, randomBytes } from 'node:crypto';

export const KEY_PREFIX = 'mk_live_';
const KEY_RE = /^mk_(?:live|test)_[0-9A-Za-z]{32}$/;
/** Characters of a key kept as its prefix (`mk_live_` and 8 more). */
export const PREFIX_LEN = KEY_PREFIX.length + 8;
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Unbiased base62 (rejection sampling: bytes >= 248 would favour the first characters). */
export function randomBase62(n: number): string {
  let out = '';
  while (out.length < n) {
    for (const b of randomBytes(n * 2)) {
      if (b < 248 && out.length < n) out += BASE62[b % 62];
    }
  }
  return out;
}

/** One-shot `crypto.hash` where Node has it (20.12+): no Hash object per call on the gateway's path. */
const oneShot = (crypto as { hash?: (alg: string, data: string, enc: 'hex') => string }).hash;

export function hashKey(key: string): string {
  return oneShot ? oneShot('sha256', key, 'hex') : createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Cheap shape check before any hashing or lookup. */
export function looksLikeKey(s: string): boolean {
  return KEY_RE.test(s);
}
