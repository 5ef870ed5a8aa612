/**
 * The admin listener of a long-running meter process (METER_ADMIN_HOST:METER_ADMIN_PORT; default
 * 127.0.0.1 and any free port, logged). Never the public gateway port.
 *   GET /metrics    Prometheus text format (prom-client)
 *   GET /healthz    200 while the process runs
 *   GET /readyz     200 when every required backend answers; 503 naming the ones that do not
 *   GET /status     the roles' own counters as JSON (gateway: limiter, keys, events, spool)
 *   GET /ops        the ops dashboard (ops-page.ts); /ops/data is what it reads
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Observability } from './observability.js';
import { OPS_PAGE } from './ops-page.js';
import { sourceBudgetMs } from './metrics.js';

export interface AdminServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startAdminServer(obs: Observability, host: string, port: number): Promise<AdminServer> {
  const started = Date.now();
  // A render costs the process (the gateway's, too) a few ms: scrapes arriving together share
  // one, and a render serves for REUSE_MS (test/abuse/observability.ts hammers this).
  const metricsText = shared((budgetMs: number) => obs.metrics.text(budgetMs));
  const opsData = shared(async () => {
    const [metrics, backends] = await Promise.all([obs.metrics.registry.getMetricsAsJSON(), obs.checkAll()]);
    return JSON.stringify({
      role: obs.role,
      at: Date.now(),
      backends: Object.fromEntries([...backends].map(([k, v]) => [k, { ok: v === null, error: v, required: obs.probes.get(k)?.required ?? true }])),
      metrics: metrics.filter((m) => m.name.startsWith('meter_')),
    });
  });
  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) json(res, 500, { error: 'internal_error', message: (e as Error)?.message ?? String(e) });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return json(res, 405, { error: 'method_not_allowed', message: 'the admin listener answers GET only' }, { allow: 'GET' });
    switch (path) {
      case '/metrics': {
        const text = await metricsText(sourceBudgetMs(req.headers['x-prometheus-scrape-timeout-seconds']));
        res.writeHead(200, { 'content-type': obs.metrics.contentType, 'cache-control': 'no-store' });
        return void res.end(text);
      }
      case '/healthz':
        return json(res, 200, { status: 'ok', role: obs.role, uptimeSeconds: Math.round((Date.now() - started) / 1000) });
      case '/readyz':
        return json(res, ...(await readiness(obs)));
      case '/status': {
        const out: Record<string, unknown> = { role: obs.role };
        for (const [name, f] of obs.statuses) out[name] = f();
        return json(res, 200, out);
      }
      case '/ops':
      case '/ops/':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        return void res.end(OPS_PAGE);
      case '/ops/data': {
        const text = await opsData();
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
        return void res.end(text);
      }
      case '/favicon.ico':
        res.writeHead(204, { 'cache-control': 'max-age=86400' });
        return void res.end();
      default:
        return json(res, 404, { error: 'not_found', message: `no admin endpoint ${path.slice(0, 100)}; try /metrics, /healthz, /readyz, /status or /ops` });
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'EADDRINUSE' ? Object.assign(new Error(`admin port ${port} on ${host} is in use`), { code: e.code }) : e),
    );
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const h = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `http://${h}:${addr.port}`,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const REUSE_MS = 250;

/** One render at a time; its result serves every request for REUSE_MS after it finished. */
function shared<A extends unknown[]>(render: (...args: A) => Promise<string>): (...args: A) => Promise<string> {
  let inflight: Promise<string> | null = null;
  let last: { at: number; text: string } | null = null;
  return (...args: A) => {
    if (last && Date.now() - last.at < REUSE_MS) return Promise.resolve(last.text);
    inflight ??= render(...args).then(
      (text) => {
        last = { at: Date.now(), text };
        inflight = null;
        return text;
      },
      (e: unknown) => {
        inflight = null;
        throw e;
      },
    );
    return inflight;
  };
}

/** 200 when every required probe answered; 503 naming each failing one. */
export async function readiness(obs: Observability): Promise<[number, unknown]> {
  if (!obs.started) return [503, { status: 'unready', role: obs.role, failing: ['starting'], message: `the ${obs.role} role is still starting`, backends: {} }];
  const results = await obs.checkAll();
  const backends: Record<string, string> = {};
  const failing: string[] = [];
  for (const [name, err] of results) {
    backends[name] = err === null ? 'ok' : err;
    if (err !== null && obs.probes.get(name)?.required) failing.push(name);
  }
  if (!failing.length) return [200, { status: 'ready', role: obs.role, backends }];
  return [503, { status: 'unready', role: obs.role, failing, message: failing.map((n) => `${n}: ${backends[n]}`).join('; '), backends }];
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}
