/**
 * Forwarding to the upstream: a keep-alive undici Pool, request and response bodies streamed
 * (never buffered), request bytes counted as they pass so an over-long chunked body is cut at
 * `maxBodyBytes`. Header rules live here so they can be read (and tested) in one place.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { Pool } from 'undici';
import type { KeyIdentity } from './keys.js';
import type { PresentedKey } from './auth.js';
import { DEFAULT_IDENTITY_FILTER, type IdentityFilter } from './identity-headers.js';

/** Hop-by-hop headers (RFC 9110 7.6.1) and ones undici sets itself. */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'host',
]);

export interface UpstreamContext {
  identity: KeyIdentity;
  presented: PresentedKey;
  api: string;
  eventId: string;
  clientIp: string;
  /** Which client headers are identity headers (default: the built-in families). */
  strip?: IdentityFilter;
}

/**
 * Headers go out as names and values in turn (`[name, value, name, value, ...]`), as undici and
 * `res.writeHead` both take them: no object built per call and no spread to merge two
 * (bench/results/2026-12-05-gateway-cpu-cut.md).
 */
export function upstreamHeaders(incoming: IncomingHttpHeaders, ctx: UpstreamContext): string[] {
  const out: string[] = [];
  const ident = ctx.strip ?? DEFAULT_IDENTITY_FILTER;
  for (const name in incoming) {
    const v = incoming[name];
    // Identity headers (x-meter-*, x-forwarded-*, x-tenant*...) are the gateway's to set: identity-headers.ts.
    if (v === undefined || HOP_BY_HOP.has(name) || ident.isIdentity(name)) continue;
    // The API key never leaves the gateway.
    if (name === ctx.presented.header || name === 'x-api-key') continue;
    if (typeof v === 'string') out.push(name, v);
    else for (const one of v) out.push(name, one); // one line each, as undici sends an array
  }
  // The peer's address only: a client's own X-Forwarded-For is dropped with its family, and no
  // X-Forwarded-Host, which would only repeat the client's Host. The names below are identity
  // headers, so none of them came from the client (no name twice).
  out.push(
    'x-forwarded-for',
    ctx.clientIp,
    'x-forwarded-proto',
    'http',
    'x-meter-customer',
    ctx.identity.customer,
    'x-meter-key-id',
    ctx.identity.keyId,
    'x-meter-plan',
    ctx.identity.plan,
    'x-meter-api',
    ctx.api,
    'x-meter-event-id',
    ctx.eventId,
  );
  return out;
}

/**
 * Common answer header names, lower-case, by length: the name of a raw header (undici's Buffer,
 * as the upstream spelt it) is matched against these byte by byte, case folded, without building
 * a string for it; other names are decoded and lower-cased.
 */
const KNOWN_NAMES = [
  'accept-ranges',
  'access-control-allow-origin',
  'age',
  'cache-control',
  'connection',
  'content-encoding',
  'content-length',
  'content-type',
  'date',
  'etag',
  'expires',
  'keep-alive',
  'last-modified',
  'location',
  'proxy-connection',
  'retry-after',
  'server',
  'set-cookie',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'vary',
  'x-request-id',
];
const NAMES_BY_LENGTH: string[][] = [];
for (const n of KNOWN_NAMES) (NAMES_BY_LENGTH[n.length] ??= []).push(n);

/** The lower-case name of a raw header name. */
export function headerName(b: Buffer): string {
  const candidates = NAMES_BY_LENGTH[b.length];
  if (candidates) {
    next: for (const name of candidates) {
      for (let i = 0; i < b.length; i++) {
        let c = b[i]!;
        if (c >= 65 && c <= 90) c |= 32;
        if (c !== name.charCodeAt(i)) continue next;
      }
      return name;
    }
  }
  return b.toString('latin1').toLowerCase();
}

/**
 * The upstream's answer headers for the client, from undici's raw list (`[name, value, ...]`
 * Buffers, one pair per header line): hop-by-hop ones dropped, then `own` (the gateway's
 * RateLimit, quota and event-id headers), which replace an upstream header of the same name.
 * Names go out lower-case; a header sent on several lines stays on several lines.
 */
export function answerHeaders(raw: readonly Buffer[], own: Record<string, string> = {}): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = headerName(raw[i]!);
    if (HOP_BY_HOP.has(name) || Object.hasOwn(own, name)) continue;
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  for (const name in own) {
    const v = own[name];
    if (v !== undefined) out.push(name, v);
  }
  return out;
}

export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
}

/** Passes the request body through, counting bytes; errors once more than `max` went by. */
export class CountingBody extends Transform {
  bytes = 0;
  tooLarge = false;
  /** Set when the body was cut for arriving too slowly (fairness.ts): why. */
  slowReason: string | null = null;
  constructor(private readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.max) {
      this.tooLarge = true;
      cb(new BodyTooLargeError(`request body over ${this.max} bytes`));
      return;
    }
    cb(null, chunk);
  }
}

/** Whether the request carries a body (RFC 9112 6.3: Content-Length or Transfer-Encoding). */
export function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  if (cl !== undefined) return cl !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

export class Upstream {
  readonly origin: string;
  /** Path prefix of the upstream URL (`http://h:8080/api` -> `/api`), '' if none. */
  readonly basePath: string;
  readonly pool: Pool;

  constructor(url: string, opts: { connections?: number; headersTimeoutMs?: number; bodyTimeoutMs?: number } = {}) {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`upstream must be an http(s) URL, got ${url}`);
    this.origin = u.origin;
    this.basePath = u.pathname.replace(/\/+$/, '');
    this.pool = new Pool(this.origin, {
      connections: opts.connections ?? 256,
      keepAliveTimeout: 30_000,
      headersTimeout: opts.headersTimeoutMs ?? 60_000,
      bodyTimeout: opts.bodyTimeoutMs ?? 60_000,
    });
  }

  path(reqUrl: string): string {
    return this.basePath + reqUrl;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
