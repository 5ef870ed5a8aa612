/**
 * The client side of `/v1/events/corrections` for `meter events cancel|correct|corrections`: one
 * request each, answered with its status and JSON body. A 503 or a refused connection is retried
 * for a while: a correction is idempotent by its correctionId.
 */
import type { Correction } from './correction-store.js';
import { unreachableMessage } from './unreachable-message.js';

export interface ClientOptions {
  url: string;
  token: string;
  /** How long a 503 or a refused connection is retried (ms). */
  retryForMs?: number;
}

export interface ClientAnswer {
  status: number;
  body: Record<string, unknown> & { error?: string };
}

/** Could not reach the server at all. */
export class UnreachableError extends Error {
  override name = 'UnreachableError';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function request(o: ClientOptions, method: 'GET' | 'POST', path: string, body?: unknown): Promise<ClientAnswer> {
  const until = Date.now() + (o.retryForMs ?? 30_000);
  for (let wait = 200; ; wait = Math.min(wait * 2, 5000)) {
    let res: Response;
    try {
      res = await fetch(new URL(path, o.url), {
        method,
        headers: { authorization: `Bearer ${o.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(60_000),
      });
    } catch (e) {
      if (Date.now() + wait > until) throw new UnreachableError(unreachableMessage(o.url, e));
      await sleep(wait);
      continue;
    }
    const text = await res.text();
    if (res.status === 503 && Date.now() + wait <= until) {
      await sleep(wait);
      continue;
    }
    let parsed: ClientAnswer['body'];
    try {
      parsed = JSON.parse(text) as ClientAnswer['body'];
    } catch {
      parsed = { error: text.slice(0, 200) };
    }
    return { status: res.status, body: parsed };
  }
}

export function postCorrection(o: ClientOptions, body: Record<string, unknown>): Promise<ClientAnswer> {
  return request(o, 'POST', '/v1/events/corrections', body);
}

/** Up to `max` corrections, newest first, following the pages. */
export async function fetchCorrections(
  o: ClientOptions,
  q: { customer?: string; max: number },
): Promise<{ ok: true; corrections: Correction[]; more: boolean } | { ok: false; answer: ClientAnswer }> {
  const out: Correction[] = [];
  let cursor: string | null = null;
  do {
    const params = new URLSearchParams({ limit: String(Math.min(500, q.max - out.length)) });
    if (q.customer !== undefined) params.set('customer', q.customer);
    if (cursor) params.set('cursor', cursor);
    const a = await request(o, 'GET', `/v1/events/corrections?${params}`);
    if (a.status !== 200) return { ok: false, answer: a };
    out.push(...((a.body.corrections as Correction[] | undefined) ?? []));
    cursor = (a.body.nextCursor as string | null | undefined) ?? null;
  } while (cursor && out.length < q.max);
  return { ok: true, corrections: out, more: cursor !== null };
}
