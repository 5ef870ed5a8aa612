/**
 * The lake in a local folder (embedded mode), same layout as HDFS (layout.ts). Publishing
 * copies into `<root>/_tmp/<unique>`, fsyncs, and renames into place, so readers never see a
 * partial file; the rename replaces an existing file of the same name atomically.
 */
import { promises as fsp } from 'node:fs';
import { join, dirname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import type { Lake, LakeEntry, PublishOptions } from './lake.js';
import { TMP_DIR, isVisible } from './layout.js';

export class LocalLake implements Lake {
  readonly url: string;
  readonly root: string;

  constructor(url: string) {
    if (!url.startsWith('file:')) throw new Error(`LocalLake needs a file: URL, got ${url}`);
    this.url = url;
    this.root = resolve(fileURLToPath(url));
  }

  /** Absolute path of a lake path; refuses paths that would leave the root. */
  abs(path: string): string {
    const p = resolve(this.root, path.replace(/^\/+/, ''));
    if (p !== this.root && !p.startsWith(this.root + sep)) throw new Error(`lake path ${JSON.stringify(path)} is outside the lake`);
    return p;
  }

  async init(): Promise<void> {
    await fsp.mkdir(join(this.root, TMP_DIR), { recursive: true });
  }

  async publish(localFile: string, path: string, opts: PublishOptions = {}): Promise<void> {
    const dest = this.abs(path);
    const tmpDir = join(this.root, TMP_DIR);
    await fsp.mkdir(tmpDir, { recursive: true });
    const tmp = join(tmpDir, `${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await fsp.copyFile(localFile, tmp);
      const fh = await fsp.open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.mkdir(dirname(dest), { recursive: true });
      await opts.beforeRename?.();
      await fsp.rename(tmp, dest);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    await syncDir(dirname(dest));
  }

  async list(dir: string): Promise<LakeEntry[]> {
    const base = this.abs(dir);
    const names = await readdirOrEmpty(base);
    const out: LakeEntry[] = [];
    for (const d of names) {
      if (!d.isFile() || !isVisible(d.name)) continue;
      try {
        const st = await fsp.stat(join(base, d.name));
        out.push({ path: joinLake(dir, d.name), size: st.size, mtime: st.mtimeMs });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // deleted meanwhile
      }
    }
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async listDirs(dir: string): Promise<string[]> {
    const names = await readdirOrEmpty(this.abs(dir));
    return names
      .filter((d) => d.isDirectory() && isVisible(d.name))
      .map((d) => d.name)
      .sort();
  }

  async materialize(paths: string[]): Promise<string[]> {
    return paths.map((p) => this.abs(p));
  }

  read(path: string): Promise<Buffer> {
    return fsp.readFile(this.abs(path));
  }

  async delete(path: string): Promise<void> {
    await fsp.rm(this.abs(path), { force: true });
  }

  async close(): Promise<void> {}
}

function joinLake(dir: string, name: string): string {
  const d = dir.replace(/^\/+|\/+$/g, '');
  return d ? `${d}/${name}` : name;
}

async function readdirOrEmpty(dir: string) {
  try {
    return await fsp.readdir(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw e;
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
