/**
 * A new database beside the configured one, on the same Postgres server. The demo runs in one
 * so that its rollups (which replace whole hours) can never touch a real warehouse's rows.
 */
import pg from 'pg';
import type { ConnectionOptions } from 'node:tls';
import { UserError } from '../ground/errors.js';
import { redactUrl } from '../config/config.js';

export async function createScratchDatabase(url: string, suffix: string, ssl?: ConnectionOptions): Promise<string> {
  const u = new URL(url);
  const base = decodeURIComponent(u.pathname.slice(1)) || 'meter';
  const name = `${base}_${suffix}`
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 63);
  const client = new pg.Client({ connectionString: url, ...(ssl ? { ssl } : {}) });
  try {
    await client.connect();
    await client.query(`CREATE DATABASE ${name}`);
  } catch (e) {
    throw new UserError(
      `could not create the demo's own database ${name} on ${redactUrl(url)}: ${(e as Error).message}`,
      'the demo never writes into a real warehouse; give its user CREATEDB, or run the demo with embedded Postgres (unset METER_DATABASE_URL)',
    );
  } finally {
    await client.end().catch(() => {});
  }
  u.pathname = `/${name}`;
  return u.toString();
}
