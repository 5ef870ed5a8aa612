/**
 * Child processes of the fault suite: every pipeline part runs as a real `node bin/meter.js`
 * process, so a fault is what it is in production (kill -9 loses the process's memory, not the
 * test's). Output goes to one log file per process, kept for a post-mortem. Only processes
 * started here are ever signalled, always by their own pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from '../../src/config/config.js';

export const METER_BIN = resolve(packageRoot(), 'bin/meter.js');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class MeterProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  private done: Exit | null = null;

  constructor(
    readonly name: string,
    readonly args: string[],
    env: NodeJS.ProcessEnv,
    readonly logFile: string,
  ) {
    const out = createWriteStream(logFile, { flags: 'a' });
    out.write(`--- ${new Date().toISOString()} meter ${args.join(' ')}\n`);
    this.child = spawn(process.execPath, [METER_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.pipe(out, { end: false });
    this.child.stderr!.pipe(out, { end: false });
    this.exited = new Promise((res) => {
      this.child.once('exit', (code, signal) => {
        this.done = { code, signal };
        out.write(`--- exit code=${code} signal=${signal}\n`);
        res(this.done);
      });
    });
    // The file is closed once the pipes are empty: 'close' comes after 'exit', when every holder
    // of the child's stdio (gateway workers too) has closed it; a write after the end would throw.
    this.child.once('close', () => out.end());
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.done === null;
  }

  /** kill -9: no flush, no commit, no goodbye to the group. */
  async kill9(): Promise<void> {
    if (!this.alive) return;
    process.kill(this.pid, 'SIGKILL');
    await this.exited;
  }

  /** SIGTERM and wait for a clean exit (the command flushes and commits); SIGKILL after timeoutMs. */
  async stop(timeoutMs = 60_000): Promise<Exit> {
    if (!this.alive) return this.done!;
    process.kill(this.pid, 'SIGTERM');
    const t = setTimeout(() => {
      if (this.alive) process.kill(this.pid, 'SIGKILL');
    }, timeoutMs);
    const e = await this.exited;
    clearTimeout(t);
    return e;
  }

  tail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}

/** Run a meter command to completion; rejects with its log tail on a non-zero exit. */
export async function runMeter(args: string[], env: NodeJS.ProcessEnv, dir: string, timeoutMs = 300_000): Promise<string> {
  const name = args.filter((a) => !a.startsWith('-')).join('-') || 'meter';
  const logFile = join(dir, `${name}.log`);
  const p = new MeterProcess(name, args, env, logFile);
  let stdout = '';
  p.child.stdout!.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  const t = setTimeout(() => p.alive && process.kill(p.pid, 'SIGKILL'), timeoutMs);
  const e = await p.exited;
  clearTimeout(t);
  if (e.code !== 0) throw new Error(`meter ${args.join(' ')} failed (code ${e.code}, signal ${e.signal}):\n${p.tail(20)}`);
  return stdout;
}
