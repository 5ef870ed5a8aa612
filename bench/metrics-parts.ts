/**
 * What the gateway's metrics cost per call, timed alone (as bench/gateway-parts.ts does for
 * meter's other per-call functions): GatewayRecorder.begin + proxied (an allowed call) and
 * begin + answered (a 429), on a real MeterMetrics; and one /metrics render with the gateway's
 * series. Fastest of 15 rounds of 100,000 calls: on a shared box the fastest round is the one
 * least disturbed by other processes, so it estimates the cost itself best.
 *
 *   node dist/bench/metrics-parts.js
 */
import type { IncomingMessage } from 'node:http';
import { MeterMetrics } from '../src/observability/metrics.js';
import { GatewayRecorder } from '../src/observability/gateway-recorder.js';
import { loadRoutes } from '../src/gateway/routes.js';
import { assetPath } from '../src/config/assets.js';
import { fmt, median } from './lib.js';

const fastest = (xs: number[]) => Math.min(...xs);

const N = 100_000;
const metrics = new MeterMetrics('gateway');
const rec = new GatewayRecorder(metrics, loadRoutes(assetPath('fixtures/routes.json')));
const customers = Array.from({ length: 50 }, (_, i) => `customer-${i}`);
const reqs = Array.from({ length: 64 }, (_, i) => ({ method: 'GET', url: `/v1/devices/d${i}/location` }) as unknown as IncomingMessage);
const body = { error: 'rate_limited', message: 'x' };
const headers = { 'x-meter-event-id': '01a243d2-123a-7000-abf9-96a7c1105593' };

function time(fn: (i: number) => void): number {
  const t0 = performance.now();
  for (let i = 0; i < N; i++) fn(i);
  return ((performance.now() - t0) * 1e6) / N; // ns per call
}

const proxied: number[] = [];
const refused: number[] = [];
const baseline: number[] = [];
for (let round = 0; round < 15; round++) {
  baseline.push(time((i) => void (performance.now() + i)));
  proxied.push(
    time((i) => {
      const req = reqs[i & 63]!;
      const t0 = performance.now();
      rec.begin(req, t0);
      rec.proxied('locations.latest', customers[i % 50]!, 200, t0, t0 + 0.05, headers['x-meter-event-id']);
    }),
  );
  refused.push(
    time((i) => {
      const req = reqs[i & 63]!;
      rec.begin(req, performance.now());
      rec.answered(req, 429, body, headers);
    }),
  );
}
const renders: number[] = [];
const cpu: number[] = [];
for (let i = 0; i < 20; i++) {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await metrics.text();
  const c = process.cpuUsage(c0);
  renders.push(performance.now() - t0);
  cpu.push((c.user + c.system) / 1000);
}
console.log(`recorder, allowed call (begin + proxied): ${fmt(fastest(proxied), 0)} ns per call (loop + performance.now alone ${fmt(fastest(baseline), 0)} ns)`);
console.log(`recorder, gateway-made answer (begin + answered, route matched again): ${fmt(fastest(refused), 0)} ns per call`);
console.log(
  `/metrics render (${(await metrics.text()).split('\n').length} lines, gateway recorder and default metrics; no backend probes): ${fmt(fastest(renders), 2)} ms wall, ${fmt(fastest(cpu), 2)} ms CPU (fastest of 20; median ${fmt(median(cpu), 2)} ms CPU)`,
);
