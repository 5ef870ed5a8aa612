/**
 * `meter doctor`'s look at the local durable logs: the embedded usage log (`<dataDir>/log`) and
 * every gateway spool (`<dataDir>/spool*`, kept in Kafka mode too). A check finds acknowledged
 * records that cannot be read (src/log/file-log/durable-mark.ts); `--repair-log` keeps every
 * record still readable and reports the ones lost (src/log/file-log/repair.ts).
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { MeterConfig } from '../config/config.js';
import { takeLock } from '../ground/pid-lock.js';
import { findDamage, repairPartition, type PartitionRepair } from '../log/file-log/repair.js';

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => statSync(join(dir, n)).isDirectory());
  } catch {
    return [];
  }
}

/** Topic folders of the local logs under the data dir: each holds numbered partition folders. */
export function localLogTopics(cfg: MeterConfig): string[] {
  const roots = [
    join(cfg.dataDir, 'log'),
    ...subdirs(cfg.dataDir)
      .filter((n) => /^spool(-\d+)?$/.test(n))
      .map((n) => join(cfg.dataDir, n)),
  ];
  return roots.flatMap((root) => subdirs(root).map((t) => join(root, t)));
}

function partitionsOf(topicDir: string): string[] {
  return subdirs(topicDir)
    .filter((n) => /^\d+$/.test(n))
    .map((n) => join(topicDir, n));
}

/** One line per damaged partition, or [] when every local log reads up to what it acknowledged. */
export async function localLogDamage(cfg: MeterConfig): Promise<string[]> {
  const out: string[] = [];
  for (const topic of localLogTopics(cfg))
    for (const p of partitionsOf(topic)) {
      const d = await findDamage(p);
      if (d) out.push(`${d.segment}: good records up to offset ${d.goodUpTo} (byte ${d.pos}), acknowledged up to ${d.mark}`);
    }
  return out;
}

/**
 * Repair every damaged partition of the local logs, each topic under its writer lock (a running
 * gateway holds it: LockedError, whose message says which process).
 */
export async function repairLocalLogs(cfg: MeterConfig): Promise<PartitionRepair[]> {
  const out: PartitionRepair[] = [];
  for (const topic of localLogTopics(cfg)) {
    const release = takeLock(join(topic, '.lock'));
    try {
      for (const p of partitionsOf(topic)) {
        const r = await repairPartition(p);
        if (r) out.push(r);
      }
    } finally {
      release();
    }
  }
  return out;
}
