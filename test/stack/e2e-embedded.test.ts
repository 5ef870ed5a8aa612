import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config/config.js';
import { groundTruthRun } from '../support/pipeline.js';
import { tempDir } from '../support/tmp.js';

test('embedded pipeline: billed per customer, API and hour equals the ground truth', async () => {
  const dir = tempDir('meter-e2e-');
  const cfg = loadConfig({ cwd: dir, env: { METER_INGEST_FLUSH_MS: '200', METER_INGEST_MAX_RECORDS: '700' } });
  const { cells, statuses } = await groundTruthRun(cfg, { eventsPerHour: 1500, hours: 3 });
  // The mix really had every kind of answer, or the test proves less than it says.
  for (const s of [200, 201, 400, 401, 404, 429, 503]) assert.ok((statuses.get(s) ?? 0) > 0, `no ${s} answers in the traffic`);
  const hours = new Set([...cells.keys()].map((k) => k.split('\t')[2]));
  assert.equal(hours.size, 3);
});
