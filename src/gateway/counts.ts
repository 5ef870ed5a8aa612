/** The gateway's per-outcome call counters (GatewayStats without the nested parts). */
export interface GatewayCounts {
  requests: number;
  /** Calls answered by the upstream (any status). */
  proxied: number;
  /** 401: missing, unknown or revoked key. */
  unauthorized: number;
  /** 403: the key's plan is not in the catalog. */
  unknownPlan: number;
  /** 429. */
  limited: number;
  /** Decisions the limiter made in its fail mode (Redis down). */
  limiterDegraded: number;
  /** 429: the plan's quota for the period is used up. */
  quotaExceeded: number;
  /** Calls allowed without a quota check (warehouse down). */
  quotaDegraded: number;
  /** 413. */
  tooLarge: number;
  /** 502/504. */
  upstreamErrors: number;
  /** Calls sent to the upstream a second time: it closed the connection under the first (relay.ts). */
  upstreamRetries: number;
  /** 503: keys could not be checked (database down, key not cached). */
  authUnavailable: number;
  /** Client went away before the answer was complete. */
  clientAborts: number;
  /** 503: the event could not be stored (spool full; in strict mode also not made durable). */
  usageUnavailable: number;
  /** 400: a request target that is malformed or ambiguous. */
  badTarget: number;
  /** 404: a path that matches no route (not forwarded). */
  noRoute: number;
  /** 429: the key or customer had its in-flight limit of calls open. */
  tooConcurrent: number;
  /** 408: the request body came too slowly. */
  bodyTooSlow: number;
}

export type CountName = keyof GatewayCounts;

export function newCounts(): GatewayCounts {
  return {
    requests: 0,
    proxied: 0,
    unauthorized: 0,
    unknownPlan: 0,
    limited: 0,
    limiterDegraded: 0,
    quotaExceeded: 0,
    quotaDegraded: 0,
    tooLarge: 0,
    upstreamErrors: 0,
    upstreamRetries: 0,
    authUnavailable: 0,
    clientAborts: 0,
    usageUnavailable: 0,
    badTarget: 0,
    noRoute: 0,
    tooConcurrent: 0,
    bodyTooSlow: 0,
  };
}
