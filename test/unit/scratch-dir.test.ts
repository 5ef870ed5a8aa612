import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ownScratchDir } from '../../src/pipeline/scratch-dir.js';
import { tempDir } from '../support/tmp.js';

test("a new scratch folder removes the folders of dead processes, never a live one's", () => {
  const base = tempDir('meter-scratch-test-');
  // A pid that certainly exited: a child we ran to completion.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  const deadDir = join(base, `meter-ingest-${dead}-abc123`);
  const liveDir = join(base, `meter-ingest-${process.pid}-def456`);
  const other = join(base, 'meter-ingest-notapid');
  for (const d of [deadDir, liveDir, other]) {
    mkdirSync(d);
    writeFileSync(join(d, 'spool-0.ndjson'), '{"id":"x"}\n');
  }
  const mine = ownScratchDir('meter-ingest-', base);
  assert.equal(existsSync(deadDir), false, "the dead process's spool is removed");
  assert.equal(existsSync(liveDir), true, "a live process's folder is kept");
  assert.equal(existsSync(other), true, 'folders not named <prefix><pid>- are not touched');
  assert.match(mine, new RegExp(`meter-ingest-${process.pid}-`));
  assert.equal(existsSync(mine), true);
});
