/**
 * One webhook POST, bounded: a total timeout (connect, send and answer), at most
 * MAX_RESPONSE_BYTES of the answer read (the rest is dropped with the connection), redirects
 * never followed (a 3xx is a failed attempt: the endpoint's URL should be fixed), no connection
 * kept alive. Never throws: the outcome says what happened.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AttemptOutcome } from './store.js';

export const MAX_RESPONSE_BYTES = 4096;
export const DEFAULT_TIMEOUT_MS = 10_000;

export interface PostResult extends AttemptOutcome {
  /** The answer's first bytes (at most MAX_RESPONSE_BYTES), for the delivery log. */
  responseStart: string;
}

export function postWebhook(url: string, body: string, headers: Record<string, string>, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<PostResult> {
  const started = performance.now();
  return new Promise<PostResult>((resolve) => {
    let done = false;
    const finish = (status: number | null, error: string | null, responseStart = '') => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ status, error, responseStart, durationMs: performance.now() - started });
    };
    const u = new URL(url);
    const send = u.protocol === 'https:' ? httpsRequest : u.protocol === 'http:' ? httpRequest : null;
    if (!send) {
      resolve({ status: null, error: `not an http(s) URL: ${u.protocol}`, responseStart: '', durationMs: 0 });
      return;
    }
    const req = send(u, {
      method: 'POST',
      agent: false,
      headers: {
        ...headers,
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        connection: 'close',
        'user-agent': 'meter-webhooks/1',
      },
    });
    // Once the status line is in, a body that never ends does not undo the answer.
    let verdict: (() => void) | null = null;
    const timer = setTimeout(() => (verdict ? verdict() : finish(null, `no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => finish(null, `${(e as NodeJS.ErrnoException).code ?? 'error'}: ${e.message}`.slice(0, 300)));
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let size = 0;
      verdict = () => {
        const text = Buffer.concat(chunks).toString('utf8').slice(0, MAX_RESPONSE_BYTES);
        if (status >= 200 && status < 300) return finish(status, null, text);
        if (status >= 300 && status < 400)
          return finish(status, `redirect to ${String(res.headers.location ?? '?').slice(0, 200)} not followed: register the final URL`, text);
        finish(status, `answered ${status}`, text);
      };
      res.on('data', (c: Buffer) => {
        if (size < MAX_RESPONSE_BYTES) chunks.push(c.subarray(0, MAX_RESPONSE_BYTES - size));
        size += c.length;
        // Enough read to judge: stop reading a long (or endless) answer.
        if (size >= MAX_RESPONSE_BYTES) verdict?.();
      });
      res.on('end', () => verdict?.());
      res.on('error', () => verdict?.());
    });
    req.end(body);
  });
}
