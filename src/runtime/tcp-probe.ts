/** One TCP connect, to tell "nothing listens there" from everything else before a client's retries begin. */
import { connect } from 'node:net';

/** null when `host:port` accepts a connection within `timeoutMs`, else why not. */
export function tcpUnreachable(host: string, port: number, timeoutMs = 2000): Promise<string | null> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (why: string | null) => {
      s.destroy();
      resolve(why);
    };
    s.setTimeout(timeoutMs, () => done(`no connection within ${timeoutMs / 1000} s`));
    s.once('connect', () => done(null));
    s.once('error', (e) => done(e.message));
  });
}

/**
 * null when any of the brokers (`host:port`, IPv6 in brackets) accepts a connection within
 * `timeoutMs` (tried together), else why each did not, joined.
 */
export async function brokersUnreachable(brokers: string[], timeoutMs = 2000): Promise<string | null> {
  const why = await Promise.all(
    brokers.map((b) => {
      const at = b.lastIndexOf(':');
      return tcpUnreachable(b.slice(0, at).replace(/^\[(.*)\]$/, '$1'), Number(b.slice(at + 1)), timeoutMs);
    }),
  );
  return why.includes(null) ? null : why.join('; ');
}
