-- meter warehouse, version 4: the catalog (plans, versioned prices) and customers' billing settings.
-- Loaded from fixtures/catalog.json by `meter plans import` (syncCatalog), managed by
-- `meter customers|plans|prices`. Prices are never updated in place by a price change: a change
-- is a new row with a later effective_from, so past hours keep the price they were made at.

ALTER TABLE customers ADD COLUMN IF NOT EXISTS currency text;
-- NULL: the plan of the customer's newest API key (how customers made by `meter keys create` are billed).
ALTER TABLE customers ADD COLUMN IF NOT EXISTS plan_id text;

CREATE TABLE IF NOT EXISTS plans (
  id             text PRIMARY KEY,
  name           text NOT NULL,
  currency       text NOT NULL,
  rate_per_sec   double precision NOT NULL,
  burst          integer NOT NULL,
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- One row per price version. `charge` is the JSON form of the charge (model, unitPrice, tiers,
-- packageSize, packagePrice, freeUnits; decimals as strings). effective_from 'epoch' = always.
CREATE TABLE IF NOT EXISTS prices (
  plan_id        text NOT NULL REFERENCES plans(id),
  api            text NOT NULL,
  effective_from timestamptz NOT NULL,
  charge         jsonb NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (plan_id, api, effective_from)
);
