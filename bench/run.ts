/**
 * `npm run bench [-- --smoke] [--stages parquet,rollup,...] [--runs N] [--json file]`
 *
 * Runs each stage with its baseline in the same process and run (the box is shared and noisy:
 * sides are interleaved and medians of several runs quoted), then prints one table:
 * stage, metric, meter, baseline, ratio, target, met. `--smoke` uses tiny sizes and one run so
 * CI proves the benchmarks still run (no timing is asserted anywhere).
 */
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { type BenchOptions, type Row, benchWorkDir, bytes } from './lib.js';

type Stage = (o: BenchOptions) => Promise<Row[]>;

/** Loaded lazily: a stage's dependencies (autocannon, the stack) load only when it runs. */
const STAGES: Record<string, () => Promise<Stage>> = {
  parquet: async () => (await import('./parquet.js')).benchParquet,
  rollup: async () => (await import('./rollup.js')).benchRollup,
  billing: async () => (await import('./billing.js')).benchBilling,
  gateway: async () => (await import('./gateway.js')).benchGateway,
  ingest: async () => (await import('./ingest.js')).benchIngest,
  demo: async () => (await import('./demo.js')).benchDemo,
  logappend: async () => (await import('./logappend.js')).benchLogAppend,
  freshness: async () => (await import('./freshness.js')).benchFreshness,
};
/** Smoke default: every stage, each on embedded parts (no services needed). */
const EMBEDDED = ['parquet', 'rollup', 'billing', 'gateway', 'ingest', 'demo', 'logappend', 'freshness'];

export interface RunArgs {
  smoke: boolean;
  stages: string[];
  runs: number;
  json: string | null;
}

export const USAGE = `usage: node dist/bench/run.js [--smoke] [--stages a,b] [--runs N] [--json file]
  --smoke       every stage once at tiny sizes on embedded parts (numbers meaningless)
  --stages a,b  stages to run (default: all): ${Object.keys(STAGES).join(', ')}
  --runs N      runs per stage (default 3)
  --json file   also write the rows as JSON
BENCHMARKS.md "How to reproduce" lists the variables each stage reads.`;

/** A mistake in the command line: one line and exit 2, no stack trace. */
export class BenchUsageError extends Error {}

export function parseArgs(argv: string[]): RunArgs & { help?: boolean } {
  const a: RunArgs & { help?: boolean } = { smoke: false, stages: [], runs: 3, json: null };
  const value = (i: number, k: string) => {
    const v = argv[i];
    if (v === undefined || v.startsWith('--')) throw new BenchUsageError(`${k} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--smoke') a.smoke = true;
    else if (k === '--help' || k === '-h') a.help = true;
    else if (k === '--stages') a.stages = value(++i, k).split(',').filter(Boolean);
    else if (k === '--runs') {
      a.runs = Number(value(++i, k));
      if (!Number.isInteger(a.runs) || a.runs < 1) throw new BenchUsageError(`--runs takes a whole number of 1 or more, not ${argv[i]}`);
    } else if (k === '--json') a.json = value(++i, k);
    else throw new BenchUsageError(`unknown argument ${k} (use --smoke, --stages a,b, --runs N, --json file; --help)`);
  }
  if (!a.stages.length) a.stages = a.smoke ? EMBEDDED : Object.keys(STAGES);
  if (a.smoke) a.runs = 1;
  for (const s of a.stages) if (!STAGES[s]) throw new BenchUsageError(`unknown stage ${s}; stages: ${Object.keys(STAGES).join(', ')}`);
  return a;
}

export function table(rows: Row[]): string {
  const head = ['stage', 'metric', 'meter', 'baseline', 'ratio', 'target', 'met?'];
  const body = rows.map((r) => [r.stage, r.metric, r.meter, r.baseline, r.ratio, r.target, r.met]);
  const lines = [head, head.map(() => '---'), ...body].map((c) => `| ${c.join(' | ')} |`);
  const notes = rows.filter((r) => r.note).map((r) => `- ${r.stage} / ${r.metric}: ${r.note}`);
  return lines.join('\n') + (notes.length ? '\n\n' + notes.join('\n') : '');
}

export function machine(): string {
  const c = cpus();
  return `${c.length} CPU (${c[0]?.model ?? '?'}), ${bytes(totalmem())} RAM, Node ${process.version}, ${process.platform}/${process.arch}`;
}

/** Stages that threw in the last runBench (the CLI exits 1 if any). */
export const failed: string[] = [];

export async function runBench(args: RunArgs): Promise<Row[]> {
  const o: BenchOptions = {
    smoke: args.smoke,
    runs: args.runs,
    workDir: benchWorkDir() + (args.smoke ? '/smoke' : ''),
    log: (m) => process.stderr.write(`[bench] ${m}\n`),
  };
  const { mkdirSync } = await import('node:fs');
  mkdirSync(o.workDir, { recursive: true });
  const rows: Row[] = [];
  for (const s of args.stages) {
    o.log(`stage ${s} ${args.smoke ? '(smoke)' : `(${args.runs} runs)`}`);
    const t0 = Date.now();
    let got: Row[];
    try {
      const stage = await STAGES[s]!();
      got = await stage(o);
    } catch (e) {
      // One broken stage must not hide the others' numbers: a row says what failed, exit code 1.
      failed.push(s);
      o.log(`stage ${s} FAILED: ${(e as Error).stack ?? e}`);
      got = [
        {
          stage: s,
          metric: 'stage failed',
          meter: 'error',
          baseline: '-',
          ratio: '',
          target: '-',
          met: 'no',
          note: String((e as Error).message ?? e)
            .split('\n')[0]!
            .slice(0, 300),
        },
      ];
    }
    rows.push(...got);
    o.log(`stage ${s} done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n${table(got)}`);
  }
  return rows;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) return void process.stdout.write(`${USAGE}\n`);
  const started = new Date().toISOString();
  const rows = await runBench(args);
  const out = `meter benchmarks ${args.smoke ? '(SMOKE: tiny sizes, numbers meaningless) ' : ''}${started}\nmachine: ${machine()}\n\n${table(rows)}\n`;
  process.stdout.write(out);
  if (args.json) writeFileSync(args.json, JSON.stringify({ started, machine: machine(), args, rows }, null, 2));
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().then(
    () => process.exit(failed.length ? 1 : 0),
    (e) => {
      if (e instanceof BenchUsageError) {
        console.error(`bench: ${e.message}`);
        process.exit(2);
      }
      console.error(e);
      process.exit(1);
    },
  );
}
