/**
 * POST /v1/events while the usage log cannot take events: 503 with retry-after, nothing accepted;
 * once the log is back the same request is accepted. The log is the embedded one, held by
 * another live process (its one-writer lock), as a second `meter dev` on the same data dir would.
 * And a log that does not answer (Kafka down: its producer retries 20-30 s): the 503 comes after
 * the intake's bound, not the producer's retries.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { loadConfig, type MeterConfig } from '../../src/config/config.js';
import { openLog, openWarehouse } from '../../src/runtime/backends.js';
import { startBillingRole } from '../../src/runtime/roles.js';
import { silentLogger } from '../../src/ground/logger.js';
import { EventsIntake } from '../../src/billing/events/events-intake.js';
import { eventIdOf } from '../../src/billing/events/event-id.js';
import { decodeEvent } from '../../src/events/usage-event.js';
import type { LogProducer, ProducerRecord } from '../../src/log/log.js';
import { tempDir } from '../support/tmp.js';
import { sleep, until } from '../support/until.js';
import { migratedFolder, seedDataDir } from '../support/warehouse.js';

const SERVICE = 'svc-events-down-0123456789';
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
});

/** The embedded log (not initialised) and warehouse of `cfg`, the warehouse holding customer acme; closed after the file. */
async function logAndWarehouse(cfg: MeterConfig) {
  const log = await openLog(cfg);
  seedDataDir(await migratedFolder(), cfg.dataDir); // no initdb: the warehouse made once per build
  const db = await openWarehouse(cfg, silentLogger);
  closers.push(
    () => log.close(),
    () => db.close(),
  );
  await db.query(`INSERT INTO customers (id, name, time_zone) VALUES ('acme', 'Acme', 'UTC')`);
  return { log, db };
}

/** `intake` behind a plain HTTP server (no auth), closed after the file; its POST /v1/events URL. */
async function serveIntake(intake: EventsIntake): Promise<string> {
  const server = createServer(async (req, res) => {
    const a = await intake.post(req);
    res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
    res.end(JSON.stringify(a.body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(async () => void server.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/events`;
}

test('the log unavailable: 503 and retry-after, nothing accepted; back: the resend is accepted', async () => {
  const cfg = loadConfig({ cwd: tempDir('meter-events-down-'), env: {} });
  const { log, db } = await logAndWarehouse(cfg);
  // Another live process holds the log's writer lock.
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], { stdio: 'ignore' });
  closers.push(async () => void holder.kill());
  const lock = join(cfg.dataDir, 'log', cfg.topic, '.lock');
  mkdirSync(join(cfg.dataDir, 'log', cfg.topic), { recursive: true });
  writeFileSync(lock, String(holder.pid));
  const billing = await startBillingRole({ ...cfg, billingTokens: [SERVICE], billingPort: 0 }, { db, log }, undefined, silentLogger);
  closers.push(() => billing.close());

  const body = JSON.stringify([
    { specversion: '1.0', id: 'd-1', source: 'down-test', type: 'ai.tokens', subject: 'acme', time: new Date(Date.now() - 60_000).toISOString() },
  ]);
  const post = () =>
    fetch(`${billing.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${SERVICE}` },
      body,
    });
  const down = await post();
  assert.equal(down.status, 503);
  assert.equal(down.headers.get('retry-after'), '5');
  assert.match(((await down.json()) as { error: string }).error, /usage log is unavailable.*retry.*billed once/);
  // Reads still answer while the log is down.
  assert.equal((await fetch(`${billing.url}/v1/customers/acme`, { headers: { authorization: `Bearer ${SERVICE}` } })).status, 200);

  holder.kill();
  await new Promise((r) => holder.once('exit', r));
  const back = await post();
  assert.equal(back.status, 202);
  assert.equal(((await back.json()) as { accepted: number }).accepted, 1);
});

test('a log that does not answer: 503 after the bound, later requests 503 at once; the late send stores, the resend is the same events', async () => {
  const cfg = loadConfig({ cwd: tempDir('meter-events-slow-'), env: {} });
  const { log, db } = await logAndWarehouse(cfg);
  await log.init();
  // The embedded log's own producer, held back until released: a log that takes the events late.
  let release = () => {};
  const held = new Promise<void>((r) => (release = r));
  const stored: ProducerRecord[][] = [];
  let sends = 0;
  const real = await log.producer();
  const slow: LogProducer = {
    async send(records) {
      sends++;
      await held;
      await real.send(records);
      stored.push(records);
    },
    close: () => real.close(),
  };
  const intake = new EventsIntake({ db, openProducer: async () => slow, logWaitMs: 300 });
  const url = await serveIntake(intake);
  const time = new Date(Date.now() - 60_000).toISOString();
  const body = JSON.stringify(['s-1', 's-2'].map((id) => ({ specversion: '1.0', id, source: 'slow-test', type: 'ai.tokens', subject: 'acme', time })));
  const post = () =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/cloudevents-batch+json' }, body, signal: AbortSignal.timeout(10_000) });

  // Before the bound, the request waited as long as the producer did (here: until released).
  const first = await post();
  assert.equal(first.status, 503);
  assert.equal(first.headers.get('retry-after'), '5');
  // While that send still runs, a request is refused without a send of its own.
  const second = await post();
  assert.equal(second.status, 503);
  assert.equal(sends, 1, 'no second send while the first is stuck');

  release();
  await until('the late send to be stored', () => stored.length === 1);
  const resend = await post();
  assert.equal(resend.status, 202);
  assert.equal(((await resend.json()) as { accepted: number }).accepted, 2);
  // The log holds both sends: the same two ids twice, which the rollup counts once (invariant 2).
  const idsOf = (recs: ProducerRecord[]) =>
    recs.map((r) => {
      const d = decodeEvent(r.value);
      assert.ok(d.ok);
      return d.event.id;
    });
  const want = [eventIdOf('slow-test', 's-1'), eventIdOf('slow-test', 's-2')];
  assert.deepEqual(stored.map(idsOf), [want, want]);
});

test('sends never overlap: requests that arrive during a send go together in the next; after a failed send, a new producer', async () => {
  const cfg = loadConfig({ cwd: tempDir('meter-events-serial-'), env: {} });
  const { log, db } = await logAndWarehouse(cfg);
  await log.init();
  // The embedded log's producers, each send taking 30 ms; a send fails when told to.
  let sending = 0;
  let most = 0;
  let sends = 0;
  let opened = 0;
  let failNext = false;
  const stored: string[] = [];
  const open = async (): Promise<LogProducer> => {
    const real = await log.producer();
    opened++;
    return {
      async send(records) {
        sends++;
        sending++;
        most = Math.max(most, sending);
        try {
          await sleep(30);
          if (failNext) {
            failNext = false;
            throw new Error('The broker received an out of order sequence number');
          }
          await real.send(records);
          for (const r of records) {
            const d = decodeEvent(r.value);
            assert.ok(d.ok);
            stored.push(d.event.id);
          }
        } finally {
          sending--;
        }
      },
      close: () => real.close(),
    };
  };
  const intake = new EventsIntake({ db, openProducer: open });
  const url = await serveIntake(intake);
  const time = new Date(Date.now() - 60_000).toISOString();
  const post = (ids: string[]) =>
    fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents-batch+json' },
      body: JSON.stringify(ids.map((id) => ({ specversion: '1.0', id, source: 'serial-test', type: 'ai.tokens', subject: 'acme', time }))),
    }).then((r) => r.status);

  // 20 requests at once: one send at a time (before: 20 sends at once on one producer).
  const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => post([`a-${i}`, `b-${i}`])));
  assert.deepEqual(statuses, Array(20).fill(202));
  assert.equal(most, 1, 'at most one send at a time');
  assert.ok(sends < 20, `requests that waited went together: ${sends} sends for 20 requests`);
  assert.equal(new Set(stored).size, 40);
  assert.equal(stored.length, 40);
  // A failed send: 503, and the next send opens a new producer (one whose sequences start anew).
  failNext = true;
  assert.equal(await post(['c-1']), 503);
  assert.equal(await post(['c-1']), 202);
  assert.equal(opened, 2);
  assert.equal(stored.filter((id) => id === eventIdOf('serial-test', 'c-1')).length, 1);
});
