/**
 * Servers a test starts for itself, when it needs a setting the shared stack must not have
 * (a Redis with requirepass or TLS, a Postgres with ssl=on): on a free loopback port, data in a
 * temporary folder, stopped by the returned `stop()`. Readiness is waited for, never slept.
 * Also: a self-signed certificate made with openssl, for the TLS tests.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from './until.js';
import { tempDir } from './tmp.js';
import { freePort } from './net.js';
export { freePort } from './net.js';

export interface Cert {
  dir: string;
  /** The self-signed certificate, which is also its own CA (give it as the CA file). */
  certFile: string;
  keyFile: string;
}

/** A self-signed certificate (openssl) for the names in `san`, valid one day. */
export function selfSignedCert(name = 'meter-test', san = 'IP:127.0.0.1,DNS:localhost'): Cert {
  const dir = tempDir('meter-cert-');
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      `subjectAltName=${san}`,
    ],
    { stdio: 'ignore' },
  );
  return { dir, certFile, keyFile };
}

export interface OwnServer {
  port: number;
  dir: string;
  stop(): Promise<void>;
}

/** redis-server with extra config directives (`--requirepass x`, `--tls-port ...`). */
export async function startRedis(extra: (port: number) => string[], opts: { tls?: boolean } = {}): Promise<OwnServer> {
  const dir = tempDir('meter-redis-');
  const port = await freePort();
  const logfile = join(dir, 'redis.log');
  const portArgs = opts.tls ? ['--port', '0'] : ['--port', String(port)];
  const child: ChildProcess = spawn(
    'redis-server',
    [...portArgs, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', logfile, ...extra(port)],
    { stdio: 'ignore' },
  );
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? -1));
  await until('redis-server to start', () => exited !== null || (existsSync(logfile) && /Ready to accept connections/.test(readFileSync(logfile, 'utf8'))));
  if (exited !== null) throw new Error(`redis-server exited (${exited}): ${existsSync(logfile) ? readFileSync(logfile, 'utf8').slice(-2000) : ''}`);
  return {
    port,
    dir,
    async stop() {
      if (exited === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const pgBin = () => {
  const out = execFileSync('bash', ['-c', 'ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1'], { encoding: 'utf8' }).trim();
  if (!out) throw new Error('no PostgreSQL binaries under /usr/lib/postgresql (bash stack/run up postgres installs them)');
  return out;
};

/** Postgres refuses to run as root: as root, run its tools as the `postgres` user (as stack/run does). */
function asPg(cmd: string, args: string[]): void {
  const root = process.getuid?.() === 0;
  execFileSync(root ? 'runuser' : cmd, root ? ['-u', 'postgres', '--', cmd, ...args] : args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * A Postgres of its own: user `meter` / `password`, TLS on with `cert`, and pg_hba accepting
 * TCP only over TLS (`hostnossl ... reject`), so a client without TLS is refused.
 */
export async function startPostgresTls(cert: Cert, password: string): Promise<OwnServer> {
  const bin = pgBin();
  const dir = tempDir('meter-pgtls-');
  const data = join(dir, 'data');
  const port = await freePort();
  const root = process.getuid?.() === 0;
  const own = (p: string) => {
    if (root) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
      chownSync(p, uid, gid);
    }
  };
  own(dir);
  writeFileSync(join(dir, 'pw'), password + '\n');
  own(join(dir, 'pw'));
  for (const [from, to] of [
    [cert.certFile, 'server.crt'],
    [cert.keyFile, 'server.key'],
  ]) {
    writeFileSync(join(dir, to!), readFileSync(from!));
    chmodSync(join(dir, to!), 0o600);
    own(join(dir, to!));
  }
  asPg(`${bin}/initdb`, [
    '-D',
    data,
    '-U',
    'meter',
    `--pwfile=${join(dir, 'pw')}`,
    '-E',
    'UTF8',
    '--locale=C.UTF-8',
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
  ]);
  writeFileSync(
    join(data, 'postgresql.conf'),
    `\nlisten_addresses = '127.0.0.1,::1'\nport = ${port}\nunix_socket_directories = '${dir}'\nssl = on\nssl_cert_file = '${join(dir, 'server.crt')}'\nssl_key_file = '${join(dir, 'server.key')}'\nshared_buffers = 16MB\nmax_connections = 20\nfsync = off\n`,
    { flag: 'a' },
  );
  writeFileSync(
    join(data, 'pg_hba.conf'),
    'local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 scram-sha-256\nhostnossl all all 0.0.0.0/0 reject\nhostnossl all all ::/0 reject\n',
  );
  asPg(`${bin}/pg_ctl`, ['-D', data, '-l', join(dir, 'postgres.log'), '-w', '-t', '60', 'start']);
  return {
    port,
    dir,
    async stop() {
      try {
        asPg(`${bin}/pg_ctl`, ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
