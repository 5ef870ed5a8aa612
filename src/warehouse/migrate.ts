/**
 * Versioned, idempotent migrations: files `NNN_name.sql` in src/warehouse/migrations, applied in
 * order inside one transaction each, recorded in schema_migrations. Safe to run on every start
 * and from several processes at once (an advisory lock serialises them on a Postgres server).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { assetPath } from '../config/assets.js';
import type { Warehouse } from './warehouse.js';

const LOCK_KEY = 7243901;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function loadMigrations(dir = assetPath('src/warehouse/migrations')): Migration[] {
  const list = readdirSync(dir)
    .filter((f) => /^\d+_.+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.split('_')[0]), name: f, sql: readFileSync(`${dir}/${f}`, 'utf8') }));
  // Versions are the key in schema_migrations: two files of one number (branches merged side by
  // side) would apply only the first, everywhere, silently.
  for (let i = 1; i < list.length; i++)
    if (list[i]!.version === list[i - 1]!.version)
      throw new Error(`two migrations have version ${list[i]!.version}: ${list[i - 1]!.name} and ${list[i]!.name}; renumber one`);
  return list;
}

/** Apply pending migrations; returns the versions applied now. */
export async function migrate(db: Warehouse, migrations = loadMigrations()): Promise<number[]> {
  // Under the same lock as the migrations: two processes creating it at once would clash.
  await db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(${LOCK_KEY})`);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
  });
  const applied: number[] = [];
  for (const m of migrations) {
    const done = await db.transaction(async (tx) => {
      // Serialise concurrent migrators (no-op cost on PGlite, which has one connection).
      await tx.query(`SELECT pg_advisory_xact_lock(${LOCK_KEY})`);
      const rows = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [m.version]);
      if (rows.length) return false;
      for (const stmt of splitSql(m.sql)) await tx.query(stmt);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      return true;
    });
    if (done) applied.push(m.version);
  }
  return applied;
}

export async function pendingMigrations(db: Warehouse, migrations = loadMigrations()): Promise<Migration[]> {
  const rows = await db.query<{ version: number }>('SELECT version FROM schema_migrations').catch(() => [] as { version: number }[]);
  const have = new Set(rows.map((r) => Number(r.version)));
  return migrations.filter((m) => !have.has(m.version));
}

/**
 * Split a migration into statements at semicolons, except inside dollar-quoted bodies
 * ($$ ... $$, $tag$ ... $tag$: function bodies). Lines starting with -- are comments. No
 * semicolons inside our SQL's plain strings.
 */
export function splitSql(sql: string): string[] {
  const text = sql
    .split('\n')
    .filter((l) => !l.trim().startsWith('--'))
    .join('\n');
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '$') {
      const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i, i + 64));
      if (tag) {
        const end = text.indexOf(tag[0], i + tag[0].length);
        if (end < 0) throw new Error(`unterminated ${tag[0]} quote in a migration`);
        i = end + tag[0].length - 1;
        continue;
      }
    }
    if (text[i] === ';') {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out.map((s) => s.trim()).filter(Boolean);
}
