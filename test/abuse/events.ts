/**
 * Attacks on `POST /v1/events` (issue 14): bodies and batches beyond the bounds, customers that do
 * not exist, times out of bounds, nesting that would overflow a recursive stringify, and 10,000
 * copies of one event. Embedded backends (FileLog, PGlite, local lake) in the attack's folder.
 */
import { request } from 'node:http';
import type { Attack, AttackResult } from './attack.js';
import { loadConfig, type MeterConfig } from '../../src/config/config.js';
import { openLog, openLake, openWarehouse } from '../../src/runtime/backends.js';
import { startBillingRole, startIngestRole, rollupOf } from '../../src/runtime/roles.js';
import { silentLogger } from '../../src/ground/logger.js';
import type { UsageLog } from '../../src/log/log.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import { HOUR_MS, hourStart } from '../../src/lake/layout.js';
import { recordsInLog } from '../support/log-records.js';

const SERVICE = 'abuse-events-service-token';

interface Target {
  cfg: MeterConfig;
  url: string;
  log: UsageLog;
  db: Warehouse;
  /** Records on the usage log so far. */
  logged(): Promise<number>;
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}

async function target(dir: string): Promise<Target> {
  const cfg = loadConfig({ cwd: dir, env: { METER_INGEST_FLUSH_MS: '100' } });
  const log = await openLog(cfg);
  const db = await openWarehouse(cfg, silentLogger);
  await db.query(`INSERT INTO customers (id, name, time_zone) VALUES ('acme', 'Acme', 'UTC')`);
  const billing = await startBillingRole({ ...cfg, billingTokens: [SERVICE], billingPort: 0 }, { db, log }, undefined, silentLogger);
  return {
    cfg,
    url: billing.url,
    log,
    db,
    logged: () => recordsInLog(log, 'abuse-count'),
    healthy: async () => (await fetch(`${billing.url}/healthz`)).status === 200,
    close: async () => {
      await billing.close();
      await Promise.all([db.close(), log.close()]);
    },
  };
}

async function withTarget(dir: string, fn: (t: Target) => Promise<AttackResult>): Promise<AttackResult> {
  const t = await target(dir);
  try {
    return await fn(t);
  } finally {
    await t.close();
  }
}

const ce = (over: Record<string, unknown> = {}) => ({
  specversion: '1.0',
  id: 'e-1',
  source: 'abuse',
  type: 'ai.tokens',
  subject: 'acme',
  time: new Date(Date.now() - 60_000).toISOString(),
  data: { tokens: 1 },
  ...over,
});

async function post(
  t: Target,
  body: string,
): Promise<{ status: number; body: { error?: string; accepted?: number; rejected?: number; results?: { status: string; reason?: string }[] } }> {
  const res = await fetch(`${t.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${SERVICE}` },
    body,
  });
  return { status: res.status, body: (await res.json()) as never };
}

/** A chunked body of `total` bytes, written as fast as the server takes it: the status and how much was written before the answer. */
function streamBody(url: string, total: number): Promise<{ status: number; written: number }> {
  return new Promise((resolve, reject) => {
    let written = 0;
    let answered = false;
    const req = request(
      `${url}/v1/events`,
      { method: 'POST', headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${SERVICE}` } },
      (res) => {
        answered = true;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, written }));
        req.destroy();
      },
    );
    req.on('error', (e) => (answered ? undefined : reject(e)));
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const pump = () => {
      while (!answered && written < total) {
        written += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      if (!answered) req.end();
    };
    pump();
  });
}

export const attacks: Attack[] = [
  {
    name: 'events: oversized body (64 MiB streamed, 1 GiB declared)',
    expected: '413 before reading past 1 MiB; server serves on',
    run: ({ dir }) =>
      withTarget(dir, async (t) => {
        const rss0 = process.memoryUsage().rss;
        const streamed = await streamBody(t.url, 64 * 1024 * 1024);
        const rss = process.memoryUsage().rss - rss0;
        const declared = await new Promise<number>((resolve, reject) => {
          const req = request(
            `${t.url}/v1/events`,
            { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(2 ** 30), authorization: `Bearer ${SERVICE}` } },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
              req.destroy();
            },
          );
          req.on('error', reject);
          req.write('[');
        });
        const healthy = await t.healthy();
        const ok = streamed.status === 413 && streamed.written < 16 * 1024 * 1024 && declared === 413 && healthy && (await t.logged()) === 0;
        return {
          observed: `streamed: ${streamed.status} after ${(streamed.written / 1048576).toFixed(1)} MiB written, rss +${Math.round(rss / 1048576)} MiB; declared 1 GiB: ${declared}; healthz ${healthy}`,
          ok,
        };
      }),
  },
  {
    name: 'events: huge batch (100,000 tiny events; 1,000 of 4 KiB)',
    expected: '413 naming the bound, nothing logged',
    run: ({ dir }) =>
      withTarget(dir, async (t) => {
        const tiny = await post(t, JSON.stringify(Array.from({ length: 100_000 }, () => ({}))));
        const big = await post(t, JSON.stringify(Array.from({ length: 1000 }, (_, i) => ce({ id: `b${i}`, data: { s: 'x'.repeat(4000) } }))));
        const logged = await t.logged();
        const ok = tiny.status === 413 && /at most 1000 events/.test(tiny.body.error ?? '') && big.status === 413 && logged === 0;
        return { observed: `100k tiny: ${tiny.status} "${tiny.body.error}"; 1000 x 4 KiB: ${big.status}; logged ${logged}`, ok };
      }),
  },
  {
    name: 'events: unknown customers (1,000 distinct in one batch)',
    expected: '202, each rejected "unknown customer", none logged',
    run: ({ dir }) =>
      withTarget(dir, async (t) => {
        const r = await post(t, JSON.stringify(Array.from({ length: 1000 }, (_, i) => ce({ id: `u${i}`, subject: `nobody-${i}` }))));
        const all = r.body.results?.every((x) => x.status === 'rejected' && /^unknown customer/.test(x.reason ?? '')) ?? false;
        const logged = await t.logged();
        return {
          observed: `${r.status}, rejected ${r.body.rejected}/1000 (all unknown customer: ${all}), logged ${logged}`,
          ok: r.status === 202 && r.body.rejected === 1000 && all && logged === 0,
        };
      }),
  },
  {
    name: 'events: bad times (out of bounds, impossible, not RFC 3339)',
    expected: 'each rejected with its reason, none logged',
    run: ({ dir }) =>
      withTarget(dir, async (t) => {
        const now = Date.now();
        const times: unknown[] = [
          '0001-01-01T00:00:00Z',
          '9999-12-31T23:59:59Z',
          new Date(now - 36 * 86_400_000).toISOString(),
          new Date(now + 3_600_000).toISOString(),
          '2026-02-30T00:00:00Z',
          '2026-13-01T00:00:00Z',
          '2026-12-05T24:00:00Z',
          '2026-12-05T23:59:60Z',
          '2026-12-05T10:00:00+24:00',
          '2026-12-05',
          '1764900000000',
          1764900000000,
          'NaN',
          '',
          null,
          { t: 1 },
          '2026-12-05T10:00:00.' + '9'.repeat(100) + 'Z',
        ];
        const r = await post(t, JSON.stringify(times.map((time, i) => ce({ id: `t${i}`, time }))));
        const reasons = r.body.results?.filter((x) => x.status === 'rejected' && /time/.test(x.reason ?? '')).length ?? 0;
        const logged = await t.logged();
        return {
          observed: `${r.status}, ${reasons}/${times.length} rejected naming time, logged ${logged}`,
          ok: r.status === 202 && reasons === times.length && logged === 0,
        };
      }),
  },
  {
    name: 'events: 150,000-level nesting in data',
    expected: '202 rejected "nested more than 32 levels", no 500',
    run: ({ dir }) =>
      withTarget(dir, async (t) => {
        const e = JSON.stringify(ce());
        const r = await post(t, `[${e.slice(0, -1)},"data":${'{"a":'.repeat(150_000)}1${'}'.repeat(150_000)}}]`);
        const reason = r.body.results?.[0]?.reason ?? r.body.error ?? '';
        return {
          observed: `${r.status} "${reason}"; healthz ${await t.healthy()}`,
          ok: r.status === 202 && /nested more than 32 levels/.test(reason) && (await t.healthy()),
        };
      }),
  },
  {
    name: 'events: 10,000 copies of one event (10 concurrent batches)',
    expected: 'all 202 accepted, one record per request, billed once',
    run: ({ dir }) =>
      withTarget(dir, async (t) => {
        const hour = hourStart(Date.now()) - HOUR_MS;
        const body = JSON.stringify(Array.from({ length: 1000 }, () => ce({ id: 'same', time: new Date(hour + 1000).toISOString() })));
        const answers = await Promise.all(Array.from({ length: 10 }, () => post(t, body)));
        const accepted = answers.reduce((n, a) => n + (a.status === 202 ? (a.body.accepted ?? 0) : 0), 0);
        const logged = await t.logged();
        const lake = await openLake(t.cfg);
        try {
          const ingest = await startIngestRole(t.cfg, { log: t.log, lake, db: t.db }, silentLogger);
          try {
            await ingest.waitCaughtUp(60_000);
            await ingest.flushAll();
          } finally {
            await ingest.stop();
          }
          await rollupOf({ lake, db: t.db }, silentLogger).run();
        } finally {
          await lake.close();
        }
        const [row] = await t.db.query<{ calls: unknown }>(
          `SELECT coalesce(sum(calls), 0) AS calls FROM usage_hourly WHERE customer_id = 'acme' AND api = 'ai.tokens'`,
        );
        const billed = Number(row!.calls);
        return { observed: `accepted ${accepted}/10000, logged ${logged} records, billed ${billed}`, ok: accepted === 10_000 && logged === 10 && billed === 1 };
      }),
  },
];
