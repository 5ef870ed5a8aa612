/**
 * Calls answered 502 because the upstream closed a kept-alive connection as the call went out.
 * Two gateway builds take turns (A, B, A, B, ...) in front of one upstream that closes each
 * connection idle for `idleMs` without naming that timeout in a Keep-Alive header, as uvicorn,
 * gunicorn and Go's net/http do (a server that names it, as Node's does, lets undici retire the
 * connection first). Calls arrive open-loop at random (exponential gaps, mean `idleMs`), each on
 * the bench client's one kept-alive connection, so the gateway's connection to the upstream is
 * idle past `idleMs` about a third of the time. The short timeout only packs many idle closes into
 * a run: the race at each close is the same at uvicorn's 5 s.
 *
 *   node dist/bench/upstream-idle-close.js <dist of A> <dist of B> [runs=3] [calls=3000] [idleMs=20]
 *
 * Prints per run and side the answers by status and the gateway's upstreamRetries.
 */
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Pool } from 'undici';
import { benchWorkDir } from './lib.js';

const [a = 'dist', b = 'dist', runsArg = '3', callsArg = '3000', idleArg = '20'] = process.argv.slice(2);
const runs = Number(runsArg);
const calls = Number(callsArg);
const idleMs = Number(idleArg);

/** The upstream: answers every request, closes a connection idle for idleMs, says nothing of it. */
async function startUpstream(): Promise<{ url: string; close(): Promise<void>; closes(): number }> {
  let closes = 0;
  const server = createServer((s) => {
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        closes++;
        s.destroy();
      }, idleMs);
    };
    arm();
    s.on('error', () => {});
    s.on('close', () => clearTimeout(timer));
    s.on('data', (chunk: Buffer) => {
      arm();
      const requests = chunk.toString('latin1').split(' HTTP/1.1\r\n').length - 1;
      for (let i = 0; i < requests; i++) s.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())), closes: () => closes };
}

interface Result {
  statuses: Record<string, number>;
  retries: number;
  upstreamCloses: number;
}

async function runSide(dist: string, upstream: Awaited<ReturnType<typeof startUpstream>>): Promise<Result> {
  const { startMeter } = await import(resolve(dist, 'bench/gateway.js'));
  const workDir = mkdtempSync(join(benchWorkDir(), 'idle-close-'));
  const side = await startMeter('idle', { smoke: false, runs: 1, workDir, log: () => {} }, upstream.url, {});
  const client = new Pool(side.url, { connections: 1 });
  const statuses: Record<string, number> = {};
  const closesBefore = upstream.closes();
  const inFlight: Promise<void>[] = [];
  let next = performance.now();
  for (let i = 0; i < calls; i++) {
    next += -Math.log(1 - Math.random()) * idleMs;
    const wait = next - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(
      client.request({ path: '/v1/devices/d1/location', method: 'GET', headers: side.headers }).then(
        async (r) => {
          await r.body.text();
          statuses[r.statusCode] = (statuses[r.statusCode] ?? 0) + 1;
        },
        (e: Error) => {
          statuses[e.message] = (statuses[e.message] ?? 0) + 1;
        },
      ),
    );
  }
  await Promise.all(inFlight);
  const retries = side.stats?.().upstreamRetries ?? -1;
  await client.close();
  await side.close();
  rmSync(workDir, { recursive: true, force: true });
  return { statuses, retries, upstreamCloses: upstream.closes() - closesBefore };
}

const upstream = await startUpstream();
console.log(`upstream closes connections idle ${idleMs} ms (no Keep-Alive header); ${calls} calls per run, exponential gaps of mean ${idleMs} ms`);
for (let run = 1; run <= runs; run++) {
  for (const [name, dist] of [
    ['A', a],
    ['B', b],
  ] as const) {
    const r = await runSide(dist, upstream);
    const bad = Object.entries(r.statuses)
      .filter(([s]) => s !== '200')
      .reduce((n, [, c]) => n + c, 0);
    console.log(
      `run ${run} ${name} (${dist}): ${JSON.stringify(r.statuses)}; not 200: ${bad} (${((100 * bad) / calls).toFixed(2)}%); upstream idle closes ${r.upstreamCloses}; gateway upstreamRetries ${r.retries < 0 ? 'n/a' : r.retries}`,
    );
  }
}
await upstream.close();
