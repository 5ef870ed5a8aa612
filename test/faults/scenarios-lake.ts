/**
 * Scenarios of the lake's exactly-once (docs/lake.md): an ingest paused past its session timeout
 * while a second one is in the group, and every stack server killed at once. Both are judged
 * like every scenario (billing against the truth) plus the lake check (lake-check.ts).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { sleep, until } from './scenario.js';
import { startService } from './stack-control.js';
import { startTraffic } from './traffic.js';
import { checkAlive, committedSum, followerRecovers, topicLog, type Ctx, type ScenarioDef } from './scenarios.js';
import type { ScenarioWorld } from './scenario.js';
import type { TrafficResult } from './traffic.js';
import type { MeterProcess } from './procs.js';

const SESSION_TIMEOUT_MS = 10_000;
/** METER_FAULTS_PAUSE_MS: a longer pause, e.g. against a build whose session timeout is fixed at 30 s. */
const PAUSE_MS = Number(process.env.METER_FAULTS_PAUSE_MS ?? 15_000);

/** Wait for the group to commit more, then a random moment of a write (ranges rotate every second). */
async function midWrite(log: ReturnType<typeof topicLog>, who: string): Promise<number> {
  const before = await committedSum(log);
  await until(`${who} to commit`, async () => (await committedSum(log)) > before, 60_000, 100);
  const d = Math.round(Math.random() * 1000);
  await sleep(d); // timeline: a random moment of the write is where the fault strikes
  return d;
}

/**
 * Traffic, and each ingest paused past the session timeout in turn. (`meter live` is not paused
 * here: its state is per warehouse, which the suite shares between scenarios, and a live group
 * left "complete" for this hour makes the billing API serve its counts, of another topic, to
 * every later scenario in the same hour: billed 0.)
 */
async function pauses(w: ScenarioWorld, ctx: Ctx, a: MeterProcess, b: MeterProcess, notes: string[], failures: string[]): Promise<TrafficResult> {
  const traffic = startTraffic({ gatewayUrl: w.gatewayUrl, customers: w.customers, ratePerSec: ctx.rate, seed: 909 });
  const log = topicLog(w);
  const paused: MeterProcess[] = [];
  try {
    await sleep(8000); // timeline: traffic before the first pause
    for (const victim of [a, b]) {
      const d = await midWrite(log, 'ingest');
      process.kill(victim.pid, 'SIGSTOP');
      paused.push(victim);
      ctx.log(`${victim.name} paused (${d} ms after a commit) for ${PAUSE_MS / 1000} s, session timeout ${SESSION_TIMEOUT_MS / 1000} s`);
      const t = Date.now();
      // the other ingest takes the paused one's partitions and goes on
      await sleep(PAUSE_MS); // timeline: the pause past the session timeout is the fault
      for (const p of paused.splice(0)) process.kill(p.pid, 'SIGCONT');
      notes.push(`${victim.name} paused ${Math.round((Date.now() - t) / 1000)} s (${d} ms after a commit)`);
      await sleep(8000); // timeline: the resumed ingest re-joins under traffic in this period
    }
    checkAlive(w, [a, b], 'during the pauses', failures);
    await followerRecovers(w, 'the pauses', notes, failures);
    const count = (re: RegExp) => [a, b].map((p) => (readFileSync(p.logFile, 'utf8').match(re) ?? []).length).join(' + ');
    notes.push(`publishes refused by the fence: ${count(/not publish|owns no partition/g)}; overlap repairs logged: ${count(/removed offsets|re-wrote/g)}`);
  } finally {
    for (const p of paused) if (p.alive) process.kill(p.pid, 'SIGCONT');
    await log.close();
  }
  return traffic.stop();
}

/**
 * kill -STOP of one of two ingests for 15 s against a 10 s session timeout, then CONT, twice
 * (each ingest once): the group gives the paused one's partitions to the other; when it
 * resumes, whatever it was writing must not reach the lake, and it re-joins from a fresh scan.
 */
export const ingestPaused: ScenarioDef = {
  name: 'ingest-paused-past-session',
  env: { METER_KAFKA_SESSION_TIMEOUT_MS: String(SESSION_TIMEOUT_MS), METER_INGEST_FLUSH_MS: '1000' },
  async run(w, ctx, notes, failures) {
    await w.startGateway();
    const a = w.startIngest();
    const b = w.startIngest();
    return { truth: await pauses(w, ctx, a, b, notes, failures) };
  },
};

/** A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or null once it is gone. */
function startTicks(pid: number): string | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * Pids of the stack's servers (stack/run's pid files) and their children (Postgres backends).
 * Each must still be the process its file was written for (stack/run keeps its start time; a
 * postmaster runs in its data folder): a server that died on its own leaves a file whose pid
 * Linux may have given to anyone, and this kill is -9.
 */
function stackPids(): number[] {
  const dir = process.env.METER_STACK_DIR!;
  const pids: number[] = [];
  const add = (pid: number) => {
    pids.push(pid);
    try {
      for (const t of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)) if (t) pids.push(Number(t));
    } catch {
      // not Linux /proc: the server alone
    }
  };
  for (const f of ['kafka.pid', 'namenode.pid', 'datanode.pid', 'redis.pid']) {
    const [pid, ticks] = readFileSync(join(dir, f), 'utf8')
      .split('\n')
      .map((x) => x.trim());
    if (!pid || !ticks || startTicks(Number(pid)) !== ticks) throw new Error(`${join(dir, f)} names pid ${pid}, which is not that server now`);
    add(Number(pid));
  }
  const pg = join(dir, 'postgres', 'data');
  const master = Number(readFileSync(join(pg, 'postmaster.pid'), 'utf8').split('\n')[0]);
  let cwd = '';
  try {
    cwd = realpathSync(`/proc/${master}/cwd`);
  } catch {
    // gone
  }
  if (!master || cwd !== realpathSync(pg)) throw new Error(`${join(pg, 'postmaster.pid')} names pid ${master}, which is not that Postgres now`);
  add(master);
  return pids;
}

/** kill -9 of Kafka, NameNode, DataNode, Postgres and Redis together; 20 s; `stack/run up`. */
export const allKilled: ScenarioDef = {
  name: 'every-server-killed',
  env: { METER_INGEST_FLUSH_MS: '1000' },
  async run(w, ctx, notes, failures) {
    await w.startGateway();
    const a = w.startIngest();
    const b = w.startIngest();
    const rollup = w.startRollupFollower();
    const traffic = startTraffic({ gatewayUrl: w.gatewayUrl, customers: w.customers, ratePerSec: ctx.rate, seed: 1010 });
    const log = topicLog(w);
    try {
      await sleep(8000); // timeline: traffic before the fault
      await midWrite(log, 'ingest');
    } finally {
      await log.close();
    }
    const pids = stackPids();
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    ctx.log(`every stack server killed (kill -9 of ${pids.length} processes); 20 s`);
    await sleep(20_000); // timeline: the stack's 20 s down is the fault
    const t = Date.now();
    for (const s of ['kafka', 'hdfs', 'postgres', 'redis'] as const) await startService(s);
    notes.push(`stack back ${Math.round((Date.now() - t) / 1000)} s after \`stack/run up\``);
    await sleep(5000); // a quiet period is the thing tested: a process the outage broke dies within it
    checkAlive(w, [a, b], 'after the stack was killed', failures);
    await followerRecovers(w, 'the whole stack came back', notes, failures);
    if (!rollup.alive) failures.push(`rollup --follow died (see ${rollup.logFile})`);
    else await rollup.stop();
    if (!w.billing?.alive) {
      failures.push(`serve-billing died (see ${w.billing?.logFile})`);
      await w.startBilling();
    }
    if (!w.gateway?.alive) {
      failures.push(`gateway died (see ${w.gateway?.logFile})`);
      await w.startGateway();
    }
    return { truth: await traffic.stop() };
  },
};

export const lakeScenarios: ScenarioDef[] = [ingestPaused, allKilled];
