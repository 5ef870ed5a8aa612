import type { Command } from 'commander';
import { idArgument } from './id-argument.js';
import { action, contextOf, printJson, withWarehouse } from './context.js';
import { openWarehouse } from '../runtime/backends.js';
import { UserError } from '../ground/errors.js';
import { customerTokenId, issueCustomerToken, listCustomerTokens, revokeCustomerToken, UnknownCustomerError } from '../billing/auth.js';
import { parseDurationFlag } from './duration.js';
import { table } from './billing-support.js';
import { quote } from '../ground/text.js';

/** Longest --expires-in: ten years (a token meant to live longer needs no expiry). Not a timer: compared with the clock. */
const MAX_EXPIRY_MS = 3650 * 86_400_000;

/** --expires-in -> ms: a unit required (as always), from 1s (500ms passed though the error said 1s) to 3650d. */
function expiresIn(raw: string | undefined): number | undefined {
  return raw === undefined ? undefined : parseDurationFlag('expires-in', raw, { bare: 'none', minMs: 1000, maxMs: MAX_EXPIRY_MS });
}

export function registerTokens(program: Command): void {
  const tokens = program.command('tokens').description("billing API tokens for customers' own apps (see their usage and cost only)");
  tokens
    .command('create [customer]')
    .description('create a token for one customer; prints it once')
    .option('--customer <id>', 'the same as the [customer] argument (kept for scripts)')
    .option('--expires-in <duration>', 'the token stops working this long after it is created (30d, 12h, 90m; 1s to 3650d); default: until revoked')
    .addHelpText('after', '\nExample:\n  meter tokens create acme --expires-in 30d\n')
    .action(
      action(async (customerArg: string | undefined, o: { customer?: string; expiresIn?: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const opts = { ...o, customer: idArgument('customer', customerArg, o.customer, 'meter tokens create acme') };
        const expiresInMs = expiresIn(opts.expiresIn);
        const db = await openWarehouse(config, logger);
        try {
          const { token, expiresAt } = await issueCustomerToken(db, opts.customer, { expiresInMs }).catch((e: unknown) => {
            if (e instanceof UnknownCustomerError)
              throw new UserError(`customer ${quote(opts.customer)} does not exist`, 'create it first: meter customers create <id>');
            throw e;
          });
          const expires = expiresAt === null ? null : new Date(expiresAt).toISOString();
          if (json) printJson({ customer: opts.customer, token, expiresAt: expires });
          else {
            process.stdout.write(`${token}\n`);
            process.stderr.write(`token for ${opts.customer}${expires ? `, valid until ${expires}` : ', valid until revoked'}: shown once, store it now\n`);
          }
        } finally {
          await db.close();
        }
      }),
    );
  tokens
    .command('list')
    .description('list tokens: id, customer, created, state (never the secrets)')
    .option('--customer <id>', 'only this customer')
    .action(
      withWarehouse(async ({ db, json }, opts: { customer?: string }) => {
        const rows = await listCustomerTokens(db, opts.customer);
        const now = Date.now();
        const state = (t: (typeof rows)[number]) =>
          t.revokedAt
            ? `revoked ${t.revokedAt}`
            : t.expiresAt && Date.parse(t.expiresAt) <= now
              ? `expired ${t.expiresAt}`
              : t.expiresAt
                ? `active until ${t.expiresAt}`
                : 'active';
        if (json) printJson(rows.map((t) => ({ ...t, state: state(t).split(' ')[0] })));
        else
          process.stdout.write(
            table(
              ['id', 'customer', 'created', 'state'],
              rows.map((t) => [t.id, t.customerId, t.createdAt, state(t)]),
            ),
          );
      }),
    );
  tokens
    .command('revoke <id>')
    .description('revoke a token by its id (from `meter tokens list`, or the token itself); the billing API refuses it at once')
    .action(
      withWarehouse(async ({ db, json }, id: string, _opts) => {
        // Given the whole token, only its id part is ever printed.
        const tokenId = customerTokenId(id.trim()) ?? id.trim();
        const ok = await revokeCustomerToken(db, tokenId);
        if (!ok) throw new UserError(`no active token has id ${quote(tokenId)}`, 'see `meter tokens list`');
        if (json) printJson({ id: tokenId, revoked: true });
        else process.stdout.write(`revoked token ${tokenId}\n`);
      }),
    );
}
