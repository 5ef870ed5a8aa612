/**
 * The lake on HDFS through WebHDFS. URL: hdfs://<namenode host>:<namenode http port>/<root>
 * (the NameNode's web port, where WebHDFS listens; `webhdfs://` and `http://` mean the same,
 * `swebhdfs://`/`https://` use TLS).
 *
 * Publishing is upload to `<root>/_tmp/<unique>` then RENAME into place, so readers never see a
 * half-written file. DuckDB cannot read WebHDFS, so `materialize` copies files into a local cache
 * (skipped when the cached copy has the same size: lake files are immutable once published, and a
 * rewrite of the same offset range carries the same data), bounded by lakeCacheMaxBytes
 * (lake-cache.ts: least recently used first, never a file in use).
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import type { Lake, LakeEntry, PublishOptions } from './lake.js';
import { isVisible, TMP_DIR } from './layout.js';
import { WebHdfsClient, WebHdfsError } from './webhdfs-client.js';
import { LakeCache } from './lake-cache.js';

export interface WebHdfsLakeOptions {
  /** HDFS user for `user.name=` (simple auth). Default `meter`. */
  user?: string;
  /** Local folder for materialized copies. Default: a folder per lake URL under the OS temp dir. */
  cacheDir?: string;
  /** Per-request timeout, ms. */
  timeoutMs?: number;
  /** Bound of the local cache (bytes, lake-cache.ts). Default 4 GiB. */
  cacheMaxBytes?: number;
  /** Files another process used this recently are not evicted (ms). Default 60 s. */
  cacheGraceMs?: number;
}

const MATERIALIZE_PARALLEL = 4;

export class WebHdfsLake implements Lake {
  readonly client: WebHdfsClient;
  /** Absolute HDFS path of the lake root, no trailing slash ('' for /). */
  readonly root: string;
  private readonly cacheDir: string;
  readonly cache: LakeCache;

  constructor(
    readonly url: string,
    opts: WebHdfsLakeOptions = {},
  ) {
    const u = new URL(url);
    const tls = u.protocol === 'swebhdfs:' || u.protocol === 'https:';
    if (!['hdfs:', 'webhdfs:', 'http:', 'swebhdfs:', 'https:'].includes(u.protocol)) {
      throw new Error(`not a WebHDFS lake URL: ${url} (want hdfs://host:port/path)`);
    }
    this.root = u.pathname.replace(/\/+$/, '');
    this.client = new WebHdfsClient(`${tls ? 'https' : 'http'}://${u.host}`, { user: opts.user ?? (u.username || undefined), timeoutMs: opts.timeoutMs });
    this.cacheDir = opts.cacheDir ?? join(tmpdir(), 'meter-lake-cache', createHash('sha256').update(url).digest('hex').slice(0, 16));
    this.cache = new LakeCache(this.cacheDir, { maxBytes: opts.cacheMaxBytes ?? 4 * 2 ** 30, graceMs: opts.cacheGraceMs });
  }

  /** Absolute HDFS path of a lake-relative path. */
  abs(path: string): string {
    const clean = posix.normalize(`/${path}`);
    if (clean.split('/').includes('..')) throw new Error(`lake path escapes the root: ${path}`);
    return `${this.root}${clean === '/' ? '' : clean}` || '/';
  }

  async init(): Promise<void> {
    await this.client.mkdirs(this.abs(TMP_DIR));
  }

  async publish(localFile: string, path: string, opts: PublishOptions = {}): Promise<void> {
    const data = await readFile(localFile);
    const tmp = `${TMP_DIR}/${randomUUID()}-${posix.basename(path)}`;
    await this.client.create(this.abs(tmp), data);
    try {
      await this.promote(tmp, path, opts.beforeRename);
    } catch (e) {
      await this.client.delete(this.abs(tmp)).catch(() => {});
      throw e;
    }
  }

  /**
   * The second half of publish: rename an uploaded `tmp` file to `path`, replacing a file already
   * there. WebHDFS RENAME will not overwrite, and it moves a file *into* a destination that is a
   * folder, so both are handled first; a `{"boolean": false}` answer is an error.
   */
  async promote(tmp: string, path: string, beforeRename?: () => Promise<void> | void): Promise<void> {
    const from = this.abs(tmp);
    const to = this.abs(path);
    await this.client.mkdirs(posix.dirname(to));
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = await this.client.status(to);
      if (existing?.type === 'DIRECTORY') throw new WebHdfsError(`publish ${path}: destination is a folder`, 409);
      if (existing) await this.client.delete(to);
      // the publisher's last word (ingest's fence), as close to the rename as it gets
      await beforeRename?.();
      if (await this.client.rename(from, to)) return;
      // A concurrent publisher may have put the same file in place between delete and rename.
      if (!(await this.client.status(from))) break;
    }
    throw new WebHdfsError(`publish ${path}: WebHDFS RENAME ${from} -> ${to} answered {"boolean": false}`, 200);
  }

  /** Visible files only: names starting with `_` or `.` (temp, hidden) are left out. */
  async list(dir: string): Promise<LakeEntry[]> {
    const entries = await this.client.list(this.abs(dir));
    if (!entries) return [];
    const base = posix.normalize(`/${dir}`).slice(1).replace(/\/$/, '');
    return entries
      .filter((e) => e.type === 'FILE' && isVisible(e.pathSuffix))
      .map((e) => ({ path: base ? `${base}/${e.pathSuffix}` : e.pathSuffix, size: e.length, mtime: e.modificationTime }))
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async listDirs(dir: string): Promise<string[]> {
    const entries = await this.client.list(this.abs(dir));
    if (!entries) return [];
    return entries
      .filter((e) => e.type === 'DIRECTORY' && isVisible(e.pathSuffix))
      .map((e) => e.pathSuffix)
      .sort();
  }

  async materialize(paths: string[]): Promise<string[]> {
    const out: string[] = new Array(paths.length);
    // one iterator shared by the workers: each takes the next path
    const next = paths.entries();
    const worker = async () => {
      for (const [i, path] of next) out[i] = await this.fetchToCache(path);
    };
    try {
      await Promise.all(Array.from({ length: Math.min(MATERIALIZE_PARALLEL, paths.length) }, worker));
    } catch (e) {
      this.cache.release(out.filter(Boolean));
      throw e;
    }
    // Room for what comes next: the files just fetched are pinned until release().
    await this.cache.evict();
    return out;
  }

  release(localPaths: string[]): void {
    this.cache.release(localPaths);
  }

  private async fetchToCache(path: string): Promise<string> {
    const local = join(this.cacheDir, ...posix.normalize(`/${path}`).slice(1).split('/'));
    const st = await this.client.status(this.abs(path));
    if (st?.type !== 'FILE') throw new WebHdfsError(`materialize ${path}: no such file in the lake`, 404, 'FileNotFoundException');
    const have = await stat(local).catch(() => null);
    if (have && have.size === st.length) {
      await this.cache.use(local, st.length);
      return local;
    }
    const data = await this.client.open(this.abs(path));
    if (data.length !== st.length) throw new Error(`materialize ${path}: read ${data.length} bytes, expected ${st.length}`);
    await mkdir(dirname(local), { recursive: true });
    // Write then rename, so a concurrent reader never sees a partial cache file.
    const part = `${local}.${process.pid}.${randomUUID().slice(0, 8)}.part`;
    await writeFile(part, data);
    await rename(part, local);
    await this.cache.use(local, st.length);
    return local;
  }

  async read(path: string): Promise<Buffer> {
    return this.client.open(this.abs(path));
  }

  /** Deleting what is not there is not an error (the outcome is the same). */
  async delete(path: string): Promise<void> {
    const target = this.abs(path);
    if (target === this.abs('')) throw new Error('refusing to delete the lake root');
    await this.client.delete(target, true);
  }

  async close(): Promise<void> {
    // Stateless HTTP: nothing to close.
  }
}
