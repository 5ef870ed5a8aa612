-- meter warehouse, version 13: usage_version, two numbers that every change of billable usage
-- moves forward: `rollup` (usage_hourly, and rollup_hours, whose event counts decide where the
-- live path is ahead) and `live` (live_hourly).
--
-- The billing API reads them in the statement that reads catalog_version (once per answer) and
-- keeps its answers in memory while they hold (src/billing/answer-cache-reports.ts): a closed
-- period's cost changes only when the rollup or the catalog changes it. Statement-level triggers
-- bump them in the writer's own transaction, as for catalog_version (009), so every writer (the
-- rollup, a backfill, the live path, a fix by hand in psql) is seen, and none has to remember.
--
-- Each number is the sum of 16 rows (slots); a writer bumps the slot of its backend. So two
-- rollups of different hours in two processes (docs/scaling.md) do not wait on one row's lock
-- until the other commits, and the sum still grows with every committed change, never back.

CREATE TABLE IF NOT EXISTS usage_version (
  part text NOT NULL CHECK (part IN ('rollup', 'live')),
  slot integer NOT NULL CHECK (slot >= 0 AND slot < 16),
  n    bigint NOT NULL,
  PRIMARY KEY (part, slot)
);
INSERT INTO usage_version (part, slot, n)
SELECT p, s, 0 FROM unnest(ARRAY['rollup', 'live']) p, generate_series(0, 15) s
ON CONFLICT (part, slot) DO NOTHING;

CREATE OR REPLACE FUNCTION usage_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE usage_version SET n = n + 1 WHERE part = TG_ARGV[0] AND slot = pg_backend_pid() % 16;
  RETURN NULL;
END
$$;

DO $$
DECLARE t text[];
BEGIN
  FOREACH t SLICE 1 IN ARRAY ARRAY[ARRAY['usage_hourly', 'rollup'], ARRAY['rollup_hours', 'rollup'], ARRAY['live_hourly', 'live']] LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS usage_version_%1$s ON %1$I', t[1]);
    EXECUTE format('CREATE TRIGGER usage_version_%1$s AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %1$I
                      FOR EACH STATEMENT EXECUTE FUNCTION usage_version_bump(%2$L)', t[1], t[2]);
  END LOOP;
END
$$;
