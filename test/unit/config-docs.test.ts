import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CONFIGURATION_DOC, configurationMarkdown } from '../../src/config/config-docs.js';
import { SETTINGS, packageRoot } from '../../src/config/config.js';

test('docs/configuration.md is generated from the settings table and current (npm run docs:config)', () => {
  const onDisk = readFileSync(resolve(packageRoot(), CONFIGURATION_DOC), 'utf8');
  assert.equal(onDisk, configurationMarkdown(), 'docs/configuration.md is stale: run `npm run docs:config` and commit it');
  for (const s of SETTINGS) assert.ok(onDisk.includes(`| ${s.key} | \`${s.env}\` | \`${s.flag}\` |`), s.key);
});
