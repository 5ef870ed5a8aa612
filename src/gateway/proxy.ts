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
const HOP_BY_HOP = new Set([
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
 * Header names and values in turn (`[name, value, name, value, ...]`), as undici and
 * `res.writeHead` both take them: no object built per call and no spread to merge two
 * (bench/results/2026-12-05-gateway-cpu-cut.md).
 */
export type HeaderList = (string | string[])[];

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
 * The upstream's answer headers for the client, hop-by-hop ones dropped, then `own` (the
 * gateway's RateLimit, quota and event-id headers), which replace an upstream header of the
 * same name.
 */
export function clientHeaders(upstream: Record<string, string | string[] | undefined>, own: Record<string, string> = {}): HeaderList {
  const out: HeaderList = [];
  for (const name in upstream) {
    const v = upstream[name];
    if (v === undefined || HOP_BY_HOP.has(name) || Object.hasOwn(own, name)) continue;
    out.push(name, v);
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
