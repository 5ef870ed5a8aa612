-- meter warehouse, version 17: corrections of single events, with their audit trail
-- (docs/events-api.md, "Correcting and cancelling events").
--
-- `event_corrections` is append-only (a trigger refuses UPDATE, DELETE and TRUNCATE): one row per
-- correction a caller sent, never changed. `correction_id` is the caller's idempotency key and
-- `request_hash` the SHA-256 of the request it came with, so the same correction sent again is
-- applied once and another request under the same id is refused. `version` numbers an event's
-- corrections from 1; UNIQUE (event_id, version) makes two corrections of one event sent at once
-- serialise (the second sees the first as its "before", or is retried). `before_data` /
-- `after_data` are the event's data (JSON text) before and after; `action` 'cancel' leaves
-- after_data NULL. `hour` is the event's hour: the rollup reads an hour's corrections by it.
--
-- `rollup_corrections` holds, per hour that has any, how many corrections the hour has
-- (`corrections`: counted up in each correction's own transaction) and how many of them the
-- hour's current rows (usage_hourly, meter_hourly) include (`applied`: written by the rollup in
-- the hour's own transaction). An hour where they differ is pending (src/pipeline/rollup.ts); a
-- count, unlike a sequence number, is right whatever order corrections commit in. One row per
-- corrected hour, so the follower's check each round reads this small table, not the trail.

CREATE TABLE IF NOT EXISTS event_corrections (
  seq           bigserial PRIMARY KEY,
  correction_id text NOT NULL UNIQUE,
  request_hash  text NOT NULL,
  event_id      text NOT NULL,
  version       integer NOT NULL CHECK (version >= 1),
  hour          timestamptz NOT NULL,
  event_time    timestamptz NOT NULL,
  customer_id   text NOT NULL,
  api           text NOT NULL,
  source        text,
  source_id     text,
  action        text NOT NULL CHECK (action IN ('cancel', 'correct')),
  before_data   text,
  after_data    text,
  reason        text NOT NULL,
  actor         text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (event_id, version)
);
CREATE INDEX IF NOT EXISTS event_corrections_hour ON event_corrections (hour);
CREATE INDEX IF NOT EXISTS event_corrections_customer ON event_corrections (customer_id, seq);

CREATE OR REPLACE FUNCTION event_corrections_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'event_corrections is append-only: a correction is never changed or removed (send another correction)';
END
$$;
DROP TRIGGER IF EXISTS event_corrections_append_only ON event_corrections;
CREATE TRIGGER event_corrections_append_only BEFORE UPDATE OR DELETE ON event_corrections
  FOR EACH ROW EXECUTE FUNCTION event_corrections_append_only();
DROP TRIGGER IF EXISTS event_corrections_no_truncate ON event_corrections;
CREATE TRIGGER event_corrections_no_truncate BEFORE TRUNCATE ON event_corrections
  FOR EACH STATEMENT EXECUTE FUNCTION event_corrections_append_only();

CREATE TABLE IF NOT EXISTS rollup_corrections (
  hour        timestamptz PRIMARY KEY,
  corrections integer NOT NULL DEFAULT 0,
  applied     integer NOT NULL DEFAULT 0
);
