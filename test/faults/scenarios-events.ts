/**
 * The events API under kills (issue 14: "exactly-once under the fault suite's kills like the
 * gateway's events"):
 *
 *   events-api-kill-9  two billing servers take `POST /v1/events` from 16 senders (event-traffic.ts:
 *        single events and batches, resent byte for byte after no answer, to the other server);
 *        kill -9 of each billing server while a request to it is in flight (the first three
 *        times, the second once), each restarted on its port at once; kill -9 of ingest between
 *        them (twice 0-2 s after it committed, once while it boots). Verdict: billed vs the truth
 *        per customer, type and hour (0 lost, 0 duplicated), and the lake's rows above its
 *        distinct ids within the events the senders sent again.
 */
import { freePort, sleep, until, type ScenarioWorld } from './scenario.js';
import { committedSum, followerRecovers, topicLog, type ScenarioDef } from './scenarios.js';
import type { MeterProcess } from './procs.js';
import { startEventTraffic, type EventTraffic } from './event-traffic.js';

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
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    if (traffic.inFlight(url) > 0) return true;
    await sleep(1);
  }
  return false;
}

export const eventsApiKill: ScenarioDef = {
  name: 'events-api-kill-9',
  env: { METER_INGEST_FLUSH_MS: '1000' },
  async run(w, ctx, notes, failures) {
    const t0 = Date.now();
    const portB = await freePort();
    const urlB = `http://127.0.0.1:${portB}`;
    let billingB = await startBillingAt(w, portB);
    let ingest = w.startIngest();
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
        await sleep(Math.round(Math.random() * 2000));
      } else await sleep(150 + Math.round(Math.random() * 750));
      await ingest.kill9();
      ingest = w.startIngest();
      kills.push(`ingest ${at()}${working ? ' (working)' : ' (booting)'}`);
    };
    try {
      await sleep(5000);
      await killBilling('A');
      await killIngest(true);
      await sleep(2000 + Math.random() * 2000);
      await killBilling('B');
      await killIngest(false);
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
    notes.push(
      `${r.requests} requests (${r.truth.metered} events): ${r.cut} without an answer, ${r.resends} resends (${r.repeated} deliberate repeats after a 202), ${r.repeatedEvents} events sent again; errors: ${
        [...r.truth.errors].map(([c, n]) => `${c} ${n}`).join(', ') || 'none'
      }; statuses: ${[...r.truth.byStatus].map(([s, n]) => `${s} ${n}`).join(', ')}`,
    );
    if (r.givenUp) failures.push(`${r.givenUp} requests got no 202 within 120 s of resending`);
    if (r.rejected.length) failures.push(`${r.rejected.length} events or requests refused: ${r.rejected.slice(0, 3).join(' | ')}`);
    if (!r.cut) failures.push('no request was cut by a kill: the scenario tested no resend after no answer');
    for (const p of [w.billing!, billingB]) if (!p.alive) failures.push(`${p.name} died by itself (see ${p.logFile})`);
    await followerRecovers(w, 'the kills', notes, failures);
    return { truth: r.truth, lakeRepeats: r.repeatedEvents };
  },
};

export const EVENTS_SCENARIOS: ScenarioDef[] = [eventsApiKill];
