/**
 * The abuse suite (`npm run test:abuse`): every attack in test/abuse/*.ts, one table of attack,
 * expected, observed, ok. Exits 1 if any attack failed or threw.
 *
 *   node dist/test/abuse/main.js [name-substring ...]     (all when none is given)
 *
 * It runs only when METER_ABUSE=1 (set by the npm script), so `npm test`, which loads every file
 * under dist/test, skips it. Attacks that need stack services use the abuse suite's own stack
 * (METER_STACK_DIR=/tmp/meter-stack-abuse, ports shifted by 300, set by the npm script), since
 * some of them stop or slow a service.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Attack } from './attack.js';
import { stoppingWhatItStarted } from '../support/stack-lifetime.js';

async function loadAttacks(): Promise<{ file: string; attack: Attack }[]> {
  const here = dirname(fileURLToPath(import.meta.url));
  const files = readdirSync(here)
    .filter((f) => f.endsWith('.js') && !['main.js', 'attack.js'].includes(f) && !f.startsWith('support'))
    .sort();
  const out: { file: string; attack: Attack }[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(here, f)).href)) as { attacks?: Attack[] };
    for (const attack of mod.attacks ?? []) out.push({ file: f.replace(/\.js$/, ''), attack });
  }
  return out;
}

function cell(s: string, width: number): string {
  return s.length > width ? s.slice(0, width - 1) + '…' : s.padEnd(width);
}

async function main(): Promise<number> {
  const wanted = process.argv.slice(2);
  const all = await loadAttacks();
  const chosen = wanted.length ? all.filter(({ attack }) => wanted.some((w) => attack.name.includes(w))) : all;
  if (!all.length) {
    console.error('no attacks found: every test/abuse/<area>.ts exports `attacks: Attack[]`');
    return 1;
  }
  if (!chosen.length) {
    console.error(`no attack matches ${wanted.join(', ')}; known: ${all.map((a) => a.attack.name).join('; ')}`);
    return 2;
  }
  const root = join(tmpdir(), `meter-abuse-${process.pid}`);
  mkdirSync(root, { recursive: true });
  const t0 = Date.now();
  const rows: { area: string; name: string; expected: string; observed: string; ok: boolean }[] = [];
  try {
    for (const [i, { file, attack }] of chosen.entries()) {
      const dir = join(root, String(i));
      mkdirSync(dir, { recursive: true });
      const log = (m: string) => console.error(`[abuse +${Math.round((Date.now() - t0) / 1000)}s] ${attack.name}: ${m}`);
      log('start');
      let observed: string;
      let ok: boolean;
      try {
        ({ observed, ok } = await attack.run({ dir, log }));
      } catch (e) {
        observed = `threw: ${((e as Error).stack ?? String(e)).split('\n').slice(0, 3).join(' | ')}`;
        ok = false;
      }
      rows.push({ area: file, name: attack.name, expected: attack.expected, observed, ok });
      log(`${ok ? 'ok' : 'FAILED'}: ${observed}`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  console.log(`\n${cell('area', 18)} | ${cell('attack', 44)} | ${cell('expected', 48)} | ${cell('observed', 60)} | ok`);
  for (const r of rows) console.log(`${cell(r.area, 18)} | ${cell(r.name, 44)} | ${cell(r.expected, 48)} | ${cell(r.observed, 60)} | ${r.ok ? 'ok' : 'FAIL'}`);
  const failed = rows.filter((r) => !r.ok);
  for (const r of failed) console.log(`\nFAILED ${r.name}\n  expected: ${r.expected}\n  observed: ${r.observed}`);
  console.log(`\n${rows.length} attacks in ${Math.round((Date.now() - t0) / 1000)} s`);
  console.log(`abuse: ${rows.length - failed.length} passed, ${failed.length} failed`);
  return failed.length ? 1 : 0;
}

if (process.env.METER_ABUSE === '1') {
  stoppingWhatItStarted(main).then(
    (code) => process.exit(code),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
