/**
 * Open-loop HTTP load at a fixed rate, as its own process (so it never shares an event loop
 * with the server it measures): request i is due at start + i / rate whatever happened to the
 * ones before it, and its latency is counted from that due time, not from when a connection
 * was free to send it (so a stalled server shows in the p99 instead of slowing the load down:
 * no coordinated omission). Keep-alive connections, at most `connections` at once; a request
 * due while all are busy waits for one, and that wait is part of its latency.
 *
 * HTTP/1.1 on raw sockets, the request bytes made once and the answers only counted (status
 * line, content-length, then bytes), so the generator's own CPU per request stays small beside
 * the server's (autocannon does the same); node:http's client costs several times more and on
 * a busy box fell behind the rate it was asked for.
 *
 *   node dist/bench/billing-open-loop.js <url> <rate/s> <seconds> <connections> [header=value ...]
 *
 * A 304 (a conditional request answered with no body) counts as answered.
 * Prints one JSON line: { due, done, bad, p50, p99, max, seconds, cpuMs, startedAt, windows }
 * (latencies in ms; cpuMs: this process's own CPU; windows: the slowest answer of the requests
 * due in each 100 ms from startedAt, epoch ms, for bench/gateway-stall.ts).
 */
import { execFile } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { pinnedCommand } from './lib.js';

export interface OpenLoopResult {
  due: number;
  done: number;
  bad: number;
  p50: number;
  p99: number;
  max: number;
  seconds: number;
  cpuMs: number;
  /** Epoch ms when the first request was due. */
  startedAt?: number;
  /** Slowest latency (ms) of the requests due in each 100 ms window from startedAt. */
  windows?: number[];
}

const HEADER_END = Buffer.from('\r\n\r\n');

interface Conn {
  socket: Socket;
  /** Due time of the request on this connection; null: free. */
  dueAt: number | null;
  /** Header bytes seen so far (until the blank line). */
  head: Buffer | null;
  /** Body bytes still to come; -1 while the header is not complete. */
  left: number;
  status: number;
}

export function openLoop(url: string, rate: number, seconds: number, connections: number, headers: Record<string, string>): Promise<OpenLoopResult> {
  const u = new URL(url);
  const request = Buffer.from(
    `GET ${u.pathname}${u.search} HTTP/1.1\r\nhost: ${u.host}\r\n${Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')}\r\n`,
  );
  const total = Math.round(rate * seconds);
  const lat: number[] = [];
  const windows = new Array<number>(Math.ceil(seconds * 10)).fill(0);
  let bad = 0;
  let sent = 0;
  const waiting: number[] = [];
  let waitingAt = 0;
  const free: Conn[] = [];
  const conns: Conn[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now() + 200;
  let finish!: (r: OpenLoopResult) => void;
  const result = new Promise<OpenLoopResult>((r) => (finish = r));

  const finished = (c: Conn, ok: boolean) => {
    if (!ok) bad++;
    const l = performance.now() - c.dueAt!;
    lat.push(l);
    const w = Math.floor((c.dueAt! - t0) / 100);
    if (l > (windows[w] ?? Infinity)) windows[w] = l;
    c.dueAt = null;
    c.head = null;
    c.left = -1;
    if (lat.length === total) return done();
    if (waitingAt < waiting.length) send(c, waiting[waitingAt++]!);
    else free.push(c);
  };
  const send = (c: Conn, dueAt: number) => {
    c.dueAt = dueAt;
    c.socket.write(request);
  };
  const onData = (c: Conn, chunk: Buffer) => {
    if (c.dueAt === null) return;
    let body = chunk;
    if (c.left < 0) {
      const head = c.head ? Buffer.concat([c.head, chunk]) : chunk;
      const end = head.indexOf(HEADER_END);
      if (end < 0) return void (c.head = head);
      const text = head.subarray(0, end).toString('latin1');
      c.status = Number(text.slice(9, 12));
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(text);
      c.left = m ? Number(m[1]) : 0;
      body = head.subarray(end + 4);
    }
    c.left -= body.length;
    if (c.left <= 0) finished(c, c.status === 200 || c.status === 304);
  };
  const open = (): Conn => {
    const c: Conn = { socket: connect(Number(u.port), u.hostname), dueAt: null, head: null, left: -1, status: 0 };
    c.socket.setNoDelay(true);
    c.socket.on('data', (chunk) => onData(c, chunk));
    c.socket.on('error', () => {});
    c.socket.on('close', () => {
      // A connection lost: a request on it failed; a new connection takes its place.
      const i = conns.indexOf(c);
      if (i < 0) return;
      const f = free.indexOf(c);
      if (f >= 0) free.splice(f, 1);
      const n = (conns[i] = open());
      if (c.dueAt !== null) {
        n.dueAt = c.dueAt;
        finished(n, false);
      } else free.push(n);
    });
    return c;
  };
  for (let i = 0; i < connections; i++) free.push((conns[i] = open()));

  function done() {
    for (const c of conns) {
      c.socket.removeAllListeners('close');
      c.socket.destroy();
    }
    const s = [...lat].sort((a, b) => a - b);
    const at = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] ?? NaN;
    const c = process.cpuUsage(cpu0);
    finish({
      due: total,
      done: lat.length,
      bad,
      p50: at(0.5),
      p99: at(0.99),
      max: s[s.length - 1] ?? NaN,
      seconds: (performance.now() - t0) / 1000,
      cpuMs: (c.user + c.system) / 1000,
      startedAt: performance.timeOrigin + t0,
      windows,
    });
  }
  // Send everything due by now, then look again on the next turn (a 1 ms timer: Node's finest);
  // requests carry their due time, so the tick's own lateness is counted in their latency.
  const tick = () => {
    const now = performance.now();
    while (sent < total && t0 + (sent * 1000) / rate <= now) {
      const dueAt = t0 + (sent++ * 1000) / rate;
      const c = free.pop();
      if (c) send(c, dueAt);
      else waiting.push(dueAt);
    }
    if (sent < total) setTimeout(tick, 1);
  };
  setTimeout(tick, 200);
  // Bounded: whatever is unanswered 60 s after the last request was due is left out (and counted as not done).
  setTimeout(() => lat.length < total && done(), seconds * 1000 + 60_000).unref();
  return result;
}

/** The same load from its own process (what the billing and gateway stages use). */
export function openLoopProcess(
  url: string,
  rate: number,
  seconds: number,
  connections: number,
  headers: Record<string, string> = {},
): Promise<OpenLoopResult> {
  const args = [
    fileURLToPath(import.meta.url),
    url,
    String(Math.round(rate)),
    String(seconds),
    String(connections),
    ...Object.entries(headers).map(([k, v]) => `${k}=${v}`),
  ];
  return new Promise((resolve, reject) =>
    execFile(...pinnedCommand('load', process.execPath, args), { timeout: (seconds + 120) * 1000 }, (err, out, errOut) =>
      err ? reject(new Error(`open-loop load failed: ${err.message}\n${errOut}`)) : resolve(JSON.parse(out) as OpenLoopResult),
    ),
  );
}

if (process.argv[1]?.endsWith('billing-open-loop.js')) {
  const [url, rate, seconds, connections, ...hs] = process.argv.slice(2);
  if (!url || !(Number(rate) > 0) || !(Number(seconds) > 0) || !(Number(connections) >= 1)) {
    console.error('usage: node dist/bench/billing-open-loop.js <url> <rate/s> <seconds> <connections> [header=value ...]');
    process.exit(2);
  }
  const headers = Object.fromEntries(hs.map((h) => [h.slice(0, h.indexOf('=')), h.slice(h.indexOf('=') + 1)]));
  openLoop(url, Number(rate), Number(seconds), Number(connections), headers).then((r) => {
    console.log(JSON.stringify(r));
    process.exit(0);
  });
}
