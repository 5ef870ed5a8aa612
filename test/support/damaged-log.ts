/**
 * An embedded log (`<dataDir>/log`, topic usage-events, 4 partitions) of 50 same-length records
 * per partition, with the record at offset 5 of each partition named in `damage` overwritten
 * inside its payload: damage below the durable mark (src/log/file-log/durable-mark.ts), as a bad
 * disk block would leave it. For doctor --repair-log and the gateway's readiness.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileLog } from '../../src/log/file-log.js';
import { readDurableMark } from '../../src/log/file-log/durable-mark.js';

export interface DamagedPartition {
  dir: string;
  segment: string;
  /** Records acknowledged in the partition (its durable mark). */
  mark: number;
  /** The segment's length after the damage (the damage does not change it). */
  bytes: number;
}

export async function damagedEmbeddedLog(dataDir: string, damage: number[] = [0, 1, 2, 3]): Promise<DamagedPartition[]> {
  const log = new FileLog({ dir: join(dataDir, 'log'), topic: 'usage-events', partitions: 4 });
  const prod = await log.producer();
  // 50 records into each partition (the key picks it), every value the same length
  for (let i = 0; i < 20; i++)
    await prod.send(Array.from({ length: 10 }, (_, j) => ({ key: `c${j % 4}`, value: Buffer.from(String(i * 10 + j).padStart(30, '0')) })));
  await prod.close();
  await log.close();
  const out: DamagedPartition[] = [];
  for (const p of damage) {
    const dir = join(dataDir, 'log', 'usage-events', String(p));
    const segment = join(dir, '00000000000000000000.seg');
    const bytes = readFileSync(segment);
    const mark = await readDurableMark(dir);
    bytes.write('XXXXXXXX', (bytes.length / mark) * 5 + 20); // inside the record at offset 5
    writeFileSync(segment, bytes);
    out.push({ dir, segment, mark, bytes: bytes.length });
  }
  return out;
}
