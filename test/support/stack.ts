/**
 * Real-stack access for tests: brings the named services up with `stack/run up <services>`
 * (idempotent: reuses running ones) and returns the METER_* settings from `stack/run env`.
 * If a service cannot start, this throws with the script's output (which includes the tail of
 * the server's log): integration tests fail loudly, they never skip.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { assetPath } from '../../src/config/assets.js';
import { stackEnvLines } from '../../src/runtime/stack-env.js';

const run = promisify(execFile);
export type Service = 'kafka' | 'hdfs' | 'postgres' | 'redis' | 'prometheus';

const started = new Map<string, Promise<void>>();

export async function stackEnv(services: Service[]): Promise<Record<string, string>> {
  const script = assetPath('stack/run');
  for (const s of services) {
    if (!started.has(s)) {
      started.set(
        s,
        run('bash', [script, 'up', s], { timeout: 8 * 60_000, maxBuffer: 16 << 20 }).then(
          () => undefined,
          (e: any) => {
            throw new Error(`stack service ${s} did not start: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
          },
        ),
      );
    }
    await started.get(s);
  }
  return stackEnvLines();
}

/**
 * A new, empty database on the stack's Postgres server, for one test. A warehouse belongs to
 * one topic and lake (rollups replace whole hours, the live view decides per hour), so tests
 * that run pipelines must not share one.
 */
export async function freshDatabase(env: Record<string, string>, prefix = 't'): Promise<string> {
  const pg = (await import('pg')).default;
  const name = `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`.replace(/[^a-z0-9_]/g, '_');
  const admin = new pg.Client({ connectionString: env.METER_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(env.METER_DATABASE_URL!);
  url.pathname = `/${name}`;
  return url.toString();
}
