/**
 * Runs `meter live` as a child process (the crash tests of the live path): a real process on
 * real backends, killed with SIGKILL at chosen moments.
 */
import { spawn } from 'node:child_process';
import { assetPath } from '../../src/config/assets.js';

const BIN = assetPath('bin/meter.js');

export interface LiveRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Killed by the 2-minute guard, not by the test's plan. */
  timedOut: boolean;
}

/** Run `meter live ...`; with killAfterStartMs, SIGKILL it that long after it started following. */
export function runLive(env: Record<string, string>, args: string[], killAfterStartMs?: number): Promise<LiveRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'live', ...args], {
      env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let armed = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      // the follow loop has started: kill at a random moment of its work
      if (killAfterStartMs !== undefined && !armed && stderr.includes('-> warehouse')) {
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), killAfterStartMs);
      }
    });
    let timedOut = false;
    const guard = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}
