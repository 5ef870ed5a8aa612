/**
 * `meter gateway` without --workers runs one worker per core (issue 15: the machine's cores by
 * default, as nginx's `worker_processes auto`), embedded, through the CLI as a user starts it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { availableParallelism } from 'node:os';
import { request } from 'undici';
import { assetPath } from '../../src/config/assets.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';

test('meter gateway without --workers runs one worker per core', async (t) => {
  const upstream = createServer((_req, res) => res.end('{}'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => upstream.close(() => r())));
  const upPort = (upstream.address() as { port: number }).port;
  const env: NodeJS.ProcessEnv = { METER_DATA_DIR: tempDir('meter-gw-default-'), METER_LOG_FORMAT: 'text' };
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('METER_')) env[k] = v;
  const gw = spawn(
    process.execPath,
    [assetPath('bin/meter.js'), 'gateway', '--upstream', `http://127.0.0.1:${upPort}`, '--gateway-port', '0', '--admin-port', '0'],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  t.after(async () => {
    if (gw.exitCode !== null) return;
    gw.kill('SIGTERM');
    await new Promise((r) => gw.once('exit', r));
  });
  let output = '';
  gw.stdout!.on('data', (b: Buffer) => (output += b.toString()));
  gw.stderr!.on('data', (b: Buffer) => (output += b.toString()));
  let admin = '';
  await until(
    () => `the gateway to listen; output so far:\n${output}`,
    () => {
      const g = /gateway on (http:\/\/\S+)/.exec(output);
      const a = /admin listener on (http:\/\/\S+)/.exec(output);
      if (a) admin = a[1] as string;
      return Boolean(g && a);
    },
    300_000,
    100,
  );
  const body = (await (await request(`${admin}/status`)).body.json()) as { gateway: { workers?: { listening: boolean }[] } };
  const cores = availableParallelism();
  if (cores > 1) {
    assert.equal(body.gateway.workers?.length, cores, `one worker per core (${cores}); /status: ${JSON.stringify(body.gateway)}`);
    assert.ok(body.gateway.workers!.every((w) => w.listening));
  } else {
    // One core: the gateway runs in the command's own process, with no workers to list.
    assert.equal(body.gateway.workers, undefined);
  }
});
