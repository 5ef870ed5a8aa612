/**
 * `meter gateway --workers 2` in embedded mode, as a user runs it (the CLI, real PGlite, the real
 * file log, a real upstream): the primary holds the one set of rate-limit buckets, so a plan's
 * burst is exact across workers; a worker killed with -9 under traffic is replaced, and in strict
 * durability every answered call has exactly one event in the log; the admin listener reports
 * both workers.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { createKey } from '../../src/gateway/keys.js';
import { FileLog } from '../../src/log/file-log.js';
import { decodeEvent } from '../../src/events/usage-event.js';
import { assetPath } from '../../src/config/assets.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';

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
    // Both workers took part (the primary hands connections out round-robin).
    await until('both workers to report requests', async () => (await workers()).every((w) => (w.gateway?.stats?.requests ?? 0) > 0), 30_000, 100);
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
