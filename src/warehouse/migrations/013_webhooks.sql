-- meter warehouse, version 13: webhooks (docs/webhooks.md). Endpoints a payment server
-- registers (`meter webhooks add`), the outbox of events (written in the same transaction as
-- the change they announce, so an event is never lost nor sent for a rolled-back change), one
-- delivery per (event, endpoint) with its retry schedule, and every attempt's outcome.
-- The signing secret is kept as given: signing needs it (it is shown once, masked after).

CREATE TABLE IF NOT EXISTS webhook_endpoints (
  id          text PRIMARY KEY,
  url         text NOT NULL,
  events      text[] NOT NULL,
  secret      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  disabled_at timestamptz
);

CREATE TABLE IF NOT EXISTS webhook_events (
  id         text PRIMARY KEY,
  type       text NOT NULL,
  created_at timestamptz NOT NULL,
  body       text NOT NULL
);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id              text PRIMARY KEY,
  event_id        text NOT NULL REFERENCES webhook_events(id),
  endpoint_id     text NOT NULL REFERENCES webhook_endpoints(id),
  status          text NOT NULL DEFAULT 'pending',
  attempts        integer NOT NULL DEFAULT 0,
  created_at      timestamptz NOT NULL,
  next_attempt_at timestamptz NOT NULL,
  last_attempt_at timestamptz,
  last_status     integer,
  last_error      text,
  delivered_at    timestamptz,
  UNIQUE (event_id, endpoint_id)
);

CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS webhook_attempts (
  delivery_id  text NOT NULL REFERENCES webhook_deliveries(id),
  attempt      integer NOT NULL,
  attempted_at timestamptz NOT NULL,
  duration_ms  integer NOT NULL,
  status       integer,
  error        text,
  PRIMARY KEY (delivery_id, attempt)
);
