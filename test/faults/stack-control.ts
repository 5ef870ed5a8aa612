/**
 * Stopping and starting single services of the suite's own stack (`stack/run down|up <svc>`).
 * The suite refuses to run on the default stack folder: stopping Kafka there would break
 * everyone else's tests (test:faults sets METER_STACK_DIR and METER_STACK_PORT_SHIFT).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { assetPath } from '../../src/config/assets.js';
import type { Service } from '../support/stack.js';

const run = promisify(execFile);

export function assertOwnStack(): void {
  const dir = process.env.METER_STACK_DIR ?? '/tmp/meter-stack';
  if (dir === '/tmp/meter-stack' || !process.env.METER_STACK_PORT_SHIFT)
    throw new Error(
      'the fault suite stops services: run it on its own stack (METER_STACK_DIR=/tmp/meter-stack-faults METER_STACK_PORT_SHIFT=200, as `npm run test:faults` does)',
    );
}

async function stackRun(verb: 'up' | 'down', service: Service): Promise<void> {
  assertOwnStack();
  try {
    await run('bash', [assetPath('stack/run'), verb, service], { timeout: 5 * 60_000, maxBuffer: 16 << 20 });
  } catch (e: any) {
    throw new Error(`stack/run ${verb} ${service} failed: ${e.message}\n${e.stderr ?? ''}`);
  }
}

export const stopService = (s: Service) => stackRun('down', s);
export const startService = (s: Service) => stackRun('up', s);
