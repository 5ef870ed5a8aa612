-- meter warehouse, version 7: per-plan quotas (calls per day or month in the customer's billing
-- time zone). NULL: the plan has no quota. The gateway enforces them against billable_hourly.
ALTER TABLE plans ADD COLUMN IF NOT EXISTS quota_limit bigint;
ALTER TABLE plans ADD COLUMN IF NOT EXISTS quota_period text;
