-- meter warehouse, version 15: usage thresholds of a plan (docs/webhooks.md, `usage.threshold`).
-- A customer whose billable calls in the current billing period reach `calls` (of `api`, or of
-- every API when api is '') gets one `usage.threshold` webhook per period and threshold: the
-- event's id is derived from (customer, period, api, calls), so the outbox (013) holds it once
-- however many watchers see the crossing. Loaded from the catalog file by syncCatalog, which
-- replaces a plan's thresholds with the file's.

CREATE TABLE IF NOT EXISTS plan_usage_thresholds (
  plan_id text NOT NULL REFERENCES plans(id),
  api     text NOT NULL DEFAULT '',
  calls   bigint NOT NULL CHECK (calls > 0),
  PRIMARY KEY (plan_id, api, calls)
);
