/** The gateway's public surface (CLI commands import from here). */
export { startGateway, type Gateway, type GatewayOptions, type GatewayStats, type GatewayLogger } from './server.js';
export { KeyStore, createKey, listKeys, revokeKey, hashKey, looksLikeKey, KeyInputError, type CreatedKey, type KeyInfo, type KeyIdentity, type KeyStoreStats } from './keys.js';
export { loadRoutes, compileRoutes, RouteError, type RouteTable, type RouteSpec } from './routes.js';
export { EventBatcher, type EventBatcherOptions, type EventBatcherStats } from './event-batcher.js';
export { rateLimitHeaders } from './rate-limit-headers.js';
export { presentedKey } from './auth.js';
export { planLimits } from './plans.js';
