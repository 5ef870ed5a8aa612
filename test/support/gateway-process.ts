/**
 * `meter gateway` as a real process (test/stack/durability.test.ts, gateways-per-machine.test.ts):
 * started on any free port, ready once it logs where it listens, killed by killGatewayProcs().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { assetPath } from '../../src/config/assets.js';

const METER = assetPath('bin/meter.js');
const children = new Set<ChildProcess>();

/** Kill every gateway process still running (call from `after`). */
export function killGatewayProcs(): void {
  for (const c of children) c.kill('SIGKILL');
}

/** This environment without any METER_* setting (CI may export the stack's), plus `extra`. */
export function meterEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('METER_')) env[k] = v;
  return { ...env, ...extra };
}

export interface GatewayProc {
  child: ChildProcess;
  url: string;
  /** The admin listener (/status), when `admin` was asked for. */
  admin: string;
  stderr: string[];
  exited: Promise<number | null>;
}

/** Starts `meter gateway --gateway-port 0 ...args`; with `admin`, waits for the admin listener too. */
export async function startGatewayProc(env: NodeJS.ProcessEnv, args: string[] = [], opts: { admin?: boolean } = {}): Promise<GatewayProc> {
  // One process unless a test asks for workers (the default is one per core): these tests kill
  // the gateway's pid and read its own /status; workers have test/stack/gateway-workers.test.ts.
  const workers = args.includes('--workers') ? [] : ['--workers', '1'];
  const child = spawn('node', [METER, 'gateway', '--gateway-port', '0', ...workers, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  const stderr: string[] = [];
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => (children.delete(child), r(code))));
  const [url, admin] = await new Promise<[string, string]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${stderr.join('')}`)), 120_000);
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      stderr.push(s);
      const m = /gateway on (http:\/\/[^\s]+)/.exec(stderr.join(''));
      const a = /admin listener on (http:\/\/[^\s]+)/.exec(stderr.join(''));
      if (m && (a || !opts.admin)) {
        clearTimeout(timer);
        resolve([m[1]!, a?.[1] ?? '']);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${code}) before it was ready:\n${stderr.join('')}`));
    });
  });
  return { child, url, admin, stderr, exited };
}
