/**
 * The field table (src/events/schema.ts) and everything derived from it agree: every field
 * round-trips encode -> accept (fast scan, general scan and JSON.parse path) -> Parquet -> DuckDB
 * read with the table's column name and type, and every bound of the table is the same in the
 * scanner and the decoder. A field added to the table but not to a derived part fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { ParquetWriter } from '../../src/pipeline/parquet-writer.js';
import { encodeEvent, isBillable, uuidv7, type UsageEvent } from '../../src/events/usage-event.js';
import { EVENT_FIELDS, LAKE_FIELDS, MAX_DATA_BYTES, MAX_TEXT, MAX_TIME, REQUIRED_FIELDS, SCHEMA_VERSION, type EventField } from '../../src/events/schema.js';
import { acceptLine, acceptRecord, eventLine, scanPlainEvent } from '../../src/pipeline/accept.js';
import type { LogRecord } from '../../src/log/log.js';
import { testEvent } from '../support/events.js';

const LIMITS = { pastLimitMs: 1e15, futureLimitMs: 1e15 };

/** A value of the field from the table alone: its kind and bounds (`edge`: the largest it takes). */
function valueFor(f: EventField, i: number, edge: boolean): unknown {
  switch (f.kind) {
    case 'version':
      return SCHEMA_VERSION;
    case 'uuid':
      return uuidv7(1_700_000_000_000 + i);
    case 'text':
      return edge ? `${f.name}-`.padEnd(MAX_TEXT, String.fromCharCode(0x61 + (i % 26))) : `${f.name}-${i}`;
    case 'number':
      // the scanner reads at most 15 digits: larger maxima are reached by the JSON.parse path (below)
      return edge ? Math.min(f.max!, 999_999_999_999_999) : Math.min(f.max!, 100 + i * 7);
    case 'bool':
      return i % 2 === 0;
    case 'json':
      return edge ? JSON.stringify({ pad: 'é'.repeat((MAX_DATA_BYTES - 20) / 2) }) : JSON.stringify({ n: i, model: `m-${i % 3}` });
  }
}

/** An event made from the table (optional fields on odd `i` only); the billable rule ties billable to status. */
function eventOf(i: number, edge: boolean): UsageEvent {
  const o: Record<string, unknown> = {};
  for (const f of EVENT_FIELDS) if (f.required || i % 2 === 1) o[f.name] = valueFor(f, i, edge);
  o.billable = isBillable(o.status as number);
  return o as unknown as UsageEvent;
}

const record = (value: Buffer, time: number, customer = ''): LogRecord => ({ partition: 0, offset: 0, key: customer, value, timestamp: time });
const reversed = (e: UsageEvent) => Buffer.from(JSON.stringify(Object.fromEntries(Object.entries(e).reverse())));
const spaced = (e: UsageEvent) => Buffer.from(JSON.stringify(e, null, 1));

test('event schema: the gateway object, the line and the table name the same fields in the same order', () => {
  const gateway: UsageEvent = {
    v: 1,
    id: uuidv7(),
    time: 1,
    customer: 'c',
    keyId: 'k',
    api: 'a',
    method: 'GET',
    status: 200,
    latencyMs: 1,
    bytesIn: 1,
    bytesOut: 1,
    billable: true,
  };
  const required = REQUIRED_FIELDS.map((f) => f.name);
  assert.deepEqual(Object.keys(gateway), required);
  assert.deepEqual(Object.keys(JSON.parse(eventLine(gateway).toString())), required);
  assert.deepEqual(EVENT_FIELDS.slice(0, required.length), REQUIRED_FIELDS, 'the optional fields come last');
  assert.equal(scanPlainEvent(encodeEvent(gateway)), 1, 'the gateway spelling takes the fast scan');
});

test('event schema: every field round-trips encode -> accept (three paths) -> Parquet -> DuckDB with the table column and type', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'meter-schema-'));
  const w = await ParquetWriter.open({ connections: 1 });
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const evs = [...Array.from({ length: 20 }, (_, i) => eventOf(i, false)), eventOf(20, true), eventOf(21, true)];
    const lines: Buffer[] = [];
    for (const e of evs) {
      const ts = e.time;
      const fast = acceptLine(record(encodeEvent(e), ts, e.customer), LIMITS);
      const general = acceptLine(record(reversed(e), ts), LIMITS);
      const slow = acceptLine(record(spaced(e), ts), LIMITS);
      assert.ok(fast.ok && general.ok && slow.ok, `accepted by all paths: ${JSON.stringify(e)}`);
      // An event with an optional field (data: JSON text, so escapes) is the decoder's, never the scanner's.
      const plain = e.data === undefined;
      assert.equal(scanPlainEvent(encodeEvent(e)) >= 0, plain);
      assert.equal(scanPlainEvent(reversed(e)) >= 0, plain);
      assert.ok(scanPlainEvent(spaced(e)) < 0);
      assert.deepEqual(JSON.parse(general.line.toString()), JSON.parse(fast.line.toString()));
      assert.deepEqual(JSON.parse(slow.line.toString()), JSON.parse(fast.line.toString()));
      assert.equal(fast.customer, e.customer);
      assert.equal(general.customer, e.customer);
      lines.push(fast.line);
    }
    // the largest safe integers the table allows, which only the JSON.parse path spells
    const big = { ...eventOf(22, true), bytesIn: Number.MAX_SAFE_INTEGER, bytesOut: Number.MAX_SAFE_INTEGER };
    const bigLine = acceptLine(record(encodeEvent(big), big.time), LIMITS);
    assert.ok(bigLine.ok, 'max safe integers are stored');
    evs.push(big);
    lines.push(bigLine.line);

    const spool = join(dir, 'spool.ndjson');
    writeFileSync(spool, Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')])));
    const file = join(dir, 'a.parquet');
    await w.writeSpool([spool], file);

    const types = (await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`)).getRowObjects();
    const duck = (t: string) => (t === 'TIMESTAMPTZ' ? 'TIMESTAMP WITH TIME ZONE' : t);
    assert.deepEqual(
      types.map((r) => `${r.column_name} ${r.column_type}`),
      LAKE_FIELDS.map((f) => `${f.column.name} ${duck(f.column.type)}`),
    );
    // each column back as text, compared with the field's value as the table says it is stored
    const select = EVENT_FIELDS.map((f) => (f.column.type === 'TIMESTAMPTZ' ? `epoch_ms(${f.column.name})::VARCHAR` : `${f.column.name}::VARCHAR`)).join(', ');
    const rows = (await conn.runAndReadAll(`SELECT ${select} FROM read_parquet('${file}')`)).getRows();
    assert.equal(rows.length, evs.length);
    rows.forEach((row, r) => {
      EVENT_FIELDS.forEach((f, k) => {
        const v = (evs[r] as unknown as Record<string, unknown>)[f.name];
        const want = v === undefined ? null : f.kind === 'number' && !f.integer ? String(Math.round(v as number)) : String(v);
        assert.equal(row[k], want, `row ${r} field ${f.name} (column ${f.column.name})`);
      });
    });
  } finally {
    conn.closeSync();
    db.closeSync();
    w.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('event schema: every bound of the table is the same in the fast scan, the general scan and the decoder', () => {
  const base = eventOf(3, false);
  const cases: [string, UsageEvent][] = [];
  for (const f of EVENT_FIELDS) {
    const bad = (v: unknown) => cases.push([`${f.name}=${String(v).slice(0, 20)}`, { ...base, [f.name]: v } as UsageEvent]);
    if (f.kind === 'version') bad(SCHEMA_VERSION + 1);
    if (f.kind === 'uuid') bad(base.id.toUpperCase());
    if (f.kind === 'text') bad(''), bad('x'.repeat(MAX_TEXT + 1));
    if (f.kind === 'number' && f.max! < 999_999_999_999_999) bad(f.max! + 1);
    if (f.kind === 'number' && f.integer) bad(2.5);
    if (f.kind === 'bool') bad(!base[f.name as keyof UsageEvent]);
    if (f.kind === 'json') bad('[1]'), bad('{"a":'), bad(7), bad(JSON.stringify({ a: 'x'.repeat(MAX_DATA_BYTES) }));
  }
  assert.ok(cases.length >= EVENT_FIELDS.length);
  for (const [name, e] of cases) {
    const ts = Math.min(e.time, MAX_TIME);
    assert.equal(scanPlainEvent(encodeEvent(e)), -1, `fast scan refuses ${name}`);
    assert.equal(scanPlainEvent(reversed(e)), -1, `general scan refuses ${name}`);
    const a = acceptRecord(record(encodeEvent(e), ts), LIMITS);
    assert.equal(a.ok, false, `decoder refuses ${name}`);
    if (!a.ok) assert.match(a.reason, new RegExp(name.split('=')[0]!), `the reason names the field: ${a.reason}`);
  }
});

test('event schema: encodeEvent writes the same bytes as JSON.stringify of an event built in table order, escapes included', () => {
  const texts = ['acme', 'a"b', 'back\\slash', 'tab\there', 'new\nline', 'é-ü', '日本', '\u0000\u001f', '\u2028', 'x'.repeat(200), '', '😀'];
  const numbers = [0, 1, 200, 599, 1_700_000_000_123, Number.MAX_SAFE_INTEGER, -0, 1.5];
  let n = 0;
  for (const t of texts) {
    for (const x of numbers) {
      const e: UsageEvent = {
        v: SCHEMA_VERSION,
        id: uuidv7(1_700_000_000_000 + n++),
        time: 1_700_000_000_000 + n,
        customer: t,
        keyId: `key-${t}`,
        api: t || 'api',
        method: n % 2 ? 'GET' : t,
        status: n % 3 ? 200 : 429,
        latencyMs: x,
        bytesIn: x,
        bytesOut: n,
        billable: n % 3 !== 0,
      };
      assert.equal(encodeEvent(e).toString('utf8'), JSON.stringify(e), `event ${JSON.stringify(e)}`);
      const withData = { ...e, data: JSON.stringify({ t }) };
      assert.equal(encodeEvent(withData).toString('utf8'), JSON.stringify(withData));
    }
  }
  // Numbers JSON writes as null take JSON.stringify's path, never the template's "NaN".
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
    const e = testEvent({ v: SCHEMA_VERSION, time: 1, latencyMs: bad });
    assert.equal(encodeEvent(e).toString('utf8'), JSON.stringify(e));
  }
});

test('event schema: the fast scan refuses a UUID with one wrong character at any of its 36 positions, as the decoder does', () => {
  const base = eventOf(2, false); // even: no optional field, so the event is plain
  assert.ok(scanPlainEvent(encodeEvent(base)) >= 0);
  let refused = 0;
  for (let k = 0; k < 36; k++)
    for (const c of ['g', 'A', '/', ':', '-', '0']) {
      if (c === base.id[k]) continue;
      const e = { ...base, id: base.id.slice(0, k) + c + base.id.slice(k + 1) };
      const decoded = acceptRecord(record(encodeEvent(e), e.time), LIMITS).ok;
      assert.equal(scanPlainEvent(encodeEvent(e)) >= 0, decoded, `id ${e.id}`);
      assert.equal(scanPlainEvent(reversed(e)) >= 0, decoded, `id ${e.id}, general scan`);
      if (!decoded) refused++;
    }
  // every non-hex character anywhere, and a hex digit in place of a dash, is refused
  assert.ok(refused >= 36 * 4, `${refused} refused`);
});
