/**
 * Misbehaving HTTP clients on raw sockets, for the fairness tests and the abuse suite: slow
 * request bodies (a Content-Length, then one byte every so often), slow headers, and a timer
 * of another client's calls (latency percentiles).
 */
import { connect, type Socket } from 'node:net';
import { request } from 'undici';

export interface SlowResult {
  /** Status of the answer (0: the connection closed without one). */
  status: number;
  /** Milliseconds from connecting to the answer (or close). */
  ms: number;
}

export interface SlowClients {
  /** One per client, settled when it gets an answer or its connection closes. */
  results: Promise<SlowResult>[];
  /** Clients that have an answer or a closed connection so far. */
  done(): number;
  stop(): void;
}

function answerOf(s: Socket, t0: number): Promise<SlowResult> {
  return new Promise((resolve) => {
    let buf = '';
    let settled = false;
    const settle = (status: number) => {
      if (settled) return;
      settled = true;
      resolve({ status, ms: performance.now() - t0 });
    };
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      if (m) settle(Number(m[1]));
    });
    s.on('close', () => settle(0));
    s.on('error', () => settle(0));
  });
}

function fleet(
  count: number,
  port: number,
  head: (i: number) => string,
  trickle: (s: Socket, tick: number) => boolean | undefined,
  everyMs: number,
): SlowClients {
  const sockets: Socket[] = [];
  let finished = 0;
  const results = Array.from({ length: count }, (_, i) => {
    const t0 = performance.now();
    const s = connect(port, '127.0.0.1');
    sockets.push(s);
    s.setNoDelay(true);
    s.on('connect', () => s.write(head(i)));
    return answerOf(s, t0).then((r) => {
      finished++;
      s.destroy();
      return r;
    });
  });
  let tick = 0;
  const timer = setInterval(() => {
    tick++;
    for (const s of sockets) if (!s.destroyed && s.writable) trickle(s, tick);
  }, everyMs);
  return {
    results,
    done: () => finished,
    stop() {
      clearInterval(timer);
      for (const s of sockets) s.destroy();
    },
  };
}

/** `count` POSTs that declare `contentLength` bytes and send one byte every `everyMs`. */
export function slowBodies(o: {
  port: number;
  key: string | ((i: number) => string);
  count: number;
  contentLength?: number;
  everyMs?: number;
  path?: string;
}): SlowClients {
  const keyOf = typeof o.key === 'string' ? () => o.key as string : o.key;
  const len = o.contentLength ?? 100_000;
  return fleet(
    o.count,
    o.port,
    (i) =>
      `POST ${o.path ?? '/v1/locations'} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${keyOf(i)}\r\nContent-Type: application/json\r\nContent-Length: ${len}\r\n\r\n`,
    (s) => {
      s.write('x');
    },
    o.everyMs ?? 2000,
  );
}

/** `count` requests whose header lines arrive one byte every `everyMs`, never finished. */
export function slowHeaders(o: { port: number; count: number; everyMs?: number }): SlowClients {
  return fleet(
    o.count,
    o.port,
    () => 'GET /v1/devices/d1/location HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ',
    (s) => void s.write('a'),
    o.everyMs ?? 500,
  );
}

export interface Latencies {
  n: number;
  p50: number;
  p99: number;
  max: number;
  /** Calls that did not get `expect` (or failed). */
  bad: number;
}

/** `n` calls one after another with `key`; their latencies in ms. */
export async function timeCalls(url: string, key: string, n: number, o: { path?: string; expect?: number; timeoutMs?: number } = {}): Promise<Latencies> {
  const ms: number[] = [];
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    try {
      const r = await request(url + (o.path ?? '/v1/devices/d1/location'), {
        headers: { authorization: `Bearer ${key}` },
        headersTimeout: o.timeoutMs ?? 5000,
        bodyTimeout: o.timeoutMs ?? 5000,
      });
      await r.body.text();
      if (r.statusCode !== (o.expect ?? 200)) bad++;
    } catch {
      bad++;
    }
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  const at = (p: number) => ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))]!;
  return { n, p50: at(50), p99: at(99), max: ms[ms.length - 1]!, bad };
}

export const fmt = (l: Latencies) =>
  `p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms, max ${l.max.toFixed(0)} ms${l.bad ? `, ${l.bad}/${l.n} failed` : ''}`;
