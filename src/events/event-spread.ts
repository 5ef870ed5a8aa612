/**
 * Where in the partitions one event goes, beside its customer: a hash of its event id, read in
 * place from the record's bytes. The usage log places a record at its key's hash (the customer)
 * plus this spread (src/log/log.ts partitionFor), so one customer's events fill the partitions
 * evenly (a big customer no longer fills one partition; 3 customers on 4 partitions leave none
 * empty), and every copy of one event (a resend after a timeout, a spool shipped, a worker's relay,
 * a dead letter replayed) has the same bytes and lands in the same partition.
 *
 * Read from the value, not carried in the key: the key stays the customer, which ingest compares
 * with the event's bytes instead of making a string per record (src/pipeline/accept.ts
 * scannedCustomer; a key with a suffix made the customer check ~2x dearer per record:
 * bench/customer-check.ts, docs/scaling.md), and the spool, which keeps key and value only,
 * ships a record to the partition it would have gone to directly.
 *
 * Nothing downstream relies on a customer living in one partition: the rollup and the live path
 * count distinct ids per hour over all partitions (docs/scaling.md "Hot partitions").
 */
import { EVENT_FIELDS, SCHEMA_VERSION } from './schema.js';

/**
 * How producers place records (setting `partitionBy`): `event` (the default) spreads each
 * customer's events over the partitions by a hash of the event id (below); `customer`
 * keeps all of a customer's events in one partition, in order (what meter did before; a big
 * customer is then bounded by one partition and one ingest process).
 */
export type PartitionBy = 'event' | 'customer';
export const PARTITION_BY: readonly PartitionBy[] = ['event', 'customer'];

/** Spread values: a customer spans min(SPREAD, partitions) partitions, evenly to within 1 + partitions/4096. */
export const SPREAD = 4096;

/**
 * `{"v":1,"id":"`: how every encoded event begins (usage-event.ts encodeEvent writes the table's
 * fields in order). Built from the table, and a table whose first two fields are not the version
 * and the id stops the process at load rather than silently placing every record by its key.
 */
const PREFIX = (() => {
  const [v, id] = EVENT_FIELDS;
  if (v?.kind !== 'version' || id?.kind !== 'uuid') throw new Error('internal: event-spread.ts reads the id as the second field after the version');
  return Buffer.from(`{${JSON.stringify(v.name)}:${SCHEMA_VERSION},${JSON.stringify(id.name)}:"`);
})();
const ID_START = PREFIX.length;
const ID_END = ID_START + 36;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** murmur3's finaliser, so every bit of the FNV-1a state counts, then 0..SPREAD-1. */
function finish(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % SPREAD;
}

/**
 * The spread of a record (0..SPREAD-1): FNV-1a of the event id's 36 bytes, finished with
 * murmur3's mixer so every bit counts. -1 when the value does not begin like an encoded event
 * (it is then placed by its key alone).
 */
export function eventSpread(value: Buffer): number {
  if (value.length <= ID_END || value[ID_END] !== 0x22) return -1;
  for (let i = 0; i < ID_START; i++) if (value[i] !== PREFIX[i]) return -1;
  let h = FNV_OFFSET;
  for (let i = ID_START; i < ID_END; i++) {
    const c = value[i]!;
    if (c === 0x22 || c === 0x5c) return -1;
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  return finish(h);
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * `id` (a UUID: 36 ASCII characters, the bytes eventSpread reads) with its last byte, two
 * random hex digits of a UUIDv7, changed to the first value from its own upward whose spread
 * passes `fits`; `id` itself when none of the 256 does. Time and sequence, the id's order, are
 * untouched. The gateway steers its ids this way (src/gateway/event-ids.ts).
 */
export function steerSpread(id: string, fits: (spread: number) => boolean): string {
  let h = FNV_OFFSET;
  for (let i = 0; i < 34; i++) h = Math.imul(h ^ id.charCodeAt(i), FNV_PRIME);
  const own = Number.parseInt(id.slice(34), 16) || 0;
  for (let k = 0; k < 256; k++) {
    const t = HEX[(own + k) & 0xff]!;
    const x = Math.imul(Math.imul(h ^ t.charCodeAt(0), FNV_PRIME) ^ t.charCodeAt(1), FNV_PRIME);
    if (fits(finish(x))) return k === 0 ? id : id.slice(0, 34) + t;
  }
  return id;
}
