/**
 * Gateway baseline "metering off": the same forwarding the gateway does (node:http server, a
 * keep-alive undici Pool of 256 connections, `pool.dispatch` with raw handler callbacks and the
 * answer's chunks written to the response, as src/gateway/relay.ts) with no key check, no rate
 * limit and no event. The gateway has no switch to turn metering off, so this stands in. Until
 * 2026-12-05 22:45 it used `pool.request` + pipe, ~15 µs more per call than the gateway's own
 * forwarding (bench/gateway-http-paths.ts), which flattered meter's ratio.
 *
 * It does what every reverse proxy does with a request (nginx's `proxy_pass` too): the client's
 * headers go on, minus hop-by-hop ones, with X-Forwarded-For, and a body is streamed. Until
 * 2026-12-06 it sent the upstream only X-Forwarded-For and dropped the body, and the bench's
 * clients sent it no API key while meter's got one: meter alone parsed and forwarded the
 * client's headers (bench/results/2026-12-06-gateway-baseline-headers.txt). CLIENT_HEADERS is
 * the request every side of a gateway bench gets, a key of meter's shape for the ones without keys.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool, type Dispatcher } from 'undici';
import { HOP_BY_HOP, answerHeaders } from '../src/gateway/proxy.js';

/** The client's request headers for a side that has no keys of its own: the shape of meter's (src/gateway/keys/store.ts). */
export const CLIENT_HEADERS: Record<string, string> = { authorization: `Bearer mk_live_${'Z'.repeat(32)}` };

/** The client's headers as a proxy forwards them: all but hop-by-hop ones, then X-Forwarded-For. */
export function forwardedHeaders(req: IncomingMessage): string[] {
  const raw = req.rawHeaders;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (!HOP_BY_HOP.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  out.push('x-forwarded-for', req.socket.remoteAddress ?? '');
  return out;
}

/** The answer written to `res` as it comes (relay.ts without the metering). */
export class PlainRelay implements Dispatcher.DispatchHandler {
  private resumeUp: (() => void) | null = null;
  constructor(
    private readonly res: ServerResponse,
    private readonly own?: Record<string, string>,
  ) {}
  onConnect(): void {}
  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    if (status < 200) return true;
    this.resumeUp = resume;
    this.res.writeHead(status, answerHeaders(raw, this.own));
    return true;
  }
  onData(chunk: Buffer): boolean {
    if (!this.res.write(chunk) && !this.res.destroyed) {
      this.res.once('drain', () => this.resumeUp?.());
      return false;
    }
    return true;
  }
  onComplete(): void {
    this.res.end();
  }
  onError(): void {
    if (!this.res.headersSent) this.res.writeHead(502).end();
    else this.res.destroy();
  }
}

export async function startPlainProxy(upstream: string): Promise<{ url: string; headers: Record<string, string>; close(): Promise<void> }> {
  const pool = new Pool(new URL(upstream).origin, { connections: 256, keepAliveTimeout: 30_000 });
  const server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 66_000 }, (req, res) => {
    const method = (req.method ?? 'GET') as Dispatcher.HttpMethod;
    const body = method === 'GET' || method === 'HEAD' ? null : req;
    if (!body) req.resume();
    pool.dispatch({ path: req.url ?? '/', method, headers: forwardedHeaders(req), body }, new PlainRelay(res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    headers: CLIENT_HEADERS,
    async close() {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      await pool.close();
    },
  };
}
