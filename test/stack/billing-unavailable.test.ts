/**
 * The billing API while its Postgres is unreachable (issue 4, fault suite: "the billing API
 * answers 503 with a clear message, never a wrong number"). It used to answer 500 "internal
 * error". The outage is real: the warehouse talks to the stack's Postgres through a TCP relay
 * in this test, which is then cut (connections dropped, new ones refused) and restored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { stackEnv } from '../support/stack.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { startBillingServer } from '../../src/billing/server.js';
import { isWarehouseUnavailable } from '../../src/warehouse/unavailable.js';
import { until } from '../support/until.js';

/** A TCP relay to Postgres that can be cut and restored on the same port. */
class Relay {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;
  constructor(
    private readonly host: string,
    private readonly target: number,
  ) {}
  async open(): Promise<void> {
    this.server = createServer((client) => {
      const upstream = connect(this.target, this.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }
  async cut(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server!.close(() => r()));
    this.server = null;
  }
}

test('billing API: 503 with a clear message while the warehouse is unreachable, numbers again once it is back', { timeout: 120_000 }, async () => {
  const env = await stackEnv(['postgres']);
  const url = new URL(env.METER_DATABASE_URL!);
  const relay = new Relay(url.hostname, Number(url.port));
  await relay.open();
  const viaRelay = new URL(url);
  viaRelay.port = String(relay.port);
  const db = await PgWarehouse.open(viaRelay.toString());
  await migrate(db);
  const token = `svc-unavail-${Date.now()}`;
  const billing = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [token] });
  const usage = () =>
    fetch(`${billing.url}/v1/customers/nobody-${token}/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&granularity=hour&tz=UTC`, {
      headers: { authorization: `Bearer ${token}` },
    });
  try {
    const up = await usage();
    assert.notEqual(up.status, 503, 'warehouse reachable: a normal answer');
    await up.body?.cancel();

    await relay.cut();
    for (let i = 0; i < 3; i++) {
      const res = await usage();
      const body = (await res.json()) as { error?: string };
      assert.equal(res.status, 503, `warehouse down: 503, got ${res.status} ${JSON.stringify(body)}`);
      assert.match(body.error ?? '', /database is unavailable/);
      assert.equal(res.headers.get('retry-after'), '5');
      assert.equal(
        Object.keys(body).some((k) => /calls|events|series|amount/.test(k)),
        false,
        'no numbers in the answer',
      );
    }
    const health = await fetch(`${billing.url}/healthz`);
    assert.equal(health.status, 503, 'health says the warehouse is down');
    await health.body?.cancel();

    await relay.open();
    await until(
      'warehouse back: answers again without a restart',
      async () => {
        const r = await usage();
        await r.body?.cancel();
        return r.status !== 503;
      },
      10_000,
      100,
    );
  } finally {
    await billing.close();
    await db.close().catch(() => {});
    await relay.cut().catch(() => {});
  }
});

test('isWarehouseUnavailable: connection failures yes, query and programming errors no', () => {
  assert.equal(isWarehouseUnavailable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })), true);
  assert.equal(isWarehouseUnavailable(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })), true);
  assert.equal(isWarehouseUnavailable(Object.assign(new Error('the database system is starting up'), { code: '57P03' })), true);
  assert.equal(isWarehouseUnavailable(new Error('Connection terminated unexpectedly')), true);
  assert.equal(isWarehouseUnavailable(new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })], '')), true);
  assert.equal(isWarehouseUnavailable(Object.assign(new Error('relation "nope" does not exist'), { code: '42P01' })), false);
  assert.equal(isWarehouseUnavailable(Object.assign(new Error('duplicate key'), { code: '23505' })), false);
  assert.equal(isWarehouseUnavailable(new TypeError('x is undefined')), false);
  assert.equal(isWarehouseUnavailable(null), false);
});
