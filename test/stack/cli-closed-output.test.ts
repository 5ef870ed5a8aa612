/**
 * `meter config | head -1`: the reader closes stdout after the first line, and the next write
 * fails with EPIPE. The command must end quietly (src/ground/closed-output.ts), for every command:
 * it printed a stack trace about half the time ("Unhandled 'error' event ... write EPIPE").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { assetPath } from '../../src/config/assets.js';
import { CLOSED_OUTPUT_EXIT } from '../../src/ground/closed-output.js';
import { cliFolder, type CliResult } from '../support/cli-run.js';

/** `meter ...args` with stdout read until its first line, then closed (`| head -1`); or closed before anything (`atOnce`). */
function meterIntoHead(cwd: string, args: string[], env: Record<string, string>, atOnce = false): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [assetPath('bin/meter.js'), ...args], {
      cwd,
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    if (atOnce) c.stdout.destroy();
    c.stdout.on('data', (b: Buffer) => {
      out += b;
      if (out.includes('\n')) c.stdout.destroy();
    });
    c.stderr.on('data', (b: Buffer) => (err += b));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, out, err }));
  });
}
test('a closed stdout (meter config | head -1) ends the command without a word, for every command', async () => {
  const cli = await cliFolder('meter-epipe-');
  const env = { METER_DATA_DIR: join(cli.dir, 'data'), METER_LOG_LEVEL: 'warn', HOME: process.env.HOME ?? '/tmp' };
  assert.equal(cli.meter(['plans', 'import']).code, 0, 'plans to list');
  const ends = [0, CLOSED_OUTPUT_EXIT];
  // --help exits as soon as it has written, before the failed write is reported: 0 either way
  const runs: [string[], number, number[]][] = [
    [['config'], 20, [CLOSED_OUTPUT_EXIT]],
    [['--help'], 20, ends],
    [['plans', 'list'], 3, [CLOSED_OUTPUT_EXIT]],
  ];
  for (const [args, times, closedEnds] of runs) {
    // closed before the first write: the write fails for sure (EPIPE), every time
    const closed = await meterIntoHead(cli.dir, args, env, true);
    assert.equal(closed.err, '', `meter ${args.join(' ')} into a closed pipe`);
    assert.ok(closedEnds.includes(closed.code ?? -1), `meter ${args.join(' ')} into a closed pipe: exit ${closed.code}`);
    // as `| head -1` does: the output may fit the pipe before it closes (exit 0) or not (141); never a trace
    for (let i = 0; i < times; i++) {
      const r = await meterIntoHead(cli.dir, args, env);
      assert.equal(r.err, '', `meter ${args.join(' ')} | head -1, run ${i}`);
      assert.ok(ends.includes(r.code ?? -1), `meter ${args.join(' ')} | head -1, run ${i}: exit ${r.code}`);
    }
  }
});
