/** QuotaSource over the warehouse: the same billable counts and time zone the invoice uses. */
import type { Sql } from '../warehouse/warehouse.js';
import type { QuotaSource } from './quota.js';

export function warehouseQuotaSource(db: Sql): QuotaSource {
  return {
    async timeZone(customer) {
      const rows = await db.query<{ time_zone: string }>('SELECT time_zone FROM customers WHERE id = $1', [customer]);
      return rows[0]?.time_zone ?? 'UTC';
    },
    async used(customer, from, to) {
      const rows = await db.query<{ n: unknown }>(
        `SELECT coalesce(sum(calls), 0)::text AS n FROM billable_hourly
          WHERE customer_id = $1 AND hour >= $2::timestamptz AND hour < $3::timestamptz`,
        [customer, new Date(from).toISOString(), new Date(to).toISOString()],
      );
      return Number(rows[0]?.n ?? 0);
    },
  };
}
