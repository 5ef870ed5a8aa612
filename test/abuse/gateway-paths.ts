/**
 * Attacks on "one path, one price" and "identity is the gateway's alone" (issue 12;
 * docs/routing-and-identity.md). Each starts a gateway on embedded parts in front of an upstream
 * that resolves paths as leniently as frameworks do and echoes the headers it got
 * (test/support/path-rig.ts), and stops both afterwards.
 *
 * A path trick holds when the call is billed as the operation the upstream served, or refused
 * (400/404) without reaching the upstream: never forwarded free or under another name.
 */
import type { Attack } from './attack.js';
import { PATH_TRICKS, runTricks, startPathRig, type PathRig, type PathTrick } from '../support/path-rig.js';

async function withRig<T>(o: Parameters<typeof startPathRig>[0], f: (rig: PathRig) => Promise<T>): Promise<T> {
  const rig = await startPathRig(o);
  try {
    return await f(rig);
  } finally {
    await rig.close();
  }
}

function pathAttack(group: string, tricks: PathTrick[]): Attack {
  return {
    name: `path: ${group}`,
    expected: 'billed as the priced api served, or 400/404 not forwarded',
    run: () =>
      withRig({}, async (rig) => {
        const out = await runTricks(rig, tricks);
        const billed = out.filter((o) => o.ok && o.trick.expect === 'billed').length;
        const r400 = out.filter((o) => o.ok && o.status === 400).length;
        const r404 = out.filter((o) => o.ok && o.status === 404).length;
        const free = out.filter((o) => o.hit && (!o.event?.billable || o.event.api !== o.hit.served)).length;
        const bad = out.filter((o) => !o.ok);
        return {
          ok: bad.length === 0,
          observed:
            `${out.length} tricks: ${billed} billed as served, ${r400} x 400, ${r404} x 404; forwarded free/misbilled ${free}` +
            (bad.length ? `; FAILED ${bad.map((o) => `${o.trick.name}: ${o.why}`).join('; ')}` : ''),
        };
      }),
  };
}

const groups = [...new Set(PATH_TRICKS.map((t) => t.group ?? 'other'))];
const pathAttacks = groups.map((g) =>
  pathAttack(
    g,
    PATH_TRICKS.filter((t) => (t.group ?? 'other') === g),
  ),
);

/** Every byte value, raw and percent-encoded, inside a priced path. */
const everyByte: Attack = {
  name: 'path: every byte, raw and %XX, in a priced path',
  expected: 'no 5xx; each forwarded call billed as the served api',
  run: () =>
    withRig({}, async (rig) => {
      const tricks: PathTrick[] = [];
      for (let b = 0; b < 256; b++) {
        const c = String.fromCharCode(b);
        const hex = b.toString(16).toUpperCase().padStart(2, '0');
        // Bytes that end the request line or the target cannot be sent raw inside it.
        if (![0x20, 0x0a, 0x0d, 0x3f].includes(b)) tricks.push({ name: `raw 0x${hex}`, method: 'GET', target: `/v1/devices/d${c}1/location`, expect: 400 });
        tricks.push({ name: `%${hex}`, method: 'GET', target: `/v1/devices/d%${hex}1/location`, expect: 400 });
      }
      const counts = new Map<number, number>();
      let s5xx = 0;
      let misbilled = 0;
      const examples: string[] = [];
      for (const o of await runTricks(rig, tricks)) {
        counts.set(o.status, (counts.get(o.status) ?? 0) + 1);
        if (o.status >= 500) s5xx++;
        if (o.hit && (o.event?.api !== o.hit.served || !o.event?.billable)) {
          misbilled++;
          if (examples.length < 3) examples.push(`${o.trick.name} served ${o.hit.served} billed ${o.event?.api}`);
        }
      }
      const summary = [...counts]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${n} x ${s}`)
        .join(', ');
      return {
        ok: s5xx === 0 && misbilled === 0,
        observed: `${tricks.length} calls: ${summary}; 5xx ${s5xx}; forwarded and misbilled ${misbilled}${examples.length ? ' (' + examples.join('; ') + ')' : ''}`,
      };
    }),
};

/** One client header per identity family; each must be absent at the upstream, meter's own present. */
const FAMILIES: [string, Record<string, string>][] = [
  ['x-tenant*', { 'x-tenant-id': 'evil', 'x-tenant': 'evil', 'x-tenantid': 'evil' }],
  ['x-customer*', { 'x-customer': 'evil', 'x-customer-name': 'evil', 'x-customer-id': 'evil' }],
  ['x-account*', { 'x-account-id': 'evil', 'x-account': 'evil' }],
  ['x-org*', { 'x-org-id': 'evil', 'x-organization': 'evil' }],
  ['x-user*', { 'x-user-id': 'evil', 'x-user': 'evil' }],
  ['x-consumer*', { 'x-consumer-id': 'evil', 'x-consumer-username': 'evil' }],
  ['x-meter-*', { 'x-meter-customer': 'evil', 'x-meter-plan': 'evil', 'x-meter-key-id': 'evil', 'x-meter-event-id': 'evil' }],
  ['forwarded', { forwarded: 'for=evil;host=evil' }],
  ['x-forwarded-*', { 'x-forwarded-for': 'evil', 'x-forwarded-host': 'evil', 'x-forwarded-proto': 'evil', 'x-forwarded-user': 'evil' }],
  ['client address', { 'x-real-ip': 'evil', 'x-client-ip': 'evil', 'true-client-ip': 'evil', 'cf-connecting-ip': 'evil' }],
  ['URL rewrites', { 'x-original-url': '/evil', 'x-rewrite-url': '/evil', 'x-original-uri': '/evil' }],
  ['method override', { 'x-http-method-override': 'evil', 'x-http-method': 'evil', 'x-method-override': 'evil' }],
  ['auth-proxy users', { 'x-auth-request-user': 'evil', 'x-remote-user': 'evil', 'remote-user': 'evil', 'x-authenticated-userid': 'evil' }],
  ['underscore spellings', { x_tenant_id: 'evil', x_customer: 'evil', x_forwarded_for: 'evil', x_meter_customer: 'evil' }],
  ['stripHeaders from config', { 'x-partner-id': 'evil', 'x-internal-user': 'evil' }],
];

const identityAttacks: Attack[] = FAMILIES.map(([family, headers]) => ({
  name: `identity: ${family}`,
  expected: 'dropped; upstream sees only the gateway identity',
  run: () =>
    withRig({ stripHeaders: ['x-partner-*', 'x-internal-user'] }, async (rig) => {
      const a = await rig.call('GET', '/v1/devices/d1/location', { ...headers, 'x-trace': 'kept' });
      const got = rig.hits.at(-1)?.headers ?? {};
      const leaked = Object.entries(got)
        .filter(([, v]) => String(v).includes('evil'))
        .map(([k]) => k);
      const own =
        got['x-meter-customer'] === 'acme' &&
        got['x-forwarded-for'] === '127.0.0.1' &&
        got['x-forwarded-proto'] === 'http' &&
        got['x-forwarded-host'] === undefined;
      return {
        ok: a.status === 200 && leaked.length === 0 && own && got['x-trace'] === 'kept',
        observed: `${Object.keys(headers).length} sent, ${leaked.length} reached upstream${leaked.length ? ' (' + leaked.join(', ') + ')' : ''}; upstream saw customer ${got['x-meter-customer']}, xff ${got['x-forwarded-for']}; status ${a.status}`,
      };
    }),
}));

export const attacks: Attack[] = [...pathAttacks, everyByte, ...identityAttacks];
