/** Loopback helpers the tests share: a free port, and a TCP forwarder that can be down or up. */
import { createServer, connect, type Server, type Socket } from 'node:net';

/** Starts `server` (net or http) on a free loopback port; the port. */
export async function listenLocal(server: Pick<Server, 'listen' | 'address'>): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

/** A port nothing listens on right now (the OS's pick, released at once). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * An address that is down until `up()`, then forwards every connection to `target` (host:port).
 * "Kafka down" for one client without stopping the shared broker: kafkajs bootstraps through it,
 * then talks to the broker's advertised address.
 */
export class Forwarder {
  private server: Server | null = null;
  private readonly socks = new Set<Socket>();
  constructor(
    readonly port: number,
    private readonly target: string,
  ) {}
  async up(): Promise<void> {
    const [host, port] = this.target.split(':');
    const server = createServer((c) => {
      const u = connect(Number(port), host);
      this.socks.add(c).add(u);
      c.pipe(u).pipe(c);
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
    });
    await new Promise<void>((r) => server.listen(this.port, '127.0.0.1', r));
    this.server = server;
  }
  async down(): Promise<void> {
    for (const s of this.socks) s.destroy();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}
