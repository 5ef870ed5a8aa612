/** `meter` run as a user runs it: a process per command in a temp folder with its own data dir. */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { assetPath } from '../../src/config/assets.js';
import { tempDir } from './tmp.js';
import { migratedFolder, seedDataDir } from './warehouse.js';

export interface CliResult {
  code: number | null;
  out: string;
  err: string;
}

export interface Cli {
  /** The working folder; the data dir is `<dir>/data`. */
  dir: string;
  /** Runs `meter ...args` to its end, with only PATH, HOME and `env` besides the data dir. */
  meter(args: string[], env?: Record<string, string>): CliResult;
}

/**
 * `meter ...args` as an async child, for a test whose own process serves what the command calls:
 * in `cwd`, with only PATH and `env`, `stdin` written then closed.
 */
export function meterChild(args: string[], o: { cwd: string; env: Record<string, string>; stdin?: string; timeoutMs?: number }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [assetPath('bin/meter.js'), ...args], { cwd: o.cwd, env: { PATH: process.env.PATH, ...o.env }, timeout: o.timeoutMs });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b));
    c.stderr.on('data', (b: Buffer) => (err += b));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, out, err }));
    c.stdin.end(o.stdin ?? '');
  });
}

/**
 * A folder named `<prefix>XXXXXX` (removed at exit) whose data dir holds the warehouse made once
 * per build (a new one costs seconds of initdb per command's file), and a runner for it.
 */
export async function cliFolder(prefix: string, timeoutMs = 120_000): Promise<Cli> {
  const dir = tempDir(prefix);
  const dataDir = join(dir, 'data');
  seedDataDir(await migratedFolder(), dataDir);
  return {
    dir,
    meter(args, env = {}) {
      const r = spawnSync(process.execPath, [assetPath('bin/meter.js'), ...args], {
        cwd: dir,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', METER_DATA_DIR: dataDir, METER_LOG_LEVEL: 'warn', ...env },
        encoding: 'utf8',
        timeout: timeoutMs,
      });
      return { code: r.status, out: r.stdout, err: r.stderr };
    },
  };
}
