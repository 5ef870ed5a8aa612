-- meter warehouse, version 3: the live path (the seed's second stream job).
-- The live consumer group keeps the open hour's counts here within seconds; the rollup of an
-- hour (usage_hourly, from the lake) stays the source of truth. Billing reads billable_hourly.

-- Progress of a live consumer group per log partition, written in the SAME transaction as the
-- counts it covers (exactly once by transactional offsets: a restart resumes from here, never
-- from the log's committed offsets). complete_until: every record appended to this partition
-- before that instant has been applied. applied_records: records applied so far (a check that
-- no record was applied twice).
CREATE TABLE IF NOT EXISTS live_offsets (
  topic           text NOT NULL,
  grp             text NOT NULL,
  log_partition   integer NOT NULL,
  next_offset     bigint NOT NULL,
  complete_until  timestamptz,
  applied_records bigint NOT NULL DEFAULT 0,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, grp, log_partition)
);

-- Provisional counts per (customer, api, UTC hour): distinct event ids (see live_seen).
CREATE TABLE IF NOT EXISTS live_hourly (
  customer_id text NOT NULL,
  api         text NOT NULL,
  hour        timestamptz NOT NULL,
  calls       bigint NOT NULL,
  events      bigint NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (hour, customer_id, api)
);
CREATE INDEX IF NOT EXISTS live_hourly_customer ON live_hourly (customer_id, hour);

-- Ids already counted into live_hourly, per hour of event time: a duplicate (producer retry,
-- spool replay, a second live process) is not counted twice. An hour's live_seen and
-- live_hourly rows are always deleted together (live-repository.ts pruneLive), so the live
-- count of an hour is always the exact number of distinct ids among the events it has seen.
CREATE TABLE IF NOT EXISTS live_seen (
  hour  timestamptz NOT NULL,
  id    uuid NOT NULL,
  PRIMARY KEY (hour, id)
);

-- Hours where the live path has counted MORE distinct events than the rollup holds (the open
-- hour; a closed hour whose final rollup has not run yet). Both sources count distinct ids of
-- the same accepted events, so each is an exact subset of the truth and the larger is the
-- more complete; on a tie (everything drained) the rollup wins. rollup_hours.events is the
-- rollup's distinct count of the hour (written with its rows); live_hourly stays small (pruned).
CREATE OR REPLACE VIEW live_ahead_hours AS
SELECT l.hour
  FROM live_hourly l
 GROUP BY l.hour
HAVING sum(l.events) > coalesce((SELECT r.events FROM rollup_hours r WHERE r.hour = l.hour), 0);

-- What billing sums: per hour, the rollup's rows, or the live rows where live is ahead.
CREATE OR REPLACE VIEW billable_hourly AS
SELECT u.customer_id, u.api, u.hour, u.calls, u.events, 'rollup'::text AS source
  FROM usage_hourly u
 WHERE NOT EXISTS (SELECT 1 FROM live_ahead_hours a WHERE a.hour = u.hour)
UNION ALL
SELECT l.customer_id, l.api, l.hour, l.calls, l.events, 'live'::text AS source
  FROM live_hourly l
 WHERE EXISTS (SELECT 1 FROM live_ahead_hours a WHERE a.hour = l.hour);
