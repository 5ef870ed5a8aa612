/**
 * A pid lock file, for state one process owns (the embedded log's writer, PGlite) (`<file>` holds the owner's pid). A lock whose pid is dead is stale (its
 * owner crashed) and is taken over. No exit hook: once the process is gone the pid is dead,
 * which is what makes the lock stale.
 */
import { openSync, writeSync, closeSync, readFileSync, unlinkSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { processAlive as alive } from './process-alive.js';

export class LockedError extends Error {
  constructor(
    readonly file: string,
    readonly pid: number,
  ) {
    super(`${file} is held by process ${pid}${pid === process.pid ? ' (this process)' : ''}`);
    this.name = 'LockedError';
  }
}

/** Take the lock or throw LockedError; returns the release function. */
export function takeLock(file: string): () => void {
  mkdirSync(dirname(file), { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      let held = true;
      return () => {
        if (!held) return;
        held = false;
        try {
          unlinkSync(file);
        } catch {}
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let pid = NaN;
      try {
        const text = readFileSync(file, 'utf8').trim();
        // an empty file is a lock being taken right now, unless it is old (owner died mid-way)
        if (text === '' && Date.now() - statSync(file).mtimeMs < 2000) throw new LockedError(file, 0);
        pid = Number(text);
      } catch (err) {
        if (err instanceof LockedError) throw err;
        continue; // removed meanwhile: try again
      }
      if (Number.isInteger(pid) && pid > 0 && alive(pid)) throw new LockedError(file, pid);
      try {
        unlinkSync(file); // stale: its owner is gone
      } catch {}
    }
  }
  throw new Error(`could not take lock ${file}`);
}
