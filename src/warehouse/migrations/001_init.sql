-- meter warehouse, version 1. Runs on PGlite and on PostgreSQL alike.

CREATE TABLE IF NOT EXISTS customers (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  time_zone   text NOT NULL DEFAULT 'UTC',
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Only a SHA-256 of the secret is stored; `prefix` (first chars of the key) helps people tell keys apart.
CREATE TABLE IF NOT EXISTS api_keys (
  id          text PRIMARY KEY,
  customer_id text NOT NULL REFERENCES customers(id),
  plan_id     text NOT NULL,
  key_hash    text NOT NULL UNIQUE,
  prefix      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);

-- The product of the pipeline: per customer, API and UTC hour, the distinct billable calls
-- (`calls`) and all distinct events (`events`, billable or not).
CREATE TABLE IF NOT EXISTS usage_hourly (
  customer_id text NOT NULL,
  api         text NOT NULL,
  hour        timestamptz NOT NULL,
  calls       bigint NOT NULL,
  events      bigint NOT NULL,
  rolled_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer_id, hour, api)
);

-- Which lake files each hour's rows were built from: the rollup redoes an hour whose set changed.
CREATE TABLE IF NOT EXISTS rollup_files (
  hour        timestamptz NOT NULL,
  path        text NOT NULL,
  size        bigint NOT NULL,
  PRIMARY KEY (hour, path)
);

CREATE TABLE IF NOT EXISTS rollup_hours (
  hour        timestamptz PRIMARY KEY,
  files       integer NOT NULL,
  events      bigint NOT NULL,
  rolled_at   timestamptz NOT NULL DEFAULT now()
);
