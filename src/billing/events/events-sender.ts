/**
 * The client side of `POST /v1/events` for `meter events send`: events in batches (at most
 * `batchSize` events and MAX_SEND_BYTES of JSON each, so no request is refused whole), the
 * per-event results tallied. A 503 (the usage log down) is retried with backoff: a resend is
 * billed once, since events are deduplicated by (source, id).
 */
import type { FileItem } from './events-file.js';
import { MAX_BATCH, MAX_BODY_BYTES } from './events-intake.js';
import type { EventResult } from './events-intake.js';
import { unreachableMessage } from './unreachable-message.js';

/** Room under the server's body bound for the array's brackets and commas. */
export const MAX_SEND_BYTES = MAX_BODY_BYTES - 64 * 1024;
/** Rejections kept with their reason; beyond, only counted. */
export const MAX_REASONS = 1000;

export interface SendOptions {
  url: string;
  token: string;
  batchSize?: number;
  /** How long a 503 or a refused connection is retried before giving up (ms). */
  retryForMs?: number;
  onBatch?: (r: SendReport) => void;
}

export interface SendReport {
  accepted: number;
  /** Accepted as a repeat of an earlier event of the same request (billed once). */
  duplicates: number;
  rejected: number;
  /** The first MAX_REASONS rejections: where in the file, and why. */
  reasons: { where: string; reason: string }[];
}

/** The server refused a request whole (not an event of it): status and its error. */
export class SendError extends Error {
  override name = 'SendError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function sendEvents(items: AsyncIterable<FileItem>, o: SendOptions): Promise<SendReport> {
  const batchSize = Math.min(o.batchSize ?? 500, MAX_BATCH);
  const report: SendReport = { accepted: 0, duplicates: 0, rejected: 0, reasons: [] };
  const reject = (where: string, reason: string) => {
    report.rejected++;
    if (report.reasons.length < MAX_REASONS) report.reasons.push({ where, reason });
  };
  let wheres: string[] = [];
  let parts: string[] = [];
  let bytes = 2;
  const flush = async () => {
    if (!parts.length) return;
    const results = await post(o, `[${parts.join(',')}]`);
    if (results.length !== wheres.length) throw new SendError(502, `the server answered ${results.length} results for ${wheres.length} events`);
    for (const r of results) {
      if (r.status === 'accepted') {
        report.accepted++;
        if (r.duplicate) report.duplicates++;
      } else reject(wheres[r.index] ?? `event ${r.index}`, r.reason);
    }
    wheres = [];
    parts = [];
    bytes = 2;
    o.onBatch?.(report);
  };
  for await (const item of items) {
    if ('bad' in item) {
      reject(item.where, item.bad);
      continue;
    }
    let json: string;
    try {
      json = JSON.stringify(item.event);
    } catch {
      reject(item.where, 'nested too deeply to send');
      continue;
    }
    const size = Buffer.byteLength(json) + 1;
    if (size > MAX_SEND_BYTES) {
      reject(item.where, `${size} bytes of JSON: larger than a request may be`);
      continue;
    }
    if (parts.length >= batchSize || bytes + size > MAX_SEND_BYTES) await flush();
    parts.push(json);
    wheres.push(item.where);
    bytes += size;
  }
  await flush();
  return report;
}

async function post(o: SendOptions, body: string): Promise<EventResult[]> {
  const until = Date.now() + (o.retryForMs ?? 30_000);
  for (let wait = 200; ; wait = Math.min(wait * 2, 5000)) {
    let res: Response;
    try {
      res = await fetch(new URL('/v1/events', o.url), {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${o.token}` },
        body,
        signal: AbortSignal.timeout(60_000),
      });
    } catch (e) {
      if (Date.now() + wait > until) throw new SendError(0, unreachableMessage(o.url, e));
      await sleep(wait);
      continue;
    }
    const text = await res.text();
    let answer: { results?: EventResult[]; error?: string } = {};
    try {
      answer = JSON.parse(text) as typeof answer;
    } catch {
      // not JSON: reported below by status
    }
    if (res.status === 202 && Array.isArray(answer.results)) return answer.results;
    if (res.status === 503 && Date.now() + wait <= until) {
      await sleep(wait);
      continue;
    }
    throw new SendError(res.status, `the billing API answered ${res.status}: ${answer.error ?? text.slice(0, 200)}`);
  }
}
