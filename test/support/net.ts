/** Loopback helpers the tests share: a free port, a TCP forwarder that can be down or up, who listens on a port. */
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, connect, type Server, type Socket } from 'node:net';

/** Starts `server` (net or http) on a free loopback port; the port. */
export async function listenLocal(server: Pick<Server, 'listen' | 'address'>): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

/**
 * Ports handed out by freePort: a range below Linux's ephemeral range, so no outgoing connection
 * and no listen(0) of any process takes one of them between the pick and a later (re)start on it
 * (a scenario restarts its gateway on its port for minutes). Each pick is claimed by a file named
 * for the port holding the claiming pid (O_EXCL), so two test processes (CI runs two lanes at
 * once) never hold the same port; a claim whose pid is gone is taken over. Before this, picks came
 * from the kernel's ephemeral ports and CI once lost the faults suite's gateway to "admin port in use".
 */
const PORTS_DIR = join(tmpdir(), 'meter-test-ports');
const claimed = new Set<number>();

function pickRange(): [number, number] | null {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    // not Linux: the usual default
  }
  // Above the stacks' fixed ports (stack/run: 15432..19895 plus METER_STACK_PORT_SHIFT).
  const lo = 21000;
  const hi = Math.min(low - 1, 32767);
  return hi - lo >= 1000 ? [lo, hi] : null;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

function claim(port: number): boolean {
  const file = join(PORTS_DIR, String(port));
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' });
  } catch {
    const owner = Number(readFileSync(file, 'utf8') || 0);
    if (owner && alive(owner)) return false;
    rmSync(file, { force: true });
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
    } catch {
      return false; // another process took it over first
    }
  }
  if (!claimed.size) process.once('exit', () => claimed.forEach((p) => rmSync(join(PORTS_DIR, String(p)), { force: true })));
  claimed.add(port);
  return true;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** The kernel's pick, released at once (where no port range is free of ephemeral ports). */
function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A loopback port nothing listens on now, that no other freePort of any process hands out while this process lives. */
export async function freePort(): Promise<number> {
  const range = pickRange();
  if (!range) return kernelPort();
  mkdirSync(PORTS_DIR, { recursive: true });
  for (let tries = 0; tries < 500; tries++) {
    const port = range[0] + Math.floor(Math.random() * (range[1] - range[0] + 1));
    if (claimed.has(port) || !claim(port)) continue;
    if (await canListen(port)) return port;
    // Held by something outside this scheme: the claim stays, so this process does not try it again.
  }
  throw new Error(`no free loopback port in ${range[0]}..${range[1]} after 500 tries (claims in ${PORTS_DIR})`);
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
  return pids.filter((pid) => socketsHeldBy(pid, inodes).size > 0);
}

/** Which of `inodes` (listeningSockets) process `pid` holds open; none for a process gone. */
export function socketsHeldBy(pid: number, inodes: Set<string>): Set<string> {
  const held = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return held;
  }
  for (const fd of fds) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? '';
      if (inodes.has(inode)) held.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  return held;
}
