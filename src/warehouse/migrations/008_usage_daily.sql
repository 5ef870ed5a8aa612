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
-- has to remember to. Each statement adds (INSERT), subtracts (DELETE) or applies the difference
-- (UPDATE) of its rows' sums per (customer, api, UTC day); `hours` counts the hourly rows behind
-- a row, and a row whose count falls to 0 is deleted, so a day row exists exactly when the day
-- has hourly rows (billing makes a line for an API with rows of 0 calls, as from hourly rows).
--
-- It holds the ROLLUP's rows only. Hours where the live path is ahead (live_ahead_hours) are
-- billed from live_hourly by the billable_hourly view; readers must not take a day that holds
-- such an hour from here (cost.ts reads those days from billable_hourly).

-- No writer may change usage_hourly between the triggers' creation and the backfill.
LOCK TABLE usage_hourly IN SHARE ROW EXCLUSIVE MODE;

-- fillfactor: room on each page for the rollup's updates of a day's rows (HOT updates).
CREATE TABLE IF NOT EXISTS usage_daily (
  customer_id text NOT NULL,
  api         text NOT NULL,
  day         timestamptz NOT NULL,
  calls       bigint NOT NULL,
  events      bigint NOT NULL,
  hours       integer NOT NULL,
  PRIMARY KEY (customer_id, day, api)
) WITH (fillfactor = 70);

-- One function for the three row triggers: INSERT adds the new rows' sums, DELETE subtracts the
-- old rows', UPDATE applies the difference (new minus old) in one pass. A row whose hours fall
-- to 0 is deleted. Statements that touch the same UTC day are serialised by an advisory lock
-- per day (taken in day order), so two rollups of hours of one day cannot deadlock on its rows.
CREATE OR REPLACE FUNCTION usage_daily_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM pg_advisory_xact_lock(7243906, d.k)
       FROM (SELECT DISTINCT (extract(epoch FROM date_trunc('day', n.hour, 'UTC')) / 86400)::integer AS k FROM new_rows n) d
      ORDER BY d.k;
    INSERT INTO usage_daily AS u (customer_id, api, day, calls, events, hours)
    SELECT n.customer_id, n.api, date_trunc('day', n.hour, 'UTC'), sum(n.calls), sum(n.events), count(*)
      FROM new_rows n
     GROUP BY 1, 2, 3
    ON CONFLICT (customer_id, day, api) DO UPDATE
      SET calls = u.calls + excluded.calls, events = u.events + excluded.events, hours = u.hours + excluded.hours;
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM pg_advisory_xact_lock(7243906, d.k)
       FROM (SELECT DISTINCT (extract(epoch FROM date_trunc('day', o.hour, 'UTC')) / 86400)::integer AS k FROM old_rows o) d
      ORDER BY d.k;
    INSERT INTO usage_daily AS u (customer_id, api, day, calls, events, hours)
    SELECT o.customer_id, o.api, date_trunc('day', o.hour, 'UTC'), -sum(o.calls), -sum(o.events), -count(*)
      FROM old_rows o
     GROUP BY 1, 2, 3
    ON CONFLICT (customer_id, day, api) DO UPDATE
      SET calls = u.calls + excluded.calls, events = u.events + excluded.events, hours = u.hours + excluded.hours;
    DELETE FROM usage_daily u
     USING (SELECT DISTINCT o.customer_id, o.api, date_trunc('day', o.hour, 'UTC') AS day FROM old_rows o) g
     WHERE u.customer_id = g.customer_id AND u.api = g.api AND u.day = g.day AND u.hours <= 0;
  ELSIF TG_OP = 'UPDATE' THEN
    PERFORM pg_advisory_xact_lock(7243906, d.k)
       FROM (SELECT DISTINCT (extract(epoch FROM date_trunc('day', c.hour, 'UTC')) / 86400)::integer AS k
               FROM (SELECT n.hour FROM new_rows n UNION ALL SELECT o.hour FROM old_rows o) c) d
      ORDER BY d.k;
    INSERT INTO usage_daily AS u (customer_id, api, day, calls, events, hours)
    SELECT c.customer_id, c.api, c.day, sum(c.calls), sum(c.events), sum(c.hours)
      FROM (SELECT n.customer_id, n.api, date_trunc('day', n.hour, 'UTC') AS day, n.calls, n.events, 1 AS hours FROM new_rows n
            UNION ALL
            SELECT o.customer_id, o.api, date_trunc('day', o.hour, 'UTC'), -o.calls, -o.events, -1 FROM old_rows o) c
     GROUP BY 1, 2, 3
    HAVING sum(c.calls) <> 0 OR sum(c.events) <> 0 OR sum(c.hours) <> 0
    ON CONFLICT (customer_id, day, api) DO UPDATE
      SET calls = u.calls + excluded.calls, events = u.events + excluded.events, hours = u.hours + excluded.hours;
    -- only a (customer, api, day) that no new row has can have lost its last hourly row
    DELETE FROM usage_daily u
     USING (SELECT o.customer_id, o.api, date_trunc('day', o.hour, 'UTC') AS day FROM old_rows o
            EXCEPT
            SELECT n.customer_id, n.api, date_trunc('day', n.hour, 'UTC') FROM new_rows n) g
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
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply();
DROP TRIGGER IF EXISTS usage_daily_update ON usage_hourly;
CREATE TRIGGER usage_daily_update AFTER UPDATE ON usage_hourly
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply();
DROP TRIGGER IF EXISTS usage_daily_delete ON usage_hourly;
CREATE TRIGGER usage_daily_delete AFTER DELETE ON usage_hourly
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_daily_apply();
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
