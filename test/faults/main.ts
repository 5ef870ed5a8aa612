/**
 * The fault-injection suite (`npm run test:faults`): each scenario under steady traffic on the
 * suite's own real stack, then drained and compared with the ground truth per customer, API
 * and hour. Prints one line per scenario and exits 1 if any lost or duplicated an event
 * (beyond a stated bound) or broke a promise (gateway 5xx, billing API not 503, a process died).
 *
 *   node dist/test/faults/main.js [scenario-name ...]        (all when none is named)
 *
 * Settings: METER_FAULTS_OUTAGE_MS (default 30000), METER_FAULTS_RATE (calls/s, default 200).
 * It lives under test/ but only runs when METER_FAULTS=1, so `npm test` (which loads every
 * file under dist/test) skips it: it takes minutes and stops services.
 */
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stackEnv } from '../support/stack.js';
import { assertOwnStack } from './stack-control.js';
import { stoppingWhatItStarted } from '../support/stack-lifetime.js';
import { formatRow, type Verdict } from './compare.js';
import { runScenario, type Ctx } from './scenarios.js';
import { ALL } from './all.js';

async function main(): Promise<number> {
  assertOwnStack();
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((n) => !ALL.some((s) => s.name === n));
  if (unknown.length) {
    console.error(`unknown scenario(s): ${unknown.join(', ')}; known: ${ALL.map((s) => s.name).join(', ')}`);
    return 2;
  }
  const scenarios = wanted.length ? ALL.filter((s) => wanted.includes(s.name)) : ALL;
  const t0 = Date.now();
  const log = (m: string) => console.error(`[faults +${Math.round((Date.now() - t0) / 1000)}s] ${m}`);
  log(`stack ${process.env.METER_STACK_DIR} (port shift ${process.env.METER_STACK_PORT_SHIFT}): starting kafka, hdfs, postgres, redis`);
  const env = await stackEnv(['kafka', 'hdfs', 'postgres', 'redis']);
  const root = join(tmpdir(), `meter-faults-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(root, { recursive: true });
  const ctx: Ctx = {
    root,
    stackEnv: env,
    outageMs: Number(process.env.METER_FAULTS_OUTAGE_MS ?? 30_000),
    rate: Number(process.env.METER_FAULTS_RATE ?? 200),
    log,
  };
  const verdicts: Verdict[] = [];
  for (const s of scenarios) {
    log(`${s.name}: start`);
    const v = await runScenario(s, ctx);
    verdicts.push(v);
    console.log(formatRow(v));
    for (const n of v.notes) console.log(`    ${n}`);
    for (const d of v.diffs) console.log(`    diff ${d}`);
  }
  console.log(`\nscenario | events sent | billed | lost | duplicated   (${Math.round((Date.now() - t0) / 1000)} s, logs under ${root})`);
  for (const v of verdicts) console.log(formatRow(v));
  const failed = verdicts.filter((v) => v.failures.length);
  if (failed.length) console.log(`\n${failed.length} of ${verdicts.length} scenarios FAILED`);
  return failed.length ? 1 : 0;
}

if (process.env.METER_FAULTS === '1') {
  stoppingWhatItStarted(main).then(
    (code) => process.exit(code),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
