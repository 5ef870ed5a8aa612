/**
 * What a new user typing a command gets for a mistake: the CLI's input checks, each found by
 * trying the commands (a typo'd date, a huge --events, a port in use, a folder for a file).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { readFileSync } from 'node:fs';
import { parseIsoFlag, requireRange } from '../../src/commands/context.js';
import { demoNumbers, MAX_DEMO_CONCURRENCY, MAX_DEMO_EVENTS } from '../../src/commands/demo.js';
import { asUserError } from '../../src/commands/billing-support.js';
import { listenError } from '../../src/runtime/listen-error.js';
import { upstreamWarning } from '../../src/runtime/upstream-probe.js';
import { brokersUnreachable } from '../../src/runtime/tcp-probe.js';
import { openLog } from '../../src/runtime/backends.js';
import { ConfigError, defaults, loadConfig, type MeterConfig } from '../../src/config/config.js';
import { groupFlag } from '../../src/commands/id-argument.js';
import { logNameProblem } from '../../src/ground/log-names.js';
import { freePort } from '../support/net.js';
import { EventsFileError, readEventsFile } from '../../src/billing/events/events-file.js';
import { unreachableMessage } from '../../src/billing/events/unreachable-message.js';
import { CustomerInputError, upsertCustomer } from '../../src/billing/customers.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import { UserError } from '../../src/ground/errors.js';
import { type DurationRules, TIMER, parseDurationFlag } from '../../src/commands/duration.js';
import { MAX_TIMER_FLAG_MS, MAX_TIMER_MS } from '../../src/ground/timers.js';
import { MIN_NODE, nodeVersionWarning } from '../../src/ground/node-version.js';
import { assetPath } from '../../src/config/assets.js';
import { isUnreachable } from '../../src/ground/unreachable.js';
import { explainKafkaError } from '../../src/security/auth-errors.js';
import { tempDir } from '../support/tmp.js';

const userError = (re: RegExp) => (e: unknown) => e instanceof UserError && re.test(e.message);

test('--from/--to/--hour take ISO 8601 only: Date.parse took "1" as 2001-01-01 and ran a backfill of the wrong month', () => {
  for (const bad of ['1', '2', 'Dec 1', '12/01/2026', '2026-13-01', '2026-02-30', 'yesterday'])
    assert.throws(() => parseIsoFlag('from', bad), userError(/--from .* is not an ISO 8601 date or date-time/), bad);
  // The forms of the help texts and of the resume line a stopped backfill prints.
  assert.equal(parseIsoFlag('from', '2026-11-01T00:00Z'), Date.UTC(2026, 10, 1));
  assert.equal(parseIsoFlag('from', '2026-11-01T00:00:00Z'), Date.UTC(2026, 10, 1));
  assert.equal(parseIsoFlag('to', '2024-02-24T05:00:00.000Z'), Date.UTC(2024, 1, 24, 5));
  assert.equal(parseIsoFlag('hour', '2026-11-01T09:00:00+09:00'), Date.UTC(2026, 10, 1));
  // No zone is UTC, as the help says, whatever the machine's zone (Date.parse read local time).
  assert.equal(parseIsoFlag('from', '2026-11-01'), Date.UTC(2026, 10, 1));
  assert.equal(parseIsoFlag('from', '2026-11-01T07:00'), Date.UTC(2026, 10, 1, 7));
  assert.throws(() => parseIsoFlag('to', undefined), userError(/--to is required/));
});

test('meter demo bounds its numbers before starting anything: --events 1e12 died with "Invalid array length", --concurrency 1e8 hung', () => {
  const ok = { events: '10000', concurrency: '32', seed: '42' };
  assert.deepEqual(demoNumbers(ok), { events: 10_000, concurrency: 32, seed: 42 });
  assert.equal(demoNumbers({ ...ok, events: String(MAX_DEMO_EVENTS) }).events, MAX_DEMO_EVENTS);
  for (const [flag, v] of [
    ['events', '1e12'],
    ['events', String(MAX_DEMO_EVENTS + 1)],
    ['events', '0'],
    ['events', '-5'],
    ['events', 'abc'],
    ['concurrency', '100000000'],
    ['concurrency', String(MAX_DEMO_CONCURRENCY + 1)],
    ['concurrency', '0'],
    ['seed', '-1'],
    ['seed', '1.5'],
  ] as const)
    assert.throws(
      () => demoNumbers({ ...ok, [flag]: v }),
      (e: unknown) => e instanceof UserError && e.message.startsWith(`--${flag} "${v}" must be a whole number from`) && Boolean(e.hint),
      `--${flag} ${v}`,
    );
});

test('a listener whose port is taken is a user error naming the address and the setting to change', async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as { port: number }).port;
  const again = createServer();
  const err = await new Promise<Error>((r) => again.once('error', r).listen(port, '127.0.0.1'));
  taken.close();
  const u = listenError(err, { what: 'the billing API', host: '127.0.0.1', port, settings: 'billing' });
  assert.ok(u instanceof UserError, String(u));
  assert.equal(u.message, `the billing API cannot listen on 127.0.0.1:${port}: ${err.message}`);
  assert.match(u.hint ?? '', /--billing-port \/ METER_BILLING_PORT \(0 = any free port\)/);
  const notHere = listenError(Object.assign(new Error('listen EADDRNOTAVAIL'), { code: 'EADDRNOTAVAIL' }), {
    what: 'the gateway',
    host: '10.99.99.99',
    port: 8080,
    settings: 'gateway',
  });
  assert.match((notHere as UserError).hint ?? '', /--gateway-host \/ METER_GATEWAY_HOST/);
  // Anything else is not the user's: passed through unchanged (exit 1, stack trace on METER_DEBUG).
  const other = Object.assign(new Error('boom'), { code: 'EMFILE' });
  assert.equal(listenError(other, { what: 'the gateway', host: '127.0.0.1', port: 1, settings: 'gateway' }), other);
});

test('meter events send on a folder says so (it was a bare EISDIR with a stack-trace notice)', async () => {
  const dir = tempDir('meter-events-dir-');
  await assert.rejects(
    async () => {
      for await (const _ of readEventsFile(dir));
    },
    (e: unknown) => e instanceof EventsFileError && e.message === `cannot read ${dir}: it is a folder, not a file`,
  );
});

test('the hint for a bad id points at the argument: ids are arguments, there is no --id flag', () => {
  const e = asUserError(new CustomerInputError('id', 'invalid customer id "bad id!"'));
  assert.ok(e instanceof UserError);
  assert.equal(e.hint, 'check the id (the argument after the command)');
  assert.equal((asUserError(new CustomerInputError('timeZone', 'bad zone')) as UserError).hint, 'check --tz');
});

test('an unreachable billing API is named with the cause and where to look (was "…: Error: connect ECONNREFUSED …")', async () => {
  const port = await freePort(); // a port nothing listens on
  const url = `http://127.0.0.1:${port}`;
  const e = await fetch(url).then(
    () => assert.fail('fetch reached a closed port'),
    (x: unknown) => x,
  );
  const m = unreachableMessage(url, e);
  assert.match(m, new RegExp(`^cannot reach the billing API at ${url}: connect ECONNREFUSED 127\\.0\\.0\\.1:${port} \\(is \`meter serve-billing\``));
  assert.doesNotMatch(m, /Error: /);
});

test('an unreachable Kafka is named as Kafka with its address and settings, and still counts as unreachable (followers wait)', () => {
  const raw = Object.assign(new Error('Connection error: connect ECONNREFUSED 127.0.0.1:1'), { name: 'KafkaJSConnectionError' });
  const e = explainKafkaError(raw, { brokers: ['127.0.0.1:1'] }) as Error;
  assert.equal(
    e.message,
    'kafka 127.0.0.1:1: unreachable (Connection error: connect ECONNREFUSED 127.0.0.1:1); start Kafka there, fix METER_KAFKA_BROKERS, or unset it for the embedded log',
  );
  assert.equal(e.cause, raw);
  assert.ok(isUnreachable(e));
  // Explained once: a second pass leaves it alone.
  assert.equal(explainKafkaError(e, { brokers: ['127.0.0.1:1'] }), e);
  const other = new Error('something else');
  assert.equal(explainKafkaError(other, { brokers: ['127.0.0.1:1'] }), other);
});

test('a range whose --to is not after --from shows both times as read and a hint (it was the bare rule)', () => {
  assert.throws(
    () => requireRange(Date.UTC(2026, 11, 2), Date.UTC(2026, 11, 1)),
    (e: unknown) =>
      e instanceof UserError &&
      e.message === '--to 2026-12-01T00:00:00.000Z must be after --from 2026-12-02T00:00:00.000Z' &&
      e.hint === '--to is the end, exclusive: e.g. --from 2026-11-01 --to 2026-11-02 for one day',
  );
  requireRange(Date.UTC(2026, 11, 1), Date.UTC(2026, 11, 1, 1));
});

test('customers create --currency takes ISO 4217 codes only: "UDS" (three capitals) was taken and invoiced in UDS', async () => {
  const noDb = {} as Warehouse; // the checks come before any statement
  const refused = async (currency: string, re: RegExp) =>
    assert.rejects(
      upsertCustomer(noDb, { id: 'acme', currency }),
      (e: unknown) => e instanceof CustomerInputError && e.field === 'currency' && re.test(e.message),
      currency,
    );
  await refused('UDS', /^unknown currency "UDS": not an ISO 4217 code \(e\.g\. USD, EUR, KRW\)$/);
  await refused('XYZ', /^unknown currency "XYZ"/);
  await refused('usd', /\(codes are capitals: USD\)$/);
  await refused('dollars', /^not an ISO 4217 currency code: "dollars"$/);
});

test('a Node.js older than package.json engines is named (it ran without a word until a command failed)', () => {
  assert.equal(
    nodeVersionWarning('20.20.2'),
    'Node.js 20.20.2 is older than the 22.19 meter needs; some commands may fail (use Node.js 22.19 or later, e.g. 24 LTS)',
  );
  assert.match(nodeVersionWarning('v22.18.0') ?? '', /^Node\.js 22\.18\.0 is older/);
  for (const ok of ['22.19.0', '22.20.1', '24.11.1', '25.0.0']) assert.equal(nodeVersionWarning(ok), null, ok);
  // The same floor as package.json's engines.
  const engines = JSON.parse(readFileSync(assetPath('package.json'), 'utf8')).engines.node as string;
  assert.equal(engines, `>=${MIN_NODE.join('.')}`);
});

test('the gateway says at start when its upstream does not answer (it came up silent, and every call was a 502)', async () => {
  const closed = await freePort();
  assert.match(
    (await upstreamWarning(`http://127.0.0.1:${closed}`)) ?? '',
    new RegExp(
      `^the upstream http://127\\.0\\.0\\.1:${closed} is not reachable now \\(connect ECONNREFUSED .*\\): calls get 502 until it is; check --upstream / METER_UPSTREAM$`,
    ),
  );
  const open = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => open.once('listening', r));
  try {
    assert.equal(await upstreamWarning(`http://127.0.0.1:${(open.address() as { port: number }).port}/api`), null);
  } finally {
    open.close();
  }
});

test('a one-shot command with no Kafka broker listening fails in seconds, naming Kafka (ingest --once took 23 s, replay 18 s)', async () => {
  const [a, b] = [await freePort(), await freePort()];
  const cfg = { ...defaults(), lakeUrl: 'file:///nowhere', kafkaBrokers: [`127.0.0.1:${a}`, `127.0.0.1:${b}`] } as MeterConfig;
  const t0 = performance.now();
  await assert.rejects(openLog(cfg), (e: Error) => {
    assert.match(
      e.message,
      new RegExp(
        `^kafka 127\\.0\\.0\\.1:${a},127\\.0\\.0\\.1:${b}: unreachable \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${a}; connect ECONNREFUSED 127\\.0\\.0\\.1:${b}\\); start Kafka there, fix METER_KAFKA_BROKERS, or unset it for the embedded log$`,
      ),
    );
    assert.ok(isUnreachable(e), 'still an unreachable error: a follower would wait for it');
    return true;
  });
  assert.ok(performance.now() - t0 < 5000, `failed after ${Math.round(performance.now() - t0)} ms`);
  // One broker of two taking connections is enough to go on (kafkajs then finds the others).
  const open = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => open.once('listening', r));
  try {
    assert.equal(await brokersUnreachable([`127.0.0.1:${a}`, `127.0.0.1:${(open.address() as { port: number }).port}`]), null);
  } finally {
    open.close();
  }
  assert.match((await brokersUnreachable([`[::1]:${a}`])) ?? '', /ECONNREFUSED|EADDRNOTAVAIL|EAFNOSUPPORT|ENETUNREACH/);
});

test('topic and group names are checked where they enter: "--topic ../../../etc/x" made dead-letters read a file outside the data dir', () => {
  const dir = tempDir('meter-names-');
  for (const [topic, ok] of [
    ['../../../etc/passwd-x', false],
    ['a b', false],
    ['_x', false],
    ['.x', false],
    ['x'.repeat(201), false],
    ['usage-events', true],
    ['usage.events_2', true],
  ] as const) {
    const load = () => loadConfig({ env: {}, flags: { topic, dataDir: dir } });
    if (ok) assert.equal(load().topic, topic);
    else assert.throws(load, (e: unknown) => e instanceof ConfigError && e.message.startsWith('invalid topic: topic name'), topic);
  }
  assert.throws(() => groupFlag('../../../etc'), userError(/--group: consumer group name "\.\.\/\.\.\/\.\.\/etc" must be/));
  assert.equal(groupFlag('meter-ingest'), 'meter-ingest');
  const long = logNameProblem('topic', 'y'.repeat(100_000))!;
  assert.ok(long.length < 200, 'a long name is shortened in the message');
});

test('a listen host that does not resolve is a user error naming the setting (it was "getaddrinfo ENOTFOUND 999.1.1.1", exit 1)', async () => {
  const server = createServer();
  const err = await new Promise<unknown>((resolve) => {
    server.once('error', resolve);
    server.listen(0, 'no-such-host.invalid');
  });
  const e = listenError(err, { what: 'the billing API', host: 'no-such-host.invalid', port: 8090, settings: 'billing' });
  assert.ok(e instanceof UserError, String(err));
  assert.match(e.message, /the billing API cannot listen on no-such-host\.invalid:8090/);
  assert.match(e.hint!, /--billing-host \/ METER_BILLING_HOST is not a name or address this machine can resolve/);
});

test('a listen port fetch() refuses (the Fetch standard\'s bad ports) is refused for the gateway and the billing API: events send said only "bad port"', async () => {
  const dir = tempDir('meter-badport-');
  assert.throws(
    () => loadConfig({ env: {}, flags: { billingPort: 6000, dataDir: dir } }),
    (e: unknown) => e instanceof ConfigError && /invalid billingPort: 6000 is a port browsers and fetch\(\) refuse/.test(e.message),
  );
  assert.throws(() => loadConfig({ env: {}, flags: { gatewayPort: 6666, dataDir: dir } }), /invalid gatewayPort: 6666/);
  assert.equal(loadConfig({ env: {}, flags: { billingPort: 6001, dataDir: dir } }).billingPort, 6001);
  // What fetch itself says for one, made readable.
  const err = await fetch('http://127.0.0.1:6000/').catch((e: unknown) => e);
  assert.match(unreachableMessage('http://127.0.0.1:6000', err), /fetch\(\) refuses its port/);
});

test('a duration flag feeding a timer stops at 24d, and every hint offers only values its flag takes (30d was a 1 ms busy loop)', () => {
  // Node takes a delay past 2^31-1 ms as 1 ms: the cap must be below that.
  assert.equal(MAX_TIMER_MS, 2 ** 31 - 1);
  assert.equal(TIMER, MAX_TIMER_FLAG_MS);
  assert.ok(TIMER <= MAX_TIMER_MS);
  const timer: DurationRules = { minMs: 100, maxMs: TIMER };
  assert.equal(parseDurationFlag('interval', '24d', timer), 24 * 86_400_000);
  for (const long of ['25d', '30d', '2073600001', '600h'])
    assert.throws(
      () => parseDurationFlag('interval', long, timer),
      (e: unknown) => e instanceof UserError && e.message === `--interval "${long}" is longer than 24d` && /\(from 100ms to 24d; /.test(e.hint ?? ''),
      long,
    );
  // The rules of the CLI's duration flags (src/commands/*.ts): each hint's examples parse under them.
  const flags: [string, DurationRules][] = [
    ['interval', timer],
    ['verify-every', { minMs: 1000 }],
    ['retry-for', {}],
    ['timeout', { minMs: 1, maxMs: TIMER }],
    ['window', { minMs: 10, maxMs: TIMER }],
    ['duration', { bare: 's', maxMs: TIMER }],
    ['expires-in', { bare: 'none', minMs: 1000, maxMs: 3650 * 86_400_000 }],
  ];
  for (const [name, rules] of flags) {
    const hint = (() => {
      try {
        parseDurationFlag(name, 'x', rules);
      } catch (e) {
        return (e as UserError).hint ?? '';
      }
      return assert.fail('x parsed');
    })();
    const examples = /^e\.g\. --\S+ (.*) \(/.exec(hint)?.[1]?.split(/, | or /) ?? [];
    assert.ok(examples.length >= 3, hint);
    for (const ex of examples) assert.doesNotThrow(() => parseDurationFlag(name, ex, rules), `${name}: ${hint}`);
  }
  // A unit is required where it always was; below the least, the least is named.
  assert.throws(() => parseDurationFlag('expires-in', '1000', { bare: 'none', minMs: 1000 }), /"1000" is not a duration/);
  assert.throws(() => parseDurationFlag('expires-in', '500ms', { bare: 'none', minMs: 1000 }), /"500ms" is shorter than 1s/);
});
