-- meter warehouse, version 5: final invoices. A draft is computed on every read; when the grace
-- period after the billing period has passed, the invoice is stored here once (INSERT ... ON
-- CONFLICT DO NOTHING) and from then on read from here, never recomputed: late data, price edits
-- or re-rollups cannot change it. The payment server acknowledges it (acknowledged_at, set once).

CREATE TABLE IF NOT EXISTS invoices (
  id              text PRIMARY KEY,
  customer_id     text NOT NULL REFERENCES customers(id),
  period          text NOT NULL,
  period_start    timestamptz NOT NULL,
  period_end      timestamptz NOT NULL,
  currency        text NOT NULL,
  total_minor     bigint NOT NULL,
  finalized_at    timestamptz NOT NULL DEFAULT now(),
  acknowledged_at timestamptz,
  acknowledged_by text,
  body            jsonb NOT NULL,
  UNIQUE (customer_id, period)
);

CREATE INDEX IF NOT EXISTS invoices_period ON invoices (period, customer_id);

CREATE TABLE IF NOT EXISTS invoice_lines (
  invoice_id   text NOT NULL REFERENCES invoices(id),
  line_no      integer NOT NULL,
  api          text NOT NULL,
  quantity     bigint NOT NULL,
  amount_minor bigint NOT NULL,
  detail       jsonb NOT NULL,
  PRIMARY KEY (invoice_id, line_no)
);
