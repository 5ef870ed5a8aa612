/**
 * A process's own scratch folder under the OS temp dir, named `<prefix><pid>-<random>`. Ingest
 * spools a range's events there until its Parquet files are written; a process killed with -9
 * cannot remove it, so each new one first removes the folders of processes that are gone
 * (otherwise a crash-looping ingest would fill the disk with dead spools).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processAlive as alive } from '../ground/process-alive.js';

/** Remove `<prefix><pid>-*` folders of dead processes in `base`; returns how many. */
export function removeDeadScratch(prefix: string, base = tmpdir()): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)-/.exec(name.slice(prefix.length));
    if (!m || alive(Number(m[1]))) continue;
    rmSync(join(base, name), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

export function ownScratchDir(prefix: string, base = tmpdir()): string {
  removeDeadScratch(prefix, base);
  return mkdtempSync(join(base, `${prefix}${process.pid}-`));
}
