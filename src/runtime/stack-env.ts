/**
 * The project's own stack (stack/run): bring services up and read the METER_* settings that
 * point meter at them. Used by `meter demo --stack` and by the tests.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { assetPath } from '../config/assets.js';

const run = promisify(execFile);

export function parseEnvLines(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const [, name, value] = /^(?:export\s+)?(METER_[A-Z_]+)=(.*)$/.exec(line.trim()) ?? [];
    if (name !== undefined && value !== undefined) env[name] = value.replace(/^['"]|['"]$/g, '');
  }
  return env;
}

/** `stack/run up <services>` with its progress on our stderr; rejects with its exit code. */
export function stackUp(services: string[] = []): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [assetPath('stack/run'), 'up', ...services], { stdio: ['ignore', process.stderr, process.stderr] });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`stack/run up ${services.join(' ')} failed (exit ${code}); see the log tail above`)),
    );
  });
}

export async function stackEnvLines(): Promise<Record<string, string>> {
  const { stdout } = await run('bash', [assetPath('stack/run'), 'env'], { timeout: 60_000 });
  return parseEnvLines(stdout);
}
