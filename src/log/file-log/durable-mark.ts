/**
 * The durable mark of a partition: the offset after the last record its writer acknowledged,
 * kept beside the segments in `_durable.json`, written at most once a second and on close.
 *
 * It tells a torn tail from damage. A crash can only tear the write in flight, whose records
 * were never acknowledged, so they are all at or past the mark; a bad or missing record below
 * the mark was acknowledged (a call answered, its event counted as sent), so it is damage: the
 * writer refuses to cut it off and readers report it (docs/durability.md, "A damaged embedded
 * log") instead of treating the partition as ending there.
 *
 * No fsync: the records a mark covers were durable (O_DSYNC) before it is written, so a mark
 * lost in a power cut is only older than the log, never ahead of it; an unreadable mark counts
 * as none (the check is then as lenient as before marks existed).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

export const MARK_FILE = '_durable.json';
const EVERY_MS = 1000;

/** The partition's mark: 0 when there is none or it cannot be read. */
export async function readDurableMark(partitionDir: string): Promise<number> {
  try {
    const v = (JSON.parse(await fsp.readFile(join(partitionDir, MARK_FILE), 'utf8')) as { next?: unknown }).next;
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0;
  } catch {
    return 0;
  }
}

/** Replace the partition's mark (temp file + rename: a reader never sees half of one). */
export async function writeDurableMark(partitionDir: string, next: number): Promise<void> {
  const file = join(partitionDir, MARK_FILE);
  await fsp.writeFile(`${file}.tmp`, JSON.stringify({ next }));
  await fsp.rename(`${file}.tmp`, file);
}

/** The writer's side: note() after each acknowledged write; the file follows within a second. */
export class DurableMark {
  private noted = 0;
  private written = 0;
  private lastWrite = 0;
  private inFlight: Promise<void> | null = null;

  constructor(
    private readonly partitionDir: string,
    private readonly everyMs = EVERY_MS,
  ) {}

  /** Records below `next` are acknowledged. Never waits: the gateway's sends must not. */
  note(next: number): void {
    this.noted = next;
    if (!this.inFlight && performance.now() - this.lastWrite >= this.everyMs) this.inFlight = this.write();
  }

  /** Write the latest noted mark now (on close). */
  async flush(): Promise<void> {
    await this.inFlight;
    if (this.noted > this.written) await this.write();
  }

  private async write(): Promise<void> {
    const next = this.noted;
    this.lastWrite = performance.now();
    try {
      await writeDurableMark(this.partitionDir, next);
      this.written = next;
    } catch {
      // Advisory: a mark not written leaves the check as lenient as an older mark.
    } finally {
      this.inFlight = null;
    }
  }
}

/** Acknowledged records of a partition cannot be read: a segment was damaged or cut. */
export class LogDamagedError extends Error {
  constructor(
    readonly partitionDir: string,
    readonly segment: string,
    /** Byte position in `segment` where the good records end. */
    readonly pos: number,
    /** Offset after the last good record. */
    readonly goodUpTo: number,
    /** The durable mark: records up to here were acknowledged. */
    readonly mark: number,
  ) {
    super(
      `the embedded log is damaged: ${segment} holds good records up to offset ${goodUpTo} (byte ${pos}), but records up to ${mark} were acknowledged; ` +
        'they were not cut off. Put back a copy of the file if you have one, or run `meter doctor --repair-log` to keep every record that is still readable ' +
        '(the damaged ones are lost; the original is kept beside it as .damaged)',
    );
    this.name = 'LogDamagedError';
  }
}
