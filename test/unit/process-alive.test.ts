import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { processAlive } from '../../src/ground/process-alive.js';
import { until } from '../support/until.js';

test('processAlive: this process is alive, an exited and reaped one is not', () => {
  assert.equal(processAlive(process.pid), true);
  const dead = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
  assert.equal(processAlive(dead), false);
});

test('processAlive: a zombie (exited, not reaped by its parent) counts as gone', { skip: process.platform !== 'linux' }, async () => {
  // `sleep 0` exits at once; its parent becomes `sleep 5` (exec keeps the pid), which never waits
  // for children, so `sleep 0` stays a zombie until `sleep 5` ends.
  const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const pid = await until('the child pid', () => {
      const line = (parent.stdout.read() as Buffer | null)?.toString().trim();
      return line ? Number(line) : 0;
    });
    await until('the child to be a zombie', () => /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')), 5_000);
    assert.doesNotThrow(() => process.kill(pid, 0), 'kill(pid, 0) alone still finds the zombie');
    assert.equal(processAlive(pid), false);
  } finally {
    parent.kill('SIGKILL');
  }
});
