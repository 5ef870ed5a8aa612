-- meter warehouse, version 20: which dead-lettered events `meter dead-letters replay` has sent
-- back to the log (pipeline/dead-letter-replay.ts). One row per event id and topic: a second
-- replay skips them. (Numbered 20 to stay clear of migrations other branches add meanwhile.)
CREATE TABLE IF NOT EXISTS dead_letter_replays (
  topic        text NOT NULL,
  event_id     text NOT NULL,
  customer_id  text NOT NULL,
  entry_id     bigint NOT NULL,
  replayed_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, event_id)
);
