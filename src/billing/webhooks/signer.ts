/**
 * Webhook signatures, the way Stripe signs: header `Meter-Signature: t=<unix seconds>,v1=<hex
 * HMAC-SHA256 of "<t>.<body>" keyed with the endpoint's secret>`. The timestamp is signed with
 * the body, so a receiver that refuses old timestamps also refuses replays.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'meter-signature';
/** How old a signature a receiver should accept by default (Stripe's default too). */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/** A new endpoint secret: `whsec_` + 32 random bytes, base64url. */
export function newSecret(): string {
  return 'whsec_' + randomBytes(32).toString('base64url');
}

export function signature(secret: string, unixSeconds: number, body: string): string {
  return createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
}

/** The header value for a body sent at `unixSeconds`. */
export function signatureHeader(secret: string, unixSeconds: number, body: string): string {
  return `t=${unixSeconds},v1=${signature(secret, unixSeconds, body)}`;
}

export type Verdict = { ok: true; timestamp: number } | { ok: false; reason: string };

/**
 * What a receiver does (docs/webhooks.md shows the same in a few lines): parse the header, check
 * the timestamp is within `toleranceSeconds` of now, and compare any v1 in constant time.
 */
export function verifySignature(
  header: string | undefined,
  body: string,
  secret: string,
  nowSeconds: number,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
): Verdict {
  if (!header || header.length > 2048) return { ok: false, reason: 'no signature header' };
  let t: number | null = null;
  const v1: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (k === 't' && /^\d{1,12}$/.test(v)) t = Number(v);
    else if (k === 'v1' && /^[0-9a-f]{64}$/.test(v)) v1.push(v);
  }
  if (t === null) return { ok: false, reason: 'no timestamp in the signature header' };
  if (!v1.length) return { ok: false, reason: 'no v1 signature in the header' };
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return { ok: false, reason: `timestamp ${t} is more than ${toleranceSeconds} s from now` };
  const want = Buffer.from(signature(secret, t, body), 'hex');
  if (!v1.some((s) => timingSafeEqual(Buffer.from(s, 'hex'), want))) return { ok: false, reason: 'signature does not match' };
  return { ok: true, timestamp: t };
}
