/**
 * Bearer tokens of the billing API.
 * - Service tokens (config `billingTokens`, for the payment server and admins) see every customer.
 * - Customer tokens (`mbt_<id>_<secret>`, for a customer's own apps) see that customer only.
 *   Only SHA-256(token) is stored (billing_tokens); the row is found by its id and the hashes
 *   are compared in constant time, so response timing says nothing about the secret.
 */
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Sql } from '../warehouse/warehouse.js';

export type Principal = { kind: 'service' } | { kind: 'customer'; customerId: string; tokenId: string };

const PREFIX = 'mbt_';
const TOKEN_RE = /^mbt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

/** One-shot: a Hash object per request was a visible share of a kept answer's CPU. */
function sha256(s: string): Buffer {
  return hash('sha256', s, 'buffer');
}

export class UnknownCustomerError extends Error {
  override name = 'UnknownCustomerError';
}

/**
 * Create a token for `customerId`, valid until `expiresAt` (epoch ms; none: until revoked); the
 * token is returned here once and never stored.
 */
export async function createCustomerToken(db: Sql, customerId: string, opts: { expiresAt?: number } = {}): Promise<string> {
  return (await issueCustomerToken(db, customerId, opts)).token;
}

/**
 * createCustomerToken, with the expiry also given as a length (`expiresInMs`), counted from the
 * moment the row is written: counted from before the warehouse opened (seconds on PGlite), a
 * short token was stored already expired. Returns the token and the expiry stored (null: none).
 */
export async function issueCustomerToken(
  db: Sql,
  customerId: string,
  opts: { expiresAt?: number; expiresInMs?: number },
): Promise<{ token: string; expiresAt: number | null }> {
  const known = await db.query('SELECT 1 FROM customers WHERE id = $1', [customerId]);
  if (!known.length) throw new UnknownCustomerError(`unknown customer: ${customerId}`);
  const id = randomBytes(8).toString('hex');
  const token = `${PREFIX}${id}_${randomBytes(32).toString('base64url')}`;
  const expiresAt = opts.expiresInMs !== undefined ? Date.now() + opts.expiresInMs : (opts.expiresAt ?? null);
  await db.query('INSERT INTO billing_tokens (id, customer_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)', [
    id,
    customerId,
    sha256(token).toString('hex'),
    expiresAt === null ? null : new Date(expiresAt).toISOString(),
  ]);
  return { token, expiresAt };
}

/** The id part of a token (safe to show and log), or null if not a customer token. */
export function customerTokenId(token: string): string | null {
  return TOKEN_RE.exec(token)?.[1] ?? null;
}

/** Revoke by token id (or a whole token: its id part is used); false if no such live token. */
export async function revokeCustomerToken(db: Sql, tokenId: string): Promise<boolean> {
  const id = customerTokenId(tokenId) ?? tokenId;
  const rows = await db.query('UPDATE billing_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id', [id]);
  return rows.length > 0;
}

export interface TokenInfo {
  id: string;
  customerId: string;
  createdAt: string;
  revokedAt: string | null;
  /** null: never expires. */
  expiresAt: string | null;
}

const iso = (v: unknown) => (v === null || v === undefined ? null : new Date(v instanceof Date ? v : String(v)).toISOString());

/** Every token (ids and dates only: the secrets are not stored), oldest first. */
export async function listCustomerTokens(db: Sql, customerId?: string): Promise<TokenInfo[]> {
  const rows = await db.query<{ id: string; customer_id: string; created_at: unknown; revoked_at: unknown; expires_at: unknown }>(
    `SELECT id, customer_id, created_at, revoked_at, expires_at FROM billing_tokens ${customerId ? 'WHERE customer_id = $1' : ''} ORDER BY created_at, id`,
    customerId ? [customerId] : [],
  );
  return rows.map((r) => ({ id: r.id, customerId: r.customer_id, createdAt: iso(r.created_at)!, revokedAt: iso(r.revoked_at), expiresAt: iso(r.expires_at) }));
}

/** A live (not revoked) customer token as stored: whose it is, SHA-256 of the token (hex), expiry. */
export interface TokenRow {
  customerId: string;
  tokenHash: string;
  /** Epoch ms at which it stops working; null: never. */
  expiresAt: number | null;
}

export async function tokenRow(db: Sql, id: string): Promise<TokenRow | null> {
  const rows = await db.query<{ customer_id: string; token_hash: string; expires_at: unknown }>(
    'SELECT customer_id, token_hash, expires_at FROM billing_tokens WHERE id = $1 AND revoked_at IS NULL',
    [id],
    { prepare: true },
  );
  const [row] = rows;
  if (!row) return null;
  const e = iso(row.expires_at);
  return { customerId: row.customer_id, tokenHash: row.token_hash, expiresAt: e === null ? null : Date.parse(e) };
}

/** `Authorization: Bearer <token>` -> token, or null. */
export function bearerToken(header: string | undefined): string | null {
  return /^Bearer[ ]+([^\s]{1,512})\s*$/i.exec(header ?? '')?.[1] ?? null;
}

export class Authenticator {
  private readonly serviceHashes: Buffer[];

  constructor(
    private readonly db: Sql,
    serviceTokens: string[],
    /** Clock for token expiry (epoch ms). */
    private readonly now: () => number = Date.now,
  ) {
    this.serviceHashes = serviceTokens.filter((t) => t.length > 0).map(sha256);
  }

  /**
   * Who holds `token`, or null for an unknown or revoked token. `lookup` finds a live token's
   * row by id (the billing API's catalog cache); by default it is read from the warehouse.
   */
  async authenticate(token: string | null, lookup?: (id: string) => Promise<TokenRow | null>): Promise<Principal | null> {
    if (!token) return null;
    const h = sha256(token);
    // Compare against every service token (no early exit).
    let service = false;
    for (const s of this.serviceHashes) service = timingSafeEqual(h, s) || service;
    if (service) return { kind: 'service' };
    const id = customerTokenId(token);
    if (!id) return null;
    const row = await (lookup ? lookup(id) : tokenRow(this.db, id));
    if (!row) return null;
    // Expiry is checked against the clock on every request (cached rows included): no write
    // happens when a token expires, so nothing else would tell the cache.
    if (row.expiresAt !== null && this.now() >= row.expiresAt) return null;
    const stored = Buffer.from(row.tokenHash, 'hex');
    if (stored.length !== h.length || !timingSafeEqual(stored, h)) return null;
    return { kind: 'customer', customerId: row.customerId, tokenId: id };
  }
}
