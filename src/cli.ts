/**
 * The `meter` command line. Commands are thin: parse and validate, wire adapters, call into
 * gateway / pipeline / billing. Settings (see docs/configuration.md) are accepted as
 * flags anywhere on the line, as METER_* environment variables, or in meter.config.json.
 */
import { Command, Option } from 'commander';
import { SETTINGS } from './config/config.js';
import { registerGateway } from './commands/gateway.js';
import { registerIngest } from './commands/ingest.js';
import { registerRollup } from './commands/rollup.js';
import { registerServeBilling } from './commands/serve-billing.js';
import { registerKeys } from './commands/keys.js';
import { registerTokens } from './commands/tokens.js';
import { registerDev } from './commands/dev.js';
import { registerDemo } from './commands/demo.js';
import { registerConfig } from './commands/config.js';
import { registerDoctor } from './commands/doctor.js';
import { registerCustomers } from './commands/customers.js';
import { registerPlans } from './commands/plans.js';
import { registerPrices } from './commands/prices.js';
import { registerInvoices } from './commands/invoices.js';
import { registerLive } from './commands/live.js';
import { registerReplay } from './commands/replay.js';
import { registerMigrate } from './commands/migrate.js';
import { registerDeadLetters } from './commands/dead-letters.js';
import { registerEvents } from './commands/events.js';
import { registerCompact } from './commands/compact.js';
import { registerWebhooks } from './commands/webhooks.js';
import { applyConventions } from './commands/conventions.js';

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

await buildProgram().parseAsync(process.argv);
