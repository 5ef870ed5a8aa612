/** How much a usage log holds, read as a consumer would see it. */
import type { UsageLog } from '../../src/log/log.js';

/** Records in the log: the sum of its partitions' end offsets, read by a consumer of `group`. */
export async function recordsInLog(log: UsageLog, group: string): Promise<number> {
  const c = await log.consumer(group);
  try {
    let n = 0;
    for (const end of (await c.endOffsets()).values()) n += end;
    return n;
  } finally {
    await c.stop();
  }
}
