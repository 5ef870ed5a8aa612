/**
 * One TCP connect to the upstream when the gateway starts. Nothing depends on it: the gateway
 * serves either way and answers 502 while the upstream is away. It is for the user who typed the
 * wrong port: before, the gateway came up saying nothing, and every call was a 502 to puzzle over.
 */
import { tcpUnreachable } from './tcp-probe.js';

/** null when the upstream accepts a connection within `timeoutMs`, else why not. */
export async function upstreamUnreachable(upstream: string, timeoutMs = 2000): Promise<string | null> {
  const u = new URL(upstream);
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  return tcpUnreachable(u.hostname.replace(/^\[(.*)\]$/, '$1'), port, timeoutMs);
}

/** The warning for the log, or null when the upstream answered. */
export async function upstreamWarning(upstream: string): Promise<string | null> {
  const why = await upstreamUnreachable(upstream);
  return why === null
    ? null
    : `the upstream ${new URL(upstream).origin} is not reachable now (${why}): calls get 502 until it is; check --upstream / METER_UPSTREAM`;
}
