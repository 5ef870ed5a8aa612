/**
 * Gateway baseline "metering off": the same forwarding the gateway does (node:http server, a
 * keep-alive undici Pool of 256 connections, `pool.dispatch` with raw handler callbacks and the
 * answer's chunks written to the response, as src/gateway/relay.ts) with no key check, no rate
 * limit and no event. The gateway has no switch to turn metering off, so this stands in. Until
 * 2026-12-05 22:45 it used `pool.request` + pipe, ~15 µs more per call than the gateway's own
 * forwarding (bench/gateway-http-paths.ts), which flattered meter's ratio.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool, type Dispatcher } from 'undici';
import { answerHeaders } from '../src/gateway/proxy.js';

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

export async function startPlainProxy(upstream: string): Promise<{ url: string; close(): Promise<void> }> {
  const pool = new Pool(new URL(upstream).origin, { connections: 256, keepAliveTimeout: 30_000 });
  const server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 66_000 }, (req, res) => {
    req.resume();
    pool.dispatch(
      { path: req.url ?? '/', method: (req.method ?? 'GET') as Dispatcher.HttpMethod, headers: ['x-forwarded-for', req.socket.remoteAddress ?? ''] },
      new PlainRelay(res),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      await pool.close();
    },
  };
}
