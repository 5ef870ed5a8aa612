/**
 * Closed-loop HTTP load with a new TCP connection per request, for what accepting connections
 * costs (keep-alive load hides it). autocannon 9's `-D 1` (reconnect after every request) drops
 * each response it reconnects after from its counts, so it measures nothing here. Each of
 * `connections` loops connects, writes one GET with `Connection: close`, reads the answer to the
 * server's close and starts again. Run as its own process by bench/lib.ts `load()`; prints one
 * JSON line: requests, non-2xx + errors, latency p50/p99 (ms).
 *
 *   node dist/bench/churn-load.js URL CONNECTIONS SECONDS [HEADERS_JSON]
 */
import { connect } from 'node:net';
import { percentile } from './lib.js';

const [urlArg, connArg, secArg, headersArg] = process.argv.slice(2);
const url = new URL(urlArg as string);
const port = Number(url.port || 80);
const headers = JSON.parse(headersArg ?? '{}') as Record<string, string>;
const request = Buffer.from(
  `GET ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}connection: close\r\n\r\n`,
);
const until = Date.now() + Number(secArg) * 1000;
const latencies: number[] = [];
let bad = 0;

function once(): Promise<void> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let head = '';
    const s = connect(port, url.hostname, () => s.write(request));
    s.on('data', (b: Buffer) => {
      if (head.length < 12) head += b.toString('latin1', 0, Math.min(b.length, 12));
    });
    const done = (ok: boolean) => {
      s.destroy();
      // "HTTP/1.1 200": the status is characters 9-11.
      if (ok && head.charCodeAt(9) === 50) latencies.push(performance.now() - t0);
      else bad++;
      resolve();
    };
    s.once('end', () => done(true));
    s.once('error', () => done(false));
  });
}

async function loop(): Promise<void> {
  while (Date.now() < until) await once();
}

const t0 = performance.now();
await Promise.all(Array.from({ length: Number(connArg) }, loop));
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(
  `${JSON.stringify({
    total: latencies.length + bad,
    rps: (latencies.length + bad) / seconds,
    bad,
    p50: latencies.length ? Number(percentile(latencies, 50).toFixed(2)) : 0,
    p99: latencies.length ? Number(percentile(latencies, 99).toFixed(2)) : 0,
  })}\n`,
);
