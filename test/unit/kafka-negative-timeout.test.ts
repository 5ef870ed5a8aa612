/**
 * kafkajs 2.2.4's request queue sets a negative timeout on every connection, which Node 24 prints
 * as a TimeoutNegativeWarning (src/log/kafka/negative-timeout-warning.ts): meter hides that one
 * line and no other warning. Run in a child process, as the warning goes to its stderr.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const moduleUrl = new URL('../../src/log/kafka/negative-timeout-warning.js', import.meta.url).href;
const cwd = fileURLToPath(new URL('../../..', import.meta.url));

/** stderr of a process that runs kafkajs's request queue check, then emits another warning. */
function stderrOf(hide: boolean): string {
  const script = `
    import { createRequire } from 'node:module';
    const { hideKafkajsNegativeTimeoutWarning } = await import(${JSON.stringify(moduleUrl)});
    if (${hide}) hideKafkajsNegativeTimeoutWarning();
    const RequestQueue = createRequire(process.cwd() + '/')('kafkajs/src/network/requestQueue/index.js');
    const q = new RequestQueue({ maxInFlightRequests: 1, requestTimeout: 1000, enforceRequestTimeout: false, clientId: 't', broker: 'b', logger: { debug() {}, info() {}, warn() {}, error() {} } });
    q.scheduleCheckPendingRequests();
    process.emitWarning('another warning', 'OtherWarning');
    setImmediate(() => process.exit(0));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr;
}

test("kafkajs's negative request-queue timeout is not printed; other warnings are", () => {
  const hidden = stderrOf(true);
  assert.doesNotMatch(hidden, /TimeoutNegativeWarning/);
  assert.match(hidden, /OtherWarning: another warning/);
  // Without it, Node 24 prints the warning (Node 22 sets no such warning at all).
  if (Number(process.versions.node.split('.')[0]) >= 24) assert.match(stderrOf(false), /TimeoutNegativeWarning: -\d+ is a negative number/);
});
