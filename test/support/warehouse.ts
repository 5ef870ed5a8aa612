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
import { assetPath } from '../../src/config/assets.js';
import { loadMigrations, migrate } from '../../src/warehouse/migrate.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';

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
