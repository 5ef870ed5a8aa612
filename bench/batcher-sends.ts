/**
 * How many sends the gateway's EventBatcher makes to a real embedded log (4 partitions: a write
 * and an fdatasync per partition per send) at a steady event rate, and this process's CPU per
 * event (the 1 ms timer that adds the events included). One send per `flushMs` tick is the
 * design; sends that follow each other as soon as one finishes make the count depend on the
 * disk instead.
 *
 *   node dist/bench/batcher-sends.js [events/s=5000] [seconds=4] [flushMs=5,10]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FileLog } from '../src/log/file-log.js';
import { EventBatcher } from '../src/gateway/event-batcher.js';
import { benchWorkDir, callEvent, fmt } from './lib.js';

async function once(rate: number, seconds: number, flushMs: number): Promise<void> {
  const dir = mkdtempSync(join(benchWorkDir(), 'batcher-sends-'));
  const log = new FileLog({ dir, topic: 'usage-events', partitions: 4 });
  try {
    await log.init();
    const producer = await log.producer();
    const batcher = new EventBatcher(producer, { flushMs });
    let n = 0;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        const due = Math.floor(((performance.now() - t0) / 1000) * rate);
        while (n < due) batcher.add(callEvent(n++, 100, Date.now()));
        if (performance.now() - t0 >= seconds * 1000) {
          clearInterval(t);
          resolve();
        }
      }, 1);
    });
    await batcher.flush();
    const c = process.cpuUsage(c0);
    const { batches } = batcher.stats();
    console.log(
      `flushMs ${flushMs}: ${fmt(n)} events, ${fmt(batches)} sends (${fmt(batches / seconds)}/s), ${fmt(log.stats().writes)} partition appends; ` +
        `CPU ${fmt((c.user + c.system) / n, 1)} µs per event`,
    );
    await batcher.close();
    await producer.close();
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const [rate = '5000', seconds = '4', flush = '5,10'] = process.argv.slice(2);
for (const f of flush.split(',')) await once(Number(rate), Number(seconds), Number(f));
