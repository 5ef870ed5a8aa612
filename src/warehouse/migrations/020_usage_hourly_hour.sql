-- meter warehouse, version 20: the rollup's write of an hour reads and changes only that hour,
-- and usage_daily's trigger does less per hour (bench/results/2026-12-05-rollup-write.md).
--
-- usage_hourly's key is (customer_id, hour, api), for billing's reads of a customer's range. The
-- rollup finds an hour's rows by the hour alone (src/warehouse/usage-repository.ts replaceHour):
-- without an index on it, each hour written read the whole table (a seq scan: 580 ms per hour
-- with 28 days of rows, growing with every day kept). New hours are appended at the index's
-- right edge, so keeping it costs little.
--
-- On a large table this builds the index under a lock that holds writers (not readers) of
-- usage_hourly back until it is built.
CREATE INDEX IF NOT EXISTS usage_hourly_hour ON usage_hourly (hour);

-- usage_daily's trigger function (008), the same sums with less work per statement, measured by
-- the backend's CPU for a 10,000-row hour (bench/results/2026-12-05-rollup-write.md):
-- - the day locks are computed from the statement's distinct hours, not from every row;
-- - a statement of one hour (every rollup write) has one row per (customer, api, day), so its
--   rows go to the upsert as they are, without a GROUP BY, in the order they were written
--   (replaceHour writes them in key order, so the day rows are visited in their index's order);
-- - the grouped forms hand their groups over in usage_daily's key order, for the same reason.
CREATE OR REPLACE FUNCTION usage_daily_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  days integer[];
  hours bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    SELECT array_agg(d.k ORDER BY d.k), sum(d.hours) INTO days, hours
      FROM (SELECT (extract(epoch FROM date_trunc('day', h.hour, 'UTC')) / 86400)::integer AS k, count(*) AS hours
              FROM (SELECT DISTINCT n.hour FROM new_rows n) h GROUP BY 1) d;
    PERFORM pg_advisory_xact_lock(7243906, k) FROM unnest(days) AS k ORDER BY k;
    IF hours = 1 THEN
      INSERT INTO usage_daily AS u (customer_id, api, day, calls, events, hours)
      SELECT n.customer_id, n.api, date_trunc('day', n.hour, 'UTC'), n.calls, n.events, 1
        FROM new_rows n
      ON CONFLICT (customer_id, day, api) DO UPDATE
        SET calls = u.calls + excluded.calls, events = u.events + excluded.events, hours = u.hours + excluded.hours;
    ELSE
      INSERT INTO usage_daily AS u (customer_id, api, day, calls, events, hours)
      SELECT n.customer_id, n.api, date_trunc('day', n.hour, 'UTC'), sum(n.calls), sum(n.events), count(*)
        FROM new_rows n
       GROUP BY 1, 2, 3
       ORDER BY 1, 3, 2
      ON CONFLICT (customer_id, day, api) DO UPDATE
        SET calls = u.calls + excluded.calls, events = u.events + excluded.events, hours = u.hours + excluded.hours;
    END IF;
  ELSIF TG_OP = 'DELETE' THEN
    SELECT array_agg(d.k ORDER BY d.k) INTO days
      FROM (SELECT DISTINCT (extract(epoch FROM date_trunc('day', h.hour, 'UTC')) / 86400)::integer AS k
              FROM (SELECT DISTINCT o.hour FROM old_rows o) h) d;
    PERFORM pg_advisory_xact_lock(7243906, k) FROM unnest(days) AS k ORDER BY k;
    INSERT INTO usage_daily AS u (customer_id, api, day, calls, events, hours)
    SELECT o.customer_id, o.api, date_trunc('day', o.hour, 'UTC'), -sum(o.calls), -sum(o.events), -count(*)
      FROM old_rows o
     GROUP BY 1, 2, 3
     ORDER BY 1, 3, 2
    ON CONFLICT (customer_id, day, api) DO UPDATE
      SET calls = u.calls + excluded.calls, events = u.events + excluded.events, hours = u.hours + excluded.hours;
    DELETE FROM usage_daily u
     USING (SELECT DISTINCT o.customer_id, o.api, date_trunc('day', o.hour, 'UTC') AS day FROM old_rows o) g
     WHERE u.customer_id = g.customer_id AND u.api = g.api AND u.day = g.day AND u.hours <= 0;
  ELSIF TG_OP = 'UPDATE' THEN
    SELECT array_agg(d.k ORDER BY d.k) INTO days
      FROM (SELECT DISTINCT (extract(epoch FROM date_trunc('day', h.hour, 'UTC')) / 86400)::integer AS k
              FROM (SELECT n.hour FROM new_rows n UNION SELECT o.hour FROM old_rows o) h) d;
    PERFORM pg_advisory_xact_lock(7243906, k) FROM unnest(days) AS k ORDER BY k;
    INSERT INTO usage_daily AS u (customer_id, api, day, calls, events, hours)
    SELECT c.customer_id, c.api, c.day, sum(c.calls), sum(c.events), sum(c.hours)
      FROM (SELECT n.customer_id, n.api, date_trunc('day', n.hour, 'UTC') AS day, n.calls, n.events, 1 AS hours FROM new_rows n
            UNION ALL
            SELECT o.customer_id, o.api, date_trunc('day', o.hour, 'UTC'), -o.calls, -o.events, -1 FROM old_rows o) c
     GROUP BY 1, 2, 3
    HAVING sum(c.calls) <> 0 OR sum(c.events) <> 0 OR sum(c.hours) <> 0
     ORDER BY 1, 3, 2
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
