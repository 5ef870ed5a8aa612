/**
 * The fast scanner of ingest's accept path (accept.ts acceptLine), derived from the field table
 * (schema.ts): a record that is already a plain event is checked in place, without JSON.parse or
 * an object. The gateway's spelling is compiled once, at module load, into straight-line code
 * (the same steps the hand-written scanner took, bench/accept-handwritten.ts); any other order
 * takes a table-driven loop.
 */
import { isBillable, MAX_EVENT_BYTES } from './usage-event.js';
import { MAX_TEXT, REQUIRED_FIELDS, SCHEMA_VERSION, fieldIndexOf, fieldNamed, type EventField } from './schema.js';

// Only the required fields (a prefix of the table, so indices agree with fieldIndexOf): an event
// carrying an optional field (`data`) is not plain and takes the decoder.
const EVENT_FIELDS = REQUIRED_FIELDS;

/** Where the record-key field's bytes are in the buffer the scanner last accepted. */
export const scanned = { customerStart: 0, customerEnd: 0 };

const Q = 0x22; // "
const BACKSLASH = 0x5c;
/** Whole numbers of at most 15 digits are exact doubles, so the scan's value is JSON.parse's. */
const MAX_DIGITS = 15;

/** Byte classes: DIGIT 0-9, HEX 0-9a-f, PLAIN printable ASCII but `"` and `\\`. */
const DIGIT = 1,
  HEX = 2,
  PLAIN = 4;
const CLASS = new Uint8Array(256).map(
  (_, c) =>
    (c >= 0x20 && c <= 0x7e && c !== Q && c !== BACKSLASH ? PLAIN : 0) | (c >= 0x30 && c <= 0x39 ? DIGIT | HEX : 0) | (c >= 0x61 && c <= 0x66 ? HEX : 0),
);
/** The class of b[i]; 0 past the end, so every scan loop stops there (CLASS has all 256 bytes). */
const classAt = (b: Buffer, i: number): number => CLASS[b[i] ?? 0] ?? 0;

function hexRun(b: Buffer, i: number, n: number): boolean {
  let all = HEX;
  for (let k = i + n - 1; k >= i; k--) all &= classAt(b, k);
  return all !== 0;
}

/** Offsets of the hex digits in an 8-4-4-4-12 UUID (the others hold `-`). */
const UUID_HEX_AT = Array.from({ length: 36 }, (_, k) => k).filter((k) => k !== 8 && k !== 13 && k !== 18 && k !== 23);

/** 8-4-4-4-12 lowercase hex digits at i (usage-event's UUID_RE), the caller having checked i + 37 <= b.length. */
function uuidAt(b: Buffer, i: number): boolean {
  return (
    b[i + 8] === 0x2d &&
    b[i + 13] === 0x2d &&
    b[i + 18] === 0x2d &&
    b[i + 23] === 0x2d &&
    hexRun(b, i, 8) &&
    hexRun(b, i + 9, 4) &&
    hexRun(b, i + 14, 4) &&
    hexRun(b, i + 19, 4) &&
    hexRun(b, i + 24, 12)
  );
}

/** End of a plain string's content starting at i (the closing quote), or -1 if not 1..MAX_TEXT plain bytes. */
function plainString(b: Buffer, i: number): number {
  const s = i;
  while (classAt(b, i) & PLAIN) i++;
  return i - s >= 1 && i - s <= MAX_TEXT && b[i] === Q ? i : -1;
}

/** End of a whole number starting at i (at most MAX_DIGITS digits, no leading zero), or -1. */
function plainNumber(b: Buffer, i: number): number {
  const s = i;
  while (classAt(b, i) & DIGIT) i++;
  const d = i - s;
  return d === 0 || d > MAX_DIGITS || (d > 1 && b[s] === 0x30) ? -1 : i;
}

/** The value of the digits b[s, e) that plainNumber found. */
function numberAt(b: Buffer, s: number, e: number): number {
  let x = 0;
  for (let i = s; i < e; i++) x = x * 10 + ((b[i] ?? 0x30) - 0x30);
  return x;
}

const TIME = fieldIndexOf('time');
const STATUS = fieldIndexOf('status');
const BILLABLE = fieldIndexOf('billable');
const KEY = EVENT_FIELDS.findIndex((f) => f.recordKey);
/** A number whose max is below what MAX_DIGITS digits can spell needs its value compared. */
const bounded = (f: EventField) => f.kind === 'number' && f.max! < 10 ** MAX_DIGITS - 1;

// ---- the gateway's order: generated straight-line code ---------------------------------------

/**
 * Source of the scan of the table's order: literals between values (`{"v":1,"id":"`, `","time":`,
 * ...), each value checked by its kind and bounds, the record key's position kept, and the one
 * cross-field rule (billable = isBillable(status), usage-event.ts). Returns the time, or -1.
 */
function gatewayScanSource(): string {
  const out: string[] = ['const n = b.length; let i = 0, e = 0;'];
  let pending = '{';
  // a literal is unrolled into byte compares: no loop, no array of literals
  const bytesAt = (t: string) => [...Buffer.from(t)].map((c, j) => `b[i${j ? ` + ${j}` : ''}] !== ${c}`).join(' || ');
  const flush = () => {
    out.push(`if (${bytesAt(pending)}) return -1;`, `i += ${Buffer.byteLength(pending)};`);
    pending = '';
  };
  EVENT_FIELDS.forEach((f, k) => {
    pending += `${k ? ',' : ''}"${f.name}":`;
    switch (f.kind) {
      case 'version':
        pending += String(SCHEMA_VERSION);
        break;
      case 'uuid':
        pending += '"';
        flush();
        out.push(
          'if (i + 37 > n || b[i + 8] !== 0x2d || b[i + 13] !== 0x2d || b[i + 18] !== 0x2d || b[i + 23] !== 0x2d) return -1;',
          // the 32 hex digits' classes ANDed in one expression (bounds checked above): no loop, no call
          `if (!(${UUID_HEX_AT.map((k) => `C[b[i + ${k}]]`).join(' & ')} & ${HEX})) return -1;`,
          'i += 36;',
        );
        pending = '"';
        break;
      case 'text':
        pending += '"';
        flush();
        out.push('if ((e = plainString(b, i)) < 0) return -1;');
        if (k === KEY) out.push('const ks = i, ke = e;');
        out.push('i = e;');
        pending = '"';
        break;
      case 'number':
        flush();
        out.push('if ((e = plainNumber(b, i)) < 0) return -1;');
        if (bounded(f) || k === TIME || k === STATUS) out.push(`const x${k} = numberAt(b, i, e);`);
        if (bounded(f) && k !== TIME) out.push(`if (x${k} > ${f.max}) return -1;`);
        out.push('i = e;');
        break;
      case 'bool':
        flush();
        out.push(
          `let x${k};`,
          `if (b[i] === 0x74 && b[i + 1] === 0x72 && b[i + 2] === 0x75 && b[i + 3] === 0x65) (x${k} = true), (i += 4);`,
          `else if (b[i] === 0x66 && b[i + 1] === 0x61 && b[i + 2] === 0x6c && b[i + 3] === 0x73 && b[i + 4] === 0x65) (x${k} = false), (i += 5);`,
          'else return -1;',
        );
        break;
    }
  });
  pending += '}';
  out.push(
    `if (i + ${Buffer.byteLength(pending)} !== n || ${bytesAt(pending)}) return -1;`,
    // a `billable` that disagrees with the status takes the slow path, which names the reason
    `if (x${BILLABLE} !== isBillable(x${STATUS})) return -1;`,
    `if (x${TIME} > ${fieldNamed('time').max}) return -1;`,
    'S.customerStart = ks; S.customerEnd = ke;',
    `return x${TIME};`,
  );
  return out.join('\n');
}

/** The generated source, for reading (node -e "import('./dist/src/events/plain-scan.js').then((m) => console.log(m.GATEWAY_SCAN_SOURCE))"). */
export const GATEWAY_SCAN_SOURCE = gatewayScanSource();
// Compiled once here; the source is built only from the table above, never from input.
const scanGatewayEvent = new Function(
  'hexRun',
  'plainString',
  'plainNumber',
  'numberAt',
  'isBillable',
  'S',
  'C',
  `return function scanGatewayEvent(b) {\n${GATEWAY_SCAN_SOURCE}\n};`,
)(hexRun, plainString, plainNumber, numberAt, isBillable, scanned, CLASS) as (b: Buffer) => number;

// ---- any order: the table-driven loop --------------------------------------------------------

const FIELD_BYTES = EVENT_FIELDS.map((f) => Buffer.from(f.name));
const NUM = 0,
  UUID = 1,
  STR = 2,
  BOOL = 3;
const KIND = EVENT_FIELDS.map((f) => (f.kind === 'version' || f.kind === 'number' ? NUM : f.kind === 'uuid' ? UUID : f.kind === 'text' ? STR : BOOL));
/** Largest accepted value per numeric field (Infinity: no bound beyond MAX_DIGITS; the version is compared at the end). */
const MAX = EVENT_FIELDS.map((f) => (f.kind === 'number' ? (bounded(f) ? f.max! : Infinity) : Infinity));
const VERSION_FIELD = EVENT_FIELDS.findIndex((f) => f.kind === 'version');
const ALL_FIELDS = (1 << EVENT_FIELDS.length) - 1;
const values = new Float64Array(EVENT_FIELDS.length);

/** The field whose name is b[s, e): the expected one (the table's order) is tried first. */
function fieldIndex(b: Buffer, s: number, e: number, expected: number): number {
  const len = e - s;
  const first = FIELD_BYTES[expected];
  if (first && sameBytes(b, s, len, first)) return expected;
  for (let k = 0; k < FIELD_BYTES.length; k++) {
    const f = FIELD_BYTES[k];
    if (f && sameBytes(b, s, len, f)) return k;
  }
  return -1;
}

function sameBytes(b: Buffer, s: number, len: number, f: Buffer): boolean {
  if (f.length !== len) return false;
  for (let i = 0; i < len; i++) if (b[s + i] !== f[i]) return false;
  return true;
}

/**
 * The event time if `b` is exactly `{"field":value,...}` with the table's fields once each (any
 * order), no whitespace, strings of printable ASCII without escapes, whole numbers of at most 15
 * digits without leading zeros, `true`/`false`, and every value passing decodeEvent's and
 * unstorableReason's checks; otherwise -1 (the caller then asks acceptRecord). For such input
 * JSON.parse gives exactly these values, so both paths accept alike and store the same row.
 */
export function scanPlainEvent(b: Buffer): number {
  const n = b.length;
  if (n < 2 || n > MAX_EVENT_BYTES || b[0] !== 0x7b || b[n - 1] !== 0x7d) return -1;
  const t = scanGatewayEvent(b);
  if (t >= 0) return t;
  let i = 1;
  let seen = 0;
  let count = 0;
  let cs = 0,
    ce = 0;
  for (;;) {
    if (b[i] !== Q) return -1;
    const ks = ++i;
    while (i < n && b[i] !== Q) i++;
    const k = fieldIndex(b, ks, i, count++);
    if (k < 0 || seen & (1 << k)) return -1;
    seen |= 1 << k;
    if (b[++i] !== 0x3a) return -1; // :
    i++;
    const kind = KIND[k];
    if (kind === NUM) {
      const ds = i;
      let x = 0;
      for (let c = b[i]; c !== undefined && c >= 0x30 && c <= 0x39; c = b[++i]) x = x * 10 + (c - 0x30);
      const digits = i - ds;
      if (digits === 0 || digits > MAX_DIGITS || (digits > 1 && b[ds] === 0x30)) return -1;
      const max = MAX[k];
      if (max === undefined || x > max) return -1;
      values[k] = x;
    } else if (kind === BOOL) {
      if (b[i] === 0x74 && b[i + 1] === 0x72 && b[i + 2] === 0x75 && b[i + 3] === 0x65) (i += 4), (values[k] = 1);
      else if (b[i] === 0x66 && b[i + 1] === 0x61 && b[i + 2] === 0x6c && b[i + 3] === 0x73 && b[i + 4] === 0x65) (i += 5), (values[k] = 0);
      else return -1;
    } else {
      if (b[i] !== Q) return -1;
      const ss = ++i;
      if (kind === UUID) {
        if (ss + 37 > n || !uuidAt(b, ss)) return -1;
        i = ss + 36;
      } else {
        while (classAt(b, i) & PLAIN) i++;
        const len = i - ss;
        if (len < 1 || len > MAX_TEXT) return -1;
        if (k === KEY) (cs = ss), (ce = i);
      }
      if (b[i] !== Q) return -1;
      i++;
    }
    const c = b[i];
    if (c === 0x2c) {
      i++;
      continue;
    }
    if (c === 0x7d && i === n - 1) break;
    return -1;
  }
  if (seen !== ALL_FIELDS || (VERSION_FIELD >= 0 && values[VERSION_FIELD] !== SCHEMA_VERSION)) return -1;
  const status = values[STATUS] ?? -1;
  const time = values[TIME] ?? -1;
  if ((values[BILLABLE] === 1) !== isBillable(status)) return -1;
  scanned.customerStart = cs;
  scanned.customerEnd = ce;
  return time;
}
