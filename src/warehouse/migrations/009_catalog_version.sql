-- meter warehouse, version 9: catalog_version, one number that every change of the catalog
-- (customers, their API keys, plans, prices, billing tokens) moves forward.
--
-- The billing API reads it in the same statement as dataCompleteUntil, once per answer, and
-- keeps customers, plans and tokens in memory for as long as it has not moved: two statements
-- per cost answer instead of four or five, and no answer priced with a catalog older than the
-- one its statement saw. Statement-level triggers bump it in the writer's own transaction, so
-- every writer (the CLI, an import, an edit by hand in psql) is seen, and none has to remember.

CREATE TABLE IF NOT EXISTS catalog_version (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  n   bigint NOT NULL
);
INSERT INTO catalog_version (one, n) VALUES (true, 1) ON CONFLICT (one) DO NOTHING;

CREATE OR REPLACE FUNCTION catalog_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE catalog_version SET n = n + 1;
  RETURN NULL;
END
$$;

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['customers', 'api_keys', 'plans', 'prices', 'billing_tokens'] LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS catalog_version_%1$s ON %1$I', t);
    EXECUTE format('CREATE TRIGGER catalog_version_%1$s AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %1$I
                      FOR EACH STATEMENT EXECUTE FUNCTION catalog_version_bump()', t);
  END LOOP;
END
$$;
