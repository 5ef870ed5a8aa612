/**
 * How worker processes share one port, measured on a trivial HTTP server (so only the
 * distribution differs): node:cluster round-robin (the primary accepts and passes each
 * connection to a worker; `meter gateway --workers`'s fallback) vs `reusePort` (Node >= 22.12:
 * each worker binds its own socket on the port, the kernel spreads connections; what
 * `meter gateway --workers` uses where the platform has it). Both sides,
 * alternating; CPU per call counts the primary and the workers (from /proc).
 *
 *   <node 24> dist/bench/gateway-listen.js [rounds=3] [seconds=10] [connections=64] [workers=2]
 */
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { createServer as netServer } from 'node:net';
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { fmt, load, median, treeCpuUs } from './lib.js';

const body = Buffer.from('{"deviceId":"d1","lat":37.5665,"lon":126.978}');

async function serve(mode: string, port: number, workers: number): Promise<void> {
  if (cluster.isPrimary) {
    let up = 0;
    // A worker that binds its own socket (exclusive) emits no cluster 'listening': it says so itself.
    for (let i = 0; i < workers; i++) cluster.fork().on('message', (m) => m === 'listening' && ++up === workers && console.log(`listening ${port}`));
    process.on('SIGTERM', () => {
      for (const w of Object.values(cluster.workers ?? {})) w?.kill();
      process.exit(0);
    });
    return;
  }
  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
  // exclusive: the worker binds the socket itself instead of asking the primary for a handle.
  server.once('listening', () => process.send?.('listening'));
  if (mode === 'reuseport') server.listen({ port, host: '127.0.0.1', reusePort: true, exclusive: true } as Parameters<typeof server.listen>[0]);
  else server.listen(port, '127.0.0.1');
}

async function freePort(): Promise<number> {
  const s = netServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function main(): Promise<void> {
  const [rounds, seconds, connections, workers] = [3, 10, 64, 2].map((d, i) => Number(process.argv[2 + i] ?? d)) as [number, number, number, number];
  const res: Record<string, { rps: number; cpu: number }[]> = { cluster: [], reuseport: [] };
  const load0 = loadavg()[0] ?? 0;
  for (let r = 0; r < rounds; r++) {
    for (const mode of r % 2 ? ['reuseport', 'cluster'] : ['cluster', 'reuseport']) {
      const port = await freePort();
      const p = spawn(process.execPath, [process.argv[1] as string, '--serve', mode, String(port), String(workers)], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((ok) => p.stdout!.on('data', (b: Buffer) => b.toString().includes('listening') && ok()));
      const url = `http://127.0.0.1:${port}/`;
      await load(url, { connections, seconds: 2 });
      const c0 = treeCpuUs(p.pid as number);
      const l = await load(url, { connections, seconds });
      const c1 = treeCpuUs(p.pid as number);
      (res[mode] as { rps: number; cpu: number }[]).push({ rps: l.rps, cpu: (c1 - c0) / l.total });
      console.error(`round ${r + 1} ${mode}: ${fmt(l.rps)} req/s, ${fmt((c1 - c0) / l.total, 1)} µs CPU/call`);
      p.kill('SIGTERM');
      await new Promise((ok) => p.once('exit', ok));
    }
  }
  const m = (k: string, f: (x: { rps: number; cpu: number }) => number) => median((res[k] as { rps: number; cpu: number }[]).map(f));
  console.log(
    JSON.stringify(
      {
        node: process.version,
        workers,
        rounds,
        seconds,
        connections,
        loadavgStart: Number(load0.toFixed(1)),
        loadavgEnd: Number((loadavg()[0] ?? 0).toFixed(1)),
        cluster: { rps: Math.round(m('cluster', (x) => x.rps)), cpuPerCallUs: Number(m('cluster', (x) => x.cpu).toFixed(1)) },
        reuseport: { rps: Math.round(m('reuseport', (x) => x.rps)), cpuPerCallUs: Number(m('reuseport', (x) => x.cpu).toFixed(1)) },
        samples: res,
      },
      null,
      2,
    ),
  );
}

if (process.argv[2] === '--serve') void serve(process.argv[3] as string, Number(process.argv[4]), Number(process.argv[5]));
else await main();
