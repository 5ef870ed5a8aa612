/** Loopback helpers the tests share: a free port, a TCP forwarder that can be down or up, who listens on a port. */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
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

/** The inodes of the TCP sockets listening on `port` now (Linux: LISTEN rows of /proc/net/tcp and tcp6). */
export function listeningSockets(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue; // no IPv6
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // f[1] local address HEXIP:HEXPORT, f[3] state (0A = LISTEN), f[9] inode
      if (f[3] === '0A' && Number.parseInt((f[1] ?? '').split(':')[1] ?? '', 16) === port) inodes.add(f[9] as string);
    }
  }
  return inodes;
}

/**
 * Which of `pids` hold a listening TCP socket on `port` (listeningSockets matched with each
 * process's /proc/<pid>/fd). A process that is exiting or gone holds none, though its socket
 * may still be listening a moment longer: listeningSockets tells.
 */
export function pidsListeningOn(port: number, pids: number[]): number[] {
  const inodes = listeningSockets(port);
  return pids.filter((pid) => {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      return false;
    }
    return fds.some((fd) => {
      try {
        return inodes.has(/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? '');
      } catch {
        return false;
      }
    });
  });
}
