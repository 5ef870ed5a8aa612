/**
 * `meter webhooks` as a user runs it, embedded: a bad URL or event type is one line and exit 2
 * (before the warehouse is opened), add prints the secret once, list never shows it, deliveries
 * and deliver --once answer on an empty log, retry of an unknown id is exit 2.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cliFolder } from '../support/cli-run.js';

const cli = await cliFolder('meter-webhooks-cli-', 180_000);
const meter = cli.meter;

test('webhooks add|list|deliveries|retry|remove|deliver on the CLI', () => {
  for (const [args, msg] of [
    [['webhooks', 'add', 'ftp://pay.example.com/h'], /only http and https URLs/],
    [['webhooks', 'add', 'https://pay.example.com/h', '--events', 'invoice.paid'], /unknown event type "invoice.paid"/],
  ] as const) {
    const r = meter([...args]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, msg);
    assert.match(r.err, /hint: e\.g\. meter webhooks add https:/);
    assert.doesNotMatch(r.err, /\n\s+at /);
  }
  const add = meter(['webhooks', 'add', 'https://pay.example.com/hooks/meter', '--json']);
  assert.equal(add.code, 0, add.err);
  const made = JSON.parse(add.out);
  assert.match(made.id, /^we_[0-9a-f]{16}$/);
  assert.match(made.secret, /^whsec_[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(made.events, ['invoice.finalized']);

  const list = meter(['webhooks', 'list']);
  assert.equal(list.code, 0, list.err);
  assert.match(list.out, new RegExp(`${made.id}\\s+https://pay.example.com/hooks/meter\\s+invoice.finalized\\s+\\S+\\s+active`));
  assert.ok(!list.out.includes(made.secret.slice(6)), 'no secret in the list');

  const d = meter(['webhooks', 'deliveries', '--json']);
  assert.equal(d.code, 0, d.err);
  assert.deepEqual(JSON.parse(d.out), []);
  const bad = meter(['webhooks', 'retry', 'dlv_nope']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /no delivery has id "dlv_nope"/);

  assert.equal(meter(['webhooks', 'remove', made.id]).code, 0);
  assert.equal(meter(['webhooks', 'remove', made.id]).code, 2, 'already removed');
  const once = meter(['webhooks', 'deliver', '--once', '--json']);
  assert.equal(once.code, 0, once.err);
  assert.deepEqual(JSON.parse(once.out), { attempted: 0, delivered: 0, retrying: 0, failed: 0 });
});
