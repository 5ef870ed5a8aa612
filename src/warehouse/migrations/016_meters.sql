-- meter warehouse, version 16: meters (docs/meters.md).
--
-- `meters` holds the meters declared in the catalog file (the built-in ones, calls, bytes_in and
-- bytes_out, are not stored): the definition as the file spells it (slug, eventType, aggregation,
-- valueProperty, groupBy). The catalog file is authoritative: syncCatalog replaces the set.
--
-- `meter_hourly` holds each meter's value per customer, hour and group, computed by the rollup from
-- the hour's lake files (distinct event ids, as usage_hourly), and by `meter rollup --backfill
-- --meter` for past hours. `groups` is the group values as a JSON object ({} when the meter is not
-- grouped; a missing property is null). `value` is exact: a count, or a sum or maximum of decimals
-- (9 places), or the number of distinct values in the hour (not additive over hours: readers
-- that sum it over a longer window say so). `events`: the distinct events behind the row.
--
-- A meter's prices live in `prices` under the name '@' || slug, which no API name can take
-- (API_RE in src/billing/catalog.ts), so plans, versions, fingerprints and catalog_version
-- (009) serve them unchanged.

CREATE TABLE IF NOT EXISTS meters (
  slug       text PRIMARY KEY,
  definition jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS meter_hourly (
  customer_id text NOT NULL,
  meter       text NOT NULL,
  hour        timestamptz NOT NULL,
  groups      jsonb NOT NULL DEFAULT '{}'::jsonb,
  value       numeric NOT NULL,
  events      bigint NOT NULL,
  rolled_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer_id, meter, hour, groups)
);
-- A rollup replaces an hour's rows of every meter; a backfill one meter's.
CREATE INDEX IF NOT EXISTS meter_hourly_hour ON meter_hourly (hour, meter);

-- The billing API's answer cache (014) must see meter rows change as it sees usage_hourly's.
DROP TRIGGER IF EXISTS usage_version_meter_hourly ON meter_hourly;
CREATE TRIGGER usage_version_meter_hourly AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON meter_hourly
  FOR EACH STATEMENT EXECUTE FUNCTION usage_version_bump('rollup');
DROP TRIGGER IF EXISTS catalog_version_meters ON meters;
CREATE TRIGGER catalog_version_meters AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON meters
  FOR EACH STATEMENT EXECUTE FUNCTION catalog_version_bump();
