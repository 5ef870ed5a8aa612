/**
 * A gateway whose usage log is a Kafka topic reached through an address the test controls, with
 * its local spool in a folder the test names: what the spool tests (test/stack/spool*.test.ts)
 * start. Keys live in one PGlite per test file; the upstream answers 200 and counts calls.
 */
import type { TestContext } from 'node:test';
import { createServer, type Server } from 'node:http';
import { KafkaLog } from '../../src/log/kafka-log.js';
import type { LogRecord } from '../../src/log/log.js';
import { Spool } from '../../src/gateway/spool/spool.js';
import { SpoolingProducer } from '../../src/gateway/spool/spooling-producer.js';
import { startGateway, type Gateway } from '../../src/gateway/server.js';
import { KeyStore, createKey, type CreatedKey } from '../../src/gateway/keys.js';
import { compileRoutes } from '../../src/gateway/routes.js';
import { MemoryLimiter } from '../../src/limiter/memory-limiter.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';

export const uniq = (p: string) => `${p}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** A new topic on the real brokers. */
export async function newTopic(brokers: string[], prefix: string, partitions = 2): Promise<string> {
  const topic = uniq(prefix);
  const log = new KafkaLog({ brokers, topic, partitions, clientId: 'meter-test' });
  await log.init();
  await log.close();
  return topic;
}

/** Every record of the topic, all partitions, from offset 0. */
export async function topicRecords(brokers: string[], topic: string): Promise<LogRecord[]> {
  const log = new KafkaLog({ brokers, topic, partitions: 1, clientId: 'meter-test' });
  try {
    const c = await log.consumer(uniq('read'));
    const out: LogRecord[] = [];
    for (const [p, end] of await c.endOffsets()) if (end > 0) out.push(...(await c.readRange(p, 0, end)));
    return out;
  } finally {
    await log.close();
  }
}

let keysDb: Promise<PgliteWarehouse> | null = null;
/** The file's key database (one PGlite, closed by `closeKeysDb`). */
function keys(): Promise<PgliteWarehouse> {
  keysDb ??= PgliteWarehouse.open(null).then(async (d) => {
    await migrate(d);
    return d;
  });
  return keysDb;
}
export async function closeKeysDb(): Promise<void> {
  const d = keysDb;
  keysDb = null;
  if (d) await (await d).close();
}

export interface SpooledGatewayOptions {
  topic: string;
  /** Bootstrap address of the log (a Forwarder's, to take Kafka away and give it back). */
  bootstrap: string;
  spoolDir: string;
  spoolMaxBytes?: number;
  strict?: boolean;
  maxBufferedEvents?: number;
  /** Customers to make a key for (suffixed with the topic, so files can share the database). */
  customers?: string[];
  /** Bytes of padding in each upstream answer. */
  answerPad?: number;
  onError?: (msg: string) => void;
}

export interface SpooledGateway {
  gw: Gateway;
  sp: SpoolingProducer;
  upstreamCalls: () => number;
  /** The first customer's key. */
  key: CreatedKey;
  /** Key by customer name as given (without the suffix). */
  keys: Map<string, CreatedKey>;
  /** What the admin listener's /status serves (gateway.health()), loosely typed for asserts. */
  health: () => Promise<any>;
}

export async function spooledGateway(t: TestContext, o: SpooledGatewayOptions): Promise<SpooledGateway> {
  const d = await keys();
  const customers = o.customers ?? ['acme'];
  const made = new Map<string, CreatedKey>();
  for (const c of customers) made.set(c, await createKey(d, { customer: `${c}-${o.topic}`, plan: 'pro', plans: { pro: {} } }));
  let calls = 0;
  const answer = JSON.stringify({ ok: true, ...(o.answerPad ? { pad: 'y'.repeat(o.answerPad) } : {}) });
  const upstream: Server = createServer((req, res) => {
    calls++;
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(answer);
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const kafka = new KafkaLog({ brokers: [o.bootstrap], topic: o.topic, partitions: 2, clientId: 'meter-test-gw' });
  const spool = await Spool.open({ dir: o.spoolDir, topic: o.topic, maxBytes: o.spoolMaxBytes ?? 64 << 20, logger: () => {} });
  const sp = new SpoolingProducer({ openPrimary: () => kafka.producer(), spool, spoolAfterMs: 300, retryBaseMs: 50, retryMaxMs: 500, logger: () => {} });
  const gw = await startGateway({
    host: '127.0.0.1',
    port: 0,
    upstream: `http://127.0.0.1:${(upstream.address() as { port: number }).port}`,
    keys: new KeyStore(d),
    limiter: new MemoryLimiter(),
    plans: { pro: { ratePerSec: 100_000, burst: 100_000 } },
    routes: compileRoutes({ routes: [{ method: 'GET', path: '/v1/things/:id', api: 'things.get' }], unmatched: 'other' }),
    producer: sp,
    spool: sp,
    durability: o.strict ? 'strict' : 'batched',
    eventFlushMs: 10,
    maxBodyBytes: 1024,
    maxBufferedEvents: o.maxBufferedEvents,
    logger: { info() {}, warn() {}, error: (m) => o.onError?.(m) },
  });
  // Per-test cleanup (t.after): a root after() hook runs only once the event loop is idle, which an
  // open gateway or a retrying Kafka client never lets happen.
  t.after(async () => {
    await gw.close();
    await sp.close(0);
    await kafka.close();
    await new Promise<void>((r) => upstream.close(() => r()));
  });
  return { gw, sp, upstreamCalls: () => calls, key: made.get(customers[0]!)!, keys: made, health: async () => gw.health() as any };
}
