/**
 * The relay's hand-written streaming (src/gateway/relay.ts: an undici dispatch handler writing to
 * `res`, no pipe) on real parts: a real upstream answering in chunks and large, a client that
 * reads slowly (so the upstream must be paused and resumed), an upstream breaking off mid-answer,
 * and strict durability holding the last chunk until the event is in the real FileLog, or
 * cutting the answer off when the log refuses it.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { KeyStore, createKey, type CreatedKey } from '../../src/gateway/keys.js';
import { compileRoutes } from '../../src/gateway/routes.js';
import { startGateway, type Gateway } from '../../src/gateway/server.js';
import { MemoryLimiter } from '../../src/limiter/memory-limiter.js';
import { FileLog } from '../../src/log/file-log.js';
import type { LogProducer } from '../../src/log/log.js';
import type { UsageEvent } from '../../src/events/usage-event.js';
import { eventsInLog } from '../support/log-records.js';
import { listenLocal } from '../support/net.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';
import { migratedWarehouse } from '../support/warehouse.js';

const plans = { pro: { ratePerSec: 1000, burst: 1000 } };
const routes = compileRoutes({
  routes: [
    { method: 'GET', path: '/big', api: 'test.big' },
    { method: 'GET', path: '/chunks', api: 'test.chunks' },
    { method: 'GET', path: '/broken', api: 'test.broken' },
  ],
});
/** 4 MiB: far more than the sockets' buffers, so a slow reader makes the gateway pause the upstream. */
const BIG = Buffer.alloc(4 << 20, 'abcdefgh');
const CHUNKS = ['first,', 'second,', 'last'];

const readEvents = (log: FileLog): Promise<UsageEvent[]> => eventsInLog(log, 'relay-test');

/** GET through the gateway; `slowMs`: pause that long after each chunk read. Resolves with the bytes, or the error. */
function get(gw: Gateway, path: string, key: string, slowMs = 0): Promise<{ status: number; body: Buffer; eventId: string; error?: Error }> {
  const { port } = new URL(gw.url);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let status = 0;
    let eventId = '';
    const r = httpRequest({ host: '127.0.0.1', port, path, headers: { authorization: `Bearer ${key}` } }, (res) => {
      status = res.statusCode ?? 0;
      eventId = String(res.headers['x-meter-event-id'] ?? '');
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        if (slowMs) {
          res.pause();
          setTimeout(() => res.resume(), slowMs);
        }
      });
      res.on('end', () => resolve({ status, body: Buffer.concat(chunks), eventId }));
      res.on('error', (error) => resolve({ status, body: Buffer.concat(chunks), eventId, error }));
      res.on('aborted', () => resolve({ status, body: Buffer.concat(chunks), eventId, error: new Error('aborted') }));
    });
    r.on('error', (error) => resolve({ status, body: Buffer.concat(chunks), eventId, error }));
    r.end();
  });
}

describe('relay streaming', () => {
  let db: PgliteWarehouse;
  let upstream: Server;
  let upPort: number;
  let key: CreatedKey;
  const opened: { gw: Gateway; producer: LogProducer; log: FileLog }[] = [];

  before(async () => {
    db = await migratedWarehouse();
    key = await createKey(db, { customer: 'acme', plan: 'pro', plans });
    upstream = createServer((req, res) => {
      req.resume();
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG.length });
        res.end(BIG);
      } else if (req.url === '/chunks') {
        // Chunked, one part per tick: the gateway sees several data events.
        res.writeHead(200, { 'content-type': 'text/plain' });
        let i = 0;
        const next = () => {
          if (i < CHUNKS.length) res.write(CHUNKS[i++]!, () => setTimeout(next, 5));
          else res.end();
        };
        next();
      } else if (req.url === '/broken') {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 1000 });
        res.write('only part of it', () => setTimeout(() => res.socket?.destroy(), 20));
      }
    });
    upPort = await listenLocal(upstream);
  });

  after(async () => {
    for (const o of opened) {
      await o.gw.close();
      await o.producer.close().catch(() => {});
      await o.log.close();
    }
    await new Promise<void>((r) => upstream.close(() => r()));
    await db?.close();
  });

  async function gateway(durability: 'batched' | 'strict') {
    const log = new FileLog({ dir: tempDir('meter-relay-'), topic: 'usage-events', partitions: 2 });
    await log.init();
    const producer = await log.producer();
    const gw = await startGateway({
      host: '127.0.0.1',
      port: 0,
      upstream: `http://127.0.0.1:${upPort}`,
      keys: new KeyStore(db),
      limiter: new MemoryLimiter(),
      plans,
      routes,
      producer,
      eventFlushMs: 5,
      maxBodyBytes: 1024,
      durability,
    });
    const o = { gw, producer, log };
    opened.push(o);
    return o;
  }

  const eventOf = async (log: FileLog, id: string) => {
    let found: UsageEvent | undefined;
    await until(`event ${id} in the log`, async () => {
      found = (await readEvents(log)).find((e) => e.id === id);
      return found !== undefined;
    });
    return found!;
  };

  for (const durability of ['batched', 'strict'] as const) {
    it(`${durability}: a large answer to a slow reader arrives whole, once, with its bytes counted`, async () => {
      const { gw, log } = await gateway(durability);
      const r = await get(gw, '/big', key.key, 1);
      assert.equal(r.error, undefined);
      assert.equal(r.status, 200);
      assert.equal(r.body.length, BIG.length);
      assert.ok(r.body.equals(BIG), 'the bytes the upstream sent');
      const e = await eventOf(log, r.eventId);
      assert.equal(e.status, 200);
      assert.equal(e.bytesOut, BIG.length);
      assert.equal(e.billable, true);
      await until('the slot freed', () => gw.stats().fairness.inFlight.open === 0);
      assert.equal((await readEvents(log)).length, 1, 'one event for one call');
    });

    it(`${durability}: an answer in several chunks arrives in order`, async () => {
      const { gw, log } = await gateway(durability);
      const r = await get(gw, '/chunks', key.key);
      assert.equal(r.error, undefined);
      assert.equal(r.body.toString(), CHUNKS.join(''));
      const e = await eventOf(log, r.eventId);
      assert.equal(e.bytesOut, CHUNKS.join('').length);
    });

    it(`${durability}: an upstream that breaks off mid-answer breaks the client's answer too`, async () => {
      const { gw, log } = await gateway(durability);
      const r = await get(gw, '/broken', key.key);
      assert.ok(r.error, 'the client sees a broken answer, not a short success');
      assert.ok(r.body.length < 1000);
      // Strict holds the only chunk back, so the client never even saw the headers (nor the id).
      if (durability === 'strict') assert.equal(r.status, 0);
      await until('the call recorded', async () => (await readEvents(log)).length === 1);
      const [e] = await readEvents(log);
      if (durability === 'batched') assert.equal(e!.id, r.eventId);
      assert.equal(e!.status, 200, 'the status the upstream answered');
      assert.equal(e!.billable, true);
      await until('the slot freed', () => gw.stats().fairness.inFlight.open === 0);
    });
  }

  it('strict: the event is in the log before the answer completes; a log refusing it cuts the answer off', async () => {
    const { gw, log, producer } = await gateway('strict');
    const ok = await get(gw, '/chunks', key.key);
    assert.equal(ok.error, undefined);
    // No waiting: strict answered only once the event was durable.
    assert.ok((await readEvents(log)).some((e) => e.id === ok.eventId));
    await producer.close(); // the log now refuses every send
    const cut = await get(gw, '/chunks', key.key);
    assert.ok(cut.error, 'no complete answer for an unrecorded call');
    assert.notEqual(cut.body.toString(), CHUNKS.join(''));
    assert.equal(gw.stats().usageUnavailable, 1);
  });
});
