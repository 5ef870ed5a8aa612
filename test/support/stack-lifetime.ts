/**
 * A suite that brings stack services up stops again the ones it started, and leaves running the
 * ones it found running (someone else's session may be using them). `stack/run status` tells
 * which are up, before and after.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { assetPath } from '../../src/config/assets.js';

const run = promisify(execFile);

/** The services `stack/run status` reports up or with a live process, for METER_STACK_DIR's stack. */
export async function servicesUp(): Promise<Set<string>> {
  const { stdout } = await run('bash', [assetPath('stack/run'), 'status'], { timeout: 60_000 });
  const up = new Set<string>();
  for (const line of stdout.split('\n')) {
    const [name, state] = line.trim().split(/\s+/);
    // a process still starting (or whose port is gone) counts too: it needs stopping as much
    if (name && (state === 'up' || / pid=\d+/.test(line))) up.add(name);
  }
  return up;
}

/**
 * Run `body`, then stop every service that is up afterwards but was not up before. A failure to
 * stop is reported on stderr, not thrown: the suite's own verdict stays the exit code.
 */
export async function stoppingWhatItStarted<T>(body: () => Promise<T>, log: (m: string) => void = (m) => console.error(m)): Promise<T> {
  const before = await servicesUp();
  try {
    return await body();
  } finally {
    const started = [...(await servicesUp().catch(() => new Set<string>()))].filter((s) => !before.has(s));
    if (before.size) log(`stack: leaving running what was up before: ${[...before].join(' ')}`);
    if (started.length) {
      log(`stack: stopping what this run started: ${started.join(' ')}`);
      try {
        await run('bash', [assetPath('stack/run'), 'down', ...started], { timeout: 5 * 60_000, maxBuffer: 16 << 20 });
      } catch (e: any) {
        log(`stack: stack/run down ${started.join(' ')} failed: ${e.message}`);
      }
    }
  }
}
