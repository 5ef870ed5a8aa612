/**
 * The billing API on node:http (JSON, bearer tokens). Routes (see ROUTES and openapi.json):
 *   GET  /healthz, /openapi.json                         no auth
 *   GET  /app (+ its static files)                      the customers' web view (token given in the page)
 *   GET  /v1/customers[?limit&cursor]                   service token; pages (pagination.ts)
 *   GET  /v1/customers/:id[/usage|/cost|/prices|/invoices/:period]   service token, or that customer's token
 *   GET  /v1/me[/usage|/cost|/prices|/invoices/:period] customer token: the token's own customer
 *   GET  /v1/customers/:id/invoices, /v1/me/invoices     a page of the customer's invoices, newest first (invoice-history.ts)
 *   GET  /v1/invoices?period=YYYY-MM[&status][&acknowledged][&grace][&limit][&cursor]   service token: a page of the period's invoices
 * GETs never write: invoices become final by the finalize job (invoices.ts finalizeInvoices).
 * Usage and cost answers carry an ETag; If-None-Match with it gets 304 while the answer holds.
 *   GET  /v1/invoices/:id                               service token; a customer token for its own only
 *   POST /v1/invoices/:id/acknowledge                   service token; idempotent
 *   POST /v1/events                                     service token: CloudEvents into the usage log (events/)
 *   POST|GET /v1/events/corrections                     service token: cancel or correct an event; the audit trail (events/corrections-api.ts)
 *   GET  /v1/events/corrections/:correctionId           service token: one correction
 * 401 without a known token, 403 for another customer's data (404 for another customer's
 * invoice id, so ids reveal nothing), 400 `{ error, parameter }` for a bad parameter, 404
 * unknown route or customer, 405 wrong method, 409 no plan to price with / not acknowledgeable.
 * Every error is caught per request: no stack trace leaves the process, and the server lives on.
 */
import { createServer, ServerResponse, type IncomingMessage } from 'node:http';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { isWarehouseUnavailable } from '../warehouse/unavailable.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import { createLogger, type Logger } from '../ground/logger.js';
import { assetPath } from '../config/assets.js';
import { Authenticator, bearerToken, type Principal } from './auth.js';
import { CatalogCache, type CatalogView } from './catalog-cache.js';
import type { Catalog } from './catalog.js';
import { backdatedName, syncCatalog } from './catalog-store.js';
import { listCustomersPage, type BillingCustomer } from './customers.js';
import { pageOf, pageParams } from './pagination.js';
import { InvoiceError, acknowledgeInvoice, getInvoice, listInvoices, storedInvoice } from './invoices.js';
import { ParamError, graceParam, onlyParams, parsePeriod, parseUsageParams, type PeriodParams, type UsageParams } from './params.js';
import { asksForMeter, meterJson, meterUsage, parseMeterUsageParams } from './meter-usage.js';
import { loadMeters } from './meter-store.js';
import { PlanError, pricesReport } from './reports.js';
import { CachedReports, type KeptAnswer } from './answer-cache-reports.js';
import { newRequestId } from './request-id.js';
import { LimitError, MAX_ID_LENGTH, STATEMENT_TIMEOUT_MS } from './limits.js';
import { badBytes } from './request-text.js';
import { requestTarget } from './request-target.js';
import { QueryMemo } from './query-memo.js';
import type { EventsIntake } from './events/events-intake.js';
import type { EventCorrections } from './events/corrections-api.js';
import { serviceTokenName } from './events/token-name.js';
import { invoiceHistory } from './invoice-history.js';
import { quote, shorten, shortPath } from '../ground/text.js';

export interface BillingServerOptions {
  db: Warehouse;
  /** If given, loaded into the warehouse on start (syncCatalog: idempotent, keeps CLI-set prices). */
  catalog?: Catalog;
  host: string;
  port: number;
  serviceTokens: string[];
  logger?: Logger;
  /** Grace period after a billing period before its invoices are final; default 1 h. */
  invoiceGraceMs?: number;
  /** Clock (epoch ms); tests move it. */
  now?: () => number;
  /** Server-side limit of each statement on Postgres; default STATEMENT_TIMEOUT_MS. */
  statementTimeoutMs?: number;
  /** Called as each request arrives (metrics: src/observability/observability.ts billingObserver). */
  observe?: (req: IncomingMessage, res: ServerResponse) => void;
  /** `POST /v1/events` appends here (closed with the server); without it the route answers 503. */
  events?: EventsIntake;
  /** `/v1/events/corrections` (needs the lake); without it the route answers 503. */
  corrections?: EventCorrections;
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

/** A response that knows its request's id: every answer carries it in `x-request-id`. */
class BillingResponse extends ServerResponse<IncomingMessage> {
  requestId = '';
}

function send(res: BillingResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  sendText(res, status, JSON.stringify(body), headers);
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * An answer in JSON. Without extra headers, the headers go as one flat list (node:http writes
 * it as given, with no header object to build or merge).
 */
function sendText(res: BillingResponse, status: number, text: string | Buffer, headers?: Record<string, string>): void {
  const length = typeof text === 'string' ? Buffer.byteLength(text) : text.length;
  if (headers)
    res.writeHead(status, {
      'content-type': JSON_TYPE,
      'content-length': length,
      'cache-control': 'no-store',
      'x-request-id': res.requestId,
      ...headers,
    });
  else res.writeHead(status, ['content-type', JSON_TYPE, 'content-length', length, 'cache-control', 'no-store', 'x-request-id', res.requestId]);
  res.end(text);
}

/**
 * A kept answer (usage, cost) with its ETag; 304 with no body when the request's If-None-Match
 * names that tag (a client polling an unchanged answer skips its bytes).
 */
function sendKept(req: IncomingMessage, res: BillingResponse, a: KeptAnswer): void {
  const asked = req.headers['if-none-match'];
  if (asked !== undefined && matchesTag(asked, a.etag)) {
    res.writeHead(304, ['etag', a.etag, 'cache-control', 'no-store', 'x-request-id', res.requestId]);
    return void res.end();
  }
  res.writeHead(200, ['content-type', JSON_TYPE, 'content-length', a.bytes.length, 'cache-control', 'no-store', 'etag', a.etag, 'x-request-id', res.requestId]);
  res.end(a.bytes);
}

/** If-None-Match (RFC 9110 13.1.2: `*`, or a list of tags, weak ones compared as strong). */
function matchesTag(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  for (const t of header.split(',')) {
    const tag = t.trim();
    if (tag === etag || (tag.startsWith('W/') && tag.slice(2) === etag)) return true;
  }
  return false;
}

/** Refuses a query whose names or values hold a NUL or control character (400 naming it). */
function checkQuery(query: string): true {
  for (const [k, v] of new URLSearchParams(query))
    if (badBytes(k) || badBytes(v))
      throw new ParamError(
        badBytes(k) ? k.replace(/[\u0000-\u001f\u007f]/g, '?').slice(0, 64) : k.slice(0, 64),
        `parameter "${k.replace(/[\u0000-\u001f\u007f]/g, '?').slice(0, 64)}" holds a NUL or control character`,
      );
  return true;
}

/** Every route: method, OpenAPI path, pattern. The OpenAPI test checks the document covers these. */
export const ROUTES = [
  { method: 'GET', path: '/healthz' },
  { method: 'GET', path: '/openapi.json' },
  { method: 'GET', path: '/app' },
  { method: 'GET', path: '/v1/customers' },
  { method: 'GET', path: '/v1/customers/{id}' },
  { method: 'GET', path: '/v1/customers/{id}/usage' },
  { method: 'GET', path: '/v1/customers/{id}/cost' },
  { method: 'GET', path: '/v1/customers/{id}/prices' },
  { method: 'GET', path: '/v1/customers/{id}/invoices' },
  { method: 'GET', path: '/v1/customers/{id}/invoices/{period}' },
  { method: 'GET', path: '/v1/me' },
  { method: 'GET', path: '/v1/me/usage' },
  { method: 'GET', path: '/v1/me/cost' },
  { method: 'GET', path: '/v1/me/prices' },
  { method: 'GET', path: '/v1/me/invoices' },
  { method: 'GET', path: '/v1/me/invoices/{period}' },
  { method: 'GET', path: '/v1/invoices' },
  { method: 'GET', path: '/v1/invoices/{id}' },
  { method: 'POST', path: '/v1/invoices/{id}/acknowledge' },
  { method: 'POST', path: '/v1/events' },
  { method: 'POST', path: '/v1/events/corrections' },
  { method: 'GET', path: '/v1/events/corrections' },
  { method: 'GET', path: '/v1/events/corrections/{correctionId}' },
  { method: 'GET', path: '/v1/meters' },
] as const;

const CORRECTION_PATH = '/v1/events/corrections/';
const CUSTOMER_ROUTE = /^\/v1\/(?:customers\/([^/]+)|(me))(?:\/(usage|cost|prices|invoices)|\/invoices\/([^/]+))?$/;
const INVOICE_ROUTE = /^\/v1\/invoices(?:\/([^/]+)(\/acknowledge)?)?$/;

/** Static files of the web view: URL path -> file under the package root, content type. */
const STATIC: Record<string, [string, string]> = {
  '/app': ['src/billing/web/index.html', 'text/html; charset=utf-8'],
  '/app/': ['src/billing/web/index.html', 'text/html; charset=utf-8'],
  '/app/app.js': ['src/billing/web/app.js', 'text/javascript; charset=utf-8'],
  '/app/app.css': ['src/billing/web/app.css', 'text/css; charset=utf-8'],
  '/app/vendor/uPlot.iife.min.js': ['node_modules/uplot/dist/uPlot.iife.min.js', 'text/javascript; charset=utf-8'],
  '/app/vendor/uPlot.min.css': ['node_modules/uplot/dist/uPlot.min.css', 'text/css; charset=utf-8'],
  '/openapi.json': ['src/billing/openapi.json', 'application/json; charset=utf-8'],
};

function decodeId(raw: string, parameter: string): string {
  let id: string;
  try {
    id = decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, `${parameter} is not valid percent-encoding of UTF-8`, { parameter });
  }
  // A NUL or control byte can name nothing stored (Postgres text refuses NUL): say so, never 500.
  if (badBytes(id)) throw new HttpError(400, `${parameter} holds a NUL or control character`, { parameter });
  if (id.length > MAX_ID_LENGTH) throw new HttpError(400, `${parameter} is longer than ${MAX_ID_LENGTH} characters`, { parameter });
  return id;
}

/** A request's URL for a log line: bounded, control characters shown as `?`. */
function safe(url: string | undefined): string {
  return (url ?? '').slice(0, 200).replace(/[\u0000-\u001f\u007f]/g, '?');
}

function message(e: unknown): string {
  return safe((e as Error)?.message ?? String(e));
}

function profile(c: BillingCustomer) {
  return { id: c.id, name: c.name, timeZone: c.timeZone, currency: c.currency, plan: c.planId, planSource: c.planSource, createdAt: c.createdAt };
}

export async function startBillingServer(options: BillingServerOptions): Promise<BillingServer> {
  // Every statement of this server is cancelled by Postgres past the timeout, on connections of
  // its own (a rollup sharing the warehouse in `meter dev` keeps no timeout).
  const timed = options.db.withStatementTimeout?.(options.statementTimeoutMs ?? STATEMENT_TIMEOUT_MS);
  const opts = { ...options, db: timed ?? options.db };
  const now = opts.now ?? Date.now;
  const auth = new Authenticator(opts.db, opts.serviceTokens, now);
  const catalog = new CatalogCache(opts.db);
  const reports = new CachedReports(opts.db);
  // 5xx answers are always logged (with their request id), also when the caller gave no logger.
  const log = opts.logger ?? createLogger('info', 'billing');
  const graceMs = opts.invoiceGraceMs;
  // Query strings checked, and periods parsed from them (with the customer's zone): each once.
  const checked = new QueryMemo<true>();
  const periods = new QueryMemo<Readonly<PeriodParams>>();
  const usagePeriods = new QueryMemo<Readonly<UsageParams>>();
  if (opts.catalog) {
    const synced = await syncCatalog(opts.db, opts.catalog);
    // Loaded on every start: a past price added to the file reprices recorded usage, so it is said.
    for (const b of synced.backdated)
      log.warn(
        `catalog: price ${backdatedName(b)} starts before recorded usage: drafts and cost answers since then use it; final invoices stay as stored (meter plans import lists the ones it would change)`,
      );
  }

  async function serveStatic(req: IncomingMessage, res: BillingResponse, file: [string, string]): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'method not allowed', { allow: 'GET' });
    const body = await readFile(assetPath(file[0]));
    res.writeHead(200, {
      'content-type': file[1],
      'content-length': body.length,
      'cache-control': 'no-cache',
      // The page talks to this origin only; no inline script, no framing.
      'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-request-id': res.requestId,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  async function handle(req: IncomingMessage, res: BillingResponse): Promise<void> {
    const { path, query } = requestTarget(req.url ?? '/');
    if (query) checked.get(query, () => checkQuery(query));
    // Built only for the routes that read more than a kept period (below).
    let params: URLSearchParams | undefined;
    const searchParams = () => (params ??= new URLSearchParams(query));
    if (path === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'method not allowed', { allow: 'GET' });
      await opts.db.query('SELECT 1');
      return send(res, 200, { ok: true });
    }
    const asset = Object.hasOwn(STATIC, path) ? STATIC[path] : undefined;
    if (asset) return serveStatic(req, res, asset);
    if (path === '/v1/events') return postEvents(req, res);
    if (path === '/v1/events/corrections') return eventCorrections(req, res, searchParams());
    if (path.startsWith(CORRECTION_PATH)) return eventCorrections(req, res, searchParams(), decodeId(path.slice(CORRECTION_PATH.length), 'correctionId'));

    const cm = CUSTOMER_ROUTE.exec(path);
    const im = cm ? null : INVOICE_ROUTE.exec(path);
    const list = !cm && !im && path === '/v1/customers';
    const meterList = !cm && !im && path === '/v1/meters';
    if (!cm && !im && !list && !meterList) throw new HttpError(404, `no route for ${shortPath(path)}`);
    const ack = Boolean(im?.[2]);
    const method = ack ? 'POST' : 'GET';
    if (req.method !== method) throw new HttpError(405, 'method not allowed', { allow: method });

    // One statement, read at most once per answer: the catalog's version (customers, plans and
    // tokens come from memory while it holds) and dataCompleteUntil.
    let viewRead: Promise<CatalogView> | undefined;
    const catalogView = () => (viewRead ??= catalog.view());
    const principal = await auth.authenticate(bearerToken(req.headers.authorization), async (id) => (await catalogView()).token(id));
    if (!principal) throw new HttpError(401, 'missing, unknown, revoked or expired bearer token (send Authorization: Bearer <token>)');

    if (meterList) {
      const q = searchParams();
      onlyParams(q, []);
      return send(res, 200, { meters: (await loadMeters(opts.db)).map(meterJson) });
    }

    if (list) {
      const q = searchParams();
      if (principal.kind !== 'service') throw new HttpError(403, 'listing customers needs a service token');
      onlyParams(q, ['limit', 'cursor']);
      const pg = pageParams(q);
      const page = pageOf(await listCustomersPage(opts.db, pg.after, pg.limit + 1), pg.limit, (c) => c.id);
      return send(res, 200, { customers: page.items.map(profile), nextCursor: page.nextCursor });
    }

    if (im) {
      const q = searchParams();
      if (!im[1]) {
        if (principal.kind !== 'service') throw new HttpError(403, 'listing invoices needs a service token; use /v1/me/invoices/{period}');
        onlyParams(q, ['period', 'status', 'acknowledged', 'grace', 'limit', 'cursor']);
        const pg = pageParams(q);
        const period = q.get('period');
        if (!period) throw new ParamError('period', 'period is required, a month YYYY-MM');
        const status = q.get('status') || 'final';
        if (!['final', 'draft', 'all'].includes(status)) throw new ParamError('status', `status must be final, draft or all, got ${quote(status)}`);
        const ack = q.get('acknowledged') || undefined;
        if (ack !== undefined && ack !== 'true' && ack !== 'false')
          throw new ParamError('acknowledged', `acknowledged must be true or false, got ${quote(ack)}`);
        const r = await listInvoices(opts.db, period, {
          now: now(),
          graceMs: graceParam(q) ?? graceMs,
          status: status as 'final',
          acknowledged: ack === undefined ? undefined : ack === 'true',
          after: pg.after,
          limit: pg.limit,
        });
        return send(res, 200, r);
      }
      const id = decodeId(im[1], 'id');
      onlyParams(q, []);
      if (ack) {
        if (principal.kind !== 'service') throw new HttpError(403, 'acknowledging invoices needs a service token');
        const a = await acknowledgeInvoice(opts.db, id, 'service', now());
        return send(res, 200, { ...a.invoice, acknowledged: a.acknowledged });
      }
      const inv = await storedInvoice(opts.db, id);
      // Another customer's invoice looks exactly like a missing one.
      if (!inv || (principal.kind === 'customer' && inv.customer !== principal.customerId))
        throw new HttpError(404, `no final invoice ${shorten(id)} (drafts are read by period: /v1/customers/{id}/invoices/{period})`, { parameter: 'id' });
      return send(res, 200, inv);
    }

    const m = cm!;
    const customerId = resolveCustomer(principal, m[1], m[2] === 'me');
    const view = await catalogView();
    const customer = await view.customer(customerId);
    if (!customer) throw new HttpError(404, `unknown customer: ${shorten(customerId)}`, { parameter: 'id' });
    if (m[4] !== undefined) {
      const q = searchParams();
      onlyParams(q, principal.kind === 'service' ? ['grace'] : []);
      const inv = await getInvoice(opts.db, customer, decodeId(m[4], 'period'), { now: now(), graceMs: graceParam(q) ?? graceMs });
      return send(res, 200, inv);
    }
    switch (m[3]) {
      case undefined:
        onlyParams(searchParams(), []);
        return send(res, 200, profile(customer));
      case 'usage': {
        const q = searchParams();
        // ?meter=: usage of one meter (meter-usage.ts, docs/meters.md)
        if (asksForMeter(q)) return send(res, 200, await meterUsage(opts.db, customer.id, parseMeterUsageParams(q, customer.timeZone)));
        const p = usagePeriods.get(`${customer.timeZone}\u0000${query}`, () => Object.freeze(parseUsageParams(q, customer.timeZone)));
        return sendKept(req, res, await reports.usage(customer, p, view));
      }
      case 'invoices': {
        const q = searchParams();
        onlyParams(q, principal.kind === 'service' ? ['limit', 'cursor', 'grace'] : ['limit', 'cursor']);
        const pg = pageParams(q);
        const page = await invoiceHistory(opts.db, customer, { now: now(), graceMs: graceParam(q) ?? graceMs, after: pg.after, limit: pg.limit });
        return send(res, 200, { invoices: page.items, nextCursor: page.nextCursor });
      }
      case 'cost': {
        const p = periods.get(`${customer.timeZone}\u0000${query}`, () => Object.freeze(parsePeriod(searchParams(), customer.timeZone)));
        return sendKept(req, res, await reports.cost(customer, p, view));
      }
      default:
        onlyParams(searchParams(), []);
        return send(res, 200, await pricesReport(opts.db, customer, now(), view));
    }
  }

  async function postEvents(req: IncomingMessage, res: BillingResponse): Promise<void> {
    if (req.method !== 'POST') throw new HttpError(405, 'method not allowed', { allow: 'POST' });
    // A service token needs no statement (the catalog is read only for a customer token's row).
    const principal = await auth.authenticate(bearerToken(req.headers.authorization), async (id) => (await catalog.view()).token(id));
    if (!principal) throw new HttpError(401, 'missing, unknown, revoked or expired bearer token (send Authorization: Bearer <token>)');
    if (principal.kind !== 'service') throw new HttpError(403, 'sending events needs a service token');
    if (!opts.events) throw new HttpError(503, 'this billing server was started without the usage log, so it takes no events');
    const a = await opts.events.post(req);
    send(res, a.status, a.body, a.headers);
  }

  async function eventCorrections(req: IncomingMessage, res: BillingResponse, q: URLSearchParams, id?: string): Promise<void> {
    if (id !== undefined ? req.method !== 'GET' : req.method !== 'POST' && req.method !== 'GET')
      throw new HttpError(405, 'method not allowed', { allow: id !== undefined ? 'GET' : 'GET, POST' });
    const token = bearerToken(req.headers.authorization);
    const principal = await auth.authenticate(token, async (id) => (await catalog.view()).token(id));
    if (!principal) throw new HttpError(401, 'missing, unknown, revoked or expired bearer token (send Authorization: Bearer <token>)');
    if (principal.kind !== 'service') throw new HttpError(403, 'event corrections need a service token');
    if (!opts.corrections) throw new HttpError(503, 'this billing server was started without the lake, so it cannot look events up to correct them');
    const a =
      id !== undefined
        ? await opts.corrections.get(id, q)
        : req.method === 'GET'
          ? await opts.corrections.list(q)
          : await opts.corrections.post(req, serviceTokenName(token ?? ''));
    send(res, a.status, a.body, a.headers);
  }

  function resolveCustomer(principal: Principal, pathId: string | undefined, me: boolean): string {
    if (me) {
      if (principal.kind !== 'customer') throw new HttpError(403, 'a service token has no customer of its own: use /v1/customers/:id');
      return principal.customerId;
    }
    const id = decodeId(pathId!, 'id');
    if (principal.kind === 'customer' && principal.customerId !== id) throw new HttpError(403, 'this token may only read its own customer');
    return id;
  }

  const server = createServer<typeof IncomingMessage, typeof BillingResponse>({ ServerResponse: BillingResponse }, (req, res) => {
    // One id per request, returned in a header and written in every log line about it, so a
    // client's report of a 5xx can be found in the log.
    const requestId = newRequestId();
    res.requestId = requestId;
    opts.observe?.(req, res);
    handle(req, res).catch((e: unknown) => {
      if (res.headersSent) {
        log.error(`billing: req ${requestId}: ${req.method} ${safe(req.url)} failed after the answer started: ${message(e)}`);
        return void res.destroy();
      }
      if (e instanceof HttpError) {
        const { allow, ...extra } = e.extra;
        return send(res, e.status, { error: e.message, ...extra }, allow ? { allow: String(allow) } : {});
      }
      if (e instanceof ParamError || e instanceof LimitError) return send(res, 400, { error: e.message, parameter: e.parameter });
      if (e instanceof InvoiceError) return send(res, e.status, { error: e.message, ...(e.parameter ? { parameter: e.parameter } : {}) });
      if (e instanceof PlanError) return send(res, 409, { error: e.message });
      // Postgres refusing a zone name Intl accepted (22023 invalid_parameter_value).
      if ((e as { code?: string })?.code === '22023' && /time zone/i.test((e as Error).message))
        return send(res, 400, { error: 'tz is not a time zone the warehouse knows', parameter: 'tz' });
      // 57014 query_canceled: the statement ran past statement_timeout. Not an outage.
      if ((e as { code?: string })?.code === '57014') {
        log.error(`billing: 503 req ${requestId}: ${req.method} ${safe(req.url)}: statement timeout: ${message(e)}`);
        return send(
          res,
          503,
          { error: 'the answer took longer than the billing API allows; retry, or ask for a shorter range', requestId },
          { 'retry-after': '5' },
        );
      }
      // The warehouse is down or restarting: say so (503), never answer with a made-up number.
      if (isWarehouseUnavailable(e)) {
        log.error(`billing: 503 req ${requestId}: ${req.method} ${safe(req.url)}: warehouse unavailable: ${message(e)}`);
        return send(
          res,
          503,
          { error: 'the billing database is unavailable right now, so no usage or cost can be given; retry shortly', requestId },
          { 'retry-after': '5' },
        );
      }
      log.error(`billing: 500 req ${requestId}: ${req.method} ${safe(req.url)} failed: ${message(e)}`);
      send(res, 500, { error: 'internal error', requestId });
    });
  });
  // A client error (bad request line, oversized headers) never reaches handle(): answer and move on,
  // with the status Node's own handler (and so the gateway) gives: headers or a URL past the
  // limit are 431, not the 400 of a request that does not parse.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    else socket.destroy();
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  // Idle keep-alive connections outlive a load balancer's usual 60 s idle timeout (the gateway's
  // too), so the balancer closes them first. Node's 5 s default races the balancer's next request
  // on a connection this side is closing: a 502 to the payment server or a customer's app.
  server.keepAliveTimeout = 65_000;

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
    close: async () => {
      await new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
      await timed?.close();
      await opts.events?.close();
    },
  };
}
