/**
 * Is this error "the warehouse cannot be reached right now" (server down, restarting, refusing
 * connections), as opposed to a bug or a bad query? Servers answer such errors with 503 and a
 * clear message, never with a number computed from nothing.
 *
 * Sources: node's socket errors (connection refused/reset), pg's client errors (connection
 * terminated, connect timeout), and Postgres SQLSTATEs of class 08 (connection exception),
 * 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now) and 53300 (too many connections).
 */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN']);
const SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);
const MESSAGES =
  /connection terminated|timeout exceeded when trying to connect|connection error|cannot connect to|the database system is (starting up|shutting down|in recovery)/i;

export function isWarehouseUnavailable(e: unknown, depth = 0): boolean {
  if (!e || typeof e !== 'object' || depth > 4) return false;
  const err = e as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  const code = typeof err.code === 'string' ? err.code : '';
  if (SOCKET_CODES.has(code) || SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return true;
  if (typeof err.message === 'string' && MESSAGES.test(err.message)) return true;
  // AggregateError (several addresses refused) and wrapped causes.
  if (Array.isArray(err.errors) && err.errors.some((x) => isWarehouseUnavailable(x, depth + 1))) return true;
  return isWarehouseUnavailable(err.cause, depth + 1);
}
