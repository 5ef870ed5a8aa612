/**
 * API keys, one job per module: the secret's format and hash (keys/secret.ts), the api_keys rows
 * (keys/store.ts: create, list, revoke) and the gateway's cached lookup (keys/cache.ts: KeyStore).
 */
export * from './keys/secret.js';
export * from './keys/store.js';
export * from './keys/cache.js';
