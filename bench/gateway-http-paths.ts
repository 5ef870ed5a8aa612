/**
 * Node's HTTP path of a proxy, with no metering at all, in variants, alternating in one run
 * (issue 15: "if Node's HTTP path is the limit, measure the alternatives: node:http vs undici
 * for the upstream, fewer listeners, header handling"). Each variant is a bare forwarding proxy
 * in its own process, held at a fixed rate by autocannon; what is compared is that process's
 * CPU per call (and its main thread's), as in gateway-ab.js:
 *
 *   undici-request   pool.request + pipe (the stage's unmetered proxy until 2026-12-05 22:45)
 *   undici-dispatch  pool.dispatch with undici's raw handler callbacks, chunks written to `res`
 *                    (what src/gateway/relay.ts does; the stage's unmetered proxy, bench/plain-proxy.ts)
 *   node-http        http.request over a keep-alive Agent (256 sockets), answer piped
 *   dispatch+close   undici-dispatch plus one 'close' listener on `res` (meter's one listener)
 *   dispatch+headers undici-dispatch plus meter's header work: the client's headers forwarded
 *                    minus hop-by-hop, identity and key headers, the 7 gateway headers added
 *                    (upstreamHeaders), and its 3 answer headers (RateLimit-Policy, RateLimit,
 *                    x-meter-event-id) merged into the answer (answerHeaders)
 *
 *   node dist/bench/gateway-http-paths.js [rounds=4] [req/s=5000] [seconds=8] [variants,...]
 */
import { request as httpRequest, Agent, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool, type Dispatcher } from 'undici';
import { upstreamHeaders } from '../src/gateway/proxy.js';
import { fmt, mainThreadCpuUs, median } from './lib.js';
import { answerCpuRequests, cpuPerCallAtRate, spawnSide } from './side-process.js';
import { PlainRelay, startPlainProxy } from './plain-proxy.js';
import { startUpstream } from './gateway.js';

const PATH = '/v1/devices/d1/location';
const VARIANTS = ['undici-request', 'undici-dispatch', 'node-http', 'dispatch+close', 'dispatch+headers'] as const;
type Variant = (typeof VARIANTS)[number];
/** What the benchmark's client sends besides Host: an API key, as to meter. */
const CLIENT_HEADERS = { authorization: 'Bearer mk_live_bench0000000000000000000000000000' };
const IDENTITY = { customer: 'bench-customer', keyId: 'key_0000000000', plan: 'bench' };
const OWN = { 'ratelimit-policy': '"bench";q=1000000000;w=1', ratelimit: '"bench";r=999999999;t=1', 'x-meter-event-id': '' };

let seq = 0;

async function startVariant(v: Variant, upstream: string): Promise<{ url: string; close(): Promise<void> }> {
  if (v === 'undici-dispatch') return startPlainProxy(upstream);
  const origin = new URL(upstream);
  const pool = new Pool(origin.origin, { connections: 256, keepAliveTimeout: 30_000 });
  const agent = new Agent({ keepAlive: true, maxSockets: 256, keepAliveMsecs: 30_000 });
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    req.resume();
    if (v === 'undici-request') {
      void pool
        .request({
          path: req.url ?? '/',
          method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
          headers: { 'x-forwarded-for': req.socket.remoteAddress ?? '' },
        })
        .then((answer) => {
          const h: Record<string, string | string[]> = {};
          for (const [k, val] of Object.entries(answer.headers)) if (val !== undefined && k !== 'connection' && k !== 'keep-alive') h[k] = val;
          res.writeHead(answer.statusCode, h);
          answer.body.pipe(res);
        })
        .catch(() => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
      return;
    }
    if (v === 'node-http') {
      const up = httpRequest(
        { agent, host: origin.hostname, port: origin.port, path: req.url, method: req.method, headers: { 'x-forwarded-for': req.socket.remoteAddress ?? '' } },
        (answer) => {
          const h: string[] = [];
          const raw = answer.rawHeaders;
          for (let i = 0; i + 1 < raw.length; i += 2) {
            const n = raw[i]!.toLowerCase();
            if (n !== 'connection' && n !== 'keep-alive') h.push(n, raw[i + 1]!);
          }
          res.writeHead(answer.statusCode ?? 502, h);
          answer.pipe(res);
        },
      );
      up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
      up.end();
      return;
    }
    const withHeaders = v === 'dispatch+headers';
    const headers = withHeaders
      ? upstreamHeaders(req.headers, {
          identity: IDENTITY,
          presented: { key: 'k', header: 'authorization' },
          api: 'devices.location',
          eventId: `0190a1b2-c3d4-7e5f-8a9b-${String(++seq).padStart(12, '0')}`,
          clientIp: req.socket.remoteAddress ?? '',
        })
      : ['x-forwarded-for', req.socket.remoteAddress ?? ''];
    const own = withHeaders ? { ...OWN, 'x-meter-event-id': String(seq) } : undefined;
    if (v === 'dispatch+close') res.on('close', () => void 0);
    pool.dispatch({ path: req.url ?? '/', method: (req.method ?? 'GET') as Dispatcher.HttpMethod, headers }, new PlainRelay(res, own));
  };
  const server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 66_000 }, handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      agent.destroy();
      await pool.close();
    },
  };
}

async function side(v: Variant): Promise<void> {
  const up = await startUpstream();
  const p = await startVariant(v, up.url);
  console.log(JSON.stringify({ url: p.url }));
  await answerCpuRequests(() => ({ mainUs: mainThreadCpuUs() }));
  await p.close();
  up.proc.kill('SIGTERM');
  process.exit(0);
}

interface Run {
  cpu: number;
  main: number;
  p99: number;
}

async function once(v: Variant, rate: number, seconds: number): Promise<Run> {
  const s = spawnSide(['--side', v]);
  try {
    const { url } = await s.next<{ url: string }>();
    const r = await cpuPerCallAtRate<{ cpuUs: number; mainUs: number }>(s, { url: url + PATH, headers: CLIENT_HEADERS }, { rate, seconds, name: v });
    const calls = (r.after.cpuUs - r.before.cpuUs) / r.cpuPerCall;
    return { cpu: r.cpuPerCall, main: (r.after.mainUs - r.before.mainUs) / calls, p99: r.p99 };
  } finally {
    await s.stop();
  }
}

async function main(): Promise<void> {
  const [roundsArg, rateArg, secondsArg, only] = process.argv.slice(2);
  const rounds = Number(roundsArg ?? 4);
  const rate = Number(rateArg ?? 5000);
  const seconds = Number(secondsArg ?? 8);
  const variants = (only ? only.split(',') : [...VARIANTS]) as Variant[];
  for (const v of variants) if (!VARIANTS.includes(v)) throw new Error(`unknown variant ${v} (known: ${VARIANTS.join(', ')})`);
  const runs = new Map<Variant, Run[]>(variants.map((v) => [v, []]));
  for (let i = 0; i < rounds; i++) {
    // Rotate the order each round, so no variant always runs first on a warming box.
    const order = variants.map((_, k) => variants[(k + i) % variants.length]!);
    const line: string[] = [];
    for (const v of order) {
      const r = await once(v, rate, seconds);
      runs.get(v)!.push(r);
      line.push(`${v} ${fmt(r.cpu, 1)} (main ${fmt(r.main, 1)})`);
    }
    console.log(`round ${i + 1}: ${line.join(', ')} µs/call`);
  }
  const base = median(runs.get(variants[0]!)!.map((r) => r.cpu));
  console.log(`\nCPU µs per call at ${fmt(rate)} req/s, ${seconds} s each, median of ${rounds} rounds (x = ${variants[0]} ÷ variant):`);
  for (const v of variants) {
    const xs = runs.get(v)!;
    const cpu = median(xs.map((r) => r.cpu));
    console.log(`  ${v.padEnd(17)} ${fmt(cpu, 1)} µs (main thread ${fmt(median(xs.map((r) => r.main)), 1)}), ${fmt(base / cpu, 2)}x`);
  }
}

if (process.argv[2] === '--side') await side(process.argv[3] as Variant);
else await main();
