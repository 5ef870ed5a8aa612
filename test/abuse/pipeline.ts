/**
 * Attacks on the pipeline's trust in the topic (issue 12): events written straight onto the
 * usage topic, bypassing the gateway. Each runs on Kafka and Postgres from the stack (a topic
 * and a database of its own), a local lake in its folder, and meter's own ingest, live path and
 * rollup in-process; it reports what was dead-lettered and what was billed.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import type { Attack, AbuseCtx, AttackResult } from './attack.js';
import { callEvent } from '../support/events.js';
import { stackEnv, freshDatabase } from '../support/stack.js';
import { loadConfig, type MeterConfig } from '../../src/config/config.js';
import { openLog, openLake, openWarehouse } from '../../src/runtime/backends.js';
import { startIngestRole, startLiveRole, rollupOf } from '../../src/runtime/roles.js';
import { silentLogger } from '../../src/ground/logger.js';
import { encodeEvent, uuidv7, type UsageEvent } from '../../src/events/usage-event.js';
import { KafkaLog } from '../../src/log/kafka-log.js';
import { KafkaDeadLetterSource, reasonCode } from '../../src/pipeline/dead-letter-store.js';
import { replayDeadLetters } from '../../src/pipeline/dead-letter-replay.js';
import { DLQ_SUFFIX } from '../../src/log/kafka-dead-letter.js';
import { replay } from '../../src/pipeline/replay.js';
import { CustomerCheck } from '../../src/pipeline/customer-check.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import type { UsageLog } from '../../src/log/log.js';
import type { Lake } from '../../src/lake/lake.js';

interface Bench {
  cfg: MeterConfig;
  log: UsageLog;
  lake: Lake;
  db: Warehouse;
  close(): Promise<void>;
}

async function bench(ctx: AbuseCtx): Promise<Bench> {
  const stack = await stackEnv(['kafka', 'postgres']);
  const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const cfg = loadConfig({
    cwd: ctx.dir,
    configFile: '',
    env: {
      METER_DATA_DIR: join(ctx.dir, 'data'),
      METER_KAFKA_BROKERS: stack.METER_KAFKA_BROKERS,
      METER_DATABASE_URL: await freshDatabase(stack, 'abuse'),
      METER_TOPIC: `abuse-${run}`,
      METER_PARTITIONS: '2',
      METER_LAKE_URL: pathToFileURL(join(ctx.dir, 'lake')).href,
      METER_INGEST_FLUSH_MS: '200',
    },
  });
  const log = await openLog(cfg);
  const lake = await openLake(cfg);
  const db = await openWarehouse(cfg, silentLogger);
  return { cfg, log, lake, db, close: async () => void (await Promise.all([log.close(), lake.close(), db.close()])) };
}

function ev(customer: string, o: Partial<UsageEvent> = {}): UsageEvent {
  return callEvent(customer, { keyId: 'key_forged', status: 200, latencyMs: 1, bytesIn: 1, bytesOut: 1, ...o });
}

/** Straight onto the topic with a plain kafkajs producer: no gateway, no meter code. */
async function forge(b: Bench, values: { key: string; value: Buffer | string }[]): Promise<void> {
  const kafka = new Kafka({ clientId: 'intruder', brokers: b.cfg.kafkaBrokers, logLevel: logLevel.NOTHING });
  const p = kafka.producer();
  await p.connect();
  try {
    await p.send({ topic: b.cfg.topic, messages: values });
  } finally {
    await p.disconnect();
  }
}

/** Ingest and the live path catch up with the log, the rollup runs. */
async function drain(b: Bench): Promise<void> {
  const ingest = await startIngestRole(b.cfg, b, silentLogger);
  const live = await startLiveRole(b.cfg, b, silentLogger, { windowMs: 50 });
  try {
    await Promise.all([ingest.waitCaughtUp(40_000), live.waitCaughtUp(40_000)]);
  } finally {
    await ingest.stop();
    await live.stop();
  }
  const r = rollupOf(b, silentLogger);
  await r.run();
  await r.close();
}

/** Billable calls of a customer: the rollup's rows and the live path's rows. */
async function billed(b: Bench, customer: string): Promise<{ rollup: number; live: number }> {
  const q = async (table: string) =>
    Number((await b.db.query<{ n: string | null }>(`SELECT sum(calls)::text AS n FROM ${table} WHERE customer_id = $1`, [customer]))[0]?.n ?? 0);
  return { rollup: await q('usage_hourly'), live: await q('live_hourly') };
}

async function deadLetters(b: Bench): Promise<Record<string, number>> {
  const dlq = new KafkaLog({ brokers: b.cfg.kafkaBrokers, topic: `${b.cfg.topic}${DLQ_SUFFIX}`, partitions: 1 });
  await dlq.init();
  const src = new KafkaDeadLetterSource(dlq);
  const out: Record<string, number> = {};
  try {
    for await (const page of src.pages()) for (const e of page.entries) out[reasonCode(e.reason)] = (out[reasonCode(e.reason)] ?? 0) + 1;
  } finally {
    await src.close();
  }
  return out;
}

async function withBench(ctx: AbuseCtx, fn: (b: Bench) => Promise<AttackResult>): Promise<AttackResult> {
  const b = await bench(ctx);
  try {
    return await fn(b);
  } finally {
    await b.close();
  }
}

const fmt = (o: Record<string, number>) =>
  Object.entries(o)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || 'none';

export const attacks: Attack[] = [
  {
    name: 'event for an unknown customer',
    expected: 'dead-lettered, billed 0; a customer created later does not inherit it',
    run: (ctx) =>
      withBench(ctx, async (b) => {
        await forge(
          b,
          Array.from({ length: 20 }, () => ev('mallory')).map((e) => ({ key: e.customer, value: encodeEvent(e) })),
        );
        await drain(b);
        const before = await billed(b, 'mallory');
        // the customer appears afterwards: old events must not become theirs on a re-run
        await b.db.query(`INSERT INTO customers (id, name) VALUES ('mallory', 'Mallory')`);
        // ... when the lake is rebuilt from the log (meter replay) either
        const rebuilt = await replay({
          log: b.log,
          lake: b.lake,
          topic: b.cfg.topic,
          from: Date.now() - 3_600_000,
          to: Date.now() + 60_000,
          customers: new CustomerCheck(b.db),
        });
        await drain(b);
        const after = await billed(b, 'mallory');
        const dl = await deadLetters(b);
        const ok =
          (dl['unknown-customer'] ?? 0) === 20 && rebuilt.restored + rebuilt.changed === 0 && before.rollup + before.live + after.rollup + after.live === 0;
        return {
          ok,
          observed: `20 sent; dead letters: ${fmt(dl)}; billed rollup ${after.rollup}, live ${after.live}, also after the customer was created and the lake rebuilt (${rebuilt.restored + rebuilt.changed} files changed)`,
        };
      }),
  },
  {
    name: 'event with billable=true and status 500',
    expected: 'dead-lettered as billable-mismatch, billed 0',
    run: (ctx) =>
      withBench(ctx, async (b) => {
        await b.db.query(`INSERT INTO customers (id, name) VALUES ('acme', 'Acme')`);
        const forged = [
          ...Array.from({ length: 10 }, () => ev('acme', { status: 500, billable: true })),
          ...Array.from({ length: 5 }, () => ev('acme', { status: 200, billable: false })),
        ];
        await forge(
          b,
          [...forged, ev('acme')].map((e) => ({ key: e.customer, value: encodeEvent(e) })),
        );
        await drain(b);
        const got = await billed(b, 'acme');
        const dl = await deadLetters(b);
        const ok = dl['billable-mismatch'] === 15 && got.rollup === 1 && got.live === 1;
        return { ok, observed: `15 forged + 1 honest; dead letters: ${fmt(dl)}; billed rollup ${got.rollup}, live ${got.live} (the honest one)` };
      }),
  },
  {
    name: 'forged events straight onto the topic',
    expected: 'each that fails a check is dead-lettered with its reason; none billed',
    run: (ctx) =>
      withBench(ctx, async (b) => {
        await b.db.query(`INSERT INTO customers (id, name) VALUES ('acme', 'Acme')`);
        const old = Date.now() - 40 * 86_400_000;
        const forged: { key: string; value: Buffer | string }[] = [
          { key: 'acme', value: 'not json' },
          { key: 'acme', value: Buffer.alloc(70_000, 0x61) },
          { key: 'acme', value: encodeEvent({ ...ev('acme'), v: 99 }) },
          { key: 'acme', value: encodeEvent(ev('acme', { time: old, id: uuidv7(old) })) },
          { key: 'acme', value: encodeEvent(ev('acme', { time: Date.now() + 3_600_000 })) },
          { key: 'acme', value: encodeEvent(ev('acme', { status: 503, billable: true })) },
          { key: 'acme', value: encodeEvent(ev('nobody-at-all')) },
          { key: 'acme', value: JSON.stringify({ ...ev('acme'), status: -1 }) },
        ];
        await forge(b, forged);
        await drain(b);
        const got = await billed(b, 'acme');
        const dl = await deadLetters(b);
        const total = Object.values(dl).reduce((s, n) => s + n, 0);
        const ok = total === forged.length && got.rollup === 0 && got.live === 0;
        return {
          ok,
          observed: `${forged.length} forged; dead letters ${total}: ${fmt(dl)}; billed ${got.rollup} (a well-formed event of a real customer needs topic ACLs: SASL)`,
        };
      }),
  },
  {
    name: 'replay dead letters twice',
    expected: 'billed exactly once, also when the replay record is lost',
    run: (ctx) =>
      withBench(ctx, async (b) => {
        const evs = Array.from({ length: 30 }, () => ev('late-customer'));
        await forge(
          b,
          evs.map((e) => ({ key: e.customer, value: encodeEvent(e) })),
        );
        await drain(b);
        await b.db.query(`INSERT INTO customers (id, name) VALUES ('late-customer', 'Late')`);
        const replayOnce = async () => {
          const dlq = new KafkaLog({ brokers: b.cfg.kafkaBrokers, topic: `${b.cfg.topic}${DLQ_SUFFIX}`, partitions: 1 });
          await dlq.init();
          const source = new KafkaDeadLetterSource(dlq);
          try {
            return await replayDeadLetters({ source, log: b.log, db: b.db });
          } finally {
            await source.close();
          }
        };
        const r1 = await replayOnce();
        const r2 = await replayOnce();
        await b.db.query(`DELETE FROM dead_letter_replays`); // lost: the next replay really sends again
        const r3 = await replayOnce();
        await drain(b);
        const got = await billed(b, 'late-customer');
        const ok = r1.replayed === 30 && r2.replayed === 0 && r3.replayed === 30 && got.rollup === 30 && got.live === 30;
        return {
          ok,
          observed: `30 dead letters; replays sent ${r1.replayed}, ${r2.replayed}, ${r3.replayed} (record wiped); billed rollup ${got.rollup}, live ${got.live}`,
        };
      }),
  },
];
