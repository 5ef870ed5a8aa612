-- meter warehouse, version 2: billing API tokens for customers' own apps.
-- A customer token is `mbt_<id>_<secret>`; only a SHA-256 (hex) of the whole token is stored,
-- looked up by id and compared in constant time. Service tokens live in config (billingTokens).

CREATE TABLE IF NOT EXISTS billing_tokens (
  id          text PRIMARY KEY,
  customer_id text NOT NULL REFERENCES customers(id),
  token_hash  text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);

CREATE INDEX IF NOT EXISTS billing_tokens_customer ON billing_tokens (customer_id);

-- The billing API resolves a customer's plan from their newest key.
CREATE INDEX IF NOT EXISTS api_keys_customer_created ON api_keys (customer_id, created_at DESC);
