/**
 * Open-loop HTTP load at a fixed rate, as its own process (so it never shares an event loop
 * with the server it measures): request i is due at start + i / rate whatever happened to the
 * ones before it, and its latency is counted from that due time, not from when a connection
 * was free to send it (so a stalled server shows in the p99 instead of slowing the load down:
 * no coordinated omission). Keep-alive connections, at most `connections` at once; a request
 * due while all are busy waits for one, and that wait is part of its latency.
 *
 *   node dist/bench/billing-open-loop.js <url> <rate/s> <seconds> <connections> [header=value ...]
 *
 * Prints one JSON line: { due, done, bad, p50, p99, max, seconds, cpuMs } (latencies in ms;
 * cpuMs: this process's own CPU).
 */
import { Agent, request } from 'node:http';

interface Result {
  due: number;
  done: number;
  bad: number;
  p50: number;
  p99: number;
  max: number;
  seconds: number;
  cpuMs: number;
}

export function openLoop(url: string, rate: number, seconds: number, connections: number, headers: Record<string, string>): Promise<Result> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const total = Math.round(rate * seconds);
  const lat: number[] = [];
  let bad = 0;
  let sent = 0;
  let finished = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now() + 50;
  return new Promise((resolve) => {
    const done = () => {
      agent.destroy();
      const s = [...lat].sort((a, b) => a - b);
      const at = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] : NaN);
      const c = process.cpuUsage(cpu0);
      resolve({ due: total, done: lat.length, bad, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] ?? NaN, seconds: (performance.now() - t0) / 1000, cpuMs: (c.user + c.system) / 1000 });
    };
    const one = (dueAt: number) => {
      const req = request(url, { agent, headers }, (res) => {
        res.on('data', () => {});
        res.on('end', () => {
          if (res.statusCode !== 200) bad++;
          lat.push(performance.now() - dueAt);
          if (++finished === total) done();
        });
      });
      req.on('error', () => {
        bad++;
        lat.push(performance.now() - dueAt);
        if (++finished === total) done();
      });
      req.end();
    };
    // Send everything due by now, then look again on the next turn (a timer of 1 ms: Node's
    // finest); requests are stamped with their due time, so the tick's lateness is counted.
    const tick = () => {
      const now = performance.now();
      while (sent < total && t0 + (sent * 1000) / rate <= now) one(t0 + (sent++ * 1000) / rate);
      if (sent < total) setTimeout(tick, 1);
    };
    setTimeout(tick, 50);
  });
}

if (process.argv[1]?.endsWith('billing-open-loop.js')) {
  const [url, rate, seconds, connections, ...hs] = process.argv.slice(2);
  if (!url || !(Number(rate) > 0) || !(Number(seconds) > 0) || !(Number(connections) >= 1)) {
    console.error('usage: node dist/bench/billing-open-loop.js <url> <rate/s> <seconds> <connections> [header=value ...]');
    process.exit(2);
  }
  const headers = Object.fromEntries(hs.map((h) => [h.slice(0, h.indexOf('=')), h.slice(h.indexOf('=') + 1)]));
  openLoop(url, Number(rate), Number(seconds), Number(connections), headers).then((r) => console.log(JSON.stringify(r)));
}
