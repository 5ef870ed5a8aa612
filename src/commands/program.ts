/**
 * The `meter` program: every command registered, conventions applied (usage errors exit 2,
 * --json on data commands). Built without parsing anything, so tests can read each command's help.
 */
import { Command, Option } from 'commander';
import { SETTINGS } from '../config/config.js';
import { registerGateway } from './gateway.js';
import { registerIngest } from './ingest.js';
import { registerRollup } from './rollup.js';
import { registerServeBilling } from './serve-billing.js';
import { registerKeys } from './keys.js';
import { registerTokens } from './tokens.js';
import { registerDev } from './dev.js';
import { registerDemo } from './demo.js';
import { registerConfig } from './config.js';
import { registerDoctor } from './doctor.js';
import { registerCustomers } from './customers.js';
import { registerPlans } from './plans.js';
import { registerPrices } from './prices.js';
import { registerInvoices } from './invoices.js';
import { registerLive } from './live.js';
import { registerReplay } from './replay.js';
import { registerMigrate } from './migrate.js';
import { registerDeadLetters } from './dead-letters.js';
import { registerEvents } from './events.js';
import { registerCompact } from './compact.js';
import { registerWebhooks } from './webhooks.js';
import { applyConventions } from './conventions.js';

export function buildProgram(): Command {
  const program = new Command('meter')
    .description('Usage-based billing for an API: gateway -> log -> hourly Parquet lake -> rollup -> Postgres -> billing API')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .option('--config <file>', 'config file (JSON); default ./meter.config.json if present, or $METER_CONFIG')
    .option('--json', 'machine-readable output (every command that prints data; see its --help)');
  for (const s of SETTINGS) {
    const arg = s.kind.t === 'list' ? '<list>' : s.kind.t === 'int' ? '<n>' : '<value>';
    program.addOption(new Option(`${s.flag} ${arg}`, `${s.help} [env ${s.env}]`).hideHelp());
  }
  program.addHelpText(
    'after',
    `\nSettings (flags anywhere on the line, or METER_* environment, or meter.config.json):\n` +
      SETTINGS.map((s) => `  ${(s.flag + ' / ' + s.env).padEnd(58)} ${s.help}`).join('\n') +
      `\n\nQuick start:  meter demo          (whole pipeline on embedded defaults)\n`,
  );
  for (const register of [
    registerDemo,
    registerDev,
    registerGateway,
    registerIngest,
    registerLive,
    registerRollup,
    registerCompact,
    registerReplay,
    registerDeadLetters,
    registerServeBilling,
    registerEvents,
    registerKeys,
    registerTokens,
    registerCustomers,
    registerPlans,
    registerPrices,
    registerInvoices,
    registerWebhooks,
    registerDoctor,
    registerMigrate,
    registerConfig,
  ])
    register(program);
  applyConventions(program);
  return program;
}
