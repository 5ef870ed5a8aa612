/**
 * The usage event's one schema: the field table below. Everything that knows the fields is
 * derived from it: the decoder's checks (usage-event.ts decodeEvent), the lake's range checks
 * (unstorableReason), the fast scanner (plain-scan.ts), the spool's JSON line (eventLine) and the
 * DuckDB/Parquet columns (LAKE_COLUMNS_SQL, SPOOL_COLUMNS, LAKE_SELECT). A new field is one row
 * here; test/unit/event-schema.test.ts fails if a derived part disagrees with the table.
 */

export const SCHEMA_VERSION = 1;

/** Longest string field meter accepts, in UTF-16 units (as JSON.parse gives them). */
export const MAX_TEXT = 200;

/**
 * - `version`: a number that must equal SCHEMA_VERSION.
 * - `uuid`: lowercase 8-4-4-4-12 hex text.
 * - `text`: 1..MAX_TEXT characters.
 * - `number`: a non-negative JSON number; stored only if at most `max` (and whole if `integer`;
 *   a fraction of a non-`integer` field is rounded in the line).
 * - `bool`: true/false.
 * - `json`: text holding one JSON object, at most MAX_DATA_BYTES of UTF-8 (an event's `data`).
 */
export type FieldKind = 'version' | 'uuid' | 'text' | 'number' | 'bool' | 'json';

/** Largest `data` (JSON object text) an event carries, in UTF-8 bytes (the events API's bound). */
export const MAX_DATA_BYTES = 4096;

export interface EventField {
  /** Name in the event's JSON and in the spool line. */
  readonly name: string;
  readonly kind: FieldKind;
  /**
   * A required field is in every event. An optional one (only at the end of the table) may be
   * absent: its lake column is nullable, the fast scanner leaves events carrying it to the
   * decoder, and lake files written before it existed read it as NULL (lake-sql.ts lakeSource).
   */
  readonly required: boolean;
  /** `number` only: largest value the lake column holds. */
  readonly max?: number;
  /** `number` only: must be a whole number to be stored (else it is rounded). */
  readonly integer?: boolean;
  /** `number` only: decodeEvent already requires a safe integer (epoch ms). */
  readonly decodeInteger?: boolean;
  /** Type of the value in DuckDB's JSON reader (the spool). */
  readonly spoolType: string;
  /** Lake (Parquet) column: name, DuckDB type, and the SQL from the spool field (default: the field). */
  readonly column: { readonly name: string; readonly type: string; readonly position: number; readonly sql?: string };
  /** The record key is this field's value (the gateway keys records by customer). */
  readonly recordKey?: boolean;
}

/** Latest time a TIMESTAMPTZ column takes here: the end of year 9999, epoch ms. */
export const MAX_TIME = 253_402_300_799_999;
/** INTEGER's largest value. */
export const MAX_INT32 = 2_147_483_647;
/** A status is three digits (SMALLINT holds it). */
export const MAX_STATUS = 999;

/** The table, in the gateway's JSON order (the fast scanner expects this order first). */
export const EVENT_FIELDS: readonly EventField[] = [
  { name: 'v', kind: 'version', required: true, spoolType: 'SMALLINT', column: { name: 'v', type: 'SMALLINT', position: 11 } },
  { name: 'id', kind: 'uuid', required: true, spoolType: 'VARCHAR', column: { name: 'id', type: 'VARCHAR', position: 0 } },
  {
    name: 'time',
    kind: 'number',
    required: true,
    max: MAX_TIME,
    integer: true,
    decodeInteger: true,
    spoolType: 'BIGINT',
    // epoch ms -> TIMESTAMPTZ, UTC (the writer's connection runs with TimeZone UTC)
    column: { name: 'event_time', type: 'TIMESTAMPTZ', position: 1, sql: 'make_timestamp(time * 1000)::TIMESTAMPTZ' },
  },
  { name: 'customer', kind: 'text', required: true, recordKey: true, spoolType: 'VARCHAR', column: { name: 'customer', type: 'VARCHAR', position: 2 } },
  { name: 'keyId', kind: 'text', required: true, spoolType: 'VARCHAR', column: { name: 'key_id', type: 'VARCHAR', position: 3 } },
  { name: 'api', kind: 'text', required: true, spoolType: 'VARCHAR', column: { name: 'api', type: 'VARCHAR', position: 4 } },
  { name: 'method', kind: 'text', required: true, spoolType: 'VARCHAR', column: { name: 'method', type: 'VARCHAR', position: 5 } },
  {
    name: 'status',
    kind: 'number',
    required: true,
    max: MAX_STATUS,
    integer: true,
    spoolType: 'SMALLINT',
    column: { name: 'status', type: 'SMALLINT', position: 6 },
  },
  { name: 'latencyMs', kind: 'number', required: true, max: MAX_INT32, spoolType: 'INTEGER', column: { name: 'latency_ms', type: 'INTEGER', position: 7 } },
  {
    name: 'bytesIn',
    kind: 'number',
    required: true,
    max: Number.MAX_SAFE_INTEGER,
    integer: true,
    spoolType: 'BIGINT',
    column: { name: 'bytes_in', type: 'BIGINT', position: 8 },
  },
  {
    name: 'bytesOut',
    kind: 'number',
    required: true,
    max: Number.MAX_SAFE_INTEGER,
    integer: true,
    spoolType: 'BIGINT',
    column: { name: 'bytes_out', type: 'BIGINT', position: 9 },
  },
  { name: 'billable', kind: 'bool', required: true, spoolType: 'BOOLEAN', column: { name: 'billable', type: 'BOOLEAN', position: 10 } },
  // What a usage event sent through the events API measured (its CloudEvent `data`), read by
  // meters (docs/meters.md); gateway events carry none.
  { name: 'data', kind: 'json', required: false, spoolType: 'VARCHAR', column: { name: 'data', type: 'VARCHAR', position: 12 } },
];

// A table mistake should stop the process at load, not write a wrong lake.
{
  const positions = EVENT_FIELDS.map((f) => f.column.position).sort((a, b) => a - b);
  if (positions.some((p, i) => p !== i)) throw new Error('internal: EVENT_FIELDS column positions are not 0..n-1');
  if (EVENT_FIELDS.filter((f) => f.recordKey).length !== 1) throw new Error('internal: EVENT_FIELDS needs exactly one recordKey field');
  if (EVENT_FIELDS.length > 30) throw new Error('internal: the scanner keeps seen fields in a 31-bit mask');
  const firstOptional = EVENT_FIELDS.findIndex((f) => !f.required);
  if (firstOptional >= 0 && EVENT_FIELDS.slice(firstOptional).some((f) => f.required)) throw new Error('internal: optional EVENT_FIELDS must come last');
}

/** The fields every event has, in table order (a prefix of EVENT_FIELDS): what the fast scanner reads. */
export const REQUIRED_FIELDS: readonly EventField[] = EVENT_FIELDS.filter((f) => f.required);

export const FIELD_NAMES: readonly string[] = EVENT_FIELDS.map((f) => f.name);
export const fieldIndexOf = (name: string): number => {
  const k = FIELD_NAMES.indexOf(name);
  if (k < 0) throw new Error(`internal: no event field ${name}`);
  return k;
};

/** The field named `name` (a name from the table above; any other is a programming error). */
export const fieldNamed = (name: string): EventField => {
  const f = EVENT_FIELDS.find((x) => x.name === name);
  if (!f) throw new Error(`internal: no event field ${name}`);
  return f;
};

/** Lake columns in file order. */
export const LAKE_FIELDS: readonly EventField[] = [...EVENT_FIELDS].sort((a, b) => a.column.position - b.column.position);

/** The lake's columns as a CREATE TABLE column list. */
export const LAKE_COLUMNS_SQL = LAKE_FIELDS.map((f) => `${f.column.name} ${f.column.type}${f.required ? ' NOT NULL' : ''}`).join(', ');

/** Lake columns that files written before them lack: read as NULL there (lake-sql.ts lakeSource). */
export const OPTIONAL_COLUMNS: readonly { name: string; type: string }[] = LAKE_FIELDS.filter((f) => !f.required).map((f) => ({
  name: f.column.name,
  type: f.column.type,
}));

/** The spool lines' fields and their types, as read_ndjson's `columns` argument. */
export const SPOOL_COLUMNS = `{${EVENT_FIELDS.map((f) => `${f.name}: '${f.spoolType}'`).join(', ')}}`;

/** Spool fields -> lake columns, in lake order. */
export const LAKE_SELECT = LAKE_FIELDS.map((f) => {
  const sql = f.column.sql ?? f.name;
  return sql === f.column.name ? sql : `${sql} AS ${f.column.name}`;
}).join(', ');

// ---- checks on a parsed object (the slow path) ------------------------------------------------

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Check = (o: Record<string, unknown>) => string | null;

/** Why `v` is not JSON text of one object within MAX_DATA_BYTES (null: it is). */
export function jsonObjectTextReason(v: unknown, n: string): string | null {
  if (typeof v !== 'string') return `malformed event: ${n} is not JSON object text`;
  // UTF-8 takes at most 3 bytes per UTF-16 unit: a cheap bound before measuring.
  if (v.length > MAX_DATA_BYTES || (v.length * 3 > MAX_DATA_BYTES && Buffer.byteLength(v) > MAX_DATA_BYTES))
    return `malformed event: ${n} is longer than ${MAX_DATA_BYTES} bytes`;
  let o: unknown;
  try {
    o = JSON.parse(v);
  } catch {
    return `malformed event: ${n} is not JSON`;
  }
  return typeof o === 'object' && o !== null && !Array.isArray(o) ? null : `malformed event: ${n} is not a JSON object`;
}

/** decodeEvent's shape check of one field: the reason, or null. */
function shapeCheck(f: EventField): Check {
  const n = f.name;
  if (!f.required) {
    const present = shapeCheck({ ...f, required: true });
    return (o) => (o[n] === undefined ? null : present(o));
  }
  switch (f.kind) {
    case 'version':
      return (o) => (o[n] === SCHEMA_VERSION ? null : `unknown schema version ${JSON.stringify(o[n])}`);
    case 'uuid':
      return (o) => {
        const v = o[n];
        return typeof v === 'string' && UUID_RE.test(v) ? null : `malformed event: ${n} is not a UUID`;
      };
    case 'text':
      return (o) => {
        const v = o[n];
        return typeof v === 'string' && v.length > 0 && v.length <= MAX_TEXT ? null : `malformed event: ${n} missing or too long`;
      };
    case 'number':
      return f.decodeInteger
        ? (o) => {
            const v = o[n];
            return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? null : `malformed event: ${n} is not epoch ms`;
          }
        : (o) => {
            const v = o[n];
            return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? null : `malformed event: ${n} is not a non-negative number`;
          };
    case 'bool':
      return (o) => (typeof o[n] === 'boolean' ? null : `malformed event: ${n} is not a boolean`);
    case 'json':
      return (o) => jsonObjectTextReason(o[n], n);
  }
}

/** The lake column's range check of one field (after shapeCheck passed), or undefined if none. */
function rangeCheck(f: EventField): Check | undefined {
  if (f.kind !== 'number') return undefined;
  const n = f.name;
  const max = f.max!;
  // shapeCheck passed first, so the value is a number here.
  if (f.integer)
    return (o) => {
      const v = o[n] as number;
      return !Number.isSafeInteger(v) ? `${n} ${v} is not a whole number` : v > max ? `${n} ${v} out of range (at most ${max})` : null;
    };
  return (o) => {
    const v = o[n] as number;
    return !(v <= max) ? `${n} ${v} out of range (at most ${max})` : null;
  };
}

/** Built once: the version first (a reader of an unknown version should say so, whatever else is wrong). */
export const SHAPE_CHECKS: readonly Check[] = [...EVENT_FIELDS].sort((a, b) => Number(b.kind === 'version') - Number(a.kind === 'version')).map(shapeCheck);
export const RANGE_CHECKS: readonly Check[] = EVENT_FIELDS.map(rangeCheck).filter((c): c is Check => c !== undefined);
