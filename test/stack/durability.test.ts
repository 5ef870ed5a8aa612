/**
 * What the gateway can lose on `kill -9`, measured on real processes: `node bin/meter.js gateway`
 * in a temp data dir (keys made first with `meter keys create`), an upstream run by this test,
 * concurrent traffic, SIGKILL mid-traffic, a restart on the same data dir (which ships whatever
 * the spool holds), then the events in the log are compared with the calls answered 2xx/4xx:
 *   strict   no answered call may be missing
 *   batched  only calls answered in the last eventFlushMs + 2 x spoolAfterMs before the kill may be
 *
 * Also: a resend after an ambiguous failure (the shipper crashed between "sent" and "cursor
 * moved") puts an event in the log twice, and the rollup still bills it once (distinct ids).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createServer, type Server } from 'node:http';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { request, Agent } from 'undici';
import { assetPath } from '../../src/config/assets.js';
import { FileLog } from '../../src/log/file-log.js';
import { KafkaLog } from '../../src/log/kafka-log.js';
import type { UsageLog } from '../../src/log/log.js';
import { decodeEvent, encodeEvent, uuidv7, SCHEMA_VERSION, type UsageEvent } from '../../src/events/usage-event.js';
import { loadConfig } from '../../src/config/config.js';
import { openLake, openLog, openWarehouse } from '../../src/runtime/backends.js';
import { rollupOf, startIngestRole } from '../../src/runtime/roles.js';
import { createLogger, silentLogger } from '../../src/ground/logger.js';
import { GatewayRecorder } from '../../src/observability/gateway-recorder.js';
import { MeterMetrics } from '../../src/observability/metrics.js';
import { Spool, spoolDir } from '../../src/gateway/spool/spool.js';
import { SpoolingProducer } from '../../src/gateway/spool/spooling-producer.js';
import { HOUR_MS, hourStart } from '../../src/lake/layout.js';
import { stackEnv } from '../support/stack.js';
import { startGateway } from '../../src/gateway/server.js';
import { KeyStore, createKey } from '../../src/gateway/keys.js';
import { loadRoutes } from '../../src/gateway/routes.js';
import { MemoryLimiter } from '../../src/limiter/memory-limiter.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { tempDir } from '../support/tmp.js';
import { killGatewayProcs, meterEnv, startGatewayProc } from '../support/gateway-process.js';
import { until } from '../support/until.js';

const run = promisify(execFile);
const METER = assetPath('bin/meter.js');
const dirs: string[] = [];
after(() => {
  killGatewayProcs();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function createKeyCli(env: NodeJS.ProcessEnv, customer: string, plan: string): Promise<string> {
  await run('node', [METER, 'customers', 'create', customer], { env, timeout: 120_000 });
  const { stdout } = await run('node', [METER, 'keys', 'create', '--customer', customer, '--plan', plan, '--json'], { env, timeout: 120_000 });
  return (JSON.parse(stdout) as { key: string }).key;
}

async function health(admin: string): Promise<any> {
  const r = await request(admin + '/status');
  return ((await r.body.json()) as any).gateway;
}

async function startUpstream(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const status = req.url?.startsWith('/v1/missing') ? 404 : 200;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: status === 200, at: Date.now() }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

interface Answered {
  id: string;
  status: number;
  at: number;
}

/**
 * Concurrent clients until the gateway dies: every call answered 2xx/4xx with an event id is
 * recorded with the time its answer was complete. Resolves once `killAfter` calls were answered
 * and `kill` has run; the workers end on their own when connections fail.
 */
async function trafficUntilKilled(
  url: string,
  keys: string[],
  killAfter: number,
  kill: () => Promise<void>,
): Promise<{ answered: Answered[]; killedAt: number }> {
  const answered: Answered[] = [];
  const agent = new Agent({ connections: 16, pipelining: 1 });
  let dead = false;
  let killedAt = 0;
  let n = 0;
  const worker = async () => {
    while (!dead) {
      const i = n++;
      const path = i % 10 === 9 ? `/v1/missing/${i}` : `/v1/devices/d${i % 50}/location`;
      try {
        const r = await request(url + path, { dispatcher: agent, headers: { authorization: `Bearer ${keys[i % keys.length]}` } });
        await r.body.text(); // complete answer, or throws if it was cut off
        const id = r.headers['x-meter-event-id'] as string | undefined;
        if (r.statusCode < 500 && id) answered.push({ id, status: r.statusCode, at: Date.now() });
      } catch {
        if (killedAt) return;
      }
    }
  };
  const workers = Array.from({ length: 8 }, () => worker());
  await until(`${killAfter} answers before the kill`, () => answered.length >= killAfter, 120_000, 5);
  killedAt = Date.now();
  await kill();
  // Answers in flight at the kill still complete (or fail) inside their worker: waiting for the
  // workers waits for them.
  dead = true;
  await Promise.all(workers);
  await agent.close();
  return { answered, killedAt };
}

async function eventsIn(log: UsageLog): Promise<UsageEvent[]> {
  const c = await log.consumer(`read-${Date.now()}`);
  const out: UsageEvent[] = [];
  for (const [p, end] of await c.endOffsets()) {
    if (end === 0) continue;
    for (const r of await c.readRange(p, 0, end)) {
      const d = decodeEvent(r.value);
      assert.ok(d.ok, 'the log holds only valid events');
      out.push(d.event);
    }
  }
  return out;
}

interface Outcome {
  answered: number;
  lost: Answered[];
  duplicates: number;
  killedAt: number;
  inLog: number;
}

/** One kill -9 scenario, restart and drain included. */
async function killScenario(o: { env: Record<string, string>; args: string[]; readLog: (dataDir: string) => Promise<UsageEvent[]> }): Promise<Outcome> {
  const dataDir = tempDir('meter-dur-');
  dirs.push(dataDir);
  const env = meterEnv({ METER_DATA_DIR: dataDir, METER_LOG_LEVEL: 'warn', ...o.env });
  const up = await startUpstream();
  try {
    const keys = [await createKeyCli(env, 'dur-a', 'enterprise'), await createKeyCli(env, 'dur-b', 'pro')];
    const args = ['--upstream', up.url, ...o.args];
    // info level for the "gateway on <url>" line
    const g1 = await startGatewayProc({ ...env, METER_LOG_LEVEL: 'info' }, args, { admin: true });
    const { answered, killedAt } = await trafficUntilKilled(g1.url, keys, 1500, async () => {
      g1.child.kill('SIGKILL');
      await g1.exited;
    });
    // Restart on the same data dir: the log's torn tail is cut, the spool (if any) is shipped.
    const g2 = await startGatewayProc({ ...env, METER_LOG_LEVEL: 'info' }, args, { admin: true });
    await until(
      async () => `the spool to be shipped: ${JSON.stringify((await health(g2.admin)).spool)}`,
      async () => {
        const h = await health(g2.admin);
        return h.spool.spool.pending === 0 && h.spool.mode === 'direct';
      },
      120_000,
      100,
    );
    g2.child.kill('SIGTERM');
    assert.equal(await g2.exited, 0, g2.stderr.join(''));
    const events = await o.readLog(dataDir);
    // No secret in the gateway's logs or in any event (log or spool).
    const logs = g1.stderr.join('') + g2.stderr.join('');
    for (const k of keys) assert.ok(!logs.includes(k.slice(8)), 'an API key in the gateway log');
    assert.ok(!events.some((e) => JSON.stringify(e).includes('mk_live_')), 'an API key in an event');
    const ids = new Set(events.map((e) => e.id));
    return { answered: answered.length, lost: answered.filter((a) => !ids.has(a.id)), duplicates: events.length - ids.size, killedAt, inLog: ids.size };
  } finally {
    await new Promise<void>((r) => up.server.close(() => r()));
  }
}

async function fileLogEvents(dataDir: string): Promise<UsageEvent[]> {
  const log = new FileLog({ dir: join(dataDir, 'log'), topic: 'usage-events', partitions: 4 });
  try {
    return await eventsIn(log);
  } finally {
    await log.close();
  }
}

function report(name: string, o: Outcome, bound?: number): void {
  const ages = o.lost.map((a) => o.killedAt - a.at);
  process.stderr.write(
    `# durability ${name}: answered 2xx/4xx ${o.answered}, events in log ${o.inLog}, lost ${o.lost.length}` +
      `${ages.length ? ` (answered ${Math.min(...ages)}..${Math.max(...ages)} ms before the kill)` : ''}, duplicates ${o.duplicates}` +
      `${bound != null ? `, stated bound ${bound} ms` : ''}\n`,
  );
}

test('kill -9, strict (embedded log): every call answered 2xx/4xx has its event in the log', { timeout: 300_000 }, async () => {
  const o = await killScenario({ env: {}, args: ['--durability', 'strict'], readLog: fileLogEvents });
  report('strict/embedded', o);
  assert.deepEqual(o.lost, [], 'strict mode lost answered calls');
  assert.ok(o.answered >= 1500);
});

test('kill -9, batched (embedded log): lost calls were all answered within eventFlushMs + 2 x spoolAfterMs of the kill', { timeout: 300_000 }, async () => {
  const flushMs = 50;
  const spoolAfterMs = 500;
  const bound = flushMs + 2 * spoolAfterMs;
  const o = await killScenario({ env: {}, args: ['--event-flush-ms', String(flushMs), '--spool-after-ms', String(spoolAfterMs)], readLog: fileLogEvents });
  report('batched/embedded', o, bound);
  for (const a of o.lost) assert.ok(o.killedAt - a.at <= bound, `lost an event answered ${o.killedAt - a.at} ms before the kill (bound ${bound} ms)`);
  assert.ok(o.inLog >= o.answered - o.lost.length);
});

test('kill -9, strict (Kafka on the real stack): every call answered 2xx/4xx has its event in Kafka', { timeout: 300_000 }, async () => {
  const stack = await stackEnv(['kafka']);
  const topic = `dur-${Date.now().toString(36)}`;
  const brokers = stack.METER_KAFKA_BROKERS!;
  const o = await killScenario({
    env: { METER_KAFKA_BROKERS: brokers, METER_TOPIC: topic },
    args: ['--durability', 'strict'],
    readLog: async () => {
      const log = new KafkaLog({ brokers: brokers.split(','), topic, partitions: 4, clientId: 'meter-test' });
      try {
        return await eventsIn(log);
      } finally {
        await log.close();
      }
    },
  });
  report('strict/kafka', o);
  assert.deepEqual(o.lost, [], 'strict mode lost answered calls');
});

test('a resend after an ambiguous failure is harmless: an event twice in the log is billed once', { timeout: 300_000 }, async () => {
  const dataDir = tempDir('meter-dedupe-');
  dirs.push(dataDir);
  const cfg = loadConfig({ env: { METER_DATA_DIR: dataDir, METER_INGEST_FLUSH_MS: '200' }, configFile: '' });
  const log = await openLog(cfg);
  const lake = await openLake(cfg);
  const db = await openWarehouse(cfg, silentLogger);
  try {
    // ingest dead-letters events of customers that do not exist (pipeline/customer-check.ts)
    for (let c = 0; c < 3; c++) await db.query(`INSERT INTO customers (id, name) VALUES ($1, $1)`, [`dd-${c}`]);
    // 30 events of 3 customers, in an hour that is closed.
    const hour = hourStart(Date.now()) - 2 * HOUR_MS;
    const events: UsageEvent[] = Array.from({ length: 30 }, (_, i) => ({
      v: SCHEMA_VERSION,
      id: uuidv7(hour + 1000 + i),
      time: hour + 1000 + i,
      customer: `dd-${i % 3}`,
      keyId: 'key_x',
      api: 'locations.latest',
      method: 'GET',
      status: 200,
      latencyMs: 1,
      bytesIn: 0,
      bytesOut: 10,
      billable: true,
    }));
    // The log was down: the events are in the spool.
    const s1 = await Spool.open({ dir: spoolDir(dataDir), topic: cfg.topic, maxBytes: 1 << 20 });
    await s1.append(events.map((e) => ({ key: e.customer, value: encodeEvent(e) })));
    // The shipper sent them, and the process died before it moved the cursor:
    const direct = await log.producer();
    await direct.send((await s1.read(1000)).map((r) => ({ key: r.key, value: r.value })));
    await direct.close();
    await s1.close();
    // The next gateway ships the spool again from the old cursor.
    const s2 = await Spool.open({ dir: spoolDir(dataDir), topic: cfg.topic, maxBytes: 1 << 20 });
    assert.equal(s2.pending(), 30);
    const sp = new SpoolingProducer({ openPrimary: () => log.producer(), spool: s2, spoolAfterMs: 1000, logger: () => {} });
    await sp.drained();
    await sp.close();
    const inLog = await eventsIn(log);
    assert.equal(inLog.length, 60, 'each event is in the log twice');
    assert.equal(new Set(inLog.map((e) => e.id)).size, 30);

    const ingest = await startIngestRole(cfg, { log, lake, db }, silentLogger);
    await ingest.waitCaughtUp(60_000);
    await ingest.flushAll();
    await ingest.stop();
    await rollupOf({ lake, db }, silentLogger).run();
    const rows = await db.query<{ customer_id: string; calls: string | number; events: string | number }>(
      `SELECT customer_id, calls, events FROM usage_hourly WHERE hour = $1 ORDER BY customer_id`,
      [new Date(hour).toISOString()],
    );
    assert.deepEqual(
      rows.map((r) => [r.customer_id, Number(r.calls), Number(r.events)]),
      [
        ['dd-0', 10, 10],
        ['dd-1', 10, 10],
        ['dd-2', 10, 10],
      ],
      'billed once per event id',
    );
  } finally {
    await db.close();
    await lake.close();
    await log.close();
  }
});

test('security: no secret reaches the gateway log or an event, on any path (401, 403, 413, 429, 502, 503)', { timeout: 300_000 }, async () => {
  const dataDir = tempDir('meter-sec-');
  dirs.push(dataDir);
  const db = await PgliteWarehouse.open(null);
  await migrate(db);
  const plans = { pro: { ratePerSec: 1, burst: 3 } };
  const good = await createKey(db, { customer: 'sec-a', plan: 'pro', plans });
  const noPlan = await createKey(db, { customer: 'sec-b', plan: 'gold' });
  const late = await createKey(db, { customer: 'sec-c', plan: 'pro', plans });
  const bogus = `mk_live_${'Q'.repeat(31)}z`;
  const up = await startUpstream();
  const lines: string[] = [];
  const capture = (level: string) => (msg: string, fields?: Record<string, unknown>) => lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  const log = new FileLog({ dir: join(dataDir, 'log'), topic: 'usage-events', partitions: 1 });
  const producer = await log.producer();
  const routes = loadRoutes(assetPath('fixtures/routes.json'));
  // The access log (--access-log) goes to the same lines: it must not hold a secret either.
  const accessLog = createLogger('info', 'access', (l) => lines.push(l), 'json');
  const gw = await startGateway({
    host: '127.0.0.1',
    port: 0,
    upstream: up.url,
    keys: new KeyStore(db),
    limiter: new MemoryLimiter({ now: () => 0 }),
    plans,
    routes,
    producer,
    eventFlushMs: 5,
    maxBodyBytes: 100,
    logger: { info: capture('info'), warn: capture('warn'), error: capture('error') },
    metrics: new GatewayRecorder(new MeterMetrics('gateway'), routes, accessLog),
  });
  const statuses: number[] = [];
  const call = async (key: string, o: { body?: string; path?: string; header?: 'authorization' | 'x-api-key' } = {}) => {
    const headers = o.header === 'x-api-key' ? { 'x-api-key': key } : { authorization: `Bearer ${key}` };
    const r = await request(gw.url + (o.path ?? (o.body ? '/v1/locations' : '/v1/devices/d/location')), {
      method: o.body ? 'POST' : 'GET',
      headers,
      body: o.body,
    });
    await r.body.dump();
    statuses.push(r.statusCode);
  };
  try {
    await call(good.key); // 200
    await call(good.key, { body: 'x'.repeat(500), header: 'x-api-key' }); // 413
    await call(good.key); // 200
    await call(good.key); // 429 (burst 3)
    await call(bogus); // 401
    await call(noPlan.key); // 403: plan not in the catalog (logged with the key id)
    await new Promise<void>((r) => up.server.close(() => r()));
    await call(late.key, { path: '/v1/devices/d/location' }); // 502: upstream gone (logged)
    await db.close();
    await call(`mk_live_${'R'.repeat(32)}`); // 503: keys cannot be checked (logged)
    assert.deepEqual(statuses, [200, 413, 200, 429, 401, 403, 502, 503]);
    await gw.batcher.flush();
    const text = lines.join('\n');
    assert.match(text, /plan the catalog does not know/, 'the paths that log were taken');
    assert.match(text, /upstream unreachable/);
    assert.match(text, /key lookup failed/);
    assert.equal(lines.filter((l) => l.includes('"role":"access"')).length, statuses.length, 'one access line per answer');
    for (const k of [good.key, noPlan.key, late.key, bogus, `mk_live_${'R'.repeat(32)}`])
      assert.ok(!text.includes(k.slice(8)), `secret ${k.slice(0, 12)}... in the log`);
    const events = await eventsIn(log);
    assert.equal(events.length, 5, 'one event per authenticated call with a known plan');
    for (const e of events) assert.ok(!JSON.stringify(e).includes('mk_live_'), 'a secret in an event');
    const health = JSON.stringify(gw.health());
    assert.ok(!health.includes('mk_live_'), 'a secret in the admin /status');
    assert.equal((await request(gw.url + '/_meter/health')).statusCode, 401, 'meter state is not on the public port');
  } finally {
    await gw.close();
    await producer.close();
    await log.close();
    await db.close().catch(() => {});
  }
});
