/**
 * Generates a lake of usage events with DuckDB, straight into the real layout
 * (usage/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first>+<last>.parquet, zstd), as ingest
 * would leave it: 4 partitions, files of at most 500,000 records. Deterministic: every value is a
 * hash of the event's index and the seed, so the same (scale, seed) gives the same files.
 * Made once per (rate, hours, seed) and reused (a `_done` marker says the set is complete).
 */
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { HOUR_MS, dataFileName, hourDir } from '../src/lake/layout.js';
import { API_COUNT } from './lib.js';

export interface LakeSpec {
  /** Events per second of event time. */
  rate: number;
  hours: number;
  /** Start of the first hour, epoch ms. */
  start: number;
  seed: number;
  customers: number;
  partitions: number;
  maxRecords: number;
}

export interface LakeData {
  root: string;
  events: number;
  files: number;
  bytes: number;
  genMs: number | null;
}

function du(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.parquet')) {
        files++;
        bytes += statSync(p).size;
      }
    }
  };
  if (existsSync(dir)) walk(dir);
  return { files, bytes };
}

/** SQL of one file's rows: events [a, b) of the hour starting at `hourMs`. */
function fileSql(s: LakeSpec, hourMs: number, perHour: number, a: number, b: number): string {
  const base = `(${Math.floor(hourMs / HOUR_MS)}::BIGINT * ${perHour} + i)`;
  // time spreads the hour's events evenly; h1..h3 are independent hashes of (event, seed).
  return `SELECT
      format('{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}', (t >> 16), (t & 65535), (h1 & 4095), (32768 | ((h1 >> 12) & 16383)), (h2 & 281474976710655)) AS id,
      make_timestamptz(t * 1000) AS event_time,
      'cust-' || lpad(c::VARCHAR, 4, '0') AS customer,
      'key-' || lpad(c::VARCHAR, 4, '0') AS key_id,
      'svc' || lpad((api >> 3)::VARCHAR, 2, '0') || '.op' || (api & 7)::VARCHAR AS api,
      ['GET','POST','PUT','DELETE'][(1 + (h3 >> 20) % 4)::BIGINT] AS method,
      (CASE WHEN h3 % 100 < 95 THEN 200 WHEN h3 % 2 = 0 THEN 404 ELSE 503 END)::SMALLINT AS status,
      ((h3 >> 8) % 200)::INTEGER AS latency_ms,
      ((h2 >> 50) % 2000)::BIGINT AS bytes_in,
      ((h1 >> 40) % 20000)::BIGINT AS bytes_out,
      h3 % 100 < 95 AS billable,
      1::SMALLINT AS v
    FROM (
      SELECT i, t, h1, h2, h3, (h2 >> 20) % ${s.customers} AS c, (h3 >> 30) % ${API_COUNT} AS api FROM (
        SELECT i, (${hourMs}::BIGINT + (i * ${HOUR_MS}) // ${perHour})::BIGINT AS t,
               hash(${base}, ${s.seed}) AS h1, hash(${base}, ${s.seed + 1}) AS h2, hash(${base}, ${s.seed + 2}) AS h3
          FROM range(${a}, ${b}) r(i)))`;
}

/** One file of the generated lake: events [a, b) of the hour at `hourMs`, offsets first..last of partition `p`. */
interface PlannedFile {
  hour: number;
  hourMs: number;
  p: number;
  a: number;
  b: number;
  first: number;
  last: number;
}

/**
 * The files of `hours` hours of `s`: per hour, the hour's events split evenly over the
 * partitions, each partition's share cut into files of at most maxRecords (offsets continue
 * across hours per partition).
 */
function* planFiles(s: LakeSpec, hours: number): Generator<PlannedFile> {
  const perHour = s.rate * 3600;
  const perPart = Math.ceil(perHour / s.partitions);
  const offsets = new Array<number>(s.partitions).fill(0);
  for (let hour = 0; hour < hours; hour++) {
    const hourMs = s.start + hour * HOUR_MS;
    for (let p = 0; p < s.partitions; p++) {
      const pa = p * perPart;
      const pb = Math.min(perHour, pa + perPart);
      for (let a = pa; a < pb; a += s.maxRecords) {
        const b = Math.min(pb, a + s.maxRecords);
        const first = offsets[p]!;
        offsets[p] = first + (b - a);
        yield { hour, hourMs, p, a, b, first, last: first + (b - a) - 1 };
      }
    }
  }
}

async function writeFile(c: DuckDBConnection, root: string, s: LakeSpec, f: PlannedFile): Promise<void> {
  const dir = join(root, hourDir(f.hourMs));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, dataFileName('usage-events', f.p, f.first, f.last));
  await c.run(`COPY (${fileSql(s, f.hourMs, s.rate * 3600, f.a, f.b)}) TO '${file}' (FORMAT parquet, COMPRESSION zstd)`);
}

async function duck(): Promise<{ c: DuckDBConnection; close(): void }> {
  const inst = await DuckDBInstance.create(':memory:');
  const c = await inst.connect();
  await c.run(`SET TimeZone = 'UTC'`);
  await c.run(`SET preserve_insertion_order = false`);
  return {
    c,
    close() {
      c.closeSync();
      inst.closeSync();
    },
  };
}

export async function ensureLake(root: string, s: LakeSpec, log: (m: string) => void): Promise<LakeData> {
  const marker = join(root, '_done');
  if (existsSync(marker)) {
    const d = du(join(root, 'usage'));
    return { root, events: s.rate * 3600 * s.hours, ...d, genMs: null };
  }
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const db = await duck();
  const t0 = performance.now();
  let hour = 0;
  for (const f of planFiles(s, s.hours)) {
    if (f.hour !== hour) log(`lake: hour ${hour + 1}/${s.hours} written (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    hour = f.hour;
    await writeFile(db.c, root, s, f);
  }
  log(`lake: hour ${s.hours}/${s.hours} written (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  const genMs = performance.now() - t0;
  db.close();
  writeFileSync(marker, JSON.stringify(s));
  const d = du(join(root, 'usage'));
  return { root, events: s.rate * 3600 * s.hours, ...d, genMs };
}

/**
 * Writes into `root` (a lake of `s`) the first `events` events of each partition in the hour
 * after the last: the lake as it stands once ingest has gone on past its hours, when a
 * partition's last range (which compaction never merges, src/pipeline/compaction-plan.ts) lies
 * after them. Returns the files written.
 */
export async function writeNextHourHead(root: string, s: LakeSpec, events: number): Promise<number> {
  const db = await duck();
  const seen = new Set<number>();
  for (const f of planFiles(s, s.hours + 1)) {
    if (f.hour < s.hours || seen.has(f.p)) continue;
    seen.add(f.p);
    const n = Math.min(events, f.b - f.a);
    await writeFile(db.c, root, s, { ...f, b: f.a + n, last: f.first + n - 1 });
  }
  db.close();
  return seen.size;
}
