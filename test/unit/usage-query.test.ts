import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { queryUsage, type Granularity } from '../../src/billing/usage-query.js';
import { formatInZone, parseTime, resolveTimeZone } from '../../src/ground/time.js';
import { migratedWarehouse } from '../support/warehouse.js';

let db: PgliteWarehouse;
const T = (iso: string) => Date.parse(iso);

before(async () => {
  db = await migratedWarehouse();
  const rows: [string, string, string, number, number][] = [
    // 23:30 UTC on Jan 31 is 08:30 on Feb 1 in Seoul: the 23:00 UTC hour row.
    ['acme', 'locations.create', '2026-01-31T23:00:00Z', 7, 8],
    ['acme', 'locations.create', '2026-01-31T14:00:00Z', 1, 1], // 23:00 Jan 31 in Seoul
    ['acme', 'locations.create', '2026-01-31T15:00:00Z', 2, 2], // 00:00 Feb 1 in Seoul
    ['acme', 'locations.latest', '2026-01-15T10:00:00Z', 5, 5],
    ['acme', 'locations.create', '2026-02-10T00:00:00Z', 100, 100],
    ['globex', 'locations.create', '2026-01-31T23:00:00Z', 1000, 1000], // another customer
    // New York changes to daylight time on 2026-03-08.
    ['acme', 'locations.history', '2026-03-08T04:00:00Z', 1, 1], // 23:00 Mar 7 EST
    ['acme', 'locations.history', '2026-03-08T05:00:00Z', 2, 2], // 00:00 Mar 8 EST
    ['acme', 'locations.history', '2026-03-09T03:00:00Z', 4, 4], // 23:00 Mar 8 EDT
    ['acme', 'locations.history', '2026-03-09T04:00:00Z', 8, 8], // 00:00 Mar 9 EDT
  ];
  for (const r of rows) await db.query('INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ($1, $2, $3, $4, $5)', r);
});
after(() => db.close());

const q = (granularity: Granularity, timeZone: string, from: string, to: string) =>
  queryUsage(db, { customer: 'acme', from: T(from), to: T(to), granularity, timeZone });
const series = (r: Awaited<ReturnType<typeof queryUsage>>) => r.series.map((p) => [p.start, p.api, p.calls]);

test('month buckets: a call at 23:30 UTC on Jan 31 is January in UTC and February in Seoul', async () => {
  const utc = await q('month', 'UTC', '2026-01-01T00:00:00Z', '2026-03-01T00:00:00Z');
  assert.deepEqual(series(utc), [
    ['2026-01-01T00:00:00Z', 'locations.create', 10],
    ['2026-01-01T00:00:00Z', 'locations.latest', 5],
    ['2026-02-01T00:00:00Z', 'locations.create', 100],
  ]);
  const seoul = await q('month', 'Asia/Seoul', '2025-12-31T15:00:00Z', '2026-02-28T15:00:00Z');
  assert.deepEqual(series(seoul), [
    ['2026-01-01T00:00:00+09:00', 'locations.create', 1],
    ['2026-01-01T00:00:00+09:00', 'locations.latest', 5],
    ['2026-02-01T00:00:00+09:00', 'locations.create', 109],
  ]);
  assert.equal(seoul.calls, 115n);
  assert.equal(utc.calls, 115n);
  assert.deepEqual(
    seoul.byApi.map((a) => [a.api, a.calls, a.events]),
    [
      ['locations.create', 110n, 111n],
      ['locations.latest', 5n, 5n],
    ],
  );
});

test('day buckets in Seoul vs UTC', async () => {
  const utc = await q('day', 'UTC', '2026-01-31T00:00:00Z', '2026-02-02T00:00:00Z');
  assert.deepEqual(series(utc), [['2026-01-31T00:00:00Z', 'locations.create', 10]]);
  const seoul = await q('day', 'Asia/Seoul', '2026-01-30T15:00:00Z', '2026-02-01T15:00:00Z');
  assert.deepEqual(series(seoul), [
    ['2026-01-31T00:00:00+09:00', 'locations.create', 1],
    ['2026-02-01T00:00:00+09:00', 'locations.create', 9],
  ]);
});

test('day buckets across a daylight-saving change keep local midnights', async () => {
  const ny = await q('day', 'America/New_York', '2026-03-07T05:00:00Z', '2026-03-10T04:00:00Z');
  assert.deepEqual(series(ny), [
    ['2026-03-07T00:00:00-05:00', 'locations.history', 1],
    ['2026-03-08T00:00:00-05:00', 'locations.history', 6],
    ['2026-03-09T00:00:00-04:00', 'locations.history', 8],
  ]);
});

test('hour buckets are the stored hours shown in the zone; total is one bucket at from', async () => {
  const h = await q('hour', 'Asia/Seoul', '2026-01-31T14:00:00Z', '2026-02-01T00:00:00Z');
  assert.deepEqual(series(h), [
    ['2026-01-31T23:00:00+09:00', 'locations.create', 1],
    ['2026-02-01T00:00:00+09:00', 'locations.create', 2],
    ['2026-02-01T08:00:00+09:00', 'locations.create', 7],
  ]);
  const t = await q('total', 'Asia/Seoul', '2026-01-01T00:00:00Z', '2026-12-01T00:00:00Z');
  assert.deepEqual(series(t), [
    ['2026-01-01T09:00:00+09:00', 'locations.create', 110],
    ['2026-01-01T09:00:00+09:00', 'locations.history', 15],
    ['2026-01-01T09:00:00+09:00', 'locations.latest', 5],
  ]);
});

test('[from, to): an hour counts when its start is inside', async () => {
  const r = await q('total', 'UTC', '2026-01-31T15:00:00Z', '2026-01-31T23:00:00Z');
  assert.equal(r.calls, 2n); // 15:00 in, 23:00 out
  const none = await queryUsage(db, { customer: 'nobody', from: 0, to: T('2030-01-01T00:00:00Z'), granularity: 'day', timeZone: 'UTC' });
  assert.deepEqual(none, { series: [], byApi: [], calls: 0n, events: 0n });
});

test('time zones and times at the edge', () => {
  assert.equal(resolveTimeZone('Asia/Seoul'), 'Asia/Seoul');
  assert.equal(resolveTimeZone('asia/seoul'), 'Asia/Seoul');
  assert.equal(resolveTimeZone('UTC'), 'UTC');
  for (const bad of ['Mars/Olympus', 'UTC+5', '+09:00', '', 'Asia/Seoul; DROP TABLE x', '../etc/passwd']) assert.equal(resolveTimeZone(bad), null, bad);

  assert.equal(parseTime('2026-02-01', 'Asia/Seoul'), T('2026-01-31T15:00:00Z'));
  assert.equal(parseTime('2026-02-01T09:30', 'Asia/Seoul'), T('2026-02-01T00:30:00Z'));
  assert.equal(parseTime('2026-02-01T00:00:00Z', 'Asia/Seoul'), T('2026-02-01T00:00:00Z'));
  assert.equal(parseTime('2026-02-01T09:00:00+09:00', 'UTC'), T('2026-02-01T00:00:00Z'));
  assert.equal(parseTime('2026-02-01T09:00:00 09:00', 'UTC'), T('2026-02-01T00:00:00Z')); // '+' decoded to ' '
  assert.equal(parseTime('2026-03-08', 'America/New_York'), T('2026-03-08T05:00:00Z'));
  assert.equal(parseTime('2026-03-09', 'America/New_York'), T('2026-03-09T04:00:00Z'));
  for (const bad of ['2026-02-30', '2026-13-01', '2026-01-01T24:00:00Z', 'yesterday', '1700000000000', '2026-1-1', '2026-01-01T00:00:00+25:00'])
    assert.equal(parseTime(bad, 'UTC'), null, bad);

  assert.equal(formatInZone(T('2026-01-31T23:30:00Z'), 'Asia/Seoul'), '2026-02-01T08:30:00+09:00');
  assert.equal(formatInZone(T('2026-01-31T23:30:00Z'), 'Asia/Kolkata'), '2026-02-01T05:00:00+05:30');
  assert.equal(formatInZone(T('2026-01-31T23:30:00Z'), 'America/St_Johns'), '2026-01-31T20:00:00-03:30');
});
