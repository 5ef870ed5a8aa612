/**
 * The lake: HDFS over WebHDFS on the real stack, a local folder when embedded, same layout:
 *   <root>/usage/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first>+<last>.parquet
 * Files are written under <root>/_tmp/ and renamed into place, so a reader never sees a torn
 * file; readers skip names starting with `_` or `.`. Paths given to and returned by a Lake
 * are relative to its root, with `/` separators.
 */
export interface LakeEntry {
  /** Path relative to the lake root. */
  path: string;
  size: number;
  /** Modification time, epoch ms. */
  mtime: number;
}

export interface PublishOptions {
  beforeRename?: () => Promise<void> | void;
}

export interface Lake {
  readonly url: string;
  init(): Promise<void>;
  /**
   * Publish a local file at `path`: upload to `_tmp/`, then rename into place. Overwrites an
   * existing file of the same name (a rewrite of the same offset range carries the same data).
   * Rejects if the rename fails (WebHDFS reports failure as `{"boolean": false}`).
   * `opts.beforeRename` runs after the upload, right before the rename, and vetoes the publish by
   * throwing (ingest's fence: a process that lost its partition publishes nothing, docs/lake.md).
   */
  publish(localFile: string, path: string, opts?: PublishOptions): Promise<void>;
  /** Files directly under folder `dir` (no recursion); [] if the folder does not exist. */
  list(dir: string): Promise<LakeEntry[]>;
  /** Sub-folder names of `dir`; [] if absent. */
  listDirs(dir: string): Promise<string[]>;
  /** Local paths DuckDB can read for these lake paths (local lake: the files themselves; HDFS: a local cache). */
  materialize(paths: string[]): Promise<string[]>;
  /** The local copies from `materialize` are no longer read (a bounded cache may evict them now). */
  release?(localPaths: string[]): void;
  read(path: string): Promise<Buffer>;
  delete(path: string): Promise<void>;
  close(): Promise<void>;
}
