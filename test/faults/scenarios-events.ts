/**
 * The events API under kills (issue 14: "exactly-once under the fault suite's kills like the
 * gateway's events"):
 *
 *   events-api-kill-9  two billing servers take `POST /v1/events` from 16 senders (event-traffic.ts:
 *        single events and batches, resent byte for byte after no answer, to the other server);
 *        kill -9 of a billing server while a request to it is in flight, 4 times (the world's
 *        three times, the second once), each restarted on its port at once; kill -9 of ingest between
 *        them (twice 0-2 s after it committed, once while it boots) and of the live path
 *        (`meter live`) once. Verdict: billed vs the truth per customer, type and hour (0 lost,
 *        0 duplicated), the live rows vs the truth once the live path reaches the log's end, and
 *        the lake's rows above its distinct ids within the events the senders sent again. On a
 *        database of its own: the live rows would otherwise serve later scenarios' hour.
 *
 *   events-api-kafka-down  the same senders to two billing servers; Kafka stopped for the outage
 *        (METER_FAULTS_OUTAGE_MS, 30 s): the servers answer 503 with retry-after (within the
 *        events API's 10 s bound, LOG_WAIT_MS), the senders resend; one server is killed -9 during the
 *        outage and restarted (its producer opens on the first event, while Kafka is down).
 *        Once Kafka is back both must take events again by themselves. Verdict as above, without
 *        the live path.
 */
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { compare, type Verdict } from './compare.js';
import { freePort, sleep, until, type ScenarioWorld } from './scenario.js';
import { liveCells } from './scenarios-scale.js';
import { committedSum, followerRecovers, topicLog, type ScenarioDef } from './scenarios.js';
import { startService, stopService } from './stack-control.js';
import type { MeterProcess } from './procs.js';
import { startEventTraffic, type EventTraffic, type EventTrafficResult } from './event-traffic.js';

async function startBillingAt(w: ScenarioWorld, port: number): Promise<MeterProcess> {
  const p = w.startProcess('billing', ['serve-billing', '--billing-port', String(port)]);
  await until(
    `the billing server on port ${port}`,
    async () => {
      if (!p.alive) throw new Error(`billing exited:\n${p.tail()}`);
      return (await fetch(`http://127.0.0.1:${port}/healthz`)).status > 0;
    },
    90_000,
    100,
  );
  return p;
}

/** Waits (up to 10 s) until a request to `url` is in flight, so the kill cuts one; says whether one was. */
async function requestInFlight(traffic: EventTraffic, url: string): Promise<boolean> {
  return until('a request in flight', async () => traffic.inFlight(url) > 0, 10_000, 1).then(
    () => true,
    () => false,
  );
}

export const eventsApiKill: ScenarioDef = {
  name: 'events-api-kill-9',
  ownDatabase: true,
  env: { METER_INGEST_FLUSH_MS: '1000' },
  async run(w, ctx, notes, failures) {
    const t0 = Date.now();
    const portB = await freePort();
    const urlB = `http://127.0.0.1:${portB}`;
    let billingB = await startBillingAt(w, portB);
    let ingest = w.startIngest();
    let live = w.startProcess('live', ['live']);
    // A request averages about 10 events: ctx.rate / 4 requests/s is ~500 events/s at the default 200.
    const traffic = startEventTraffic({
      urls: [w.billingUrl, urlB],
      token: w.token,
      customers: w.customers,
      requestsPerSec: ctx.rate / 4,
      seed: 1401,
    });
    const log = topicLog(w);
    const kills: string[] = [];
    const at = () => `+${Math.round((Date.now() - t0) / 1000)} s`;
    const killBilling = async (which: 'A' | 'B') => {
      const url = which === 'A' ? w.billingUrl : urlB;
      const cut = await requestInFlight(traffic, url);
      if (which === 'A') {
        await w.billing!.kill9();
        await w.startBilling();
      } else {
        await billingB.kill9();
        billingB = await startBillingAt(w, portB);
      }
      kills.push(`billing ${which} ${at()}${cut ? ' (a request in flight)' : ' (none in flight)'}`);
      ctx.log(`events: killed and restarted billing ${which}`);
    };
    const killIngest = async (working: boolean) => {
      if (working) {
        const before = await committedSum(log);
        await until(`ingest ${ingest.name} to commit`, async () => (await committedSum(log)) > before, 120_000, 200);
        await sleep(Math.round(Math.random() * 2000)); // timeline: a random moment of the work is where the kill strikes
      } else await sleep(150 + Math.round(Math.random() * 750)); // timeline: a random moment of the boot
      await ingest.kill9();
      ingest = w.startIngest();
      kills.push(`ingest ${at()}${working ? ' (working)' : ' (booting)'}`);
    };
    // timeline: traffic, and the kills at random moments of it
    try {
      await sleep(5000);
      await killBilling('A');
      await killIngest(true);
      await sleep(2000 + Math.random() * 2000);
      await killBilling('B');
      await killIngest(false);
      await live.kill9();
      live = w.startProcess('live', ['live']);
      kills.push(`live ${at()}`);
      await sleep(2000 + Math.random() * 2000);
      await killBilling('A');
      await killIngest(true);
      await sleep(2000 + Math.random() * 2000);
      await killBilling('A');
      await sleep(4000);
    } finally {
      await log.close();
    }
    const r = await traffic.stop();
    notes.push(`kills: ${kills.join('; ')}`);
    judge(r, notes, failures);
    if (!r.cut) failures.push('no request was cut by a kill: the scenario tested no resend after no answer');
    for (const p of [w.billing!, billingB, live]) if (!p.alive) failures.push(`${p.name} died by itself (see ${p.logFile})`);
    await followerRecovers(w, 'the kills', notes, failures);
    // The live path counts the resent events once too (its seen ids per hour, invariant 12).
    const db = await PgWarehouse.open(w.env.METER_DATABASE_URL!);
    try {
      const lv = compare('live rows', r.truth, await liveCells(w, db));
      notes.push(`live rows: ${lv.billed} events, lost ${lv.lost}, duplicated ${lv.duplicated}`);
      if (lv.lost || lv.duplicated) failures.push(`live rows: ${lv.lost} lost, ${lv.duplicated} duplicated (${lv.diffs.slice(0, 3).join('; ')})`);
    } finally {
      await db.close();
    }
    senders.set(w, r);
    return { truth: r.truth, lakeRepeats: r.repeatedEvents };
  },
  after: storedByCutSends,
};

/** The senders' results of a world, for after(). */
const senders = new WeakMap<ScenarioWorld, EventTrafficResult>();

/**
 * The lake's rows above its ids, less the repeats answered 202 twice: events that a send stored
 * though its answer was a 503 (the log took them after the intake's bound) or never came (a kill),
 * stored again by the resend, and billed once. What the scenarios are for; a note, since how many
 * a kill or an outage catches mid-append is chance.
 */
async function storedByCutSends(w: ScenarioWorld, v: Verdict): Promise<void> {
  const r = senders.get(w);
  if (!r || !v.lake) return;
  v.notes.push(
    `events stored by a send answered 503 or cut by a kill, then resent and billed once: ${v.lake.rows - v.lake.ids - r.storedTwice} (lake rows above ids ${v.lake.rows - v.lake.ids}, ${r.storedTwice} of them from repeats after a 202)`,
  );
}

/** The senders' side of the verdict: what happened to the requests, and nothing refused or given up. */
function judge(r: EventTrafficResult, notes: string[], failures: string[]): void {
  notes.push(
    `${r.requests} requests (${r.truth.metered} events): ${r.cut} cut (no answer), ${r.resends} resends (${r.repeated} deliberate repeats after a 202), ${r.repeatedEvents} events possibly in the log twice; errors: ${
      [...r.truth.errors].map(([c, n]) => `${c} ${n}`).join(', ') || 'none'
    }; statuses: ${[...r.truth.byStatus].map(([s, n]) => `${s} ${n}`).join(', ')}`,
  );
  if (r.givenUp) failures.push(`${r.givenUp} requests got no 202 within 120 s of resending`);
  if (r.rejected.length) failures.push(`${r.rejected.length} events or requests refused: ${r.rejected.slice(0, 3).join(' | ')}`);
}

export const eventsApiKafkaDown: ScenarioDef = {
  name: 'events-api-kafka-down',
  async run(w, ctx, notes, failures) {
    const portB = await freePort();
    const urlB = `http://127.0.0.1:${portB}`;
    const billingB = await startBillingAt(w, portB);
    w.startIngest();
    const traffic = startEventTraffic({
      urls: [w.billingUrl, urlB],
      token: w.token,
      customers: w.customers,
      requestsPerSec: ctx.rate / 4,
      seed: 1402,
      // the outage plus the producer's reconnect: a sender keeps resending through it
      retryForMs: ctx.outageMs + 120_000,
    });
    await sleep(6000); // timeline: traffic before the fault
    const before = traffic.accepted();
    await stopService('kafka');
    ctx.log(`events: kafka stopped for ${ctx.outageMs / 1000} s`);
    const end = Date.now() + ctx.outageMs;
    await sleep(ctx.outageMs / 3); // timeline: a third into the outage, a server starts
    // A server started while the log is down: its producer's first open fails and must be retried.
    await w.billing!.kill9();
    await w.startBilling();
    await sleep(Math.max(0, end - Date.now())); // timeline: the outage's length is the fault
    const during = traffic.accepted() - before;
    await startService('kafka');
    ctx.log('events: kafka back');
    const back = Date.now();
    const atBack = traffic.accepted();
    try {
      await until('the billing servers to take events again', async () => traffic.accepted() > atBack + 500, 120_000, 200);
      notes.push(`events accepted again ${((Date.now() - back) / 1000).toFixed(1)} s after Kafka came back; accepted during the outage: ${during}`);
    } catch (e) {
      failures.push(`no events accepted within 120 s of Kafka's return (${(e as Error).message.slice(0, 160)})`);
    }
    await sleep(5000); // timeline: traffic once events are taken again
    const r = await traffic.stop();
    judge(r, notes, failures);
    // While Kafka is down a request gets its 503 after at most 10 s (LOG_WAIT_MS); a sender that
    // timed out first (30 s) resends as well: either one is a resend the scenario meant to test.
    if (!r.truth.byStatus.get(503) && !r.cut) failures.push('no 503 and no timeout while Kafka was down: the scenario tested no resend');
    for (const p of [w.billing!, billingB]) if (!p.alive) failures.push(`${p.name} died by itself (see ${p.logFile})`);
    await followerRecovers(w, 'Kafka came back', notes, failures);
    senders.set(w, r);
    return { truth: r.truth, lakeRepeats: r.repeatedEvents };
  },
  after: storedByCutSends,
};

export const EVENTS_SCENARIOS: ScenarioDef[] = [eventsApiKill, eventsApiKafkaDown];
