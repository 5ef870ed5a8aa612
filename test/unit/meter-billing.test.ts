/**
 * Meters on the billing side (docs/meters.md): usage by meter over HTTP (windows, groups, time
 * zones, the 400s for an unaligned range or an unknown meter or group), and prices on meters in
 * the cost and the invoice, with the exact value beside the whole units priced.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { parseCatalog } from '../../src/billing/catalog.js';
import { startBillingServer, type BillingServer } from '../../src/billing/server.js';
import { createCustomerToken } from '../../src/billing/auth.js';
import { replaceMeterHour, type MeterHourlyRow } from '../../src/warehouse/meter-repository.js';
import { unitsStarted } from '../../src/billing/meter-cost.js';
import { parseDecimal } from '../../src/billing/money.js';
import type { MeterUsageRow } from '../../src/billing/meter-usage.js';
import type { LineJson } from '../../src/billing/reports.js';
import { migratedWarehouse } from '../support/warehouse.js';

const SERVICE = 'svc-token-for-meter-tests-0123456789';
let db: PgliteWarehouse;
let server: BillingServer;
let acmeToken: string;

const catalog = parseCatalog({
  currency: 'USD',
  meters: [
    { slug: 'tokens', eventType: 'ai.tokens', aggregation: 'SUM', valueProperty: '$.tokens', groupBy: { model: '$.model' } },
    { slug: 'users', eventType: 'ai.tokens', aggregation: 'UNIQUE_COUNT', valueProperty: '$.user' },
    { slug: 'peak', eventType: 'ai.tokens', aggregation: 'MAX', valueProperty: '$.tokens' },
    { slug: 'bytes_out' },
    { slug: 'chats', eventType: 'ai.chat', aggregation: 'COUNT', groupBy: { model: '$.model', region: '$.region' } },
    { slug: 'visitors', eventType: 'ai.chat', aggregation: 'UNIQUE_COUNT', valueProperty: '$.user', groupBy: { region: '$.region' } },
  ],
  plans: {
    ai: {
      name: 'AI',
      rateLimit: { ratePerSec: 10, burst: 10 },
      prices: { 'locations.latest': '0.001' },
      meterPrices: {
        // 1,000 tokens free a month, then 0.00002 each; from Feb 10 0.00003
        tokens: [
          { unitPrice: '0.00002', freeUnits: 1000 },
          { effectiveFrom: '2026-02-10T00:00:00Z', unitPrice: '0.00003', freeUnits: 1000 },
        ],
        bytes_out: { model: 'package', packageSize: 1000000, packagePrice: '0.05' },
      },
    },
    // A MAX meter priced: the period's peak, in whole units; 0.02 a unit from Feb 10
    peaky: {
      name: 'Peak',
      rateLimit: { ratePerSec: 10, burst: 10 },
      prices: {},
      meterPrices: {
        peak: [{ unitPrice: '0.01' }, { effectiveFrom: '2026-02-10T00:00:00Z', unitPrice: '0.02' }],
      },
    },
    // A UNIQUE_COUNT meter priced: the period's distinct users, 1.00 each, 2.00 from Feb 10
    uniq: {
      name: 'Users',
      rateLimit: { ratePerSec: 10, burst: 10 },
      prices: {},
      meterPrices: {
        users: [{ unitPrice: '1' }, { effectiveFrom: '2026-02-10T00:00:00Z', unitPrice: '2' }],
      },
    },
  },
});

const row = (meter: string, value: string, groups = '{}', customer = 'acme'): MeterHourlyRow => ({ customer, meter, groups, value, events: 1n });
/** A UNIQUE_COUNT row: its distinct values' digests (as the rollup writes them, migration 019), the value their count. */
const uniq = (meter: string, digests: number[], groups = '{}', customer = 'acme'): MeterHourlyRow => ({
  ...row(meter, String(digests.length), groups, customer),
  digests: `{${digests.join(',')}}`,
});

before(async () => {
  db = await migratedWarehouse();
  await db.query(
    `INSERT INTO customers (id, name, time_zone, plan_id) VALUES ('acme', 'Acme', 'Asia/Seoul', 'ai'), ('globex', 'Globex', 'UTC', 'ai'), ('initech', 'Initech', 'UTC', 'peaky'), ('hooli', 'Hooli', 'UTC', 'uniq')`,
  );
  await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('acme', 'locations.latest', '2026-02-02T10:00:00Z', 3, 3)`);
  const hours: [string, MeterHourlyRow[]][] = [
    // Feb 1 00:00 in Seoul is Jan 31 15:00 UTC
    ['2026-01-31T15:00:00Z', [row('tokens', '600.5', '{"model":"m-1"}'), uniq('users', [1, 2]), row('peak', '400')]],
    ['2026-01-31T16:00:00Z', [row('tokens', '300', '{"model":"m-2"}'), uniq('users', [2, 3]), row('peak', '300')]],
    [
      '2026-02-02T10:00:00Z',
      [row('tokens', '200', '{"model":"m-1"}'), row('bytes_out', '1500000', '{"api":"locations.latest"}'), row('tokens', '99', '{}', 'globex')],
    ],
    // after the price change
    ['2026-02-12T10:00:00Z', [row('tokens', '1000', '{"model":"m-2"}')]],
  ];
  // initech's peaks (MAX, priced): 100.5 on Feb 2, lower on Feb 3, 150 after the price change, 50 in March
  for (const [h, v] of [
    ['2026-02-02T10:00:00Z', '100.5'],
    ['2026-02-03T10:00:00Z', '80'],
    ['2026-02-12T10:00:00Z', '150'],
    ['2026-03-01T05:00:00Z', '50'],
  ] as const)
    hours.push([h, [row('peak', v, '{}', 'initech')]]);
  // hooli's users (UNIQUE_COUNT, priced): 6 user-hours in February, 4 distinct users; user 1 again in March
  for (const [h, users] of [
    ['2026-02-02T10:00:00Z', [1, 2]],
    ['2026-02-03T10:00:00Z', [2, 3]],
    ['2026-02-12T10:00:00Z', [1, 4]],
    ['2026-03-01T05:00:00Z', [1]],
  ] as const)
    hours.push([h, [uniq('users', [...users], '{}', 'hooli')]]);
  // Meters of two groups, and distinct values per group
  hours.push(
    [
      '2026-02-05T10:00:00Z',
      [
        row('chats', '5', '{"model":"m-1","region":"eu"}'),
        row('chats', '3', '{"model":"m-1","region":"us"}'),
        row('chats', '2', '{"model":"m-2","region":"eu"}'),
        uniq('visitors', [1, 2], '{"region":"eu"}'),
        uniq('visitors', [2, 3, 4], '{"region":"us"}'),
      ],
    ],
    ['2026-02-05T11:00:00Z', [row('chats', '1', '{"model":"m-1","region":"eu"}'), row('chats', '4', '{"model":null,"region":"eu"}')]],
  );
  for (const [h, rows] of hours) await db.transaction((tx) => replaceMeterHour(tx, Date.parse(h), [...new Set(rows.map((r) => r.meter))], rows));
  acmeToken = await createCustomerToken(db, 'acme');
  server = await startBillingServer({ db, catalog, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE] });
});
after(async () => {
  await server.close();
  await db.close();
});

/** The fields of the answers (usage by meter, cost, invoice, meters, errors) these tests read. */
interface Body {
  aggregation: string;
  groupBy: string[];
  filter: Record<string, string[]>;
  calls: number;
  data: MeterUsageRow[];
  error: string;
  exact: boolean;
  lines: LineJson[];
  meters: { slug: string; aggregation: string; builtIn: boolean; groupBy: Record<string, string> }[];
  parameter: string;
  timeZone: string;
  total: string;
  invoices: { customer: string; total: string; lines: LineJson[] }[];
}

async function get(path: string, token = SERVICE): Promise<{ status: number; body: Body }> {
  const res = await fetch(server.url + path, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  assert.doesNotMatch(text, /\n\s+at |node:internal|\.js:\d+/, 'no stack traces');
  return { status: res.status, body: JSON.parse(text) };
}

test('usage by meter: windows in the zone, groups, the built-in calls, MAX and UNIQUE_COUNT', async () => {
  const r = await get('/v1/customers/acme/usage?meter=tokens&from=2026-02-01&to=2026-02-03&tz=Asia/Seoul&windowSize=DAY&groupBy=model');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body.data, [
    { windowStart: '2026-02-01T00:00:00+09:00', windowEnd: '2026-02-02T00:00:00+09:00', value: '600.5', groupBy: { model: 'm-1' } },
    { windowStart: '2026-02-01T00:00:00+09:00', windowEnd: '2026-02-02T00:00:00+09:00', value: '300', groupBy: { model: 'm-2' } },
    { windowStart: '2026-02-02T00:00:00+09:00', windowEnd: '2026-02-03T00:00:00+09:00', value: '200', groupBy: { model: 'm-1' } },
  ]);
  assert.equal(r.body.aggregation, 'SUM');
  assert.equal(r.body.exact, true);

  const total = await get('/v1/me/usage?meter=tokens&from=2026-02-01&to=2026-03-01', acmeToken);
  assert.deepEqual(
    total.body.data.map((x: { value: string }) => x.value),
    ['2100.5'],
  );
  assert.equal(total.body.timeZone, 'Asia/Seoul');

  const peak = await get('/v1/customers/acme/usage?meter=peak&from=2026-01-31T15:00:00Z&to=2026-01-31T17:00:00Z&windowSize=HOUR');
  assert.deepEqual(
    peak.body.data.map((x: { value: string }) => x.value),
    ['400', '300'],
  );
  const peakDay = await get('/v1/customers/acme/usage?meter=peak&from=2026-02-01&to=2026-02-02&tz=Asia/Seoul');
  assert.deepEqual(
    peakDay.body.data.map((x: { value: string }) => x.value),
    ['400'],
    'MAX of the hours, not their sum',
  );

  const users = await get('/v1/customers/acme/usage?meter=users&from=2026-02-01&to=2026-02-02&tz=Asia/Seoul&windowSize=DAY');
  assert.equal(users.body.exact, true);
  assert.equal(users.body.data[0]?.value, '3', 'distinct users of the day, not the sum of the hours (4)');

  const calls = await get('/v1/customers/acme/usage?meter=calls&from=2026-02-01&to=2026-03-01&tz=UTC&windowSize=MONTH&groupBy=api');
  assert.deepEqual(calls.body.data, [
    { windowStart: '2026-02-01T00:00:00Z', windowEnd: '2026-03-01T00:00:00Z', value: '3', groupBy: { api: 'locations.latest' } },
  ]);
  const bytes = await get('/v1/customers/acme/usage?meter=bytes_out&from=2026-02-01&to=2026-03-01&tz=UTC');
  assert.equal(bytes.body.data[0]?.value, '1500000');
});

test('usage by meter: several groupBy, filters by group value (filterGroupBy[...] and filter[...]), on calls too', async () => {
  const q = (query: string) => get(`/v1/customers/acme/usage?meter=chats&from=2026-02-05T00:00:00Z&to=2026-02-06T00:00:00Z&tz=UTC&${query}`);
  const both = await q('windowSize=DAY&groupBy=region&groupBy=model');
  assert.equal(both.status, 200, JSON.stringify(both.body));
  assert.deepEqual(both.body.groupBy, ['region', 'model']);
  assert.deepEqual(
    both.body.data.map((d) => `${d.groupBy?.region}/${d.groupBy?.model} ${d.value}`),
    ['eu/m-1 6', 'eu/m-2 2', 'eu/null 4', 'us/m-1 3'],
  );
  const m1 = await q('filterGroupBy[model]=m-1');
  assert.deepEqual(
    m1.body.data.map((d) => d.value),
    ['9'],
  );
  assert.deepEqual(m1.body.filter, { model: ['m-1'] });
  assert.equal(m1.body.data[0]?.groupBy, undefined, 'no groupBy: no group in the rows');
  const regions = await q('filter[region]=us&filter[region]=eu&filter[model]=m-1&groupBy=region&windowSize=HOUR');
  assert.deepEqual(
    regions.body.data.map((d) => `${d.windowStart} ${d.groupBy?.region} ${d.value}`),
    ['2026-02-05T10:00:00Z eu 5', '2026-02-05T10:00:00Z us 3', '2026-02-05T11:00:00Z eu 1'],
  );
  const none = await q('filterGroupBy[model]=gpt-9');
  assert.deepEqual(none.body.data, [], 'a value no event has: no rows');

  const calls = await get('/v1/customers/acme/usage?meter=calls&from=2026-02-02T00:00:00Z&to=2026-02-03T00:00:00Z&filter[api]=locations.latest&groupBy=api');
  assert.deepEqual(
    calls.body.data.map((d) => `${d.groupBy?.api} ${d.value}`),
    ['locations.latest 3'],
  );
  const otherApi = await get('/v1/customers/acme/usage?meter=calls&from=2026-02-02T00:00:00Z&to=2026-02-03T00:00:00Z&filter[api]=x');
  assert.deepEqual(otherApi.body.data, []);
});

test('usage by meter: UNIQUE_COUNT counts distinct values over any window and groups, exactly', async () => {
  const q = async (query: string, to = '2026-02-05T11:00:00Z') => {
    const r = await get(`/v1/customers/acme/usage?meter=visitors&from=2026-02-05T10:00:00Z&to=${to}&${query}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return `${r.body.data.map((d) => d.value).join(',')} exact=${r.body.exact}`;
  };
  assert.equal(await q(''), '4 exact=true', 'eu {1,2} + us {2,3,4}: visitor 2 in both counts once');
  assert.equal(await q('groupBy=region'), '2,3 exact=true');
  assert.equal(await q('filter[region]=eu'), '2 exact=true');
  assert.equal(await q('filter[region]=eu&filter[region]=us'), '4 exact=true');
  assert.equal(await q('groupBy=region', '2026-02-06T00:00:00Z'), '2,3 exact=true', 'a day of hours');
  const month = await get('/v1/customers/acme/usage?meter=users&from=2026-01-31T15:00:00Z&to=2026-01-31T17:00:00Z&windowSize=HOUR');
  assert.deepEqual(
    month.body.data.map((d) => d.value),
    ['2', '2'],
    'per hour',
  );
});

test('usage by meter: groupBy and filters are bounded, and a mistake is a 400 naming the parameter', async () => {
  const base = 'meter=chats&from=2026-02-05T00:00:00Z&to=2026-02-06T00:00:00Z';
  const many = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i)).join('&');
  const cases: [string, string, RegExp][] = [
    ['groupBy=model&groupBy=model', 'groupBy', /groupBy "model" is given twice/],
    ['groupBy=model&groupBy=colour', 'groupBy', /meter chats groups by model, region; got "colour"/],
    ['filter[colour]=red', 'filterGroupBy[colour]', /meter chats groups by model, region; got "colour"/],
    ['filterGroupBy[]=x', 'filterGroupBy[]', /name the group, e\.g\. filterGroupBy\[model\]=gpt-4/],
    [`filter[model]=${'x'.repeat(201)}`, 'filterGroupBy[model]', /at most 200 characters, got 201/],
    [many(9, (i) => `filter[g${i}]=x`), 'filterGroupBy[g8]', /at most 8 groups filtered/],
    [many(101, (i) => `filter[model]=v${i}`), 'filterGroupBy[model]', /at most 100 values per group/],
    [many(9, (i) => `groupBy=g${i}`), 'groupBy', /at most 8 groupBy/],
    ['filters[model]=x', 'filters[model]', /unknown parameter/],
  ];
  for (const [q, parameter, message] of cases) {
    const r = await get(`/v1/customers/acme/usage?${base}&${q}`);
    assert.equal(r.status, 400, q.slice(0, 80));
    assert.equal(r.body.parameter, parameter, q.slice(0, 80));
    assert.match(r.body.error, message, q.slice(0, 80));
  }
  const peak = await get('/v1/customers/acme/usage?meter=peak&from=2026-02-01&to=2026-02-02&filter[model]=m-1');
  assert.equal(peak.status, 400);
  assert.match(peak.body.error, /meter peak has no groups/);
});

test('GET /v1/meters lists calls and the declared meters, to service and customer tokens', async () => {
  const r = await get('/v1/meters', acmeToken);
  assert.equal(r.status, 200);
  assert.deepEqual(
    r.body.meters.map((m: { slug: string; aggregation: string; builtIn: boolean }) => `${m.slug} ${m.aggregation}${m.builtIn ? ' built-in' : ''}`),
    ['calls COUNT built-in', 'bytes_out SUM built-in', 'chats COUNT', 'peak MAX', 'tokens SUM', 'users UNIQUE_COUNT', 'visitors UNIQUE_COUNT'],
  );
  assert.deepEqual(r.body.meters[4]?.groupBy, { model: '$.model' });
  assert.equal((await get('/v1/meters?x=1')).status, 400);
});

test('usage by meter: an unaligned range, an unknown meter or group, too many hours are 400s that say so', async () => {
  const cases: [string, string, RegExp][] = [
    [
      'meter=tokens&from=2026-02-01T10:00:00Z&to=2026-02-03T00:00:00Z&windowSize=DAY&tz=UTC',
      'from',
      /must be the start of a day in UTC .* not aligned to the window/,
    ],
    ['meter=tokens&from=2026-02-01T00:00:00Z&to=2026-02-15T00:00:00Z&windowSize=MONTH&tz=UTC', 'to', /must be the start of a month/],
    ['meter=tokens&from=2026-02-01T00:30:00Z&to=2026-02-02T00:00:00Z', 'from', /whole hour/],
    ['meter=nope&from=2026-02-01&to=2026-02-02', 'meter', /no meter "nope"; meters: calls, bytes_out, chats, peak, tokens, users, visitors/],
    ['meter=tokens&from=2026-02-01&to=2026-02-02&groupBy=region', 'groupBy', /meter tokens groups by model; got "region"/],
    ['meter=peak&from=2026-02-01&to=2026-02-02&groupBy=model', 'groupBy', /meter peak has no groups/],
    ['meter=tokens&from=2026-01-01&to=2026-06-01&windowSize=HOUR', 'windowSize', /at most 92 days/],
    ['meter=tokens&from=2026-02-01&to=2026-02-02&windowSize=WEEK', 'windowSize', /HOUR, DAY, MONTH/],
    ['meter=&from=2026-02-01&to=2026-02-02', 'meter', /meter is required/],
    ['meter=tokens&from=2026-02-01&to=2026-02-02&granularity=day', 'granularity', /unknown parameter/],
    // every parameter it takes is named, the repeatable ones too (groupBy was left out)
    ['meter=tokens&from=2026-02-01&to=2026-02-02&group=model', 'group', /allowed: meter, from, to, tz, windowSize, groupBy, filterGroupBy\[<group>\]\)/],
  ];
  for (const [q, parameter, message] of cases) {
    const r = await get(`/v1/customers/acme/usage?${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(r.body.parameter, parameter, q);
    assert.match(r.body.error, message, q);
  }
});

test('meter prices: cost and invoice lines per meter, whole units rounded up, price versions and free units per period', async () => {
  const r = await get('/v1/customers/acme/cost?from=2026-02-01&to=2026-03-01');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const tokens = r.body.lines.find((l) => l.api === 'tokens')!;
  // 2100.5 tokens -> 2101 units: 1000 free, 101 at 0.00002 (before Feb 10), 1000 at 0.00003
  assert.equal(tokens.meter, 'tokens');
  assert.equal(tokens.value, '2100.5');
  assert.equal(tokens.calls, 2101);
  assert.equal(tokens.freeUnits, 1000);
  assert.deepEqual(
    tokens.items.map((i) => `${i.kind} ${i.quantity} ${i.amount}`),
    ['free 1000 0', 'unit 101 0.00202', 'unit 1000 0.03'],
  );
  assert.equal(tokens.amount, '0.03');
  const bytes = r.body.lines.find((l) => l.api === 'bytes_out')!;
  assert.equal(bytes.calls, 1500000);
  assert.equal(bytes.amount, '0.10', 'two packages of a million bytes');
  const api = r.body.lines.find((l) => l.api === 'locations.latest')!;
  assert.equal(api.calls, 3);
  assert.equal(r.body.total, '0.13');

  // A range starting mid-period: the period's earlier tokens hold the free units.
  const late = await get('/v1/customers/acme/cost?from=2026-02-12T00:00:00Z&to=2026-02-13T00:00:00Z');
  const lateTokens = late.body.lines.find((l) => l.api === 'tokens')!;
  assert.deepEqual(
    lateTokens.items.map((i) => `${i.kind} ${i.quantity}`),
    ['unit 1000'],
  );

  const inv = await get('/v1/customers/acme/invoices/2026-02');
  assert.equal(inv.status, 200);
  assert.equal(inv.body.calls, 3, 'the invoice counts calls of APIs, not tokens');
  assert.ok(inv.body.lines.some((l: { meter?: string }) => l.meter === 'tokens'));
  assert.equal(inv.body.total, '0.13');
  // A page of drafts is priced by one statement per group (cost.ts queryCosts): the same lines.
  const page = await get('/v1/invoices?period=2026-02&status=draft');
  assert.equal(page.status, 200, JSON.stringify(page.body));
  const drafts = page.body.invoices.filter((i) => i.customer === 'acme');
  assert.deepEqual(
    drafts.map((i) => `${i.customer} ${i.total}`),
    ['acme 0.13'],
  );
  assert.deepEqual(drafts[0]?.lines, inv.body.lines);
});

test('meter prices on a MAX meter: the period peak in whole units, each raise of the peak priced where it happens, any cut adds up', async () => {
  const cost = async (from: string, to: string) => {
    const r = await get(`/v1/customers/initech/cost?from=${from}&to=${to}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return { total: r.body.total, line: r.body.lines.find((l) => l.api === 'peak') };
  };
  // Feb: peak 150 -> 150 units; 101 started before Feb 10 at 0.01, the 49 more after at 0.02
  const feb = await cost('2026-02-01T00:00:00Z', '2026-03-01T00:00:00Z');
  assert.equal(feb.line?.meter, 'peak');
  assert.equal(feb.line?.value, '150', 'the range peak, not the sum of hours (330.5)');
  assert.equal(feb.line?.calls, 150);
  assert.deepEqual(
    feb.line?.items.map((i) => `${i.kind} ${i.quantity} ${i.amount}`),
    ['unit 101 1.01', 'unit 49 0.98'],
  );
  assert.equal(feb.total, '1.99');
  // Cut anywhere, the pieces add up to the period's total.
  const a = await cost('2026-02-01T00:00:00Z', '2026-02-12T00:00:00Z');
  const b = await cost('2026-02-12T00:00:00Z', '2026-03-01T00:00:00Z');
  assert.deepEqual([a.total, b.total], ['1.01', '0.98']);
  assert.equal(b.line?.value, '150');
  // A day below the peak so far raises nothing.
  const low = await cost('2026-02-03T00:00:00Z', '2026-02-04T00:00:00Z');
  assert.equal(low.line?.calls ?? 0, 0);
  assert.equal(low.total, '0.00');
  // A new period starts from zero: March's peak is 50.
  const two = await cost('2026-02-01T00:00:00Z', '2026-03-02T00:00:00Z');
  assert.equal(two.line?.calls, 200);
  assert.equal(two.total, '2.99');
  const inv = await get('/v1/customers/initech/invoices/2026-02');
  assert.equal(inv.status, 200, JSON.stringify(inv.body));
  assert.equal(inv.body.total, '1.99');
});

test('meter prices on a UNIQUE_COUNT meter: the period distinct count, each value priced where it is first seen, any cut adds up', async () => {
  const cost = async (from: string, to: string) => {
    const r = await get(`/v1/customers/hooli/cost?from=${from}&to=${to}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return { total: r.body.total, line: r.body.lines.find((l) => l.api === 'users') };
  };
  const usage = await get('/v1/customers/hooli/usage?meter=users&from=2026-02-01T00:00:00Z&to=2026-03-01T00:00:00Z&windowSize=MONTH');
  assert.deepEqual(
    usage.body.data.map((d) => d.value),
    ['4'],
    'distinct users of the month, where the hours sum to 6',
  );
  assert.equal(usage.body.exact, true);
  // Feb: users 1, 2, 3 first seen before Feb 10 at 1.00, user 4 after at 2.00 (user 1 again is not new)
  const feb = await cost('2026-02-01T00:00:00Z', '2026-03-01T00:00:00Z');
  assert.equal(feb.line?.meter, 'users');
  assert.equal(feb.line?.value, '4', 'the distinct count, not the sum of hours (6)');
  assert.equal(feb.line?.calls, 4);
  assert.deepEqual(
    feb.line?.items.map((i) => `${i.kind} ${i.quantity} ${i.amount}`),
    ['unit 3 3', 'unit 1 2'],
  );
  assert.equal(feb.total, '5.00');
  // Cut anywhere, the pieces add up to the period's charge: each value in the piece it is first seen in.
  for (const cut of ['2026-02-03T00:00:00Z', '2026-02-03T10:00:00Z', '2026-02-12T00:00:00Z', '2026-02-20T00:00:00Z']) {
    const a = await cost('2026-02-01T00:00:00Z', cut);
    const b = await cost(cut, '2026-03-01T00:00:00Z');
    const cents = (t: string) => BigInt(t.replace('.', ''));
    assert.equal(cents(a.total) + cents(b.total), 500n, `cut at ${cut}: ${a.total} + ${b.total}`);
  }
  const late = await cost('2026-02-12T00:00:00Z', '2026-03-01T00:00:00Z');
  assert.deepEqual([late.line?.value, late.total], ['1', '2.00'], 'user 1 was seen earlier in the period: only user 4 is new');
  // A new period counts its users anew: user 1 in March is new to March.
  const two = await cost('2026-02-01T00:00:00Z', '2026-03-02T00:00:00Z');
  assert.equal(two.line?.calls, 5);
  assert.equal(two.total, '7.00');
  const inv = await get('/v1/customers/hooli/invoices/2026-02');
  assert.equal(inv.status, 200, JSON.stringify(inv.body));
  assert.equal(inv.body.total, '5.00');
  const page = await get('/v1/invoices?period=2026-02&status=draft');
  assert.deepEqual(
    page.body.invoices.filter((i) => i.customer === 'hooli').map((i) => i.total),
    ['5.00'],
    'a page of drafts prices it as the single invoice',
  );
});

test('meter prices: the units a decimal starts', () => {
  assert.equal(unitsStarted(parseDecimal('0')), 0n);
  assert.equal(unitsStarted(parseDecimal('0.000000001')), 1n);
  assert.equal(unitsStarted(parseDecimal('2100.5')), 2101n);
  assert.equal(unitsStarted(parseDecimal('2100')), 2100n);
});
