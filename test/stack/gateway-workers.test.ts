/**
 * `meter gateway --workers 2` in embedded mode, as a user runs it (the CLI, real PGlite, the real
 * file log, a real upstream): the primary holds the one set of rate-limit buckets, so a plan's
 * burst is exact across workers; each worker listens on the port itself (SO_REUSEPORT) and the
 * kernel spreads new connections over them; a worker killed with -9 is replaced on the same port
 * while the other goes on answering, and under traffic in strict durability every answered call
 * has exactly one event in the log; the admin listener reports both workers.
 */
import { describe, it, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, get as httpGet, type Server } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { createKey } from '../../src/gateway/keys.js';
import { FileLog } from '../../src/log/file-log.js';
import { damagedEmbeddedLog } from '../support/damaged-log.js';
import { decodeEvent } from '../../src/events/usage-event.js';
import { assetPath } from '../../src/config/assets.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';
import { listeningSockets, pidsListeningOn, socketsHeldBy } from '../support/net.js';
import { cliFolder, meterChild } from '../support/cli-run.js';

const PATH = '/v1/devices/d1/location';

interface WorkerStatus {
  worker: number;
  pid: number;
  restarts: number;
  listening: boolean;
  gateway: { stats?: { requests: number } } | null;
}

describe('gateway workers (embedded, CLI)', () => {
  let dir: string;
  let upstream: Server;
  let gw: ChildProcess;
  let url = '';
  let admin = '';
  let proKey = '';
  let trickleKey = '';
  let output = '';

  before(async () => {
    dir = tempDir('meter-gw-workers-');
    // A plan that refills a token every ~17 minutes: its burst is all a test can get, exactly.
    const catalog = JSON.parse(readFileSync(assetPath('fixtures/catalog.json'), 'utf8'));
    catalog.plans.trickle = { ...catalog.plans.free, rateLimit: { ratePerSec: 0.001, burst: 10 } };
    delete catalog.plans.trickle.quota;
    writeFileSync(join(dir, 'catalog.json'), JSON.stringify(catalog));
    const db = await PgliteWarehouse.open(join(dir, 'pglite'));
    await migrate(db);
    proKey = (await createKey(db, { customer: 'acme', plan: 'pro' })).key;
    trickleKey = (await createKey(db, { customer: 'slowco', plan: 'trickle' })).key;
    await db.close();
    upstream = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const upPort = (upstream.address() as { port: number }).port;
    gw = spawn(
      process.execPath,
      [assetPath('bin/meter.js'), 'gateway', '--workers', '2', '--upstream', `http://127.0.0.1:${upPort}`, '--gateway-port', '0', '--admin-port', '0'],
      {
        env: { ...process.env, METER_DATA_DIR: dir, METER_CATALOG_FILE: join(dir, 'catalog.json'), METER_DURABILITY: 'strict', METER_LOG_FORMAT: 'text' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const onOut = (b: Buffer) => (output += b.toString());
    gw.stdout!.on('data', onOut);
    gw.stderr!.on('data', onOut);
    await until(
      () => `the gateway to listen; output so far:\n${output}`,
      () => {
        const g = /gateway on (http:\/\/\S+)/.exec(output);
        const a = /admin listener on (http:\/\/\S+)/.exec(output);
        if (g && a) [url, admin] = [g[1] as string, a[1] as string];
        return Boolean(g && a);
      },
      300_000,
      100,
    );
  });

  after(async () => {
    if (gw.exitCode === null) {
      gw.kill('SIGTERM');
      await new Promise((r) => gw.once('exit', r));
    }
    await new Promise<void>((r) => upstream.close(() => r()));
  });

  async function workers(): Promise<WorkerStatus[]> {
    const res = await request(`${admin}/status`);
    const body = (await res.body.json()) as { gateway: { workers: WorkerStatus[] } };
    return body.gateway.workers;
  }

  async function listenMode(): Promise<string> {
    const res = await request(`${admin}/status`);
    return ((await res.body.json()) as { gateway: { listen: string } }).gateway.listen;
  }

  /** meter_gateway_requests_total per worker, asked of each worker now (not the 1 s status). */
  async function answeredBy(): Promise<Map<string, number>> {
    const res = await request(`${admin}/metrics`);
    const out = new Map<string, number>();
    for (const line of (await res.body.text()).split('\n')) {
      const m = /^meter_gateway_requests_total\{.*worker="(\d+)".*\} (\d+)$/.exec(line);
      if (m) out.set(m[1] as string, (out.get(m[1] as string) ?? 0) + Number(m[2]));
    }
    return out;
  }

  /** One call on a connection of its own, closed after the answer: the kernel picks a listener for each. */
  function freshCall(key: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = httpGet(url + PATH, { agent: false, headers: { authorization: `Bearer ${key}`, connection: 'close' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  }

  async function call(key: string): Promise<{ status: number; eventId: string | null }> {
    const res = await request(url + PATH, { headers: { authorization: `Bearer ${key}` } });
    await res.body.text();
    const id = res.headers['x-meter-event-id'];
    return { status: res.statusCode, eventId: typeof id === 'string' ? id : null };
  }

  it('keeps a plan burst exact across workers (one set of buckets, in the primary)', async () => {
    const answers = await Promise.all(Array.from({ length: 40 }, () => call(trickleKey)));
    const ok = answers.filter((a) => a.status === 200).length;
    const limited = answers.filter((a) => a.status === 429).length;
    assert.deepEqual({ ok, limited }, { ok: 10, limited: 30 });
    // Both workers took part (the kernel spreads the connections over their sockets).
    await until('both workers to report requests', async () => (await workers()).every((w) => (w.gateway?.stats?.requests ?? 0) > 0), 30_000, 100);
  });

  it("/readyz on the primary holds each worker's own checks (its spool, its log writes) beside the primary's", async () => {
    const res = await request(`${admin}/readyz`);
    const body = (await res.body.json()) as { status: string; backends: Record<string, string> };
    assert.equal(res.statusCode, 200, JSON.stringify(body));
    for (const name of ['workers', 'spool', 'log-writes', 'warehouse']) assert.equal(body.backends[name], 'ok', `${name} in ${JSON.stringify(body)}`);
  });

  it('each worker listens on the port itself (SO_REUSEPORT); new connections are spread over them', async () => {
    const port = Number(new URL(url).port);
    const ws = await workers();
    const pids = ws.map((w) => w.pid).sort();
    assert.equal(await listenMode(), 'reuseport');
    // Through cluster the primary would hold the one listening socket and the workers none.
    assert.deepEqual(pidsListeningOn(port, [gw.pid as number, ...pids]).sort(), pids, 'the workers hold the listening sockets, the primary none');
    const before = await answeredBy();
    const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    for (let i = 0; i < 40; i++) assert.equal(await freshCall(proKey), 200);
    const after = await until('both workers to count the 40 calls', async () => {
      const m = await answeredBy();
      return sum(m) - sum(before) >= 40 && m;
    });
    const per = ws.map((w) => (after.get(String(w.worker)) ?? 0) - (before.get(String(w.worker)) ?? 0));
    // 40 connections all hashed to one of two sockets: 2 in 2^40.
    assert.ok(
      per.every((n) => n > 0),
      `calls per worker: ${per.join(', ')}`,
    );
  });

  it('a second gateway with workers on the port in use fails with a clear error, and does not join the sockets', async () => {
    const port = new URL(url).port;
    const second = await cliFolder('meter-gw-second-');
    // Joining the first's SO_REUSEPORT sockets would leave it running, sharing the port.
    // Run as an async child: a synchronous one froze this process's event loop for seconds, so
    // undici's idle connection to the admin listener outlived the server's keep-alive unnoticed
    // and the next test's first request met "other side closed" (CI, about 1 run in 40).
    const r = await meterChild(['gateway', '--workers', '2', '--upstream', 'http://127.0.0.1:9', '--gateway-port', port, '--admin-port', '0'], {
      cwd: second.dir,
      env: { HOME: process.env.HOME ?? '/tmp', METER_DATA_DIR: join(second.dir, 'data'), METER_LOG_LEVEL: 'warn' },
      timeoutMs: 60_000,
    });
    assert.notEqual(r.code, 0, r.out + r.err);
    assert.match(r.err, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`));
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace for a port in use');
  });

  it('a worker killed with -9: the other answers every new connection meanwhile; the new one listens on the same port', async () => {
    const port = Number(new URL(url).port);
    const before = await workers();
    const victim = before[1] as WorkerStatus;
    const other = before[0] as WorkerStatus;
    const victimSockets = socketsHeldBy(victim.pid, listeningSockets(port));
    assert.equal(victimSockets.size, 1, `worker ${victim.worker} holds its listening socket`);
    process.kill(victim.pid, 'SIGKILL');
    // Connections queued on the victim's socket when it died are reset with it; from the moment
    // its socket is gone, every new connection must reach the survivor (or the replacement, when
    // it is up before this sees the socket gone: the socket is told apart by its inode).
    await until("the killed worker's socket to close", () => ![...victimSockets].some((i) => listeningSockets(port).has(i)), 30_000, 5);
    let answered = 0;
    const failed: string[] = [];
    let back: WorkerStatus | undefined;
    while (!back) {
      try {
        await freshCall(proKey); // 200, or 429 once the plan's burst is spent: answered either way
        answered++;
      } catch (e) {
        failed.push(`${(e as Error).message} after ${answered} answered`);
      }
      back = (await workers()).find((w) => w.worker === victim.worker && w.listening && w.pid !== victim.pid);
    }
    assert.deepEqual(
      { failed, answeredWhileDown: answered > 0 },
      { failed: [], answeredWhileDown: true },
      `${answered} answered while worker ${victim.worker} was down; the gateway's last output:\n${output.slice(-3000)}`,
    );
    // The restarted worker binds the same port: the gateway's port never changes.
    assert.deepEqual(pidsListeningOn(port, [other.pid, back.pid]).sort(), [other.pid, back.pid].sort());
    const was = (await answeredBy()).get(String(victim.worker)) ?? 0;
    for (let i = 0; i < 40; i++) await freshCall(proKey);
    await until('the restarted worker to answer new connections', async () => ((await answeredBy()).get(String(victim.worker)) ?? 0) > was, 30_000, 100);
  });

  it('replaces a worker killed with -9 under traffic; every answered call has exactly one event', async () => {
    const before = await workers();
    assert.equal(before.length, 2);
    assert.ok(before.every((w) => w.listening && w.pid > 0));
    const victim = before[0] as WorkerStatus;
    const answered: string[] = [];
    let failed = 0;
    let stop = false;
    const client = async () => {
      while (!stop) {
        try {
          const r = await call(proKey);
          if (r.status === 200 && r.eventId) answered.push(r.eventId);
        } catch {
          failed++; // cut by the kill: not answered, so not counted
        }
      }
    };
    const clients = Array.from({ length: 8 }, client);
    await until('some answered calls', () => answered.length >= 50, 60_000, 20);
    process.kill(victim.pid, 'SIGKILL');
    await until(
      async () => `worker ${victim.worker} to be restarted: ${JSON.stringify(await workers())}`,
      async () => (await workers()).some((w) => w.worker === victim.worker && w.restarts === 1 && w.listening && w.pid !== victim.pid),
      120_000,
      100,
    );
    const atRestart = answered.length;
    await until('calls answered after the restart', () => answered.length >= atRestart + 50, 60_000, 20);
    stop = true;
    await Promise.all(clients);
    gw.kill('SIGTERM');
    const code = await new Promise((r) => gw.once('exit', r));
    assert.equal(code, 0, output);

    const log = new FileLog({ dir: join(dir, 'log'), topic: 'usage-events', partitions: 4 });
    const consumer = await log.consumer('workers-test');
    const counts = new Map<string, number>();
    for (const [p, end] of await consumer.endOffsets()) {
      for (const rec of await consumer.readRange(p, 0, end)) {
        const d = decodeEvent(rec.value);
        assert.ok(d.ok);
        if (d.ok) counts.set(d.event.id, (counts.get(d.event.id) ?? 0) + 1);
      }
    }
    await consumer.stop();
    await log.close();
    const missing = answered.filter((id) => !counts.has(id));
    const doubled = answered.filter((id) => (counts.get(id) ?? 0) > 1);
    assert.deepEqual(
      { missing: missing.length, doubled: doubled.length },
      { missing: 0, doubled: 0 },
      `${answered.length} answered, ${failed} cut by the kill`,
    );
  });
});

// Before, /readyz said nothing of it: the gateway's 'log' check reads end offsets, which a
// damaged log still answers, while every event waited in the spool.
for (const workers of ['1', '2']) {
  test(`meter gateway --workers ${workers} on a damaged embedded log: calls are answered, /readyz stays 200 and its log-writes check names the damage`, async () => {
    const dir = tempDir('meter-gw-damaged-');
    await damagedEmbeddedLog(dir);
    const db = await PgliteWarehouse.open(join(dir, 'pglite'));
    await migrate(db);
    const key = (await createKey(db, { customer: 'acme', plan: 'pro' })).key;
    await db.close();
    const upstream = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('{"ok":true}'));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const upPort = (upstream.address() as { port: number }).port;
    const gw = spawn(
      process.execPath,
      [assetPath('bin/meter.js'), 'gateway', '--workers', workers, '--upstream', `http://127.0.0.1:${upPort}`, '--gateway-port', '0', '--admin-port', '0'],
      { env: { ...process.env, METER_DATA_DIR: dir, METER_LOG_FORMAT: 'text' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    gw.stdout!.on('data', (b: Buffer) => (output += b));
    gw.stderr!.on('data', (b: Buffer) => (output += b));
    try {
      const [url, admin] = await until(
        () => `the gateway to listen; output so far:\n${output}`,
        () => {
          const g = /gateway on (http:\/\/\S+)/.exec(output);
          const a = /admin listener on (http:\/\/\S+)/.exec(output);
          return g && a ? [g[1] as string, a[1] as string] : null;
        },
        300_000,
        100,
      );
      const res = await request(url + PATH, { headers: { authorization: `Bearer ${key}` } });
      await res.body.text();
      assert.equal(res.statusCode, 200);
      const ready = await until(
        async () => `/readyz to report the log's refusal; output:\n${output}`,
        async () => {
          const r = await request(`${admin}/readyz`);
          const body = (await r.body.json()) as { status: string; backends: Record<string, string> };
          return /damaged/.test(body.backends['log-writes'] ?? '') && { code: r.statusCode, body };
        },
        60_000,
        200,
      );
      assert.equal(ready.code, 200, 'the gateway still serves: its events wait in the spool');
      assert.match(ready.body.backends['log-writes']!, /the log refuses the gateway's events; \d+ wait in the spool: .*damaged/);
      if (workers === '2') assert.match(ready.body.backends['log-writes']!, /worker \d: /);
    } finally {
      gw.kill('SIGTERM');
      await new Promise((r) => gw.once('exit', r));
      await new Promise<void>((r) => upstream.close(() => r()));
    }
  });
}
