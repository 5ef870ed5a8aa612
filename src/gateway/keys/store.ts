/**
 * API keys in the warehouse (table api_keys): create (the secret is returned once, only its hash
 * stored), list without secrets, revoke by id or prefix.
 */
import type { Sql } from '../../warehouse/warehouse.js';
import { KEY_PREFIX, PREFIX_LEN, hashKey, randomBase62 } from './secret.js';
import { quote } from '../../ground/text.js';

/** Customer ids travel in headers, Kafka keys and file names: keep them plain. */
const CUSTOMER_RE = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/** Bad input to key management (unknown plan, bad customer id, ambiguous prefix...): a 4xx / exit 2. */
export class KeyInputError extends Error {
  override readonly name = 'KeyInputError';
}

export interface CreatedKey {
  id: string;
  /** The secret: print it once, it is not stored. */
  key: string;
  prefix: string;
}

export async function createKey(db: Sql, opts: { customer: string; plan: string; plans?: Record<string, unknown> }): Promise<CreatedKey> {
  if (!CUSTOMER_RE.test(opts.customer))
    throw new KeyInputError(`invalid customer id ${quote(opts.customer)}: use 1-128 of A-Z a-z 0-9 . _ : @ - (starting with a letter or digit)`);
  if (!opts.plan) throw new KeyInputError('plan is required');
  if (opts.plans && !Object.hasOwn(opts.plans, opts.plan))
    throw new KeyInputError(`unknown plan ${quote(opts.plan)}: the catalog has ${Object.keys(opts.plans).join(', ') || 'no plans'}`);
  const key = KEY_PREFIX + randomBase62(32);
  const id = 'key_' + randomBase62(16);
  const prefix = key.slice(0, PREFIX_LEN);
  await db.query(`INSERT INTO customers (id, name) VALUES ($1, $1) ON CONFLICT (id) DO NOTHING`, [opts.customer]);
  await db.query(`INSERT INTO api_keys (id, customer_id, plan_id, key_hash, prefix) VALUES ($1, $2, $3, $4, $5)`, [
    id,
    opts.customer,
    opts.plan,
    hashKey(key),
    prefix,
  ]);
  return { id, key, prefix };
}

export interface KeyInfo {
  id: string;
  customer: string;
  plan: string;
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

interface KeyRow {
  id: string;
  customer_id: string;
  plan_id: string;
  prefix: string;
  created_at: Date | string;
  revoked_at: Date | string | null;
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());
const toInfo = (r: KeyRow): KeyInfo => ({
  id: r.id,
  customer: r.customer_id,
  plan: r.plan_id,
  prefix: r.prefix,
  createdAt: iso(r.created_at)!,
  revokedAt: iso(r.revoked_at),
});

/** Keys without secrets (there are none to show: only hashes are stored, and not returned). */
export async function listKeys(db: Sql, customer?: string): Promise<KeyInfo[]> {
  const rows = await db.query<KeyRow>(
    `SELECT id, customer_id, plan_id, prefix, created_at, revoked_at FROM api_keys
      WHERE ($1::text IS NULL OR customer_id = $1) ORDER BY created_at, id`,
    [customer ?? null],
  );
  return rows.map(toInfo);
}

/**
 * The one key `idOrPrefix` names: an id (`key_...`) or a prefix (`mk_live_XXXXXXXX`, or longer,
 * even the whole key). Null when nothing matches; throws KeyInputError when a prefix matches
 * several keys.
 */
export async function findKey(db: Sql, idOrPrefix: string): Promise<KeyInfo | null> {
  if (!idOrPrefix) throw new KeyInputError('key id or prefix is required');
  const cols = 'SELECT id, customer_id, plan_id, prefix, created_at, revoked_at FROM api_keys';
  let match = await db.query<KeyRow>(`${cols} WHERE id = $1`, [idOrPrefix]);
  if (!match.length && idOrPrefix.length >= PREFIX_LEN) {
    // A longer string (even the whole key) is matched on its stored prefix part.
    match = await db.query<KeyRow>(`${cols} WHERE prefix = $1`, [idOrPrefix.slice(0, PREFIX_LEN)]);
  }
  if (match.length > 1) throw new KeyInputError(`prefix ${quote(idOrPrefix)} matches ${match.length} keys; revoke by id (meter keys list)`);
  const [only] = match;
  return only ? toInfo(only) : null;
}

/**
 * Revoke by id or prefix (findKey). Idempotent: revoking a revoked key keeps its first
 * revocation time. Returns null when nothing matches.
 */
export async function revokeKey(db: Sql, idOrPrefix: string): Promise<KeyInfo | null> {
  const only = await findKey(db, idOrPrefix);
  if (!only) return null;
  const rows = await db.query<KeyRow>(
    `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1
     RETURNING id, customer_id, plan_id, prefix, created_at, revoked_at`,
    [only.id],
  );
  const [row] = rows;
  return row ? toInfo(row) : null;
}
