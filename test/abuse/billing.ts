/**
 * Attacks on the billing API and the billing commands (issue 12): ranges and granularities that
 * would make unbounded work, bad bytes in ids, revoked and expired tokens, config values of the
 * wrong type, `meter doctor` against dead backends, keys for customers that do not exist.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import type { Attack, AttackResult } from './attack.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import type { Sql, Warehouse } from '../../src/warehouse/warehouse.js';
import { assetPath } from '../../src/config/assets.js';
import { loadCatalog } from '../../src/billing/catalog.js';
import { startBillingServer, type BillingServer } from '../../src/billing/server.js';
import { createCustomerToken, revokeCustomerToken, customerTokenId } from '../../src/billing/auth.js';
import { silentLogger } from '../../src/ground/logger.js';
import { stackEnv, freshDatabase } from '../support/stack.js';

const run = promisify(execFile);
const SERVICE = 'abuse-billing-service-token';
const METER = assetPath('bin/meter.js');

interface Target {
  server: BillingServer;
  db: Warehouse;
  token: string;
  /** Texts of the statements sent since the last reset. */
  statements: string[];
  clock: { now: number };
  close(): Promise<void>;
}

/** A billing server over `db` with acme (10 APIs, every hour of 2025-01..2026-02) and a customer token. */
async function target(db: Warehouse): Promise<Target> {
  await migrate(db);
  await db.query(`INSERT INTO customers (id, name, time_zone) VALUES ('acme', 'Acme', 'Asia/Seoul')`);
  await db.query(`INSERT INTO api_keys (id, customer_id, plan_id, key_hash, prefix) VALUES ('k1', 'acme', 'pro', 'h1', 'p1')`);
  await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
    SELECT 'acme', 'api.' || a, h, 100 + a, 100 + a FROM generate_series(1, 10) a,
           generate_series('2025-01-01T00:00:00Z'::timestamptz, '2026-02-28T23:00:00Z'::timestamptz, interval '1 hour') h`);
  const token = await createCustomerToken(db, 'acme');
  const statements: string[] = [];
  const clock = { now: Date.parse('2026-03-10T00:00:00Z') };
  const recorded: Warehouse = {
    kind: db.kind,
    query: (t, p, o) => (statements.push(t), db.query(t, p, o)),
    transaction: <T>(fn: (tx: Sql) => Promise<T>) => db.transaction((tx) => fn({ query: (t, p, o) => (statements.push(t), tx.query(t, p, o)) })),
    close: () => db.close(),
    ...(db.withStatementTimeout ? { withStatementTimeout: (ms: number) => db.withStatementTimeout!(ms) } : {}),
  };
  const server = await startBillingServer({
    db: recorded,
    catalog: loadCatalog(assetPath('fixtures/catalog.json')),
    host: '127.0.0.1',
    port: 0,
    serviceTokens: [SERVICE],
    now: () => clock.now,
    logger: silentLogger,
  });
  return { server, db, token, statements, clock, close: async () => (await server.close(), await db.close()) };
}

async function embedded(): Promise<Target> {
  return target(await PgliteWarehouse.open(null));
}

/** One request, timed, with the longest stall of this process's event loop while it ran. */
async function timed(t: Target, path: string, token = SERVICE) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const res = await fetch(t.server.url + path, { headers: { authorization: `Bearer ${token}` } });
  const body = (await res.json()) as Record<string, any>;
  const ms = performance.now() - t0;
  h.disable();
  return { status: res.status, body, ms, loopMs: h.max / 1e6, rssMb: (process.memoryUsage().rss - rss0) / 2 ** 20, requestId: res.headers.get('x-request-id') };
}

/** The longest the event loop stood still over `ms` of doing nothing. */
async function idleLoopMax(ms: number): Promise<number> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  await new Promise((r) => setTimeout(r, ms));
  h.disable();
  return h.max / 1e6;
}

const readsUsage = (s: string) => /billable_hourly|usage_daily|usage_hourly/.test(s);
const f1 = (n: number) => n.toFixed(1);

async function hugeRange(): Promise<AttackResult> {
  const t = await embedded();
  try {
    await timed(t, '/v1/me/cost?from=2026-01-01&to=2026-02-01', t.token); // warm: token, catalog, JIT
    const out: string[] = [];
    let ok = true;
    for (const [name, path] of [
      ['cost 1970..9999', '/v1/me/cost?from=1970-01-01&to=9999-12-31'],
      ['cost 1970..2500', '/v1/me/cost?from=1970-01-01&to=2500-01-01'],
      ['usage by day 1970..9999', '/v1/me/usage?from=1970-01-01&to=9999-12-31&granularity=day'],
    ]) {
      t.statements.length = 0;
      const r = await timed(t, path!, t.token);
      const usage = t.statements.filter(readsUsage).length;
      ok &&= r.status === 400 && r.ms < 250 && usage === 0 && /400 days/.test(r.body.error);
      out.push(`${name}: ${r.status} in ${f1(r.ms)} ms, ${usage} usage statements, RSS +${f1(r.rssMb)} MB`);
    }
    return { observed: out.join('; '), ok };
  } finally {
    await t.close();
  }
}

async function hugeGranularity(): Promise<AttackResult> {
  const t = await embedded();
  try {
    t.statements.length = 0;
    const a = await timed(t, '/v1/me/usage?from=2025-01-01&to=2026-01-01&granularity=hour', t.token);
    const before = t.statements.filter(readsUsage).length;
    // 92 days x 24 h x 10 APIs = 22,080 rows: past the 10,000-row bound.
    const b = await timed(t, '/v1/me/usage?from=2025-10-01&to=2025-12-31&granularity=hour', t.token);
    const ok = a.status === 400 && before === 0 && /92 days/.test(a.body.error) && b.status === 400 && /10000 rows/.test(b.body.error);
    return {
      observed: `hour x 365 days: ${a.status} (${before} usage statements); hour x 91 days x 10 APIs: ${b.status} "${String(b.body.error).slice(0, 40)}…" in ${f1(b.ms)} ms`,
      ok,
    };
  } finally {
    await t.close();
  }
}

async function largestRangePostgres(): Promise<AttackResult> {
  const env = await stackEnv(['postgres']);
  const t = await target(await PgWarehouse.open(await freshDatabase(env, 'abuse_billing')));
  try {
    const out: string[] = [];
    let ok = true;
    for (const [name, path] of [
      ['cost 400 days', '/v1/me/cost?from=2025-01-15&to=2026-02-19'],
      ['usage by day 400 days', '/v1/me/usage?from=2025-01-15&to=2026-02-19&granularity=day'],
      // month granularity takes whole months (a range not aligned to it is a 400): 396 days
      ['usage by month 396 days', '/v1/me/usage?from=2025-01-01&to=2026-02-01&granularity=month'],
    ]) {
      await timed(t, path!, t.token); // warm: plans, catalog
      // On a shared box the loop also stalls while this process is not scheduled, so the bound
      // is on what it cannot fake: the CPU this process spent per answer (server and client
      // together) is the most any answer can have held the loop.
      const idle = await idleLoopMax(500);
      const cpu0 = process.cpuUsage();
      const runs = await Promise.all([0, 1, 2, 3].map(() => timed(t, path!, t.token)));
      const cpu = process.cpuUsage(cpu0);
      const cpuPer = (cpu.user + cpu.system) / 1000 / runs.length;
      const worstLoop = Math.max(...runs.map((r) => r.loopMs));
      const worst = Math.max(...runs.map((r) => r.ms));
      // 34 ms for usage by day (the largest answer) on Node 20 with the box quiet; over 50 on Node 24
      // with CI's two lanes beside it (GC of a large answer parsed by the client in this process).
      ok &&= runs.every((r) => r.status === 200) && cpuPer < 100;
      out.push(
        `${name}: ${[...new Set(runs.map((r) => r.status))].join('/')} x4 at once, slowest ${f1(worst)} ms, CPU ${f1(cpuPer)} ms per answer, loop delay max ${f1(worstLoop)} ms (idle box: ${f1(idle)} ms)`,
      );
    }
    return { observed: out.join('; '), ok };
  } finally {
    await t.close();
  }
}

async function statementTimeout(): Promise<AttackResult> {
  const env = await stackEnv(['postgres']);
  const url = await freshDatabase(env, 'abuse_billing_to');
  const db = await PgWarehouse.open(url);
  await migrate(db);
  await db.query(`INSERT INTO customers (id, name) VALUES ('acme', 'Acme')`);
  const s = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE], statementTimeoutMs: 300, logger: silentLogger });
  const blocker = await PgWarehouse.open(url);
  try {
    let release!: () => void;
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const tx = blocker.transaction(async (q) => {
      await q.query('LOCK TABLE catalog_version IN ACCESS EXCLUSIVE MODE');
      locked();
      await new Promise<void>((r) => (release = r));
    });
    await isLocked;
    const t0 = performance.now();
    const res = await fetch(`${s.url}/v1/customers/acme`, { headers: { authorization: `Bearer ${SERVICE}` } });
    const ms = performance.now() - t0;
    release();
    await tx;
    const body = (await res.json()) as { error: string; requestId?: string };
    const ok = res.status === 503 && ms < 3000 && body.requestId === res.headers.get('x-request-id') && /longer than/.test(body.error);
    return {
      observed: `a statement held by a lock: ${res.status} after ${Math.round(ms)} ms (timeout 300 ms), request id ${body.requestId ? 'in body and header' : 'missing'}`,
      ok,
    };
  } finally {
    await s.close();
    await blocker.close();
    await db.close();
  }
}

async function badBytes(): Promise<AttackResult> {
  const t = await embedded();
  try {
    const paths = [
      '/v1/customers/ac%00me',
      '/v1/customers/acme%00/cost?from=2026-01-01&to=2026-02-01',
      '/v1/invoices/inv_%00x',
      '/v1/customers/acme/invoices/2026-01%00',
      '/v1/customers/acme/usage?from=2026-01-01&to=2026-02-01&tz=UTC%00',
      '/v1/customers/acme/usage?from=2026-01-01&to=2026-02-01%1b',
      '/v1/invoices?period=2026-01%00',
      '/v1/customers/%ff%fe',
      `/v1/customers/${'x'.repeat(5000)}`,
    ];
    const statuses: number[] = [];
    for (const p of paths) statuses.push((await timed(t, p)).status);
    const health = await fetch(`${t.server.url}/healthz`);
    const ok = statuses.every((s) => s === 400) && health.status === 200;
    return { observed: `${paths.length} requests: ${statuses.join(',')}; healthz ${health.status}`, ok };
  } finally {
    await t.close();
  }
}

async function tokens(): Promise<AttackResult> {
  const t = await embedded();
  try {
    const path = '/v1/me/usage?from=2026-01-01&to=2026-02-01';
    const short = await createCustomerToken(t.db, 'acme', { expiresAt: t.clock.now + 1000 });
    const a = (await timed(t, path, short)).status;
    t.clock.now += 1000;
    const b = (await timed(t, path, short)).status;
    const doomed = await createCustomerToken(t.db, 'acme');
    const c = (await timed(t, path, doomed)).status;
    await revokeCustomerToken(t.db, customerTokenId(doomed)!);
    const d = (await timed(t, path, doomed)).status;
    const ok = a === 200 && b === 401 && c === 200 && d === 401;
    return { observed: `expiring token ${a} then ${b} past its expiry; token ${c} then ${d} right after revoke (cached row)`, ok };
  } finally {
    await t.close();
  }
}

async function meter(args: string[], env: Record<string, string>, cwd: string): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run(process.execPath, [METER, ...args], {
      cwd,
      env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', METER_DATA_DIR: join(cwd, 'data'), METER_LOG_LEVEL: 'warn', ...env },
      timeout: 60_000,
    });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e: any) {
    return { code: typeof e.code === 'number' ? e.code : -1, out: e.stdout ?? '', err: e.stderr ?? '' };
  }
}

async function configTypes(ctx: { dir: string }): Promise<AttackResult> {
  const cases = [{ billingTokens: [null] }, { billingTokens: [42] }, { topic: 5 }, { databaseUrl: 5 }, { gatewayPort: true }, { durability: ['strict'] }];
  const codes: string[] = [];
  let ok = true;
  for (const [i, c] of cases.entries()) {
    const file = join(ctx.dir, `bad-${i}.json`);
    writeFileSync(file, JSON.stringify(c));
    const r = await meter(['config', '--config', file], {}, ctx.dir);
    const oneLine = r.err.trim().split('\n').length === 1;
    ok &&= r.code === 2 && oneLine && !/\n\s+at /.test(r.err);
    codes.push(`${Object.keys(c)[0]}=${JSON.stringify(Object.values(c)[0])}: exit ${r.code}${oneLine ? '' : ' (multi-line)'}`);
  }
  return { observed: codes.join('; '), ok };
}

async function doctorExit(ctx: { dir: string }): Promise<AttackResult> {
  const dead: [string, Record<string, string>][] = [
    ['kafka', { METER_KAFKA_BROKERS: '127.0.0.1:1' }],
    ['postgres', { METER_DATABASE_URL: 'postgres://u:p@127.0.0.1:1/x' }],
    ['redis', { METER_REDIS_URL: 'redis://127.0.0.1:1' }],
  ];
  const t0 = performance.now();
  // Each in its own folder: the embedded warehouse serves one process at a time.
  const rs = await Promise.all(
    dead.map(([n, env]) => {
      const dir = join(ctx.dir, n);
      mkdirSync(dir, { recursive: true });
      return meter(['doctor', '--timeout', '8000'], env, dir).then((r) => [n, r] as const);
    }),
  );
  // Exactly the dead backend fails.
  const names: Record<string, string> = { kafka: 'log', postgres: 'warehouse', redis: 'limiter' };
  const ok = rs.every(([n, r]) => r.code === 1 && new RegExp(`^FAIL ${names[n]} `, 'm').test(r.out));
  return { observed: `${rs.map(([n, r]) => `dead ${n}: exit ${r.code}`).join(', ')} (${Math.round((performance.now() - t0) / 1000)} s)`, ok };
}

async function keysForGhosts(ctx: { dir: string }): Promise<AttackResult> {
  const a = await meter(['keys', 'create', '--customer', 'ghost', '--plan', 'pro'], {}, ctx.dir);
  await meter(['customers', 'create', 'real'], {}, ctx.dir);
  const b = await meter(['keys', 'create', '--customer', 'real', '--plan', 'nope'], {}, ctx.dir);
  const ok = a.code === 2 && /does not exist/.test(a.err) && /meter customers create/.test(a.err) && b.code === 2 && /unknown plan/.test(b.err);
  return { observed: `unknown customer: exit ${a.code} "${a.err.split('\n')[0]!.slice(7, 60)}"; unknown plan: exit ${b.code}`, ok };
}

export const attacks: Attack[] = [
  { name: 'billing: cost/usage over 1970..9999', expected: '400 naming the 400-day limit, < 250 ms, no usage statement', run: hugeRange },
  { name: 'billing: hour granularity over a year / too many rows', expected: '400 before any usage statement; 400 past 10,000 rows', run: hugeGranularity },
  {
    name: 'billing: largest allowed range x4 on Postgres',
    expected: '200; < 100 ms of CPU (the most it can hold the loop) per answer',
    run: largestRangePostgres,
  },
  { name: 'billing: statement stuck behind a lock', expected: '503 at the statement timeout, with a request id', run: statementTimeout },
  { name: 'billing: NUL, control and bad UTF-8 bytes in ids', expected: 'every one 400, server answers on', run: badBytes },
  { name: 'billing: expired and revoked customer tokens', expected: '401 at once (also from the cache)', run: tokens },
  { name: 'config: values of the wrong type', expected: 'exit 2, one line (billingTokens: [null] too)', run: configTypes },
  { name: 'doctor: dead Kafka / Postgres / Redis', expected: 'exit 1 for each', run: doctorExit },
  { name: 'keys create: unknown customer or plan', expected: 'exit 2 with a hint', run: keysForGhosts },
];
