/**
 * The billing API's OpenAPI document passes Redocly's `recommended` rules with no error and no
 * warning. `info-license` is off: the API is private to the business that runs meter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createConfig, lint } from '@redocly/openapi-core';
import { assetPath } from '../../src/config/assets.js';

test('openapi.json: Redocly recommended rules find nothing', async () => {
  const config = await createConfig({ extends: ['recommended'], rules: { 'info-license': 'off' } });
  const problems = await lint({ ref: assetPath('src/billing/openapi.json'), config });
  const lines = problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? '?'}`);
  assert.deepEqual(lines, []);
});
