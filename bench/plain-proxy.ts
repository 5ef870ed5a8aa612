/**
 * Gateway baseline "metering off": the same forwarding the gateway does (node:http server, a
 * keep-alive undici Pool of 256 connections, bodies streamed with pipe) with no key check, no
 * rate limit and no event. The gateway has no switch to turn metering off, so this stands in.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

export async function startPlainProxy(upstream: string): Promise<{ url: string; close(): Promise<void> }> {
  const pool = new Pool(new URL(upstream).origin, { connections: 256, keepAliveTimeout: 30_000 });
  const server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 66_000 }, async (req, res) => {
    try {
      req.resume();
      const answer = await pool.request({
        path: req.url ?? '/',
        method: (req.method ?? 'GET') as any,
        headers: { 'x-forwarded-for': req.socket.remoteAddress ?? '' },
      });
      const h: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(answer.headers)) if (v !== undefined && k !== 'connection' && k !== 'keep-alive') h[k] = v;
      res.writeHead(answer.statusCode, h);
      answer.body.pipe(res);
    } catch {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    }
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
