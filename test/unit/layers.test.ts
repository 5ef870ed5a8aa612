/**
 * The layering rule of docs/architecture.md ("Layering"), checked on the source: a module imports
 * only from its own layer or the ones below. Reads every `import`/`export ... from` of src/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../../src');

/** Top-level folder (or file) of src/ -> layer; higher may import lower, never the reverse. */
const LAYER: Record<string, number> = {
  ground: 1,
  config: 1,
  events: 1,
  security: 1,
  log: 2,
  lake: 2,
  warehouse: 2,
  limiter: 2,
  gateway: 3,
  pipeline: 3,
  billing: 3,
  observability: 3,
  runtime: 4,
  commands: 4,
  demo: 4,
  'cli.ts': 4,
};
const NAMES = ['', 'ground', 'adapters', 'domain', 'composition'];

function* sources(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (e.name.endsWith('.ts')) yield p;
  }
}

const layerOf = (file: string): number | undefined => LAYER[relative(SRC, file).split('/')[0]!];

test('every folder of src/ has a layer', () => {
  const top = new Set([...sources(SRC)].map((f) => relative(SRC, f).split('/')[0]!));
  assert.deepEqual(
    [...top].filter((t) => LAYER[t] === undefined),
    [],
    'give new folders a layer here and in docs/architecture.md',
  );
});

test('no import runs upward (docs/architecture.md, Layering)', () => {
  const bad: string[] = [];
  const spec = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+['"](\.{1,2}\/[^'"]+)['"]/g;
  for (const f of sources(SRC)) {
    const from = layerOf(f)!;
    for (const m of readFileSync(f, 'utf8').matchAll(spec)) {
      const target = resolve(dirname(f), m[1]!.replace(/\.js$/, '.ts'));
      const to = layerOf(target);
      if (to !== undefined && to > from) bad.push(`${relative(SRC, f)} (${NAMES[from]}) imports ${relative(SRC, target)} (${NAMES[to]})`);
    }
  }
  assert.deepEqual(bad, []);
});

test('migrations: one file per version (schema_migrations is keyed by it), numbered without gaps', async () => {
  const { loadMigrations } = await import('../../src/warehouse/migrate.js');
  const versions = loadMigrations().map((m) => m.version);
  assert.deepEqual(
    versions,
    versions.map((_, i) => i + 1),
  );
  const dir = join(SRC, 'warehouse', 'migrations');
  const files = readdirSync(dir).filter((f) => f.endsWith('.sql'));
  assert.equal(new Set(files.map((f) => f.split('_')[0])).size, files.length, `two files share a number: ${files.join(', ')}`);
});
