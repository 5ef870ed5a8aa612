/**
 * One path, one price; identity is the gateway's alone (docs/routing-and-identity.md).
 *
 * The end-to-end parts run a real gateway (PGlite keys, embedded log) in front of a real
 * upstream that resolves paths as leniently as frameworks do and echoes the headers it got
 * (test/support/path-rig.ts): every path trick must be billed as the operation the upstream
 * served, or refused without reaching it.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequestTarget } from '../../src/gateway/request-target.js';
import { compileRoutes, loadRoutes } from '../../src/gateway/routes.js';
import { identityFilter, IDENTITY_NAMES, IDENTITY_PREFIXES } from '../../src/gateway/identity-headers.js';
import { loadConfig } from '../../src/config/config.js';
import { assetPath } from '../../src/config/assets.js';
import { PATH_TRICKS, runTricks, startPathRig, servedOperation, type PathRig } from '../support/path-rig.js';

describe('request target', () => {
  const ok = (raw: string, path: string, query = '', authority: string | null = null) => {
    const t = parseRequestTarget(raw);
    assert.deepEqual(t, { ok: true, path, query, authority }, raw);
  };
  const bad = (raw: string, reason: string) => {
    const t = parseRequestTarget(raw);
    assert.equal(t.ok, false, `${JSON.stringify(raw)} was accepted as ${JSON.stringify(t)}`);
    if (!t.ok) {
      assert.equal(t.reason, reason, raw);
      assert.ok(t.message.length > 20 && !t.message.includes('\n'), t.message);
    }
  };

  it('keeps a plain path and its query as they are', () => {
    ok('/v1/devices/d1/location', '/v1/devices/d1/location');
    ok('/v1/devices/d1/history?limit=5&x=%00', '/v1/devices/d1/history', '?limit=5&x=%00');
    ok('/', '/');
    ok("/v1/a:b@c!$&'()*+,=/x", "/v1/a:b@c!$&'()*+,=/x");
  });

  it('removes dot segments (RFC 3986 5.2.4), decoded or not, and collapses slashes', () => {
    ok('/a/b/../c', '/a/c');
    ok('/a/./b', '/a/b');
    ok('/a/b/..', '/a/');
    ok('/a/b/.', '/a/b/');
    ok('/..', '/');
    ok('/../../a', '/a');
    ok('/a/%2e%2E/b', '/b');
    ok('/a/.%2e/b', '/b');
    ok('/a/%2e/b', '/a/b');
    ok('//a///b//', '/a/b/');
    ok('/a//../b', '/b');
    ok('/.well-known/x', '/.well-known/x');
    ok('/a/...', '/a/...');
  });

  it('decodes percent-encoded unreserved characters and upper-cases the other escapes (RFC 3986 6.2.2)', () => {
    ok('/v1/%64evices/d%31%7E%2D%5f', '/v1/devices/d1~-_');
    ok('/caf%c3%a9/%3a%3b', '/caf%C3%A9/%3A%3B');
    ok('/a%20b', '/a%20b');
  });

  it('takes the path of an absolute-form target and its authority for Host (RFC 9112 3.2.2)', () => {
    ok('http://x/v1/a', '/v1/a', '', 'x');
    ok('HTTPS://Example.com:8443/v1/../a?q=1', '/a', '?q=1', 'Example.com:8443');
    ok('http://x', '/', '', 'x');
    ok('http://x?q', '/', '?q', 'x');
    ok('http://[::1]:80/a', '/a', '', '[::1]:80');
    bad('http://user:pw@x/a', 'bad_target_form');
    bad('ftp://x/a', 'bad_target_form');
    bad('http://x y/a', 'bad_target_form');
    bad('*', 'bad_target_form');
    bad('example.com:443', 'bad_target_form');
    bad('v1/a', 'bad_target_form');
  });

  it('refuses ambiguous paths and bad bytes', () => {
    bad('/a%2Fb', 'encoded_separator');
    bad('/a%2fb', 'encoded_separator');
    bad('/a%5Cb', 'encoded_separator');
    bad('/a\\b', 'bad_byte');
    bad('/a%00', 'encoded_control');
    bad('/a%1f', 'encoded_control');
    bad('/a%7F', 'encoded_control');
    bad('/a\u0000b', 'bad_byte');
    bad('/a\u0001b', 'bad_byte');
    bad('/a b', 'bad_byte');
    bad('/a\u00e9', 'bad_byte');
    bad('/a"b', 'bad_byte');
    bad('/a<b>', 'bad_byte');
    bad('/a{b}', 'bad_byte');
    bad('/a|b', 'bad_byte');
    bad('/a^b', 'bad_byte');
    bad('/a`b', 'bad_byte');
    bad('/a#b', 'bad_byte');
    bad('/a?b#c', 'bad_byte');
    bad('/a?b c', 'bad_byte');
    bad('/a%', 'bad_escape');
    bad('/a%4', 'bad_escape');
    bad('/a%zz', 'bad_escape');
    bad('/a/%252e%252e/b', 'double_encoding');
    bad('/a/%25%32%65', 'double_encoding');
  });

  it('keeps ;params inside their segment, but refuses them on empty and dot segments', () => {
    ok('/v1/devices/d1;v=2/location', '/v1/devices/d1;v=2/location');
    ok('/a;x/../b', '/b');
    bad('/a/..;/b', 'ambiguous_segment');
    bad('/a/..;x=1/b', 'ambiguous_segment');
    bad('/a/.;/b', 'ambiguous_segment');
    bad('/a/;x/b', 'ambiguous_segment');
    bad('/a/%2e%2e;/b', 'ambiguous_segment');
    bad('/a/..%3b/b', 'ambiguous_segment');
  });

  it('normalises to a fixed point that a lenient server serves as the route the gateway chose', () => {
    const routes = loadRoutes(assetPath('fixtures/routes.json'));
    let routed = 0;
    for (const t of PATH_TRICKS) {
      const a = parseRequestTarget(t.target);
      if (!a.ok) continue;
      const b = parseRequestTarget(a.path + a.query);
      assert.ok(b.ok && b.path === a.path, `${t.target} -> ${a.path} -> ${JSON.stringify(b)}`);
      const route = routes.resolve(t.method, a.path);
      if (!route) continue;
      routed++;
      assert.equal(servedOperation(t.method, a.path + a.query), route.api, `${t.target} -> ${a.path}`);
    }
    assert.ok(routed >= 15);
  });

  it('never throws, and whatever it accepts is normal (seeded random targets from tricky pieces)', () => {
    const pieces = [
      '/',
      '/',
      '.',
      '..',
      '%2e',
      '%2E',
      ';',
      '%3B',
      '%3b',
      '%2F',
      '%25',
      '%00',
      '%41',
      '%7e',
      '%C3%A9',
      'a',
      'B',
      '~',
      '\\',
      '?',
      '#',
      '%',
      '//',
      '@',
      ':',
    ];
    let seed = 12;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    let accepted = 0;
    for (let i = 0; i < 5000; i++) {
      let raw = '/';
      for (let n = 1 + Math.floor(rnd() * 12); n > 0; n--) raw += pieces[Math.floor(rnd() * pieces.length)];
      const t = parseRequestTarget(raw);
      if (!t.ok) continue;
      accepted++;
      assert.ok(t.path.startsWith('/') && !t.path.includes('//'), raw);
      assert.ok(!t.path.split('/').some((s) => s === '.' || s === '..'), `${raw} -> ${t.path}`);
      assert.ok(!/%(2[eEfF]|5[cC]|41|7[eE])/.test(t.path), `${raw} -> ${t.path}`);
      const again = parseRequestTarget(t.path + t.query);
      assert.ok(again.ok && again.path === t.path, `${raw} -> ${t.path} -> ${JSON.stringify(again)}`);
    }
    assert.ok(accepted > 500, `only ${accepted} accepted`);
  });

  it('takes linear time on a long hostile path', () => {
    const long = '/a' + '/..%2e/.%2E;x'.repeat(1000) + '/%41'.repeat(3000);
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) parseRequestTarget(long);
    assert.ok(performance.now() - t0 < 2000, 'too slow');
  });
});

describe('route table: free routes, wildcards, any method, case', () => {
  const t = compileRoutes({
    routes: [
      { method: 'GET', path: '/v1/devices/:id', api: 'devices.get' },
      { method: 'GET', path: '/v1/devices/search', api: 'devices.search' },
      { method: '*', path: '/v1/devices/:id', api: 'devices.any' },
      { method: 'GET', path: '/docs/*', free: true },
      { method: 'GET', path: '/docs/pricing/:x', api: 'docs.priced' },
      { method: '*', path: '/public/*', api: 'public', free: true },
      { method: 'GET', path: '/v1/*', api: 'v1.other' },
    ],
  });

  it('picks the most specific route: no wildcard, more literals, a named method, file order', () => {
    assert.deepEqual(t.resolve('GET', '/v1/devices/search'), { api: 'devices.search', free: false });
    assert.deepEqual(t.resolve('GET', '/v1/devices/abc'), { api: 'devices.get', free: false });
    assert.deepEqual(t.resolve('DELETE', '/v1/devices/abc'), { api: 'devices.any', free: false });
    assert.deepEqual(t.resolve('PATCH', '/v1/devices/abc'), { api: 'devices.any', free: false }, 'a method no route names');
    assert.deepEqual(t.resolve('GET', '/docs/pricing/x'), { api: 'docs.priced', free: false }, 'a priced route beats a free wildcard');
    assert.deepEqual(t.resolve('GET', '/docs/a/b/c'), { api: 'free', free: true });
    assert.deepEqual(t.resolve('GET', '/docs'), { api: 'free', free: true }, '* matches zero segments');
    assert.deepEqual(t.resolve('POST', '/public/x'), { api: 'public', free: true });
    assert.deepEqual(t.resolve('GET', '/v1/devices/a/b'), { api: 'v1.other', free: false });
    assert.equal(t.resolve('POST', '/docs/a'), null);
    assert.equal(t.resolve('GET', '/other'), null);
    assert.equal(t.match('GET', '/other'), 'unmatched');
  });

  it('is case-sensitive unless the table says otherwise', () => {
    assert.equal(t.resolve('GET', '/V1/devices/search'), null);
    assert.equal(t.resolve('GET', '/v1/Devices/search')?.api, 'v1.other');
    const ci = compileRoutes({ caseInsensitive: true, routes: [{ method: 'GET', path: '/V1/Devices/:id/location', api: 'loc' }] });
    assert.equal(ci.match('GET', '/v1/DEVICES/Ab/LOCATION'), 'loc');
    assert.equal(ci.match('GET', '/v1/devices/ab/location'), 'loc');
  });

  it('refuses a table it cannot read unambiguously, naming the place', () => {
    const bad = (spec: unknown, re: RegExp) => assert.throws(() => compileRoutes(spec as any, 'routes.json'), re);
    bad({ routes: [{ method: 'GET', path: '/a', api: 'a', fre: true }] }, /routes\[0\]: unknown key "fre"/);
    bad({ routes: [{ method: 'GET', path: '/a/*/b', api: 'a' }] }, /routes\[0\]: \* may only be the last segment/);
    bad({ routes: [{ method: 'GET', path: '/a', api: 'a', free: 'yes' }] }, /free must be true or false/);
    bad({ routes: [{ method: 'GET', path: '/a' }] }, /api must be a name.*"free": true/);
    bad({ routes: [{ method: 'GET', path: '/a/../b', api: 'a' }] }, /segment "\.\." of \/a\/\.\.\/b/);
    bad({ routes: [{ method: 'GET', path: '/a b', api: 'a' }] }, /not a plain path segment/);
    bad({ routes: [{ method: 'get', path: '/a', api: 'a' }] }, /method must be/);
    bad({ routes: [], caseInsensitive: 'no' }, /caseInsensitive/);
    bad({ routes: [], unmatched: '' }, /unmatched/);
    bad({ routes: [], extra: 1 }, /unknown key "extra"/);
  });

  it('fixtures/routes.json says its free route explicitly and prices the rest', () => {
    const f = loadRoutes(assetPath('fixtures/routes.json'));
    assert.deepEqual(f.resolve('GET', '/v1/status'), { api: 'status', free: true });
    for (const [m, p, api] of [
      ['POST', '/v1/locations', 'locations.create'],
      ['GET', '/v1/devices/d/location', 'locations.latest'],
      ['GET', '/v1/devices/d/history', 'locations.history'],
      ['GET', '/v1/geofences/g/devices', 'geofences.devices'],
    ])
      assert.deepEqual(f.resolve(m!, p!), { api, free: false });
  });
});

describe('gateway: one path, one price', () => {
  let rig: PathRig;
  before(async () => {
    rig = await startPathRig();
  });
  after(async () => {
    await rig?.close();
  });

  it('bills every path trick as the operation a lenient upstream serves, or refuses it without forwarding', async () => {
    const out = await runTricks(rig);
    const failed = out.filter((o) => !o.ok).map((o) => `${o.trick.name} (${JSON.stringify(o.trick.target)}): ${o.why}`);
    assert.deepEqual(failed, []);
    // Each refusal was the gateway's own, with a reason a client can act on (raw bad bytes are
    // refused by Node's parser before the gateway sees them: still 400, never 500).
    for (const o of out.filter((x) => x.trick.expect === 400 && !/raw (NUL|control|non-ASCII)/.test(x.trick.name)))
      assert.equal(o.error, 'bad_request_target', o.trick.name);
    for (const o of out.filter((x) => x.trick.expect === 404 && x.trick.method !== 'HEAD')) assert.equal(o.error, 'no_route', o.trick.name);
    // A 404 for no route is metered under the table's unmatched name, never billable; a 400 has no event.
    for (const o of out.filter((x) => x.trick.expect === 404))
      assert.deepEqual([o.event?.api, o.event?.status, o.event?.billable], ['unmatched', 404, false], o.trick.name);
    for (const o of out.filter((x) => x.trick.expect === 400)) assert.equal(o.event, null, o.trick.name);
    const stats = rig.gw.stats();
    assert.equal(stats.badTarget, out.filter((o) => o.error === 'bad_request_target').length);
    assert.equal(stats.noRoute, out.filter((o) => o.trick.expect === 404).length);
  });

  it('forwards a free route without an event, and a priced one with', async () => {
    const before = (await rig.events()).length;
    const hits = rig.hits.length;
    const free = await rig.call('GET', '/v1/status');
    assert.equal(free.status, 200);
    assert.equal(rig.hits.length, hits + 1);
    assert.equal(rig.hits.at(-1)!.headers['x-meter-api'], 'status');
    assert.equal((await rig.events()).length, before, 'a free call wrote an event');
    const priced = await rig.call('GET', '/v1/devices/d1/location');
    assert.equal(priced.status, 200);
    const evs = await rig.events();
    assert.equal(evs.length, before + 1);
    assert.deepEqual([evs.at(-1)!.api, evs.at(-1)!.billable], ['locations.latest', true]);
  });

  it('still wants a key for a path without a route: 401 first, nothing learned about the table', async () => {
    const r = await rig.call('GET', '/v1/not-a-route', { authorization: 'Bearer nope' });
    assert.equal(r.status, 401);
  });

  it('does not let an absolute-form authority reach the upstream as Host', async () => {
    const r = await rig.call('GET', 'http://evil.example/v1/devices/d1/location', { host: 'evil.example' });
    assert.equal(r.status, 200);
    const hit = rig.hits.at(-1)!;
    assert.equal(hit.url, '/v1/devices/d1/location');
    assert.match(String(hit.headers.host), /^127\.0\.0\.1:\d+$/);
    assert.equal(hit.headers['x-forwarded-host'], undefined);
  });
});

/** One header of each identity family (and the names issue 12 lists), as a client would send them. */
export const IDENTITY_ATTEMPTS: [string, string][] = [
  ['x-tenant-id', 'evil'],
  ['x-tenant', 'evil'],
  ['x-tenantid', 'evil'],
  ['x-customer', 'evil'],
  ['x-customer-name', 'Evil Corp'],
  ['x-customer-id', 'evil'],
  ['x-account-id', 'evil'],
  ['x-account', 'evil'],
  ['x-org-id', 'evil'],
  ['x-organization', 'evil'],
  ['x-user-id', 'admin'],
  ['x-user', 'admin'],
  ['x-consumer-id', 'evil'],
  ['x-consumer-username', 'evil'],
  ['x-meter-customer', 'evil'],
  ['x-meter-plan', 'enterprise'],
  ['x-meter-api', 'free'],
  ['forwarded', 'for=1.2.3.4;host=evil;proto=https'],
  ['x-forwarded-for', '10.0.0.1'],
  ['x-forwarded-host', 'evil.example'],
  ['x-forwarded-proto', 'https'],
  ['x-forwarded-user', 'admin'],
  ['x-forwarded-prefix', '/admin'],
  ['x-real-ip', '10.0.0.1'],
  ['x-client-ip', '10.0.0.1'],
  ['true-client-ip', '10.0.0.1'],
  ['x-original-url', '/v1/status'],
  ['x-rewrite-url', '/v1/status'],
  ['x-http-method-override', 'DELETE'],
  ['x-method-override', 'DELETE'],
  ['x-auth-request-user', 'admin'],
  ['x-remote-user', 'admin'],
  ['x_tenant_id', 'evil'],
  ['x_customer', 'evil'],
  ['X-Account-Id', 'evil'],
];

describe('identity headers', () => {
  it('drops every family by prefix and the listed names, with _ read as -', () => {
    const f = identityFilter();
    for (const [name] of IDENTITY_ATTEMPTS) assert.ok(f.isIdentity(name.toLowerCase()), name);
    for (const p of IDENTITY_PREFIXES) assert.ok(f.isIdentity(p + 'anything'), p);
    for (const n of IDENTITY_NAMES) assert.ok(f.isIdentity(n), n);
    for (const keep of ['x-trace', 'x-request-id', 'accept', 'content-type', 'user-agent', 'x-idempotency-key', 'authorization'])
      assert.ok(!f.isIdentity(keep), keep);
  });

  it('takes extra names and prefixes from stripHeaders, and refuses what is not a header name', () => {
    const f = identityFilter(['X-Partner-*', 'x-internal-user', 'x_vendor_id']);
    assert.ok(f.isIdentity('x-partner-id'));
    assert.ok(f.isIdentity('x-partner-'));
    assert.ok(!f.isIdentity('x-partnerless'));
    assert.ok(f.isIdentity('x-internal-user'));
    assert.ok(f.isIdentity('x_internal_user'));
    assert.ok(f.isIdentity('x-vendor-id'));
    assert.ok(!f.isIdentity('x-internal-users'));
    for (const bad of ['x partner', '*', 'x-*-id', 'x:y']) assert.throws(() => identityFilter([bad]), /not a header name/, bad);
  });

  it('reads stripHeaders from the config, refusing a bad entry in one line', () => {
    const cfg = loadConfig({ env: { METER_STRIP_HEADERS: 'x-partner-*, x-internal-user' }, cwd: '/tmp' });
    assert.deepEqual(cfg.stripHeaders, ['x-partner-*', 'x-internal-user']);
    assert.deepEqual(loadConfig({ env: {}, cwd: '/tmp' }).stripHeaders, []);
    assert.throws(
      () => loadConfig({ env: { METER_STRIP_HEADERS: 'x partner' }, cwd: '/tmp' }),
      (e: Error) => e.name === 'ConfigError' && /invalid stripHeaders: "x partner" is not a header name/.test(e.message) && !e.message.includes('\n'),
    );
  });

  describe('through a real gateway to an upstream that echoes what it got', () => {
    let rig: PathRig;
    before(async () => {
      rig = await startPathRig({ stripHeaders: ['x-partner-*', 'x-internal-user'] });
    });
    after(async () => {
      await rig?.close();
    });

    for (const [name, value] of IDENTITY_ATTEMPTS) {
      it(`drops a client's ${name} and keeps the gateway's own`, async () => {
        const r = await rig.call('GET', '/v1/devices/d1/location', { [name]: value, 'x-trace': 'keep-me' });
        assert.equal(r.status, 200);
        const got = rig.hits.at(-1)!.headers;
        const leaked = Object.entries(got).filter(([, v]) => String(v).includes(value) && value !== 'free');
        assert.deepEqual(leaked, [], `${name} reached the upstream`);
        assert.equal(got['x-meter-customer'], 'acme');
        assert.equal(got['x-meter-plan'], 'pro');
        assert.equal(got['x-meter-api'], 'locations.latest');
        assert.equal(got['x-meter-key-id'], rig.keyId);
        assert.equal(got['x-forwarded-for'], '127.0.0.1');
        assert.equal(got['x-forwarded-proto'], 'http');
        assert.equal(got['x-forwarded-host'], undefined);
        assert.equal(got.forwarded, undefined);
        assert.equal(got['x-trace'], 'keep-me');
        assert.equal(got.authorization, undefined, 'the API key reached the upstream');
      });
    }

    it('drops the headers named in stripHeaders too, and keeps their neighbours', async () => {
      const r = await rig.call('GET', '/v1/devices/d1/location', {
        'x-partner-id': 'p1',
        'x-partner-tier': 'gold',
        'x-internal-user': 'root',
        'x-partnerless': 'kept',
      });
      assert.equal(r.status, 200);
      const got = rig.hits.at(-1)!.headers;
      assert.equal(got['x-partner-id'], undefined);
      assert.equal(got['x-partner-tier'], undefined);
      assert.equal(got['x-internal-user'], undefined);
      assert.equal(got['x-partnerless'], 'kept');
    });

    it('bills by the method on the request line: a method override never reaches the upstream', async () => {
      const r = await rig.call(
        'POST',
        '/v1/locations',
        { 'x-http-method-override': 'GET', 'x-method-override': 'GET', 'x-http-method': 'GET', 'content-type': 'application/json' },
        '{}',
      );
      assert.equal(r.status, 200);
      const hit = rig.hits.at(-1)!;
      assert.equal(hit.method, 'POST');
      assert.deepEqual(
        Object.keys(hit.headers).filter((h) => h.includes('method')),
        [],
      );
    });
  });
});
