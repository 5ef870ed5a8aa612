import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { processAlive } from '../../src/ground/process-alive.js';
import { until } from '../support/until.js';

test('processAlive: this process is alive, an exited and reaped one is not', () => {
  assert.equal(processAlive(process.pid), true);
  const dead = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
  assert.equal(processAlive(dead), false);
});

test('processAlive: a zombie (exited, not reaped by its parent) counts as gone', { skip: process.platform !== 'linux' }, async () => {
  // The child (`cat`, reading fd 3 until EOF) is started by `sh`, which then execs `sleep 30`
  // (exec keeps the pid; sleep never waits for children). The child may exit only after that
  // exec, when this test closes fd 3: had it exited earlier, sh could have reaped it before the
  // exec (it did on a loaded CI box), and there would be no zombie to find.
  const parent = spawn('sh', ['-c', 'cat <&3 >/dev/null & echo $!; exec sleep 30 3<&-'], { stdio: ['ignore', 'pipe', 'ignore', 'pipe'] });
  try {
    const pid = await until('the child pid', () => {
      const line = (parent.stdout!.read() as Buffer | null)?.toString().trim();
      return line ? Number(line) : 0;
    });
    await until('sh to exec sleep', () => readFileSync(`/proc/${parent.pid}/comm`, 'utf8').trim() === 'sleep', 10_000);
    assert.equal(processAlive(pid), true, 'the child, still reading, is alive');
    (parent.stdio[3] as Socket).destroy(); // EOF: the child exits and stays a zombie of sleep
    await until('the child to be a zombie', () => /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')), 10_000);
    assert.doesNotThrow(() => process.kill(pid, 0), 'kill(pid, 0) alone still finds the zombie');
    assert.equal(processAlive(pid), false);
  } finally {
    parent.kill('SIGKILL');
  }
});
