/**
 * Postgres TLS through the warehouse as every command opens it (openWarehouse from the config),
 * against a Postgres this test starts itself with ssl=on, an openssl self-signed certificate and
 * a pg_hba that refuses TCP without TLS: verify-full with the CA connects over TLS (the server's
 * pg_stat_ssl says so), no TLS is refused with the setting to use, a wrong CA fails the
 * certificate check naming databaseTlsCaFile, and no message shows the password.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { loadConfig } from '../../src/config/config.js';
import { openWarehouse } from '../../src/runtime/backends.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import { selfSignedCert, startPostgresTls, type Cert, type OwnServer } from '../support/own-servers.js';
import { tempDir } from '../support/tmp.js';

const PASSWORD = 'pg-tls-s3cret-9';
let cert: Cert;
let other: Cert;
let server: OwnServer;

before(async () => {
  // For 127.0.0.1 only: `localhost` reaches the same server under a name the certificate lacks.
  cert = selfSignedCert('meter-pg', 'IP:127.0.0.1');
  other = selfSignedCert('someone-else');
  server = await startPostgresTls(cert, PASSWORD);
});
after(async () => {
  await server?.stop();
  for (const c of [cert, other]) if (c) rmSync(c.dir, { recursive: true, force: true });
});

const url = () => `postgres://meter:${PASSWORD}@127.0.0.1:${server.port}/postgres`;
const cwd = tempDir('meter-pgtls-cfg-');
after(() => rmSync(cwd, { recursive: true, force: true }));
const cfgOf = (env: Record<string, string>) => loadConfig({ cwd, env: { METER_DATABASE_URL: url(), ...env } });

async function sslOf(db: Warehouse): Promise<{ ssl: boolean; version: string | null }> {
  const [r] = await db.query<{ ssl: boolean; version: string | null }>('SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
  return r!;
}

async function refusal(env: Record<string, string>): Promise<string> {
  try {
    const db = await openWarehouse(cfgOf(env), undefined, { migrate: false });
    await db.close();
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail('expected the connection to be refused');
}

for (const mode of ['verify-full', 'verify-ca'] as const) {
  test(`postgres databaseTls=${mode} with the CA file: connected over TLS`, async () => {
    const db = await openWarehouse(cfgOf({ METER_DATABASE_TLS: mode, METER_DATABASE_TLS_CA_FILE: cert.certFile }), undefined, { migrate: false });
    try {
      const s = await sslOf(db);
      assert.equal(s.ssl, true);
      assert.match(String(s.version), /^TLSv1\.[23]$/);
    } finally {
      await db.close();
    }
  });
}

test('postgres databaseTls=require: encrypted without a CA check', async () => {
  const db = await openWarehouse(cfgOf({ METER_DATABASE_TLS: 'require' }), undefined, { migrate: false });
  try {
    assert.equal((await sslOf(db)).ssl, true);
  } finally {
    await db.close();
  }
});

test('postgres without TLS where the server requires it: refused, saying to set databaseTls', async () => {
  const msg = await refusal({});
  assert.match(msg, /no encryption.*set databaseTls=verify-full/);
  assert.ok(!msg.includes(PASSWORD), msg);
  assert.match(msg, /postgres:\/\/meter:\*\*\*@/);
});

test('postgres verify-full with another CA (and with none): certificate refused, naming databaseTlsCaFile', async () => {
  const wrongCa = await refusal({ METER_DATABASE_TLS: 'verify-full', METER_DATABASE_TLS_CA_FILE: other.certFile });
  assert.match(wrongCa, /TLS certificate check failed: .*databaseTlsCaFile/);
  assert.ok(!wrongCa.includes(PASSWORD), wrongCa);
  const systemCas = await refusal({ METER_DATABASE_TLS: 'verify-full' });
  assert.match(systemCas, /TLS certificate check failed/);
});

test('postgres verify-full checks the host name, verify-ca does not', async () => {
  const u = new URL(url());
  u.hostname = 'localhost';
  const env = { METER_DATABASE_URL: u.toString(), METER_DATABASE_TLS_CA_FILE: cert.certFile };
  const msg = await refusal({ ...env, METER_DATABASE_TLS: 'verify-full' });
  assert.match(msg, /TLS host name check failed: .*localhost.*verify-ca/);
  const db = await openWarehouse(cfgOf({ ...env, METER_DATABASE_TLS: 'verify-ca' }), undefined, { migrate: false });
  try {
    assert.equal((await sslOf(db)).ssl, true);
  } finally {
    await db.close();
  }
});
