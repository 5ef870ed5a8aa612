/**
 * Records and distinct event ids in a scenario's topic, read from Kafka itself. The log may hold
 * one event twice (a producer resend after a lost acknowledgement: docs/lake.md "Checking a
 * lake"); the lake must then hold it as often as the log does, and never more.
 */
import { KafkaLog } from '../../src/log/kafka-log.js';
import { decodeEvent } from '../../src/events/usage-event.js';
import type { ScenarioWorld } from './scenario.js';

const PAGE = 20_000;

export interface LogCounts {
  records: number;
  ids: number;
}

export async function kafkaCounts(w: ScenarioWorld): Promise<LogCounts> {
  const log = new KafkaLog({ brokers: w.env.METER_KAFKA_BROKERS!.split(','), topic: w.env.METER_TOPIC!, partitions: 4 });
  try {
    const c = await log.consumer(`count-${Date.now()}`);
    const ids = new Set<string>();
    let records = 0;
    for (const [p, end] of await c.endOffsets()) {
      for (let from = 0; from < end; from += PAGE) {
        for (const r of await c.readRange(p, from, Math.min(end, from + PAGE))) {
          records++;
          const d = decodeEvent(r.value);
          if (d.ok) ids.add(d.event.id);
        }
      }
    }
    return { records, ids: ids.size };
  } finally {
    await log.close();
  }
}
