/**
 * Migrated embedded warehouses for tests, without paying for initdb each time. A new PGlite runs
 * initdb (about 3 s of CPU, 10-50 s on a busy machine) and then the migrations: that was the largest
 * part of the unit suite's time. The migrated database is made once per build and kept under
 * dist/.test-cache (gone with dist; named by the migrations and the PGlite version, so a changed
 * migration makes a new one): in memory from its dump (~0.8 s of CPU), on disk as a folder copy.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after } from 'node:test';
import { assetPath } from '../../src/config/assets.js';
import { loadMigrations, migrate } from '../../src/warehouse/migrate.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import type { Sql, Warehouse } from '../../src/warehouse/warehouse.js';

const CACHE = assetPath('dist/.test-cache');

/** Names the cached database: the migrations and the PGlite build it was made with. */
function cacheKey(): string {
  const h = createHash('sha256');
  for (const m of loadMigrations()) h.update(m.name).update('\0').update(m.sql).update('\0');
  h.update(readFileSync(assetPath('node_modules/@electric-sql/pglite/package.json')));
  return h.digest('hex').slice(0, 16);
}

/** Write `path` whole or not at all: test files running at once may make the same entry. */
function publish(tmp: string, path: string): void {
  try {
    renameSync(tmp, path);
  } catch (e) {
    // another process published it first (a folder cannot be renamed over a full one)
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(path)) throw e;
  }
}

let dump: Promise<Blob> | undefined;

function migratedDump(): Promise<Blob> {
  dump ??= (async () => {
    const file = join(CACHE, `pglite-${cacheKey()}.tar`);
    if (existsSync(file)) return new Blob([readFileSync(file)]);
    const db = await PgliteWarehouse.open(null);
    try {
      await migrate(db);
      const blob = await db.dump();
      mkdirSync(CACHE, { recursive: true });
      const tmp = `${file}.${process.pid}`;
      writeFileSync(tmp, Buffer.from(await blob.arrayBuffer()));
      publish(tmp, file);
      return blob;
    } finally {
      await db.close();
    }
  })();
  return dump;
}

/** A migrated in-memory warehouse of its own: what PgliteWarehouse.open(null) and migrate() give. */
export async function migratedWarehouse(): Promise<PgliteWarehouse> {
  return PgliteWarehouse.open(null, await migratedDump());
}

let folder: Promise<string> | undefined;

/** A migrated PGlite folder to copy (closed, so a copy opens as a clean shutdown). */
export function migratedFolder(): Promise<string> {
  folder ??= (async () => {
    const dir = join(CACHE, `pglite-${cacheKey()}`);
    if (existsSync(dir)) return dir;
    mkdirSync(CACHE, { recursive: true });
    const tmp = `${dir}.${process.pid}`;
    const db = await PgliteWarehouse.open(tmp);
    try {
      await migrate(db);
    } finally {
      await db.close();
    }
    rmSync(`${tmp}.lock`, { force: true });
    publish(tmp, dir);
    return dir;
  })();
  return folder;
}

/**
 * Make `dataDir` hold a migrated embedded warehouse (its `pglite` folder, as `meter` opens it), so
 * a command run on it starts without initdb. `template` is migratedFolder()'s answer.
 */
export function seedDataDir(template: string, dataDir: string): void {
  mkdirSync(dataDir, { recursive: true });
  cpSync(template, join(dataDir, 'pglite'), { recursive: true });
}

/** What a migrated database holds before any test: its relations and the rows of those not empty. */
interface Pristine {
  relations: string;
  seeded: { table: string; rows: string }[];
  tables: string[];
  sequences: { seq: string; value: string; called: boolean }[];
}

const RELATIONS = `SELECT coalesce(string_agg(format('%I.%I:%s', n.nspname, c.relname, c.relkind), ',' ORDER BY n.nspname, c.relname), '') AS list
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'm', 'S', 'v') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`;

async function relationList(db: Sql): Promise<string> {
  const [r] = await db.query<{ list: string }>(RELATIONS);
  return r?.list ?? '';
}

async function pristineOf(db: Sql): Promise<Pristine> {
  const relations = await relationList(db);
  const tables = await db.query<{ t: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`,
  );
  // A materialized view would need a refresh: none exists; say so if one comes.
  if (/:m(,|$)/.test(relations)) throw new Error(`reusableWarehouse: a materialized view is not reset (${relations})`);
  const sequences = await db.query<{ seq: string; value: string; called: boolean }>(
    `SELECT format('%I.%I', schemaname, sequencename) AS seq, coalesce(last_value, start_value)::text AS value, last_value IS NOT NULL AS called FROM pg_sequences
     WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`,
  );
  const seeded: Pristine['seeded'] = [];
  for (const { t } of tables) {
    const [r] = await db.query<{ rows: string | null }>(`SELECT json_agg(x)::text AS rows FROM ${t} x`);
    if (r?.rows) seeded.push({ table: t, rows: r.rows });
  }
  return { relations, seeded, tables: tables.map((r) => r.t), sequences };
}

let pristine: Promise<Pristine> | undefined;
const idle: PgliteWarehouse[] = [];

/**
 * Put `db` back as migratedWarehouse() gave it: every table emptied, the migrations' own rows
 * written again and sequences set back, with triggers and foreign keys off meanwhile (a refill is not a change), and
 * session state (settings, prepared statements, advisory locks) discarded. False if the database
 * holds a relation the migrations did not make: then it is not reused.
 */
async function reset(db: PgliteWarehouse, p: Pristine): Promise<boolean> {
  await db.query('DISCARD ALL');
  if ((await relationList(db)) !== p.relations) return false;
  await db.transaction(async (tx) => {
    await tx.query(`SET LOCAL session_replication_role = replica`);
    await tx.query(`TRUNCATE ${p.tables.join(', ')}`);
    for (const s of p.seeded) await tx.query(`INSERT INTO ${s.table} SELECT * FROM json_populate_recordset(NULL::${s.table}, $1::json)`, [s.rows]);
    for (const q of p.sequences) await tx.query(`SELECT setval($1::regclass, $2::bigint, $3)`, [q.seq, q.value, q.called]);
  });
  return true;
}

/**
 * migratedWarehouse() for a test file that needs many fresh warehouses one after another (each
 * new PGlite costs ~0.8 s of CPU to load its dump): close() empties the database back to its
 * migrated state and keeps it for the next call in this process instead of shutting it down. What a
 * caller sees is the same as a new one: the tables of a fresh migration with only its own rows.
 */
export async function reusableWarehouse(): Promise<Warehouse> {
  const db = idle.pop() ?? (await migratedWarehouse());
  pristine ??= pristineOf(db);
  let p: Pristine;
  try {
    p = await pristine;
  } catch (e) {
    await db.close(); // an open PGlite would keep the test process from ending
    throw e;
  }
  let closed = false;
  let inFlight = 0;
  // After close() this handle refuses work as a closed database does, so a loop left running by one
  // test cannot write into the next one's database; and a database with work of this handle still
  // running at close() (a transaction left waiting, say) is shut, not kept.
  const run = async <T>(work: () => Promise<T>): Promise<T> => {
    if (closed) throw new Error('reusableWarehouse: used after close()');
    inFlight++;
    try {
      return await work();
    } finally {
      inFlight--;
    }
  };
  return {
    kind: 'pglite',
    query: (text, params) => run(() => db.query(text, params)),
    transaction: (fn) => run(() => db.transaction(fn)),
    async close() {
      if (closed) return;
      closed = true;
      if (inFlight === 0 && (await reset(db, p).catch(() => false))) idle.push(db);
      else await db.close();
    },
  };
}

// The kept databases are closed after the file's last test: an open PGlite keeps the process alive.
after(async () => {
  for (const db of idle.splice(0)) await db.close();
});
