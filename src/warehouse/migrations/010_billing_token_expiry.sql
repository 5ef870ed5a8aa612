-- meter warehouse, version 10: customer billing tokens may expire.
-- expires_at NULL: never. The billing API refuses a token at or after expires_at (401), checked
-- against its clock on every request, so an expiry needs no write and no catalog_version bump
-- (revocation is an UPDATE, which migration 009's trigger already makes visible at once).

ALTER TABLE billing_tokens ADD COLUMN IF NOT EXISTS expires_at timestamptz;
