/**
 * A gateway in front of an upstream that resolves paths the way permissive frameworks do, for
 * the path and identity tests (test/stack/gateway-paths.test.ts) and attacks (test/abuse/gateway-paths.ts).
 *
 * The upstream reads a path as leniently as it can: WHATWG URL resolution (dot segments, `%2e`,
 * `\` as `/`), `;params` dropped per segment (as Tomcat does, before dots are resolved), repeated
 * slashes collapsed, percent-decoding, and no case. It then says which operation of the sample
 * location API it served, so a test compares that with what the gateway billed. It echoes the
 * headers it received.
 *
 * Requests go out on raw sockets, so the exact bytes of the request line reach the gateway.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect } from 'node:net';
import { rmSync } from 'node:fs';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { KeyStore, createKey } from '../../src/gateway/keys.js';
import { loadRoutes, type RouteTable } from '../../src/gateway/routes.js';
import { startGateway, type Gateway } from '../../src/gateway/server.js';
import { MemoryLimiter } from '../../src/limiter/memory-limiter.js';
import { FileLog } from '../../src/log/file-log.js';
import type { LogProducer } from '../../src/log/log.js';
import { decodeEvent, type UsageEvent } from '../../src/events/usage-event.js';
import { assetPath } from '../../src/config/assets.js';
import { tempDir } from './tmp.js';

export interface UpstreamHit {
  method: string;
  /** The request-target exactly as the upstream received it. */
  url: string;
  headers: IncomingHttpHeaders;
  /** The operation the lenient upstream served, or null (its 404). */
  served: string | null;
}

/** What a lenient framework makes of a request-target. */
export function lenientPath(url: string): string {
  // Tomcat drops `;params` per segment before resolving dots: /a/..;/b -> /a/../b -> /b.
  const noParams = url
    .split('?')[0]!
    .split('/')
    .map((s) => s.split(';')[0])
    .join('/');
  const u = new URL(noParams.startsWith('/') ? noParams : new URL(noParams).pathname, 'http://upstream.invalid');
  let p: string;
  try {
    p = decodeURIComponent(u.pathname);
  } catch {
    p = u.pathname;
  }
  return p.replace(/\/{2,}/g, '/').toLowerCase();
}

/** The operation of the sample location API that a lenient upstream serves for this request. */
export function servedOperation(method: string, url: string): string | null {
  const parts = lenientPath(url).split('/').filter(Boolean);
  if (method === 'POST' && parts.join('/') === 'v1/locations') return 'locations.create';
  if (method === 'GET' && parts.length === 4 && parts[0] === 'v1' && parts[1] === 'devices') {
    if (parts[3] === 'location') return 'locations.latest';
    if (parts[3] === 'history') return 'locations.history';
  }
  if (method === 'GET' && parts.length === 4 && parts[0] === 'v1' && parts[1] === 'geofences' && parts[3] === 'devices') return 'geofences.devices';
  if (method === 'GET' && parts.join('/') === 'v1/status') return 'status';
  return null;
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One request on its own connection, request line and headers sent byte for byte (latin1). */
export function rawRequest(port: number, method: string, target: string, headers: Record<string, string>, body = ''): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => sock.destroy(new Error(`no answer to ${method} ${JSON.stringify(target)} in 10 s`)), 10_000);
    sock.on('connect', () => {
      let head = `${method} ${target} HTTP/1.1\r\n`;
      const h: Record<string, string> = { host: 'gateway.test', connection: 'close', ...headers };
      if (body) h['content-length'] = String(Buffer.byteLength(body));
      for (const [k, v] of Object.entries(h)) head += `${k}: ${v}\r\n`;
      sock.write(Buffer.from(head + '\r\n' + body, 'latin1'));
    });
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (!m) return reject(new Error(`not an HTTP answer to ${method} ${JSON.stringify(target)}: ${JSON.stringify(text.slice(0, 100))}`));
      const [head, ...rest] = text.split('\r\n\r\n');
      const hs: Record<string, string> = {};
      for (const line of head!.split('\r\n').slice(1)) {
        const i = line.indexOf(':');
        hs[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      let b = rest.join('\r\n\r\n');
      if (hs['transfer-encoding'] === 'chunked') b = dechunk(b);
      resolve({ status: Number(m[1]), headers: hs, body: b });
    });
  });
}

function dechunk(s: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const nl = s.indexOf('\r\n', i);
    if (nl === -1) return out;
    const n = parseInt(s.slice(i, nl), 16);
    if (!n) return out;
    out += s.slice(nl + 2, nl + 2 + n);
    i = nl + 2 + n + 2;
  }
}

export interface PathRig {
  gw: Gateway;
  port: number;
  key: string;
  keyId: string;
  hits: UpstreamHit[];
  /** A request with the rig's key. */
  call(method: string, target: string, headers?: Record<string, string>, body?: string): Promise<RawAnswer>;
  /** Every event the gateway wrote so far (flushed first). */
  events(): Promise<UsageEvent[]>;
  close(): Promise<void>;
}

export async function startPathRig(o: { stripHeaders?: string[]; routes?: RouteTable } = {}): Promise<PathRig> {
  const dir = tempDir('meter-paths-');
  const hits: UpstreamHit[] = [];
  const upstream: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const served = servedOperation(req.method!, req.url!);
      hits.push({ method: req.method!, url: req.url!, headers: req.headers, served });
      const body = JSON.stringify({ served, headers: req.headers });
      res.writeHead(served ? 200 : 404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const db = await PgliteWarehouse.open(null);
  await migrate(db);
  const plans = { pro: { ratePerSec: 100_000, burst: 100_000 } };
  const k = await createKey(db, { customer: 'acme', plan: 'pro', plans });
  const log = new FileLog({ dir, topic: 'usage-events', partitions: 1 });
  await log.init();
  const producer: LogProducer = await log.producer();
  const gw = await startGateway({
    host: '127.0.0.1',
    port: 0,
    upstream: `http://127.0.0.1:${(upstream.address() as { port: number }).port}`,
    keys: new KeyStore(db),
    limiter: new MemoryLimiter(),
    plans,
    routes: o.routes ?? loadRoutes(assetPath('fixtures/routes.json')),
    stripHeaders: o.stripHeaders,
    producer,
    eventFlushMs: 5,
    maxBodyBytes: 1 << 16,
    logger: { info() {}, warn() {}, error() {} },
  });
  return {
    gw,
    port: gw.port,
    key: k.key,
    keyId: k.id,
    hits,
    call: (method, target, headers = {}, body = '') => rawRequest(gw.port, method, target, { authorization: `Bearer ${k.key}`, ...headers }, body),
    async events() {
      await gw.batcher.flush();
      const consumer = await log.consumer(`paths-${Date.now()}-${Math.random()}`);
      const out: UsageEvent[] = [];
      try {
        for (const [p, end] of await consumer.endOffsets()) {
          if (end === 0) continue;
          for (const rec of await consumer.readRange(p, 0, end)) {
            const d = decodeEvent(rec.value);
            if (!d.ok) throw new Error(`bad event in the log: ${d.reason}`);
            out.push(d.event);
          }
        }
      } finally {
        await consumer.stop();
      }
      return out;
    },
    async close() {
      await gw.close();
      await producer.close();
      await log.close();
      await new Promise<void>((r) => upstream.close(() => r()));
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PathTrick {
  name: string;
  /** The kind of trick (one abuse-suite row each). */
  group?: string;
  method: string;
  target: string;
  /** `billed`: forwarded as `forwardedAs` and billed as `api`; a number: the gateway's own answer, nothing forwarded. */
  expect: 'billed' | 400 | 404;
  api?: string;
  forwardedAs?: string;
}

const L = '/v1/devices/d1/location';
const billed = (name: string, target: string, forwardedAs = L, api = 'locations.latest', method = 'GET'): PathTrick => ({
  name,
  method,
  target,
  expect: 'billed',
  api,
  forwardedAs,
});
const refused = (name: string, target: string, expect: 400 | 404, method = 'GET'): PathTrick => ({ name, method, target, expect });
const group = (g: string, tricks: PathTrick[]) => tricks.map((t) => ({ ...t, group: g }));

/** Every path trick of issue 12, and the neighbours of each; a lenient upstream serves each as a priced operation or not at all. */
export const PATH_TRICKS: PathTrick[] = [
  ...group('dot segments', [
    billed('dot-dot segment', '/v1/devices/d1/history/../location'),
    billed('encoded dot-dot %2e%2e', '/v1/devices/d1/history/%2e%2e/location'),
    billed('encoded dot-dot %2E%2E', '/v1/devices/d1/history/%2E%2E/location'),
    billed('half-encoded dot-dot .%2e', '/v1/devices/d1/history/.%2e/location'),
    billed('dot segment ./', '/v1/devices/d1/./location'),
    billed('dot-dot above the root', '/../../v1/devices/d1/location'),
    billed('dot-dot out of another route', '/v1/geofences/g1/devices/../../../devices/d1/location'),
    billed('dot-dot out of a free route', '/v1/status/../devices/d1/location'),
    billed('encoded dot-dot out of a free route', '/v1/status/%2e%2e/devices/d1/location'),
    billed('param on a segment dot-dot removes', '/v1/status;x/../devices/d1/location'),
    billed('absolute-form with dot-dot', 'http://x/v1/devices/d1/history/../location'),
    refused('double-encoded dot-dot %252e', '/v1/devices/d1/history/%252e%252e/location', 400),
  ]),
  ...group('repeated slashes and encoded unreserved', [
    billed('plain', L),
    billed('repeated slashes', '//v1//devices///d1/location'),
    billed('encoded unreserved d%31', '/v1/devices/d%31/location'),
    billed('encoded unreserved in a literal', '/v1/%64evices/d1/%6Cocation'),
    billed('trailing slash', L + '/', L + '/'),
  ]),
  ...group('matrix ;params', [
    billed('matrix param on the device id', '/v1/devices/d1;x=1/location', '/v1/devices/d1;x=1/location'),
    refused('matrix param on a literal', L + ';x=1', 404),
    refused('matrix dot-dot ..;/', '/v1/devices/d1/history/..;/location', 400),
    refused('matrix dot-dot out of a free route', '/v1/status/..;/devices/d1/location', 400),
    refused('encoded matrix dot-dot ..%3B/', '/v1/devices/d1/history/..%3B/location', 400),
    refused('matrix on an empty segment', '/v1/devices/;x/location', 400),
  ]),
  ...group('case', [refused('upper-case /V1', '/V1/devices/d1/location', 404), refused('upper-case literal LOCATION', '/v1/devices/d1/LOCATION', 404)]),
  ...group('absolute-form and other target forms', [
    billed('absolute-form', 'http://x/v1/devices/d1/location'),
    billed('absolute-form, upper-case scheme, port', 'HTTP://other.example:8080/v1/devices/d1/location?fields=lat', L + '?fields=lat'),
    refused('absolute-form without a path', 'http://x', 404),
    refused('absolute-form with userinfo', 'http://u@x/v1/devices/d1/location', 400),
    refused('absolute-form, other scheme', 'ftp://x/v1/devices/d1/location', 400),
    refused('asterisk-form', '*', 400),
  ]),
  ...group('encoded / and \\', [
    refused('encoded slash %2F', '/v1/devices/d1%2Flocation', 400),
    refused('encoded slash %2f in a param', '/v1/devices/a%2f..%2f..%2fstatus/location', 400),
    refused('raw backslash', '/v1/devices/d1/history\\..\\location', 400),
    refused('encoded backslash %5C', '/v1/devices/d1/history%5C..%5Clocation', 400),
  ]),
  ...group('NUL, control and other bad bytes', [
    refused('encoded NUL %00', '/v1/devices/d1%00/location', 400),
    refused('encoded line feed %0A', '/v1/devices/d1%0A/location', 400),
    refused('encoded DEL %7F', '/v1/devices/d1%7F/location', 400),
    refused('raw NUL byte', '/v1/devices/d1\x00/location', 400),
    refused('raw control byte 0x01', '/v1/devices/d1\x01/location', 400),
    refused('raw non-ASCII byte', '/v1/devices/d\xe91/location', 400),
    refused('bad escape %zz', '/v1/devices/d%zz/location', 400),
    refused('truncated escape', L + '%4', 400),
    refused('fragment', L + '#x', 400),
    refused('raw double quote', '/v1/devices/"d1"/location', 400),
  ]),
  ...group('methods and paths without a route', [
    refused('HEAD of a GET route', L, 404, 'HEAD'),
    refused('method not in the table', L, 404, 'DELETE'),
    refused('path that matches no route', '/v1/not-a-route', 404),
    refused('internal path behind a dot segment', '/v1/../_meter/health', 404),
  ]),
];

export interface TrickOutcome {
  trick: PathTrick;
  status: number;
  error: string | null;
  /** What reached the upstream for this call. */
  hit: UpstreamHit | null;
  /** The call's event, if any. */
  event: UsageEvent | null;
  ok: boolean;
  why: string;
}

/** Run the tricks against a rig, one at a time; says for each whether the promise held. */
export async function runTricks(rig: PathRig, tricks: PathTrick[] = PATH_TRICKS): Promise<TrickOutcome[]> {
  const answers: { trick: PathTrick; a: RawAnswer; hit: UpstreamHit | null }[] = [];
  for (const trick of tricks) {
    const before = rig.hits.length;
    const a = await rig.call(trick.method, trick.target);
    answers.push({ trick, a, hit: rig.hits.length > before ? rig.hits[rig.hits.length - 1]! : null });
  }
  const events = new Map((await rig.events()).map((e) => [e.id, e]));
  return answers.map(({ trick, a, hit }) => {
    const id = a.headers['x-meter-event-id'];
    const event = id ? (events.get(id) ?? null) : null;
    let error: string | null = null;
    try {
      error = JSON.parse(a.body).error ?? null;
    } catch {}
    const out: TrickOutcome = { trick, status: a.status, error, hit, event, ok: false, why: '' };
    if (trick.expect === 'billed') {
      if (a.status !== 200) out.why = `answered ${a.status} ${error ?? ''}`;
      else if (!hit) out.why = 'not forwarded';
      else if (hit.url !== trick.forwardedAs) out.why = `forwarded as ${hit.url}`;
      else if (hit.served !== trick.api) out.why = `upstream served ${hit.served}`;
      else if (!event) out.why = 'no event';
      else if (event.api !== trick.api || !event.billable) out.why = `billed as ${event.api} billable=${event.billable}`;
      else out.ok = true;
    } else {
      if (hit) out.why = `forwarded as ${hit.url} (upstream served ${hit.served}), answered ${a.status}`;
      else if (a.status !== trick.expect) out.why = `answered ${a.status} ${error ?? ''}`;
      else if (event?.billable) out.why = `billable event ${event.api}`;
      else out.ok = true;
    }
    return out;
  });
}
