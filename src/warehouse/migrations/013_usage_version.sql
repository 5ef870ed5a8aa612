-- meter warehouse, version 13: usage_version, two numbers that every change of billable usage
-- moves forward: `rollup` (usage_hourly, and rollup_hours, whose event counts decide where the
-- live path is ahead) and `live` (live_hourly).
--
-- The billing API reads them in the statement that reads catalog_version (once per answer) and
-- keeps its answers in memory while they hold (src/billing/answer-cache.ts): a closed period's
-- cost changes only when the rollup or the catalog changes it. Statement-level triggers bump
-- them in the writer's own transaction, as for catalog_version (009), so every writer (the
-- rollup, a backfill, the live path, a fix by hand in psql) is seen, and none has to remember.
-- Two rows, so the live path and the rollup never wait on each other's row lock.

CREATE TABLE IF NOT EXISTS usage_version (
  part text PRIMARY KEY CHECK (part IN ('rollup', 'live')),
  n    bigint NOT NULL
);
INSERT INTO usage_version (part, n) VALUES ('rollup', 1), ('live', 1) ON CONFLICT (part) DO NOTHING;

CREATE OR REPLACE FUNCTION usage_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE usage_version SET n = n + 1 WHERE part = TG_ARGV[0];
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
