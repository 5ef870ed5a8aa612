/**
 * The bounded local copy of an HDFS lake (DuckDB reads local files; webhdfs-lake.ts fills this
 * folder). Past `maxBytes` the least recently used files are deleted, oldest first, but never a
 * file in use: one pinned by this process (materialized and not yet released), or one another
 * process sharing the folder touched within `graceMs` (its last use is the file's mtime, set on
 * every use). The bound can be passed while every file is in use (one hour larger than the
 * bound): it is met again once they are released. Files this process used and released go first
 * in age order like any other; the grace applies only to others' use.
 */
import { readdirSync, statSync } from 'node:fs';
import { unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';

export interface LakeCacheOptions {
  maxBytes: number;
  /** Files another process used this recently are kept. Default 60 s. */
  graceMs?: number;
}

interface Entry {
  size: number;
  usedAt: number;
  /** Used by this process (else found by the scan: another process's or an earlier run's). */
  mine: boolean;
}

export class LakeCache {
  private readonly files = new Map<string, Entry>();
  private readonly pins = new Map<string, number>();
  private bytes = 0;
  private scanned = false;
  private evicting: Promise<void> | null = null;
  readonly maxBytes: number;
  readonly graceMs: number;
  /** Files deleted so far (for logs and tests). */
  evicted = 0;

  constructor(
    readonly dir: string,
    o: LakeCacheOptions,
  ) {
    this.maxBytes = o.maxBytes;
    this.graceMs = o.graceMs ?? 60_000;
  }

  /** Bytes held, as this process knows them (files found at start plus what it wrote). */
  get size(): number {
    this.scan();
    return this.bytes;
  }

  /** What an earlier run (or another process) left here counts against the bound too. */
  private scan(): void {
    if (this.scanned) return;
    this.scanned = true;
    const walk = (d: string) => {
      let entries;
      try {
        entries = readdirSync(d, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile() && !e.name.endsWith('.part') && !this.files.has(p)) {
          const st = statSync(p, { throwIfNoEntry: false });
          if (st) this.add(p, st.size, st.mtimeMs, false);
        }
      }
    };
    walk(this.dir);
  }

  private add(path: string, size: number, usedAt: number, mine: boolean): void {
    const old = this.files.get(path);
    if (old) this.bytes -= old.size;
    this.files.set(path, { size, usedAt, mine });
    this.bytes += size;
  }

  /** `path` (in this folder) is being used now: pinned until `release`, its mtime says so to other processes. */
  async use(path: string, size: number): Promise<void> {
    this.scan();
    this.pins.set(path, (this.pins.get(path) ?? 0) + 1);
    const now = Date.now();
    await utimes(path, now / 1000, now / 1000).catch(() => {});
    // The mtime as stored (its precision may be coarser than ms), so a later stat compares equal.
    const st = statSync(path, { throwIfNoEntry: false });
    this.add(path, size, st?.mtimeMs ?? now, true);
  }

  release(paths: string[]): void {
    for (const p of paths) {
      const n = (this.pins.get(p) ?? 0) - 1;
      if (n > 0) this.pins.set(p, n);
      else this.pins.delete(p);
    }
  }

  /** Delete least recently used files until the folder is within the bound (one pass at a time). */
  evict(): Promise<void> {
    this.evicting ??= this.evictOnce().finally(() => (this.evicting = null));
    return this.evicting;
  }

  private async evictOnce(): Promise<void> {
    this.scan();
    if (this.bytes <= this.maxBytes) return;
    const now = Date.now();
    const candidates = [...this.files].filter(([p]) => !this.pins.has(p)).sort((a, b) => a[1].usedAt - b[1].usedAt);
    for (const [p, e] of candidates) {
      if (this.bytes <= this.maxBytes) break;
      if (this.pins.has(p)) continue;
      // Another process sharing the folder may be reading it: its last use is the mtime (newer
      // than ours, or a file we never used). Our own released files go at once.
      const st = statSync(p, { throwIfNoEntry: false });
      const otherUse = st && (!e.mine || st.mtimeMs > e.usedAt + 1) ? st.mtimeMs : 0;
      if (otherUse && now - otherUse < this.graceMs) continue;
      await unlink(p).catch(() => {});
      this.files.delete(p);
      this.bytes -= e.size;
      this.evicted++;
    }
  }
}
