/**
 * Issue 13 on embedded backends: the admin listener's paths, the gateway's metrics counting every
 * answer by decision, readiness naming the failing backend, the logger's line formats, the
 * access log, dead-letter counting and the CLI's admin settings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync } from 'node:fs';
import { assetPath } from '../../src/config/assets.js';
import { createLogger, kafkaLog, routeKafkaLogs } from '../../src/ground/logger.js';
import { Observability } from '../../src/observability/observability.js';
import { startAdminServer } from '../../src/observability/admin-server.js';
import { sourceBudgetMs } from '../../src/observability/metrics.js';
import { TopCustomers } from '../../src/observability/top-customers.js';
import { billingRoute } from '../../src/observability/billing-route.js';
import { observedGateway, parseMetrics, sum } from '../support/observed-gateway.js';
import { tempDir } from '../support/tmp.js';
import { freePort } from '../support/net.js';
import { sleep, until } from '../support/until.js';

test('every gateway answer is counted once by api, status and decision; latency histograms count them too', async () => {
  const access: string[] = [];
  const g = await observedGateway({ accessLog: (l) => access.push(l) });
  try {
    const sent: Record<string, number> = {};
    const expect = async (decision: string, status: number, got: Promise<number>) => {
      assert.equal(await got, status, decision);
      sent[decision] = (sent[decision] ?? 0) + 1;
    };
    for (let i = 0; i < 7; i++) await expect('allowed', 200, g.call(`/v1/devices/d${i}/location`, g.keys.pro));
    await expect('allowed', 500, g.call('/v1/devices/fail/history', g.keys.pro)); // the upstream's own 500 is still an allowed call (a routed path: others get 404 from the gateway)
    await expect('unauthorized', 401, g.call('/v1/devices/d/location', null));
    await expect('unauthorized', 401, g.call('/v1/devices/d/location', `mk_live_${'Z'.repeat(32)}`));
    await expect('too_large', 413, g.call('/v1/locations', g.keys.pro, 'x'.repeat(500)));
    for (let i = 0; i < 10; i++) await expect('allowed', 200, g.call('/v1/devices/f/location', g.keys.free)); // burst 10
    for (let i = 0; i < 3; i++) await expect('rate_limited', 429, g.call('/v1/devices/f/location', g.keys.free));
    await expect('no_route', 404, g.call('/v2/nowhere', g.keys.pro));
    const total = Object.values(sent).reduce((a, b) => a + b, 0);

    const r = await fetch(g.admin.url + '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    const m = parseMetrics(await r.text());
    assert.equal(sum(m, 'meter_gateway_requests_total'), total);
    for (const [decision, n] of Object.entries(sent)) assert.equal(sum(m, 'meter_gateway_requests_total', { decision }), n, decision);
    assert.equal(sum(m, 'meter_gateway_requests_total', { decision: 'allowed', status: '500', api: 'locations.history' }), 1);
    assert.equal(sum(m, 'meter_gateway_requests_total', { decision: 'allowed', api: 'locations.latest', status: '200' }), 17);
    assert.equal(sum(m, 'meter_gateway_added_latency_seconds_count'), total);
    assert.equal(sum(m, 'meter_upstream_latency_seconds_count'), sent.allowed);
    assert.equal(sum(m, 'meter_limiter_decisions_total', { result: 'denied' }), 3);
    assert.equal(sum(m, 'meter_limiter_decisions_total', { result: 'allowed' }), sent.allowed! + sent.too_large! + sent.no_route!);
    assert.equal(sum(m, 'meter_gateway_top_customer_calls', { customer: 'cust-free' }), 10);
    assert.equal(sum(m, 'meter_gateway_top_customer_calls', { customer: 'cust-pro' }), 8);
    assert.ok(sum(m, 'process_cpu_seconds_total') > 0, 'default process metrics');
    assert.equal(sum(m, 'meter_spool_max_bytes'), 1 << 30);
    // Events are acknowledged in batches: wait for the count to reach every authenticated call.
    const events = sent.allowed! + sent.too_large! + sent.rate_limited! + sent.no_route!;
    const produced = async () => sum(parseMetrics(await (await fetch(g.admin.url + '/metrics')).text()), 'meter_events_produced_total');
    const n = await until(
      async () => `events produced to reach ${events} (now ${await produced()})`,
      async () => {
        const now = await produced();
        return now >= events && now;
      },
      10_000,
      50,
    );
    assert.equal(n, events, 'events produced: one per authenticated call, no more');

    // The access log: one line per answer with id, api, status and meter time; never a key.
    assert.equal(access.length, total);
    const lines = access.map((l) => JSON.parse(l));
    for (const l of lines) {
      assert.equal(l.role, 'access');
      assert.equal(typeof l.time, 'string');
      assert.equal(typeof l.meterMs, 'number');
    }
    const proxied = lines.find((l) => l.customer === 'cust-pro' && l.status === 200);
    assert.match(proxied.id, /^[0-9a-f-]{36}$/);
    assert.equal(typeof proxied.upstreamMs, 'number');
    assert.equal(lines.filter((l) => l.decision === 'rate_limited').length, 3);
    assert.doesNotMatch(access.join('\n'), /mk_live_/);
  } finally {
    await g.close();
  }
});

test('admin listener: /healthz, /readyz 503 naming the failing backend, /status without secrets, /ops, 404 and 405', async () => {
  const g = await observedGateway();
  try {
    const get = async (p: string, init?: RequestInit) => {
      const r = await fetch(g.admin.url + p, init);
      return { status: r.status, body: r.headers.get('content-type')?.includes('json') ? await r.json() : await r.text() } as { status: number; body: any };
    };
    assert.deepEqual((await get('/healthz')).body.status, 'ok');
    const ready = await get('/readyz');
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    assert.deepEqual(ready.body.backends, { warehouse: 'ok', spool: 'ok', 'log-writes': 'ok', log: 'ok' });
    const status = await get('/status');
    assert.equal(status.body.gateway.limiter.kind, 'memory');
    assert.doesNotMatch(JSON.stringify(status.body), /mk_live_/);
    const ops = await get('/ops');
    assert.equal(ops.status, 200);
    assert.match(ops.body, /<title>meter ops<\/title>/);
    assert.equal((await get('/ops/data')).body.role, 'gateway');
    assert.equal((await get('/nope')).status, 404);
    assert.equal((await get('/metrics', { method: 'POST' })).status, 405);
    // The public port does not serve any of this.
    for (const p of ['/metrics', '/healthz', '/status', '/_meter/health']) assert.equal(await g.call(p, null), 401, p);

    // The warehouse goes away: /readyz says which backend, and the process is still alive.
    await g.db.close();
    await sleep(1100); // the probe cache lasting 1 s is part of what is tested
    const down = await get('/readyz');
    assert.equal(down.status, 503);
    assert.deepEqual(down.body.failing, ['warehouse']);
    assert.match(down.body.message, /^warehouse: /);
    assert.equal((await get('/healthz')).status, 200);
    const m = parseMetrics((await get('/metrics')).body);
    assert.equal(sum(m, 'meter_backend_up', { backend: 'warehouse' }), 0);
    assert.equal(sum(m, 'meter_backend_up', { backend: 'spool' }), 1);
  } finally {
    await g.close();
  }
});

test('logs: json lines carry time, level, role, msg and fields; text lines too; kafkajs lines are routed', () => {
  const json: string[] = [];
  const log = createLogger('info', 'meter', (l) => json.push(l), 'json');
  log.child('ingest').warn('slow write', { partition: 3, ms: 1200 });
  log.debug('not at info');
  assert.equal(json.length, 1);
  const o = JSON.parse(json[0]!);
  assert.equal(o.level, 'warn');
  assert.equal(o.role, 'ingest');
  assert.equal(o.msg, 'slow write');
  assert.equal(o.partition, 3);
  assert.ok(!Number.isNaN(Date.parse(o.time)));
  const text: string[] = [];
  createLogger('info', 'gateway', (l) => text.push(l), 'text').error('upstream unreachable', {
    api: 'locations.latest',
    error: 'connect ECONNREFUSED 1.2.3.4:80',
  });
  assert.match(
    text[0]!,
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z error \[gateway\] upstream unreachable api=locations\.latest error="connect ECONNREFUSED 1\.2\.3\.4:80"$/,
  );
  const routed: string[] = [];
  routeKafkaLogs(createLogger('info', 'kafka', (l) => routed.push(l), 'json'));
  kafkaLog(2, 'Connection', 'Connection error', { broker: '127.0.0.1:9' });
  const k = JSON.parse(routed[0]!);
  assert.deepEqual([k.level, k.role, k.msg, k.kafkajs, k.broker], ['warn', 'kafka', 'Connection error', 'Connection', '127.0.0.1:9']);
});

test('dead letters are counted by a bounded reason; top customers keep one hour; billing routes are templates', async () => {
  const obs = new Observability('ingest');
  const put: string[] = [];
  const sink = obs.countDeadLetters({ put: async (_r, reason) => void put.push(reason) });
  const rec = { partition: 0, offset: 1, key: 'k', value: Buffer.from('x'), timestamp: 0 };
  await sink.put(rec, 'malformed event: not JSON');
  await sink.put(rec, 'event time 2026-01-01T00:00:00.000Z is more than 3024000000 ms before its log time 2026-03-01T00:00:00.000Z');
  await sink.put(rec, 'something new');
  assert.equal(put.length, 3);
  const m = parseMetrics(await obs.metrics.text());
  assert.deepEqual(
    ['malformed', 'too_old', 'in_future', 'other'].map((reason) => sum(m, 'meter_dead_letters_total', { reason })),
    [1, 1, 0, 1],
  );

  // Until its roles are up a process is not ready, whatever its backends say.
  const admin = await startAdminServer(obs, '127.0.0.1', 0);
  try {
    const r = await fetch(admin.url + '/readyz');
    assert.equal(r.status, 503);
    assert.deepEqual(((await r.json()) as { failing: string[] }).failing, ['starting']);
    obs.markStarted();
    assert.equal((await fetch(admin.url + '/readyz')).status, 200);
  } finally {
    await admin.close();
  }

  let now = Date.parse('2026-12-05T10:00:00Z');
  const top = new TopCustomers(() => now);
  for (let i = 0; i < 5; i++) top.add('a');
  top.add('b');
  now += 30 * 60_000;
  top.add('b');
  assert.deepEqual(top.top(10), [
    ['a', 5],
    ['b', 2],
  ]);
  now += 31 * 60_000; // the first minute is now more than an hour old
  assert.deepEqual(top.top(10), [['b', 1]]);

  assert.equal(billingRoute('GET', '/v1/customers/acme/usage?from=x'), '/v1/customers/{id}/usage');
  assert.equal(billingRoute('GET', '/v1/me/invoices/2026-11'), '/v1/me/invoices/{period}');
  assert.equal(billingRoute('GET', '/wp-admin.php'), 'other');
});

test("a scrape answers within the scraper's timeout: a backend read that hangs is left out, not the scrape", async () => {
  assert.equal(sourceBudgetMs(undefined), 2000);
  assert.equal(sourceBudgetMs('1'), 750);
  assert.equal(sourceBudgetMs('10'), 2000);
  assert.equal(sourceBudgetMs('0.01'), 50);
  assert.equal(sourceBudgetMs('soon'), 2000);
  const obs = new Observability('gateway');
  obs.metrics.readLabelled('meter_consumer_lag', () => new Promise(() => {})); // a Kafka that never answers
  obs.metrics.readLabelled('meter_consumer_lag', () => [{ labels: { role: 'live', partition: '0' }, value: 7 }]);
  const admin = await startAdminServer(obs, '127.0.0.1', 0);
  try {
    const t0 = performance.now();
    // Prometheus's stack config scrapes every 1 s with a 1 s timeout (stack/run).
    const r = await fetch(admin.url + '/metrics', { headers: { 'x-prometheus-scrape-timeout-seconds': '1' } });
    const ms = performance.now() - t0;
    assert.equal(r.status, 200);
    const m = parseMetrics(await r.text());
    assert.equal(sum(m, 'meter_consumer_lag', { role: 'live' }), 7);
    // The budget is 750 ms; the bound leaves a loaded box room and still tells it from the 2 s default.
    assert.ok(ms >= 700 && ms < 1500, `answered in ${ms.toFixed(0)} ms: after the 750 ms budget, well before the 2 s without the header`);
  } finally {
    await admin.close();
  }
});

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('node', [assetPath('bin/meter.js'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

test('CLI: a taken admin port and a bad log format are usage errors (exit 2) with the fix', async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
  const port = (taken.address() as { port: number }).port;
  try {
    const r = await run(['serve-billing', '--admin-port', String(port), '--data-dir', '/tmp/meter-obs-cli-' + process.pid], { METER_BILLING_TOKENS: 'secret' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`admin listener cannot listen on 127\\.0\\.0\\.1:${port}`));
    assert.match(r.stderr, /hint: pick another --admin-port/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.ok(!existsSync('/tmp/meter-obs-cli-' + process.pid), 'nothing opened before the listener');
  } finally {
    taken.close();
  }
  const f = await run(['config', '--log-format', 'xml']);
  assert.equal(f.code, 2);
  assert.match(f.stderr, /logFormat .*"xml" is not one of text, json/);
});

/** Starts a long-running `meter` command with an admin listener; resolves once /readyz says 200. */
async function serve(args: string[], env: Record<string, string>): Promise<{ admin: string; stop(): Promise<number | null>; stderr: () => string }> {
  const port = await freePort();
  const child = spawn('node', [assetPath('bin/meter.js'), ...args, '--admin-port', String(port)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (x) => (stderr += x));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  const admin = `http://127.0.0.1:${port}`;
  await until(
    () => `meter ${args[0]} to be ready:\n${stderr}`,
    async () => gone || (await fetch(admin + '/readyz')).status === 200,
    60_000,
    100,
  );
  if (gone) throw new Error(`meter ${args[0]} exited:\n${stderr}`);
  return { admin, stderr: () => stderr, stop: () => (child.kill('SIGTERM'), exited) };
}

test('serve-billing and rollup --follow serve their admin listener: billing answers by route and status, rollup pending hours', async () => {
  const { rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const dir = tempDir('meter-obs-roles-');
  try {
    const billingPort = await freePort();
    const env = { METER_DATA_DIR: join(dir, 'billing'), METER_BILLING_TOKENS: 'svc-token-obs-test', METER_LOG_FORMAT: 'json' };
    const billing = await serve(['serve-billing', '--billing-port', String(billingPort)], env);
    const api = `http://127.0.0.1:${billingPort}`;
    assert.equal((await fetch(api + '/v1/customers', { headers: { authorization: 'Bearer svc-token-obs-test' } })).status, 200);
    assert.equal((await fetch(api + '/v1/customers/acme/usage?from=x', { headers: { authorization: 'Bearer nope' } })).status, 401);
    const m = parseMetrics(await (await fetch(billing.admin + '/metrics')).text());
    assert.equal(sum(m, 'meter_billing_requests_total', { route: '/v1/customers', status: '200' }), 1);
    assert.equal(sum(m, 'meter_billing_requests_total', { route: '/v1/customers/{id}/usage', status: '401' }), 1);
    assert.equal(sum(m, 'meter_billing_request_duration_seconds_count'), 2);
    assert.equal(sum(m, 'meter_info', { role: 'serve-billing' }), 1);
    assert.equal(await billing.stop(), 0, billing.stderr());
    for (const line of billing.stderr().trim().split('\n')) {
      const o = JSON.parse(line); // --log-format json: every line is JSON with time, level, role
      assert.ok(o.time && o.level && o.role && o.msg, line);
    }

    const rollup = await serve(['rollup', '--follow', '--interval', '200'], { METER_DATA_DIR: join(dir, 'rollup') });
    const r = parseMetrics(await (await fetch(rollup.admin + '/metrics')).text());
    assert.equal(sum(r, 'meter_rollup_pending_hours'), 0);
    assert.equal(sum(r, 'meter_backend_up', { backend: 'lake' }), 1);
    assert.equal(sum(r, 'meter_backend_up', { backend: 'warehouse' }), 1);
    assert.equal(await rollup.stop(), 0, rollup.stderr());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
