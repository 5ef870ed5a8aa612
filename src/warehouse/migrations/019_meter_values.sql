-- meter warehouse, version 19: UNIQUE_COUNT meters exact over any window, and priceable
-- (docs/meters.md "Distinct values over any window").
--
-- meter_hourly_values holds, for each row of a UNIQUE_COUNT meter in meter_hourly (016), the
-- 64-bit digests of the hour's distinct values in that group: the first 8 bytes of the value's
-- SHA-256, as a signed bigint, each once. It is written and replaced with the hour's meter rows
-- (rollup, rerun, backfill, correction: src/warehouse/meter-repository.ts replaceMeterHour), so
-- its groups are meter_hourly's, capped alike (MAX_GROUPS and the "(other)" group).
--
-- meter_value_digest(v) turns a live_meter_values (018) digest (the value's SHA-256 in
-- base64url, 22 characters) into the same 64-bit digest: its first 11 characters are the first
-- 66 bits, decoded with one '=' to 8 bytes.
--
-- billable_meter_values: the digests billing counts distinct, chosen per hour exactly as
-- billable_meter_hourly (018) chooses: the live path's for the hours it is ahead in
-- (live_ahead_hours), the rollup's otherwise.

CREATE TABLE IF NOT EXISTS meter_hourly_values (
  customer_id text NOT NULL,
  meter       text NOT NULL,
  hour        timestamptz NOT NULL,
  groups      jsonb NOT NULL DEFAULT '{}'::jsonb,
  digests     bigint[] NOT NULL,
  PRIMARY KEY (customer_id, meter, hour, groups)
);
-- A rollup replaces an hour's rows of every meter; a backfill one meter's.
CREATE INDEX IF NOT EXISTS meter_hourly_values_hour ON meter_hourly_values (hour, meter);

CREATE OR REPLACE FUNCTION meter_value_digest(v text) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT ('x' || encode(decode(translate(left(v, 11), '-_', '+/') || '=', 'base64'), 'hex'))::bit(64)::bigint $$;

CREATE OR REPLACE VIEW billable_meter_values AS
SELECT m.customer_id, m.meter, m.hour, m.groups, d.d
  FROM meter_hourly_values m CROSS JOIN LATERAL unnest(m.digests) AS d(d)
 WHERE m.hour <> ALL (ARRAY(SELECT a.hour FROM live_ahead_hours a))
UNION ALL
SELECT l.customer_id, l.meter, l.hour, l.groups, meter_value_digest(l.v) AS d
  FROM live_meter_values l
 WHERE l.hour = ANY (ARRAY(SELECT a.hour FROM live_ahead_hours a));
