/**
 * Committed offsets of a consumer group: `<topicDir>/_consumers/<group>.json`, `{"0": 42, ...}`
 * (next offset to read per partition). Written as temp + fsync + rename, so a crash leaves
 * either the old or the new file, never a torn one.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir } from './segments.js';
import { logNameProblem } from '../../ground/log-names.js';

export function groupFileName(group: string): string {
  const bad = logNameProblem('consumer group', group);
  if (bad) throw new Error(bad);
  return `${group}.json`;
}

export class OffsetStore {
  private readonly file: string;
  private chain: Promise<void> = Promise.resolve();
  private seq = 0;

  constructor(
    private readonly dir: string,
    group: string,
  ) {
    this.file = join(dir, groupFileName(group));
  }

  async read(): Promise<Map<number, number>> {
    let text: string;
    try {
      text = await fsp.readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw e;
    }
    const obj = JSON.parse(text) as Record<string, number>;
    return new Map(Object.entries(obj).map(([p, o]) => [Number(p), o]));
  }

  /** Set one partition's next offset; commits are applied one at a time, in call order. */
  commit(partition: number, nextOffset: number): Promise<void> {
    const run = this.chain.then(async () => {
      const cur = await this.read();
      cur.set(partition, nextOffset);
      const obj: Record<string, number> = {};
      for (const [p, o] of [...cur].sort((a, b) => a[0] - b[0])) obj[p] = o;
      const tmp = `${this.file}.${process.pid}.${++this.seq}.tmp`;
      const fh = await fsp.open(tmp, 'w');
      try {
        await fh.writeFile(JSON.stringify(obj));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, this.file);
      await fsyncDir(this.dir);
    });
    this.chain = run.catch(() => undefined);
    return run;
  }
}
