/** The lake side of the pipeline on embedded parts, as unit tests build it around their own log. */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LocalLake } from '../../src/lake/local-lake.js';
import { FolderDeadLetter } from '../../src/log/dead-letter.js';
import type { UsageLog } from '../../src/log/log.js';
import { Ingestor } from '../../src/pipeline/ingest.js';
import { Rollup } from '../../src/pipeline/rollup.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';

export interface LakePipeline {
  lake: LocalLake;
  ingest: Ingestor;
  rollup: Rollup;
  /** Stops the ingestor, then closes the rollup and the lake (not the log or the warehouse). */
  close(): Promise<void>;
}

/**
 * A local lake under `<dir>/lake`, an ingestor from `log` into it (dead letters under `<dir>/dl`)
 * that rotates after `maxRecords` (default 10,000) and never on time, and a rollup into `db`.
 */
export async function lakePipeline(o: { dir: string; log: UsageLog; db: Warehouse; topic: string; maxRecords?: number }): Promise<LakePipeline> {
  const lake = new LocalLake(pathToFileURL(join(o.dir, 'lake')).href);
  await lake.init();
  const ingest = new Ingestor({
    log: o.log,
    lake,
    topic: o.topic,
    maxRecords: o.maxRecords ?? 10_000,
    flushMs: 60_000,
    deadLetter: new FolderDeadLetter(join(o.dir, 'dl'), o.topic),
  });
  const rollup = new Rollup({ lake, db: o.db });
  return {
    lake,
    ingest,
    rollup,
    async close() {
      await ingest.stop();
      await rollup.close();
      await lake.close();
    },
  };
}
