/**
 * docs/configuration.md is generated from SETTINGS and defaults(), so the manual cannot drift
 * from the code: `npm run docs:config` rewrites it, and test/unit/config-docs.test.ts fails while the
 * file in the repository differs from what this prints.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SETTINGS, defaults, packageRoot, type Kind } from './config.js';

function allowed(kind: Kind): string {
  switch (kind.t) {
    case 'int':
      return `integer ${kind.min.toLocaleString('en-US')} .. ${kind.max.toLocaleString('en-US')}`;
    case 'enum':
      return kind.values.map((v) => `\`${v}\``).join(', ');
    case 'url':
      return `URL (${kind.protocols.join(' ')})`;
    case 'list':
      return 'comma-separated list';
    case 'secret':
      return 'secret (masked in output)';
    default:
      return kind.t;
  }
}

function shownDefault(key: string, value: unknown): string {
  if (key === 'lakeUrl') return '`file://<dataDir>/lake`';
  if (key === 'catalogFile' || key === 'routesFile') return `\`${String(value).replace(packageRoot() + '/', '')}\` (in the package)`;
  if (value === null || value === undefined) return 'unset';
  if (Array.isArray(value)) return value.length ? `\`${value.join(',')}\`` : 'empty';
  return `\`${String(value)}\``;
}

const cell = (s: string) => s.replace(/\|/g, '\\|');

export function configurationMarkdown(): string {
  const d = defaults() as unknown as Record<string, unknown>;
  const lines = [
    '# Configuration',
    '',
    '<!-- Generated from src/config/config.ts by `npm run docs:config`; test/unit/config-docs.test.ts checks it is current. Do not edit by hand. -->',
    '',
    'One typed config, validated at start. A flag overrides its `METER_*` environment variable, which',
    'overrides the JSON config file (`./meter.config.json`, or `--config FILE` / `METER_CONFIG`), which',
    'overrides the default. An invalid value stops the command with one line naming the setting and',
    'what is allowed (exit code 2). `meter config` prints the effective values (secrets masked);',
    '`meter config --json` the same as JSON. Transport security settings: [security.md](security.md).',
    '',
    '| setting (file key) | environment | flag | default | allowed | meaning |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const s of SETTINGS) {
    lines.push(
      `| ${s.key} | \`${s.env}\` | \`${s.flag}\` | ${shownDefault(s.key, d[s.key])} | ${allowed(s.kind)}${s.nullable ? ' or unset' : ''} | ${cell(s.help)} |`,
    );
  }
  return lines.join('\n') + '\n';
}

export const CONFIGURATION_DOC = 'docs/configuration.md';

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(resolve(packageRoot(), CONFIGURATION_DOC), configurationMarkdown());
  console.log(`wrote ${CONFIGURATION_DOC} (${SETTINGS.length} settings)`);
}
