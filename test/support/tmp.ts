/** Temporary folders for tests, removed when the test process exits. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];

// Every test process (a file, or a batch of unit files: test/support/run-shards.ts) removes its
// folders at exit, including those of a test that failed or timed out. METER_KEEP_TMP=1 keeps them to look at.
function removeAll(): void {
  if (process.env.METER_KEEP_TMP) return;
  for (const d of made.splice(0)) {
    try {
      rmSync(d, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // a folder still held open by a dying child is left; nothing more to do at exit
    }
  }
}

/** A new empty folder under the system temp dir, named `<prefix>XXXXXX`. */
export function tempDir(prefix = 'meter-test-'): string {
  if (made.length === 0) process.once('exit', removeAll);
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}
