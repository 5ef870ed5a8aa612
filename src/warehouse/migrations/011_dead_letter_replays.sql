-- meter warehouse, version 11: which dead-lettered events `meter dead-letters replay` has sent
-- back to the log (pipeline/dead-letter-replay.ts). One row per event id and topic: a second replay skips them.
CREATE TABLE IF NOT EXISTS dead_letter_replays (
  topic        text NOT NULL,
  event_id     text NOT NULL,
  customer_id  text NOT NULL,
  entry_id     bigint NOT NULL,
  replayed_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, event_id)
);
