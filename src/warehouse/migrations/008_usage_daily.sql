-- meter warehouse, version 8: usage_daily, the day sums of usage_hourly, so the cost query reads
-- a month of whole days from ~30 rows per API instead of ~720 hourly ones.
--
-- `day` is a UTC day (its UTC midnight, as timestamptz): a customer's own day in another zone
-- (Asia/Seoul, Asia/Kolkata ...) is not a UTC day, so readers take only the UTC days that lie
-- wholly inside their range (and inside one price segment) from here and the edge hours from
-- the hourly rows (src/billing/cost.ts).
--
-- Kept by triggers on usage_hourly, in the transaction of the statement that changed the hourly
-- rows (the rollup's replaceHour, a backfill, a fix by hand): every writer keeps it exact, none
-- has to remember to. Each statement adds (INSERT), subtracts (DELETE) or both (UPDATE) its rows'
-- sums per (customer, api, UTC day); `hours` counts the hourly rows behind a row, and a row whose
-- count falls to 0 is deleted, so a day row exists exactly when the day has hourly rows (billing
-- makes a line for an API with rows of 0 calls, as it does from the hourly rows).
--
-- It holds the ROLLUP's rows only. Hours where the live path is ahead (live_ahead_hours) are
-- billed from live_hourly by the billable_hourly view; readers must not take a day that holds
-- such an hour from here (cost.ts reads those days from billable_hourly).

-- No writer may change usage_hourly between the triggers' creation and the backfill.
LOCK TABLE usage_hourly IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE IF NOT EXISTS usage_daily (
  customer_id text NOT NULL,
  api         text NOT NULL,
  day         timestamptz NOT NULL,
  calls       bigint NOT NULL,
  events      bigint NOT NULL,
  hours       integer NOT NULL,
  PRIMARY KEY (customer_id, day, api)
);

-- TG_ARGV[0]: +1 for rows added (transition table of new rows), -1 for rows removed (old rows).
-- Statements that touch the same UTC day are serialised by an advisory lock per day (taken in
-- day order), so two rollups of hours of one day cannot deadlock on the day rows.
CREATE OR REPLACE FUNCTION usage_daily_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s integer := TG_ARGV[0]::integer;
BEGIN
  PERFORM pg_advisory_xact_lock(7243906, d.k)
     FROM (SELECT DISTINCT (extract(epoch FROM date_trunc('day', c.hour, 'UTC')) / 86400)::integer AS k FROM changed c) d
    ORDER BY d.k;
  INSERT INTO usage_daily AS u (customer_id, api, day, calls, events, hours)
  SELECT c.customer_id, c.api, date_trunc('day', c.hour, 'UTC'), (s * sum(c.calls))::bigint, (s * sum(c.events))::bigint, s * count(*)::integer
    FROM changed c
   GROUP BY 1, 2, 3
   ORDER BY 1, 3, 2
  ON CONFLICT (customer_id, day, api) DO UPDATE
    SET calls = u.calls + excluded.calls, events = u.events + excluded.events, hours = u.hours + excluded.hours;
  IF s < 0 THEN
    DELETE FROM usage_daily u
     USING (SELECT DISTINCT c.customer_id, c.api, date_trunc('day', c.hour, 'UTC') AS day FROM changed c) g
     WHERE u.customer_id = g.customer_id AND u.api = g.api AND u.day = g.day AND u.hours <= 0;
  END IF;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION usage_daily_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM usage_daily;
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS usage_daily_insert ON usage_hourly;
CREATE TRIGGER usage_daily_insert AFTER INSERT ON usage_hourly
  REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply('1');
DROP TRIGGER IF EXISTS usage_daily_update_add ON usage_hourly;
CREATE TRIGGER usage_daily_update_add AFTER UPDATE ON usage_hourly
  REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply('1');
DROP TRIGGER IF EXISTS usage_daily_update_sub ON usage_hourly;
CREATE TRIGGER usage_daily_update_sub AFTER UPDATE ON usage_hourly
  REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply('-1');
DROP TRIGGER IF EXISTS usage_daily_delete ON usage_hourly;
CREATE TRIGGER usage_daily_delete AFTER DELETE ON usage_hourly
  REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply('-1');
DROP TRIGGER IF EXISTS usage_daily_truncate ON usage_hourly;
CREATE TRIGGER usage_daily_truncate AFTER TRUNCATE ON usage_hourly
  FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_truncate();

-- Backfill from the hourly rows already there.
DELETE FROM usage_daily;
INSERT INTO usage_daily (customer_id, api, day, calls, events, hours)
SELECT customer_id, api, date_trunc('day', hour, 'UTC'), sum(calls), sum(events), count(*)
  FROM usage_hourly
 GROUP BY 1, 2, 3;
ANALYZE usage_daily;
