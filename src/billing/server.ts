/**
 * The billing API on node:http (JSON, bearer tokens). Routes:
 *   GET /healthz                                    no auth
 *   GET /v1/customers/:id/usage?from&to&granularity&tz    service token, or that customer's token
 *   GET /v1/customers/:id/cost?from&to&tz                 idem
 *   GET /v1/me/usage, /v1/me/cost                   customer token: the token's own customer
 * 401 without a known token, 403 for another customer's data, 400 `{ error, parameter }` for a
 * bad parameter, 404 unknown route or customer, 405 wrong method, 409 no plan to price with.
 * Every error is caught per request: no stack trace leaves the process, and the server lives on.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Warehouse } from '../warehouse/warehouse.js';
import type { Logger } from '../runtime/logger.js';
import { Authenticator, bearerToken, type Principal } from './auth.js';
import type { Catalog } from './catalog.js';
import { ParamError, parsePeriod, parseUsageParams } from './params.js';
import { PlanError, costReport, findCustomer, usageReport } from './reports.js';

export interface BillingServerOptions {
  db: Warehouse;
  catalog: Catalog;
  host: string;
  port: number;
  serviceTokens: string[];
  logger?: Logger;
}

export interface BillingServer {
  url: string;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

const ROUTE = /^\/v1\/(?:customers\/([^/]+)|(me))\/(usage|cost)$/;

export async function startBillingServer(opts: BillingServerOptions): Promise<BillingServer> {
  const auth = new Authenticator(opts.db, opts.serviceTokens);
  const log = opts.logger;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://billing.invalid');
    if (url.pathname === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'method not allowed', { allow: 'GET' });
      await opts.db.query('SELECT 1');
      return send(res, 200, { ok: true });
    }
    const m = ROUTE.exec(url.pathname);
    if (!m) throw new HttpError(404, `no route for ${url.pathname.slice(0, 200)}`);
    if (req.method !== 'GET') throw new HttpError(405, 'method not allowed', { allow: 'GET' });

    const principal = await auth.authenticate(bearerToken(req.headers.authorization));
    if (!principal) throw new HttpError(401, 'missing or unknown bearer token');
    const customerId = resolveCustomer(principal, m[1], m[2] === 'me');

    const customer = await findCustomer(opts.db, customerId);
    if (!customer) throw new HttpError(404, `unknown customer: ${customerId.slice(0, 200)}`, { parameter: 'id' });
    if (m[3] === 'usage') {
      const p = parseUsageParams(url.searchParams, customer.timeZone);
      return send(res, 200, await usageReport(opts.db, opts.catalog, customer, p));
    }
    const p = parsePeriod(url.searchParams, customer.timeZone);
    return send(res, 200, await costReport(opts.db, opts.catalog, customer, p));
  }

  function resolveCustomer(principal: Principal, pathId: string | undefined, me: boolean): string {
    if (me) {
      if (principal.kind !== 'customer') throw new HttpError(403, 'a service token has no customer of its own: use /v1/customers/:id');
      return principal.customerId;
    }
    let id: string;
    try {
      id = decodeURIComponent(pathId!);
    } catch {
      throw new HttpError(400, 'customer id is not valid percent-encoding', { parameter: 'id' });
    }
    if (principal.kind === 'customer' && principal.customerId !== id) throw new HttpError(403, 'this token may only read its own customer');
    return id;
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (e instanceof HttpError) {
        const { allow, ...extra } = e.extra;
        return send(res, e.status, { error: e.message, ...extra }, allow ? { allow: String(allow) } : {});
      }
      if (e instanceof ParamError) return send(res, 400, { error: e.message, parameter: e.parameter });
      if (e instanceof PlanError) return send(res, 409, { error: e.message });
      // Postgres refusing a zone name Intl accepted (22023 invalid_parameter_value).
      if ((e as { code?: string })?.code === '22023' && /time zone/i.test((e as Error).message))
        return send(res, 400, { error: 'tz is not a time zone the warehouse knows', parameter: 'tz' });
      log?.error(`billing: ${req.method} ${req.url?.slice(0, 200)} failed: ${(e as Error)?.message ?? String(e)}`);
      send(res, 500, { error: 'internal error' });
    });
  });
  // A client error (bad request line, oversized headers) never reaches handle(): answer and move on.
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
