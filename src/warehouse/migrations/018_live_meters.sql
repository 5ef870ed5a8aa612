-- meter warehouse, version 18: the live path counts meters too (docs/meters.md "Freshness").
--
-- live_meter_hourly is to meter_hourly (016) what live_hourly is to usage_hourly (003): the open
-- hour's provisional rows per (customer, meter, hour, group), written by the live path in the
-- transaction of the window and the offsets it covers, of the events new to live_seen only.
-- live_meter_values holds, for UNIQUE_COUNT meters, a digest of each distinct value counted in
-- the hour and group, so a value seen again (in a later window, or by another partition's
-- consumer) is not counted twice. Both are deleted with the hour's live_seen and live_hourly
-- rows (src/pipeline/live/live-repository.ts pruneLive).
--
-- billable_meter_hourly: what billing sums for meters, chosen per hour exactly as
-- billable_hourly chooses for calls (006): the live rows for the hours where the live path has
-- counted more distinct events than the rollup (live_ahead_hours), the rollup's otherwise. The
-- same events feed both, so an hour never mixes the two and is never counted twice at the
-- boundary.
--
-- (017 is taken by event cancel/correct, built on another branch.)

CREATE TABLE IF NOT EXISTS live_meter_hourly (
  customer_id text NOT NULL,
  meter       text NOT NULL,
  hour        timestamptz NOT NULL,
  groups      jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- NULL: a MAX meter's events without a value so far (its events still count, as in the
  -- rollup's row; the rollup has no row for an hour of no value, so billing skips these)
  value       numeric,
  events      bigint NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (hour, customer_id, meter, groups)
);
CREATE INDEX IF NOT EXISTS live_meter_hourly_customer ON live_meter_hourly (customer_id, meter, hour);

CREATE TABLE IF NOT EXISTS live_meter_values (
  hour        timestamptz NOT NULL,
  customer_id text NOT NULL,
  meter       text NOT NULL,
  groups      jsonb NOT NULL,
  v           text NOT NULL,
  PRIMARY KEY (hour, customer_id, meter, groups, v)
);

CREATE OR REPLACE VIEW billable_meter_hourly AS
SELECT m.customer_id, m.meter, m.hour, m.groups, m.value, m.events, 'rollup'::text AS source
  FROM meter_hourly m
 WHERE m.hour <> ALL (ARRAY(SELECT a.hour FROM live_ahead_hours a))
UNION ALL
SELECT l.customer_id, l.meter, l.hour, l.groups, l.value, l.events, 'live'::text AS source
  FROM live_meter_hourly l
 WHERE l.hour = ANY (ARRAY(SELECT a.hour FROM live_ahead_hours a)) AND l.value IS NOT NULL;

-- The billing API's answer cache (014) must see live meter rows change as it sees live_hourly's.
DROP TRIGGER IF EXISTS usage_version_live_meter_hourly ON live_meter_hourly;
CREATE TRIGGER usage_version_live_meter_hourly AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON live_meter_hourly
  FOR EACH STATEMENT EXECUTE FUNCTION usage_version_bump('live');
