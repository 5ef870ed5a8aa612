/**
 * NDJSON chunks (not the gateway's spool): one hour's events of one range as JSON lines (accept.ts) in local files, in order,
 * for the Parquet writer's DuckDB to read. Lines are copied into a staging buffer and appended
 * from there; a new file is started before a line that would take the current one past
 * CHUNK_BYTES. DuckDB's JSON reader buffers about a whole file, so small files keep its memory
 * small; and the split is a function of the lines alone, so the same lines always give the same
 * files, and the same Parquet bytes.
 */
import { appendFileSync, rmSync } from 'node:fs';

export const CHUNK_BYTES = 4 << 20;
const NL = 0x0a;
const EMPTY = Buffer.alloc(0);

export class NdjsonChunks {
  /** The spool's files, in order (`<base>-0000.ndjson`, ...). */
  readonly files: string[] = [];
  events = 0;
  /** Bytes of all lines, newlines included. */
  bytes = 0;
  private stage = EMPTY;
  private used = 0;
  /** Bytes in the current file, staged ones included. */
  private chunk = 0;

  /** `base`: path prefix of the files; `stageBytes`: the staging buffer's usual size. */
  constructor(
    private readonly base: string,
    private readonly stageBytes: number,
  ) {}

  /** Bytes staged and not yet in a file. */
  get staged(): number {
    return this.used;
  }

  add(line: Buffer): void {
    const len = line.length + 1;
    if (this.files.length === 0 || (this.chunk > 0 && this.chunk + len > CHUNK_BYTES)) {
      this.flush();
      this.files.push(`${this.base}-${String(this.files.length).padStart(4, '0')}.ndjson`);
      this.chunk = 0;
    }
    if (this.used + len > this.stage.length) {
      this.flush();
      if (len > this.stage.length) this.stage = Buffer.allocUnsafe(Math.max(len, this.stageBytes));
    }
    this.stage.set(line, this.used);
    this.stage[this.used + len - 1] = NL;
    this.used += len;
    this.chunk += len;
    this.bytes += len;
    this.events++;
  }

  /** Append the staged lines to the current file. */
  flush(): void {
    if (!this.used) return;
    // add() opens a file before it stages a line
    const file = this.files.at(-1);
    if (file === undefined) throw new Error('internal: staged lines without a file');
    appendFileSync(file, this.stage.subarray(0, this.used));
    this.used = 0;
  }

  /** flush, and give the staging buffer back (the next add allocates one again). */
  release(): void {
    this.flush();
    this.stage = EMPTY;
  }

  remove(): void {
    this.used = 0;
    this.stage = EMPTY;
    for (const f of this.files) rmSync(f, { force: true });
  }
}
