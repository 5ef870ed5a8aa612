/**
 * Abuse of the lake's self-repair and check (docs/lake.md): a forged file claiming a wide offset
 * range must not make the repair delete real data (every delete is proven by event ids first),
 * and the check's work is bounded by the hours asked for, not by the lake's size.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Attack } from './attack.js';
import { FileLog } from '../../src/log/file-log.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { Ingestor } from '../../src/pipeline/ingest.js';
import { FolderDeadLetter } from '../../src/log/dead-letter.js';
import { ParquetWriter } from '../../src/pipeline/parquet-writer.js';
import { encodeEvent, type UsageEvent } from '../../src/events/usage-event.js';
import { testEvent } from '../support/events.js';
import { checkLake } from '../../src/lake/lake-check.js';
import { dataFileName, hourDir, HOUR_MS } from '../../src/lake/layout.js';
import { listDataFiles } from '../../src/pipeline/recovery.js';

const TOPIC = 'usage-events';
const ev = (time: number): UsageEvent => testEvent({ time });

const forged: Attack = {
  name: 'lake: forged files claiming offsets 0..999999 and 0..1500',
  expected: 'repair deletes no real file, ingest goes on after it; every event in the lake once',
  async run({ dir }) {
    const log = new FileLog({ dir: join(dir, 'log'), topic: TOPIC, partitions: 1, pollMs: 10 });
    await log.init();
    const lake = new LocalLake(pathToFileURL(join(dir, 'lake')).href);
    await lake.init();
    const dead = new FolderDeadLetter(join(dir, 'dl'), TOPIC);
    const prod = await log.producer();
    const now = Date.now();
    await prod.send(Array.from({ length: 2000 }, () => ({ key: 'c', value: encodeEvent(ev(now)) })));
    await prod.close();
    const ingest = () => new Ingestor({ log, lake, topic: TOPIC, maxRecords: 300, flushMs: 60_000, deadLetter: dead });
    let ing = ingest();
    await ing.start();
    await ing.waitCaughtUp(30_000);
    await ing.stop();
    const realFiles = (await listDataFiles(lake, TOPIC)).length;
    // a forged file: 50 unrelated events under a name that covers every offset
    const w = await ParquetWriter.open({ tempDir: join(dir, 'duck') });
    const local = join(dir, 'forged.parquet');
    await w.write(
      Array.from({ length: 50 }, () => ev(now)),
      local,
    );
    w.close();
    await lake.publish(local, `${hourDir(now)}/${dataFileName(TOPIC, 0, 0, 999_999)}`);
    // and one inside the log's offsets: the repair would drop it, but its ids are nowhere else
    await lake.publish(local, `${hourDir(now)}/${dataFileName(TOPIC, 0, 0, 1500)}`);
    ing = ingest();
    await ing.start();
    // and ingest goes on after the forged name, not from offset 1,000,000
    const more = await log.producer();
    await more.send(Array.from({ length: 500 }, () => ({ key: 'c', value: encodeEvent(ev(now)) })));
    await more.close();
    await ing.waitCaughtUp(30_000);
    await ing.stop();
    const kept = ing.stats().overlapRepairs;
    const files = await listDataFiles(lake, TOPIC);
    const c = await checkLake(lake, TOPIC);
    await log.close();
    const real = files.filter((f) => f.last !== 999_999 && f.last !== 1500).length;
    return {
      observed: `${real}/${realFiles} real files kept, ${kept.dropped} dropped, ${kept.kept} left and reported; lake ${c.rows} rows / ${c.ids} ids, ${c.overlaps.length} overlaps reported`,
      ok: real >= realFiles && c.ids === 2550 && c.rows === 2600 && kept.kept === 1 && kept.dropped === 0, // 2,000 + 500 events and the 50 forged ones, twice
    };
  },
};

const bounded: Attack = {
  name: 'lake: doctor --lake-check on a lake of 200 hour folders',
  expected: 'a 2-hour check reads at most 3 hour folders',
  async run({ dir }) {
    const lake = new LocalLake(pathToFileURL(join(dir, 'lake')).href);
    await lake.init();
    const w = await ParquetWriter.open({ tempDir: join(dir, 'duck') });
    const now = Date.now();
    for (let h = 0; h < 200; h++) {
      const t = now - h * HOUR_MS;
      const local = join(dir, `h${h}.parquet`);
      await w.write([ev(t), ev(t)], local);
      await lake.publish(local, `${hourDir(t)}/${dataFileName(TOPIC, 0, 2 * h, 2 * h + 1)}`);
    }
    w.close();
    const t0 = performance.now();
    const c = await checkLake(lake, TOPIC, { hours: 2, now });
    const ms = performance.now() - t0;
    const all = await checkLake(lake, TOPIC, { now });
    return {
      observed: `2-hour check: ${c.hoursChecked} hours, ${c.files} files in ${Math.round(ms)} ms (all: ${all.hoursChecked} hours)`,
      ok: c.hoursChecked <= 3 && all.hoursChecked === 200,
    };
  },
};

export const attacks: Attack[] = [forged, bounded];
