/**
 * Whether gateway workers can each listen on the port with SO_REUSEPORT here. Node (>= 22.12)
 * passes `reusePort` to libuv, which supports it only where the kernel spreads connections over
 * the sockets (Linux 3.9+, FreeBSD 12+, a few others) and fails the listen with ENOTSUP
 * elsewhere. Tried for real: two sockets on one ephemeral port of `host`, both with reusePort.
 */
import { createServer, type ListenOptions, type Server } from 'node:net';

/**
 * How a gateway listens. With `reusePort`, `exclusive` makes a cluster worker bind a socket of its
 * own instead of asking the primary for its shared one (Node's net listen: a worker's listen goes
 * through the primary unless exclusive); the kernel then spreads new connections over the workers'
 * sockets.
 */
export function listenOptions(host: string, port: number, reusePort = false): ListenOptions {
  return reusePort ? { host, port, reusePort: true, exclusive: true } : { host, port };
}

export type ReusePortProbe = { ok: true } | { ok: false; reason: string };

function listen(s: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(listenOptions(host, port, true), () => {
      s.off('error', reject);
      resolve((s.address() as { port: number }).port);
    });
  });
}

export async function probeReusePort(host: string): Promise<ReusePortProbe> {
  const a = createServer();
  const b = createServer();
  try {
    const port = await listen(a, host, 0);
    // A Node that ignored the option would let the first bind pass and refuse this one (EADDRINUSE).
    await listen(b, host, port);
    return { ok: true };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTSUP' || code === 'EADDRINUSE' || code === 'EOPNOTSUPP' || code === 'EINVAL')
      return { ok: false, reason: `${code}: ${(e as Error).message}` };
    // Not about reusePort (a host that is not this machine's, say): the workers' own listen
    // reports it the way a single gateway's does.
    return { ok: true };
  } finally {
    await Promise.all([a, b].map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r()))));
  }
}

/**
 * The error a plain (not reusePort) listen on `host:port` meets now, or null once it could
 * listen there (closed again at once). Workers listening with reusePort would join another
 * program's reusePort sockets on the port, another gateway with workers say, and share its
 * connections; a plain listen first fails on any socket there, as a single gateway's does.
 */
export async function plainListenError(host: string, port: number): Promise<NodeJS.ErrnoException | null> {
  const s = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen({ host, port, exclusive: true }, () => resolve());
    });
    return null;
  } catch (e) {
    return e as NodeJS.ErrnoException;
  } finally {
    if (s.listening) await new Promise<void>((r) => s.close(() => r()));
  }
}
