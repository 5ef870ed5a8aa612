/**
 * Customers as billing sees them: billing time zone (their invoices are calendar months there),
 * currency, and plan. A customer's plan is customers.plan_id when set, else the plan of their
 * newest live API key (customers made by `meter keys create` have no plan of their own).
 */
import { oneRow } from '../warehouse/one-row.js';
import type { Sql, Warehouse } from '../warehouse/warehouse.js';
import { toMs } from '../warehouse/values.js';
import { minorDigits } from './money.js';
import { resolveTimeZone } from '../ground/time.js';
import { labelProblem, MAX_LABEL_CHARS, quote } from '../ground/text.js';

export interface BillingCustomer {
  id: string;
  name: string;
  timeZone: string;
  /** null: the plan's currency. */
  currency: string | null;
  planId: string | null;
  /** Where planId came from. */
  planSource: 'customer' | 'api_key' | null;
  createdAt: string;
}

export class CustomerInputError extends Error {
  override name = 'CustomerInputError';
  constructor(
    readonly field: string,
    message: string,
    /** How to fix it, when more than "check the field". */
    readonly hint?: string,
  ) {
    super(message);
  }
}

/**
 * A customer billed in one currency and priced by a plan in another has no invoice at all (every
 * read says so, the export skips it): refused when a change would make it. `via` says where the
 * plan comes from: the customer's own, its newest API key's (a customer without a plan of its own
 * is priced by it), or the key about to be made, which will be the newest.
 */
export function currencyRefusal(
  id: string,
  currency: string | null,
  plan: { id: string; currency: string },
  via: 'customer' | 'api_key' | 'new_key',
): CustomerInputError | null {
  if (currency === null || currency === plan.currency) return null;
  const priced = {
    customer: `its plan "${plan.id}"`,
    api_key: `"${plan.id}", the plan of its newest API key,`,
    new_key: `"${plan.id}", the plan of this key,`,
  }[via];
  const own = `give it a plan of its own priced in ${currency}: meter customers create ${id} --plan <id>`;
  return new CustomerInputError(
    via === 'new_key' ? 'plan' : 'currency',
    `customer ${id} would be billed in ${currency}, but ${priced} is priced in ${plan.currency}: no invoice could be made`,
    {
      customer: `bill it in ${plan.currency} (--currency ${plan.currency}), or pick a plan priced in ${currency} (meter plans list)`,
      api_key: `bill it in ${plan.currency} (--currency ${plan.currency}), or ${own}`,
      new_key: `pick a plan priced in ${currency} (meter plans list), or ${own}`,
    }[via],
  );
}

export const CUSTOMER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

const SELECT = `SELECT c.id, c.name, c.time_zone, c.currency, c.plan_id, c.created_at,
    (SELECT k.plan_id FROM api_keys k WHERE k.customer_id = c.id
      ORDER BY (k.revoked_at IS NULL) DESC, k.created_at DESC, k.id DESC LIMIT 1) AS key_plan
  FROM customers c`;

interface Row {
  id: string;
  name: string;
  time_zone: string;
  currency: string | null;
  plan_id: string | null;
  key_plan: string | null;
  created_at: unknown;
}

function fromRow(r: Row): BillingCustomer {
  const planId = r.plan_id ?? r.key_plan ?? null;
  return {
    id: r.id,
    name: r.name,
    timeZone: r.time_zone,
    currency: r.currency ?? null,
    planId,
    planSource: r.plan_id ? 'customer' : r.key_plan ? 'api_key' : null,
    createdAt: new Date(toMs(r.created_at)).toISOString(),
  };
}

export async function getCustomer(db: Sql, id: string): Promise<BillingCustomer | null> {
  const rows = await db.query<Row>(`${SELECT} WHERE c.id = $1`, [id], { prepare: true });
  const [row] = rows;
  return row ? fromRow(row) : null;
}

export async function listCustomers(db: Sql): Promise<BillingCustomer[]> {
  return (await db.query<Row>(`${SELECT} ORDER BY c.id`)).map(fromRow);
}

/** One page of customers by id (keyset: one index range read per page). */
export async function listCustomersPage(db: Sql, after: string | null, limit: number): Promise<BillingCustomer[]> {
  const rows =
    after === null
      ? await db.query<Row>(`${SELECT} ORDER BY c.id LIMIT $1`, [limit])
      : await db.query<Row>(`${SELECT} WHERE c.id > $1 ORDER BY c.id LIMIT $2`, [after, limit]);
  return rows.map(fromRow);
}

export interface CustomerInput {
  id: string;
  name?: string;
  timeZone?: string;
  currency?: string;
  plan?: string;
}

/** The ISO 4217 codes this Node knows (ICU's list, historic ones included). */
const CURRENCIES = new Set(Intl.supportedValuesOf('currency'));

/** Create a customer, or update the given fields of an existing one. */
export async function upsertCustomer(db: Warehouse, input: CustomerInput): Promise<{ customer: BillingCustomer; created: boolean }> {
  if (!CUSTOMER_ID_RE.test(input.id))
    throw new CustomerInputError('id', `invalid customer id ${quote(input.id)}: use 1-128 of A-Z a-z 0-9 . _ : @ - (starting with a letter or digit)`);
  let tz: string | undefined;
  if (input.timeZone !== undefined) {
    tz = resolveTimeZone(input.timeZone) ?? undefined;
    if (!tz) throw new CustomerInputError('timeZone', `${quote(input.timeZone)} is not an IANA time zone such as Asia/Seoul or UTC`);
  }
  if (input.currency !== undefined) {
    const upper = input.currency.toUpperCase();
    if (upper !== input.currency && CURRENCIES.has(upper))
      throw new CustomerInputError('currency', `not an ISO 4217 currency code: ${quote(input.currency)} (codes are capitals: ${upper})`);
    try {
      minorDigits(input.currency);
    } catch (e) {
      throw new CustomerInputError('currency', (e as Error).message);
    }
    // Three capitals are not yet a currency: "UDS" for USD was taken, and invoiced in UDS.
    if (!CURRENCIES.has(input.currency))
      throw new CustomerInputError('currency', `unknown currency ${quote(input.currency)}: not an ISO 4217 code (e.g. USD, EUR, KRW)`);
  }
  if (input.name !== undefined) {
    if (!input.name.trim()) throw new CustomerInputError('name', 'name must not be empty');
    // The name is shown in tables, invoices and the billing API as it is: printable, one line.
    const bad = labelProblem(input.name);
    if (bad) throw new CustomerInputError('name', `name ${bad}: a name is 1 to ${MAX_LABEL_CHARS} characters of printable text`);
  }
  return db.transaction(async (tx) => {
    const existing = await tx.query('SELECT 1 FROM customers WHERE id = $1 FOR UPDATE', [input.id]);
    // Checked on the customer as it would be after the change, plan and currency together.
    if (input.plan !== undefined || input.currency !== undefined) {
      const [prior] = existing.length ? await tx.query<Row>(`${SELECT} WHERE c.id = $1`, [input.id]) : [];
      const before = prior ? fromRow(prior) : null;
      const planId = input.plan ?? before?.planId ?? null;
      const [plan] = planId === null ? [] : await tx.query<{ currency: string }>('SELECT currency FROM plans WHERE id = $1', [planId]);
      if (!plan && input.plan !== undefined)
        throw new CustomerInputError('plan', `unknown plan ${quote(input.plan)} (see meter plans list; load a catalog with meter plans import <file>)`);
      const via = input.plan !== undefined || before?.planSource === 'customer' ? 'customer' : 'api_key';
      const refusal =
        plan && planId !== null ? currencyRefusal(input.id, input.currency ?? before?.currency ?? null, { id: planId, currency: plan.currency }, via) : null;
      if (refusal) throw refusal;
    }
    if (!existing.length) {
      await tx.query('INSERT INTO customers (id, name, time_zone, currency, plan_id) VALUES ($1, $2, $3, $4, $5)', [
        input.id,
        input.name ?? input.id,
        tz ?? 'UTC',
        input.currency ?? null,
        input.plan ?? null,
      ]);
    } else {
      await tx.query(
        `UPDATE customers SET name = COALESCE($2, name), time_zone = COALESCE($3, time_zone), currency = COALESCE($4, currency), plan_id = COALESCE($5, plan_id) WHERE id = $1`,
        [input.id, input.name ?? null, tz ?? null, input.currency ?? null, input.plan ?? null],
      );
    }
    // written above in this transaction
    const row = oneRow(await tx.query<Row>(`${SELECT} WHERE c.id = $1`, [input.id]), 'the customer just written');
    return { customer: fromRow(row), created: !existing.length };
  });
}
